"""Stage features@<candidate>: build the untrained classifier and cache its frozen pooled features.

The backbone (keras.applications, include_top=False, weights per params) is frozen, so its pooled
output for an image never changes: computing it once here lets train fit the head in seconds.
A candidate with several `backbones` is an ensemble: one model whose head sees their pooled
features side by side. Writes data/features/<candidate>/{base.keras, features.npz, meta.json}.
"""
import time
from pathlib import Path

import keras
import numpy as np

from facemask.backbones import resolve_weights
from facemask.files import write_json
from facemask.images import load_batch
from facemask.model import build_ensemble, feature_extractor
from facemask.params import load_params
from facemask.progress import bar
from facemask.splits import split_images, training_images
from facemask.stage import candidate_arg, run

OUT_ROOT = Path("data/features")
CHUNK = 256  # images decoded at a time, to bound memory


def extract(extractor: keras.Model, paths: list, image_size: int, batch_size: int, desc: str) -> np.ndarray:
    """Pooled features of every image in `paths`, through the model's own resize and scaling."""
    chunks = []
    with bar(desc=desc, total=len(paths)) as progress:
        for i in range(0, len(paths), CHUNK):
            chunks.append(extractor.predict(load_batch(paths[i:i + CHUNK], image_size), batch_size=batch_size, verbose=0))
            progress.update(len(chunks[-1]))
    return np.concatenate(chunks).astype(np.float32)


def main() -> None:
    name = candidate_arg("features")
    params = load_params()
    candidate, settings = params.candidate(name), params.features
    image_size, weights = candidate.image_size, candidate.weights
    members = {backbone: resolve_weights(backbone, weights, settings.weights_dir) for backbone in candidate.backbones}
    keras.utils.set_random_seed(settings.seed)
    model = build_ensemble(members, image_size, name=f"facemask_{name}")
    extractor = feature_extractor(model)
    out_dir = OUT_ROOT / name
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    train_paths, train_y = training_images()
    val_paths, val_y = split_images("val")
    train_x = extract(extractor, train_paths, image_size, settings.batch_size, f"features@{name} train")
    val_x = extract(extractor, val_paths, image_size, settings.batch_size, f"features@{name} val")
    seconds = time.perf_counter() - started
    np.savez(out_dir / "features.npz", train_x=train_x, train_y=train_y, val_x=val_x, val_y=val_y)
    model.save(out_dir / "base.keras")
    write_json(out_dir / "meta.json", {
        "candidate": name, "image_size": image_size, "weights": weights,
        "members": {name: Path(file).name if file else None for name, file in members.items()},
        "images": len(train_paths) + len(val_paths), "seconds": round(seconds, 1),
        "images_per_second": round((len(train_paths) + len(val_paths)) / seconds, 1),
    })
    print(f"features@{name}: {len(train_paths)} train + {len(val_paths)} val images at {image_size}px "
          f"(weights: {weights}) in {seconds:.0f}s")


if __name__ == "__main__":
    run(main, "features")
