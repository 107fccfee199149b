"""The one resize step, as the saved model does it: images into model-sized float batches (Keras)."""
import numpy as np

from facemask.core.images import load_rgb, reframe
from facemask.core.progress import bar
from facemask.core.quiet_tf import keras


def resizer(image_size: int) -> keras.layers.Resizing:
    """The one resize step: centre crop to square, then bilinear to image_size (inside the model too)."""
    return keras.layers.Resizing(image_size, image_size, crop_to_aspect_ratio=True, name="resize")


def resize_batch(items, image_size: int, read=np.asarray, desc: str | None = None) -> np.ndarray:
    """An (n, size, size, 3) float32 batch of the RGB arrays read(item) gives, resized one at a time
    as the model resizes (the model's own resize is then a no-op); `desc` shows a progress bar."""
    resize = resizer(image_size)
    batch = np.zeros((len(items), image_size, image_size, 3), dtype=np.float32)
    for i, item in enumerate(bar(items, desc) if desc else items):
        batch[i] = np.asarray(resize(np.asarray(read(item), dtype=np.float32)))
    return batch


def load_batch(paths, image_size: int, view: str | None = None, desc: str | None = None) -> np.ndarray:
    """Load image files (re-framed when `view` names one of REFRAMINGS) and resize them into one batch."""
    return resize_batch(paths, image_size, read=load_rgb if view is None else lambda p: reframe(load_rgb(p), view),
                        desc=desc)


class ImageFiles:
    """Image files read a batch at a time: `files[rows]` decodes and resizes just those rows (as load_batch
    does), so a training set needs memory for the batches in flight, not for every image."""

    def __init__(self, paths, image_size: int):
        self.paths, self.image_size = np.asarray(paths, dtype=object), image_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, rows) -> np.ndarray:
        return load_batch(self.paths[rows], self.image_size)


