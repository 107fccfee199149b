"""Stage features@<candidate>: build the untrained classifier and cache its frozen pooled features.

The backbone (keras.applications, include_top=False, weights per params) is frozen, so its pooled
output for an image never changes: computing it once here lets train fit the head in seconds.
A candidate with several `backbones` is an ensemble: one model whose head sees their pooled
features side by side. Writes data/features/<candidate>/{base.keras, meta.json}, and features.npz
when the candidate trains a head on them (`epochs` > 0; one that only fine-tunes reads images).

Each backbone's features are computed once per (backbone, image size, weights, images) and kept in
data/features/shared/: the Ensemble reuses what features@Xception computed, or the other way round
(the same numbers to the last bit: each backbone's branch of the ensemble is the same computation).
"""
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from facemask.core.files import md5sum
from facemask.core.model import feature_extractor
from facemask.core.progress import bar
from facemask.core.quiet_tf import keras
from facemask.core.resize import load_batch

OUT_ROOT = Path("data/features")
SHARED = OUT_ROOT / "shared"  # one file per (backbone, image size): the latest weights and images only
CHUNK = 256  # images decoded at a time, to bound memory


def extract(extractor: keras.Model, paths: list, image_size: int, batch_size: int, desc: str) -> np.ndarray:
    """Pooled features of every image in `paths`, through the model's own resize and scaling. A chunk of
    files is decoded in a second thread while the one before it is predicted (the same batches, the
    same numbers)."""
    chunks = [paths[i:i + CHUNK] for i in range(0, len(paths), CHUNK)]
    features = []
    with ThreadPoolExecutor(max_workers=1) as decoder, bar(desc=desc, total=len(paths)) as progress:
        next_batch = decoder.submit(load_batch, chunks[0], image_size)
        for i in range(len(chunks)):
            batch = next_batch.result()
            if i + 1 < len(chunks):
                next_batch = decoder.submit(load_batch, chunks[i + 1], image_size)
            features.append(extractor.predict(batch, batch_size=batch_size, verbose=0))
            progress.update(len(batch))
    return np.concatenate(features).astype(np.float32)


def backbone_digest(model: keras.Model, layer: str) -> str:
    """A digest of the initial weights (pretrained or seeded) of the backbone that `layer` pools."""
    digest = hashlib.md5()
    for weights in model.get_layer(layer).input._keras_history.operation.get_weights():
        digest.update(weights.tobytes())
    return digest.hexdigest()


def images_digest(paths: list) -> str:
    """A digest of the image files, in order."""
    return hashlib.md5("".join(f"{path}:{md5sum(path)}\n" for path in paths).encode()).hexdigest()


def shared_features(model: keras.Model, backbone: str, layer: str, image_size: int, splits: dict,
                    splits_digest: str, batch_size: int) -> dict[str, np.ndarray]:
    """{split: pooled features of `backbone`} for splits = {name: paths} (whose files hash to
    `splits_digest`): read from SHARED when the same backbone weights, size and images were computed
    before, else computed and stored there."""
    key = hashlib.md5(f"{backbone_digest(model, layer)} {image_size} {splits_digest}".encode()).hexdigest()
    cached = SHARED / f"{backbone}_{image_size}px.npz"
    if cached.is_file():
        with np.load(cached, allow_pickle=False) as saved:
            if str(saved["key"]) == key:
                print(f"features: {backbone} at {image_size}px computed before for these images; reused ({cached})")
                return {split: saved[split] for split in splits}
    extractor = feature_extractor(model, layer)
    features = {split: extract(extractor, paths, image_size, batch_size, f"features {backbone} {split}")
                for split, paths in splits.items()}
    SHARED.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_name(cached.stem + ".tmp.npz")
    np.savez(tmp, key=np.array(key), **features)
    os.replace(tmp, cached)
    return features
