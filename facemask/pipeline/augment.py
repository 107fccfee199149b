"""Stage augment: expand the training split only, with seeded random transforms.

Every training image is copied as it is, plus `copies` augmented versions (flips, small rotation,
zoom, shift, brightness, contrast; each a param, 0/false turns it off). With `balance: true`, smaller
classes get more copies per image, so that every class ends with about as many images as the largest.
Light and camera robustness: a share of the augmented copies (params dark, blur, noise, jpeg, each a
probability; 0 turns it off) is then made dark, blurred, noisy and/or re-encoded as low-quality JPEG,
in that order, each at a level drawn from facemask.pipeline.degrade.AUGMENT_LEVELS by a numpy generator seeded
with `seed` (the Keras transforms draw as before; with every share 0 nothing is drawn).
The training set is the training split plus the synthetic training faces (stage synthesize).
Validation and test images are never read here. Writes data/augmented/train/<class>/* and
data/augmented/augment.csv (file, label, origin, copy).
"""
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from facemask.core.images import load_rgb
from facemask.core.params import Augment
from facemask.core.progress import bar
from facemask.core.quiet_tf import keras, tf
from facemask.pipeline.degrade import random_degrade

SYNTHETIC_DIR = Path("data/synthetic")
OUT_DIR = Path("data/augmented")
CAMERA = ("dark", "blur", "noise", "jpeg")  # applied in this order: light, lens, sensor, encoder


def copies_per_image(counts: dict[str, int], copies: int, balance: bool) -> dict[str, list[int]]:
    """How many augmented copies each image of each class gets (a list per class, in image order)."""
    plan = {}
    target = max(counts.values()) * (1 + copies)
    for label, n in counts.items():
        extra = (target - n) if balance else n * copies
        base, remainder = divmod(extra, n)
        plan[label] = [base + (i < remainder) for i in range(n)]
    return plan


def transform_pipeline(params: Augment, seed: int) -> keras.Sequential:
    """The random transforms named in params, as seeded Keras preprocessing layers."""
    layers = []
    if params.flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if params.rotation:
        layers.append(keras.layers.RandomRotation(params.rotation, fill_mode="reflect", seed=seed + 1))
    if params.zoom_in or params.zoom_out:  # Keras: a negative factor zooms in, a positive one zooms out
        layers.append(keras.layers.RandomZoom((-params.zoom_in, params.zoom_out), fill_mode="reflect", seed=seed + 2))
    if params.shift:
        layers.append(keras.layers.RandomTranslation(params.shift, params.shift, fill_mode="reflect", seed=seed + 3))
    if params.brightness:
        layers.append(keras.layers.RandomBrightness(params.brightness, value_range=(0, 255), seed=seed + 4))
    if params.contrast:
        layers.append(keras.layers.RandomContrast(params.contrast, value_range=(0, 255), seed=seed + 5))
    return keras.Sequential(layers)


def traced(pipeline: keras.Sequential):
    """`pipeline` in training mode as one TensorFlow graph for images of any size: about 3x faster a
    photo than eager calls, and the same pixels (the layers' seed generators keep their state in variables)."""
    return tf.function(lambda pixels: pipeline(pixels, training=True),
                       input_signature=[tf.TensorSpec([None, None, 3], tf.float32)])


def camera(pixels: np.ndarray, params: Augment, rng: np.random.Generator) -> np.ndarray:
    """`pixels` (uint8) through each of CAMERA whose share in params is above 0, with that probability.
    Draws nothing from `rng` when every share is 0."""
    for kind in CAMERA:
        share = getattr(params, kind)
        if share > 0 and rng.random() < share:
            pixels = random_degrade(pixels, kind, rng)
    return pixels


def augment(train_rows: list[dict], out_dir: Path, params: Augment) -> list[dict]:
    """Copy each training image (rows: file, label, path) and write its augmented versions.

    Returns the rows of augment.csv.
    """
    keras.utils.set_random_seed(params.seed)
    pipeline = traced(transform_pipeline(params, params.seed))
    rng = np.random.default_rng(params.seed)
    by_class = {}
    for row in sorted(train_rows, key=lambda r: r["file"]):
        by_class.setdefault(row["label"], []).append(row)
    plan = copies_per_image(Counter({k: len(v) for k, v in by_class.items()}), params.copies, params.balance)
    jobs = [(label, row, n_copies) for label, class_rows in by_class.items()
            for row, n_copies in zip(class_rows, plan[label], strict=True)]
    rows = []
    for label, row, n_copies in bar(jobs, "augment"):
        source = Path(row["path"])
        target = out_dir / "train" / label / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        rows.append({"file": f"train/{label}/{target.name}", "label": label, "origin": row["file"], "copy": 0})
        pixels = load_rgb(source).astype(np.float32)
        for k in range(1, n_copies + 1):
            augmented = np.clip(np.asarray(pipeline(pixels)), 0, 255).round().astype(np.uint8)
            name = f"{source.stem}__aug{k}{source.suffix}"
            _save(camera(augmented, params, rng), target.with_name(name))
            rows.append({"file": f"train/{label}/{name}", "label": label, "origin": row["file"], "copy": k})
    return rows


def _save(pixels: np.ndarray, path: Path) -> None:
    """Save in the original file's format, so an augmented copy carries no new format fingerprint."""
    image = Image.fromarray(pixels)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        image.save(path, quality=95)
    else:
        image.save(path)
