"""The camera slice: test photos as a door camera sees them, scored beside the clean photos.

Each test photo is placed in a drawn 640x480 room (facemask.core.scenes) at a face height of 64-160 px,
through the camera's sensor noise and JPEG; the shipped detector looks for it, video's own crop (margin
MARGIN) cuts it out, and the classifier labels the crop. Reported: the share found, then on the found
faces the mask/no-mask and 4-class accuracy beside the same photos' clean scores, age accuracy by face
height; and the worn-wrong faces (facemask.pipeline.slices) through the same camera: the share called
without mask and its margin (the probability given to the without-mask classes). Evaluate writes it under
slices.camera; it never selects a model.
"""
from collections.abc import Callable

import numpy as np

from facemask.core import CLASSES
from facemask.core.scenes import camera, centre_in, free_boxes, place, room
from facemask.pipeline.masks import WORN_WRONG
from facemask.pipeline.slices import OLD, WITHOUT_MASK, worn_wrong_face, worn_wrong_images
from facemask.use.detect import crop, make_detector
from facemask.use.predict import MARGIN

SEED = 1337
HEIGHTS = (64, 160)  # placed face heights, px (inclusive)
SIZE_BANDS = ((64, 96, "64-95"), (96, 128, "96-127"), (128, 161, "128-160"))
Classify = Callable[[list[np.ndarray]], np.ndarray]  # RGB face crops -> (n, 4) class probabilities


def camera_frame(rgb: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, tuple]:
    """`rgb` placed in a drawn room at a random height in HEIGHTS, through sensor noise and JPEG; and its box."""
    height = int(rng.integers(HEIGHTS[0], HEIGHTS[1] + 1))
    width = max(8, round(rgb.shape[1] * height / rgb.shape[0]))
    box = free_boxes(rng, [(width, height)])[0]
    frame = place(room(rng), rgb, box)
    return camera(frame, rng, noise=float(rng.uniform(2, 8)), jpeg_quality=int(rng.integers(60, 91))), box


def camera_crops(images: list[np.ndarray], detector, seed: int, stream: int) -> tuple[list, list[int]]:
    """Each image's crop as video cuts it from its camera frame (None when the detector misses the face), and
    the placed heights. Image i has its own generator (seed, stream, i)."""
    crops, heights = [], []
    for i, rgb in enumerate(images):
        frame, box = camera_frame(rgb, np.random.default_rng((seed, stream, i)))
        on_face = [f for f in detector.detect(frame) if centre_in(f.box, box)]
        crops.append(crop(frame, max(on_face, key=lambda f: f.score).box, MARGIN) if on_face else None)
        heights.append(box[3])
    return crops, heights


def camera_slice(rows: list[dict], images: list[np.ndarray], y_pred_clean, classify: Classify, aligned_sources,
                 detector=None, seed: int = SEED) -> dict:
    """The camera slice of the test split `rows` (decoded `images`, clean predictions `y_pred_clean`)."""
    detector = detector or make_detector()
    y_true = np.array([CLASSES.index(r["label"]) for r in rows])
    crops, heights = camera_crops(images, detector, seed, stream=0)
    found = np.array([c is not None for c in crops])
    y_pred = np.full(len(rows), -1)
    if found.any():
        y_pred[found] = classify([c for c in crops if c is not None]).argmax(axis=1)
    return {"faces": len(rows), "found": _share(found), **_scores(y_true[found], y_pred[found],
                                                                     np.asarray(y_pred_clean)[found]),
            "by_height": {name: {"faces": int(band.sum()), "found": _share(found[band]),
                                 **_scores(y_true[band & found], y_pred[band & found])}
                          for low, high, name in SIZE_BANDS
                          if (band := (np.array(heights) >= low) & (np.array(heights) < high)).any()},
            "worn_wrong": _worn_wrong(rows, images, classify, aligned_sources, detector, seed)}


def _worn_wrong(rows, images, classify: Classify, aligned_sources, detector, seed: int) -> dict:
    """Aligned unmasked test faces with a mask drawn worn wrong, through the camera: the share found, the share
    called without mask, and the mean and 10th percentile of the probability given to the without-mask classes."""
    faces = [images[i] for i, r in enumerate(rows) if worn_wrong_face(r, aligned_sources)]
    masked = [face for placement in WORN_WRONG for face in worn_wrong_images(faces, placement, seed)]
    crops, _ = camera_crops(masked, detector, seed, stream=1)
    kept = [c for c in crops if c is not None]
    counts = {"faces": len(masked), "found": _share([c is not None for c in crops])}
    if not kept:
        return counts | {"without_mask_rate": None}
    without = classify(kept)[:, WITHOUT_MASK].sum(axis=1)
    return counts | {"without_mask_rate": float((without > 0.5).mean()), "margin_mean": float(without.mean()),
                     "margin_p10": float(np.percentile(without, 10))}


def _scores(y_true, y_pred, y_pred_clean=None) -> dict:
    """Mask/no-mask, age and 4-class accuracy of the found faces (beside the clean photos' when given)."""
    if not len(y_true):
        return {"accuracy": None}
    scores = {"accuracy": float((y_true == y_pred).mean()),
              "mask_accuracy": float((WITHOUT_MASK[y_true] == WITHOUT_MASK[y_pred]).mean()),
              "age_accuracy": float((OLD[y_true] == OLD[y_pred]).mean())}
    if y_pred_clean is not None:
        scores |= {"clean_accuracy": float((y_true == y_pred_clean).mean()),
                   "clean_mask_accuracy": float((WITHOUT_MASK[y_true] == WITHOUT_MASK[y_pred_clean]).mean())}
    return scores


def _share(flags) -> float | None:
    return float(np.mean(flags)) if len(flags) else None
