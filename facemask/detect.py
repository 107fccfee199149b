"""Find faces in whole photos with MTCNN (TensorFlow; its weights ship inside the `mtcnn` wheel).

MTCNN misses many tight, masked face crops because it needs some context around a face: the
photo is padded by `pad` of its longest side (black) first, and only if that finds nothing is the
unpadded photo tried (on a dataset sample: 72% of masked photos found, against 58% unpadded only).
Boxes whose centre falls in the padding are dropped, and so are faces scored under `min_score`
(MTCNN's own cut-off, 0.8, lets ears and mask vents through).
"""
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Face:
    box: tuple  # (x, y, width, height) in pixels of the original photo
    score: float


class FaceDetector:
    """MTCNN, built on first use (a few seconds), so commands that never detect stay fast."""

    def __init__(self, pad: float = 0.25, max_side: int = 1024, min_face: int = 20, min_score: float = 0.9):
        self.pad, self.max_side, self.min_face, self.min_score = pad, max_side, min_face, min_score
        self._mtcnn = None

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """Every face in an HxWx3 uint8 RGB photo, best score first."""
        if self._mtcnn is None:
            from mtcnn import MTCNN

            self._mtcnn = MTCNN(stages="face_and_landmarks_detection")
        scale = min(1.0, self.max_side / max(rgb.shape[:2]))
        small = _shrink(rgb, scale)
        for pad_share in dict.fromkeys((self.pad, 0.0)):  # padded first; unpadded only if that found nothing
            faces = self._detect(small, int(round(max(small.shape[:2]) * pad_share)), scale, rgb.shape)
            if faces:
                return sorted(faces, key=lambda f: -f.score)
        return []

    def _detect(self, small: np.ndarray, pad: int, scale: float, shape) -> list[Face]:
        height, width = shape[:2]
        found = self._mtcnn.detect_faces(np.pad(small, ((pad, pad), (pad, pad), (0, 0))), min_face_size=self.min_face)
        faces = []
        for item in found:
            x, y, w, h = ((v - pad if i < 2 else v) / scale for i, v in enumerate(item["box"]))
            if item["confidence"] >= self.min_score and 0 <= x + w / 2 < width and 0 <= y + h / 2 < height:
                faces.append(Face(_clip((x, y, w, h), width, height), round(float(item["confidence"]), 4)))
        return faces


def crop(rgb: np.ndarray, box, margin: float = 0.2) -> np.ndarray:
    """A square around the face box, its side the box's longer side plus `margin` on each side.

    Square so that the model's centre crop keeps the whole face; clipped at the photo's edges.
    """
    x, y, w, h = box
    side = max(w, h) * (1 + 2 * margin)
    cx, cy = x + w / 2, y + h / 2
    height, width = rgb.shape[:2]
    left, top = max(0, int(round(cx - side / 2))), max(0, int(round(cy - side / 2)))
    right, bottom = min(width, int(round(cx + side / 2))), min(height, int(round(cy + side / 2)))
    return rgb[top:bottom, left:right]


def _shrink(rgb: np.ndarray, scale: float) -> np.ndarray:
    if scale >= 1.0:
        return rgb
    from PIL import Image

    height, width = rgb.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))


def _clip(box, width: int, height: int) -> tuple:
    x, y, w, h = box
    left, top = max(0, int(round(x))), max(0, int(round(y)))
    right, bottom = min(width, int(round(x + w))), min(height, int(round(y + h)))
    return (left, top, max(1, right - left), max(1, bottom - top))
