"""Stage features@<candidate>: the untrained model and its frozen-feature cache in data/features/<candidate>
(facemask.pipeline.features does the work)."""
import time
from pathlib import Path

import numpy as np

from facemask.core.backbones import resolve_weights
from facemask.core.files import write_json
from facemask.core.model import build_ensemble, pooled_layers
from facemask.core.params import load_params
from facemask.core.quiet_tf import keras
from facemask.core.stage import candidate_arg, run
from facemask.pipeline.features import OUT_ROOT, images_digest, shared_features
from facemask.pipeline.splits import split_images, training_images


def main() -> None:
    name = candidate_arg("features")
    params = load_params()
    candidate, settings = params.candidate(name), params.features
    image_size, weights = candidate.image_size, candidate.weights
    members = {backbone: resolve_weights(backbone, weights, settings.weights_dir) for backbone in candidate.backbones}
    keras.utils.set_random_seed(settings.seed)
    model = build_ensemble(members, image_size, name=f"facemask_{name}")
    out_dir = OUT_ROOT / name
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    train_paths, train_y = training_images()
    val_paths, val_y = split_images("val")
    if candidate.train.epochs > 0:
        splits = {"train_x": train_paths, "val_x": val_paths}
        digest = images_digest(train_paths + val_paths)
        parts = [shared_features(model, backbone, layer, image_size, splits, digest, settings.batch_size)
                 for backbone, layer in pooled_layers(candidate.backbones).items()]
        np.savez(out_dir / "features.npz", train_y=train_y, val_y=val_y,
                 **{split: np.concatenate([part[split] for part in parts], axis=1) for split in ("train_x", "val_x")})
    seconds = time.perf_counter() - started
    model.save(out_dir / "base.keras")
    write_json(out_dir / "meta.json", {
        "candidate": name, "image_size": image_size, "weights": weights,
        "members": {name: Path(file).name if file else None for name, file in members.items()},
        "images": len(train_paths) + len(val_paths), "seconds": round(seconds, 1),
    })
    what = f"{len(train_paths)} train + {len(val_paths)} val images" if candidate.train.epochs > 0 else \
        "no feature cache (epochs: 0, the candidate fine-tunes on images)"
    print(f"features@{name}: {what} at {image_size}px (weights: {weights}) in {seconds:.0f}s")


if __name__ == "__main__":
    run(main, "features")
