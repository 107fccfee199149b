"""Shared by the predict/serve/export/explain tests: a tiny saved model, generated images, a fake detector."""
import atexit
import csv
import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from facemask.core import CLASSES
from facemask.ops.datasets import generate
from facemask.use.detect import Face

IMAGE_SIZE = 32


@functools.cache
def tiny_model_file(backbone: str = "TinyNet") -> Path:
    """A weights-none classifier at 32 px, saved once per test session: TinyNet (facemask.core.model.tiny_net)
    where a test checks the use of a saved model, not a network (it converts to TFLite in seconds); MobileNetV2
    where the depth matters (int8 error grows through its layers; TinyNet's file is mostly fixed overhead).

    A fresh backbone's BatchNorm statistics make every output 0.25; one pass in training mode with
    momentum 0 sets them from generated images, so different inputs give different probabilities.
    """
    import keras

    from facemask.core.model import build_classifier

    keras.utils.set_random_seed(0)
    model = build_classifier(backbone, IMAGE_SIZE, None)
    backbone = backbone_of(model)
    norms = [layer for layer in backbone.layers if isinstance(layer, keras.layers.BatchNormalization)]
    backbone.trainable = True
    for layer in norms:
        layer.momentum = 0.0
    model(np.random.default_rng(0).uniform(0, 255, (16, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.float32), training=True)
    for layer in norms:
        layer.momentum = 0.99
    backbone.trainable = False
    folder = Path(tempfile.mkdtemp(prefix="facemask-tiny-model-"))
    atexit.register(shutil.rmtree, folder, True)
    model.save(folder / "model.keras")
    return folder / "model.keras"


def backbone_of(model):
    """The nested backbone model inside a classifier from build_classifier."""
    import keras

    return next(layer for layer in model.layers if isinstance(layer, keras.Model))


def write_image(path: Path, width: int = 60, height: int = 48, seed: int = 0) -> Path:
    """A small random-noise RGB image (PNG or JPEG by suffix)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def plain_image(path: Path, width: int = 80, height: int = 64) -> Path:
    """A smooth gradient: nothing a face detector can mistake for a face."""
    ramp = np.linspace(0, 255, width, dtype=np.uint8)
    pixels = np.stack([np.tile(ramp, (height, 1))] * 3, axis=-1)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def make_split(root: Path, per_class: int = 4) -> Path:
    """A split-stage layout (split.csv, <split>/<label>/<file>) of generated images: half train, half test."""
    generate(root / "source", per_class=per_class, size=40)
    rows = []
    for label in CLASSES:
        for i, source in enumerate(sorted((root / "source" / label).iterdir())):
            split = "train" if i % 2 == 0 else "test"
            target = root / split / label / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            rows.append({"file": f"images/{label}/{source.name}", "label": label, "split": split,
                         "source": "generated"})
    with open(root / "split.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root


class StubDetector:
    """Stands in for MTCNN: reports the given boxes (x, y, w, h) on every image."""

    def __init__(self, boxes):
        self.boxes = boxes

    def detect(self, rgb):
        return [Face(tuple(box), 0.99) for box in self.boxes]
