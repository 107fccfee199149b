"""Load any image file or upload as RGB uint8 (no Keras here: the resize the model does is in core.resize)."""
import base64
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from facemask.core import UserError

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


def list_class_images(root: Path, classes) -> list[tuple[Path, str]]:
    """Every image file under root/<class>/, sorted, as (path, class) pairs."""
    pairs = []
    for label in classes:
        folder = Path(root) / label
        if folder.is_dir():
            pairs += [(p, label) for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    return pairs


class Upload(io.BytesIO):
    """Uploaded bytes that print as their file name, so image errors name the upload."""

    def __init__(self, data: bytes, name: str):
        super().__init__(data)
        self.name = name

    def __str__(self):
        return self.name

    def __repr__(self):
        return repr(self.name)


def base64_upload(text: str, name: str) -> Upload:
    """The upload a base64 image (a data: URL works too) holds; an ImageError naming `name` when it is not base64."""
    try:
        return Upload(base64_bytes(text), name)
    except ValueError as err:
        raise ImageError(f"{name}: image is not valid base64 ({err})") from None


def decode_base64_image(text: str, name: str) -> np.ndarray:
    """The RGB array of a base64 image (the one upload decoder: the HTTP server and the MLflow pyfunc use it)."""
    return load_rgb(base64_upload(text, name))
