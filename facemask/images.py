"""Load any image file as RGB uint8, and resize it the way the model does."""
import base64
from pathlib import Path

import keras
import numpy as np
from PIL import Image, ImageOps

from facemask import UserError

# The file name extensions read as images, and the formats (PIL's names) each may hold.
SUFFIX_FORMATS = {".jpg": {"JPEG", "MPO"}, ".jpeg": {"JPEG", "MPO"}, ".png": {"PNG"}, ".bmp": {"BMP", "DIB"},
                  ".gif": {"GIF"}, ".webp": {"WEBP"}, ".tif": {"TIFF"}, ".tiff": {"TIFF"}}
IMAGE_SUFFIXES = frozenset(SUFFIX_FORMATS)
DEFAULT_MAX_PIXELS = 40_000_000  # refuses decompression bombs before decoding
DEFAULT_MIN_SIDE = 32  # pixels: smaller images are skipped by ingest
# Fixed re-framings of a photo, to measure how much a model relies on the dataset's framing (outside
# photos are framed differently): tighter keeps the centre 70% of each side; wider adds 25% of each
# side around the photo, repeating its edge pixels or in black.
REFRAMINGS = ("tighter", "wider_edge", "wider_black")


class ImageError(UserError):
    """A file that cannot be used as an image; the message names the file and why."""


def load_rgb(path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode `path` to an HxWx3 uint8 RGB array: EXIF rotation applied, any mode converted.

    The size is checked from the header, before any pixel is decoded (decompression bombs).
    """
    try:
        with Image.open(path) as img:
            width, height = img.size
            if width * height > max_pixels:
                raise ImageError(f"{path}: {width}x{height} pixels is over the limit of {max_pixels}; "
                                 "refused without decoding it")
            img = ImageOps.exif_transpose(img)
            return _to_rgb(img)
    except ImageError:
        raise
    except Image.DecompressionBombError as err:
        raise ImageError(f"{path}: refused without decoding it ({err})") from None
    except Exception as err:  # any failure inside a decoder on an untrusted file means "unreadable"
        raise ImageError(f"{path}: not a readable image ({type(err).__name__}: {err})") from None


def base64_bytes(text: str) -> bytes:
    """The bytes of a base64 string or a data: URL; binascii.Error (a ValueError) when it is not valid base64."""
    return base64.b64decode(text.partition(",")[2] if text.startswith("data:") else text, validate=True)


def content_format(path) -> str:
    """The format PIL detects from a readable image file's bytes (JPEG, PNG, ...), from its header only."""
    with Image.open(path) as img:
        return img.format


def _to_rgb(img: Image.Image) -> np.ndarray:
    """Convert any PIL mode (16-bit, CMYK, palette, alpha, grey) to RGB uint8."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        grey = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or grey.max() > 255 else 255.0
        grey = np.clip(grey / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.stack([grey] * 3, axis=-1)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(canvas, rgba)
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def resizer(image_size: int) -> keras.layers.Resizing:
    """The one resize step: centre crop to square, then bilinear to image_size (inside the model too)."""
    return keras.layers.Resizing(image_size, image_size, crop_to_aspect_ratio=True, name="resize")


def resize_batch(items, image_size: int, read=np.asarray, desc: str | None = None) -> np.ndarray:
    """An (n, size, size, 3) float32 batch of the RGB arrays read(item) gives, resized one at a time
    as the model resizes (the model's own resize is then a no-op); `desc` shows a progress bar."""
    from facemask.progress import bar

    resize = resizer(image_size)
    batch = np.zeros((len(items), image_size, image_size, 3), dtype=np.float32)
    for i, item in enumerate(bar(items, desc) if desc else items):
        batch[i] = np.asarray(resize(np.asarray(read(item), dtype=np.float32)))
    return batch


def reframe(rgb: np.ndarray, view: str) -> np.ndarray:
    """`rgb` framed as REFRAMINGS names it."""
    height, width = rgb.shape[:2]
    if view == "tighter":
        top, left = round(0.15 * height), round(0.15 * width)
        return rgb[top:height - top, left:width - left]
    if view in ("wider_edge", "wider_black"):
        border = ((round(0.25 * height),) * 2, (round(0.25 * width),) * 2, (0, 0))
        return np.pad(rgb, border, mode="edge" if view == "wider_edge" else "constant")
    raise ValueError(f"unknown re-framing {view!r}; one of {REFRAMINGS}")


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


def list_class_images(root: Path, classes) -> list[tuple[Path, str]]:
    """Every image file under root/<class>/, sorted, as (path, class) pairs."""
    pairs = []
    for label in classes:
        folder = Path(root) / label
        if folder.is_dir():
            pairs += [(p, label) for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    return pairs
