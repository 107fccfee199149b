"""Evaluation slices of the test split, made in memory at evaluate time: slices a user would recognise.

- worn_wrong: every test-split aligned face *without* a mask (UTKFace), drawn with a mask worn wrong
  (facemask.pipeline.masks.WORN_WRONG); the expected label stays its own without_mask_* class (the original
  project's rule). Never trained on, never used to select: a separate slice, not the headline test.
- degraded: the whole test split dark (a night photo), noisy, blurred and re-encoded as JPEG quality 20
  (facemask.pipeline.degrade, whose functions stage augment also uses).
- age: with_mask_old recall, and accuracy per age band of the test faces with a known age (UTKFace).

Every image goes through facemask.core.resize.resize_batch and model.predict, as the clean test images do.
"""
from collections.abc import Callable

import numpy as np

from facemask.core import CLASSES
from facemask.core.images import load_rgb
from facemask.core.model import input_size
from facemask.core.resize import resize_batch
from facemask.pipeline.degrade import DEGRADATIONS, degrade
from facemask.pipeline.evaluation import headline
from facemask.pipeline.masks import WORN_WRONG, draw_mask
from facemask.pipeline.splits import image_path

SEED = 1337
AGE_BANDS = ((0, 20, "0-19"), (20, 40, "20-39"), (40, 60, "40-59"), (60, 70, "60-69"), (70, 200, "70+"))  # years
WITHOUT_MASK = np.array([c.startswith("without_mask") for c in CLASSES])
OLD = np.array([c.endswith("_old") for c in CLASSES])
Predict = Callable[[list[np.ndarray]], np.ndarray]  # decoded RGB images -> predicted class indices


def degraded_images(images: list[np.ndarray], kind: str, seed: int = SEED) -> list[np.ndarray]:
    """Each image degraded by `kind`, image i with its own generator (seed, kind, i): order-independent."""
    return [degraded_image(rgb, kind, i, seed) for i, rgb in enumerate(images)]


def degraded_image(rgb: np.ndarray, kind: str, i: int, seed: int = SEED) -> np.ndarray:
    """Image number `i` of a set degraded by `kind`, with its own generator (seed, kind, i)."""
    return degrade(rgb, kind, np.random.default_rng((seed, DEGRADATIONS.index(kind), i)))


def worn_wrong_face(row: dict, aligned_sources) -> bool:
    """Whether the worn-wrong slice draws on this row: an aligned face (synthesize.aligned_sources) without a mask."""
    return row.get("source") in aligned_sources and row["label"].startswith("without_mask")


def worn_wrong_images(images: list[np.ndarray], placement: str, seed: int = SEED) -> list[np.ndarray]:
    """Each face with a mask drawn as `placement` puts it, face i with its own generator (seed, placement, i)."""
    index = WORN_WRONG.index(placement)
    return [draw_mask(rgb, np.random.default_rng((seed, index, i)), placement) for i, rgb in enumerate(images)]


def worn_wrong_scores(y_true, y_pred) -> dict:
    """n, the share called without mask (either age), and the 4-class accuracy."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return {"n": len(y_true), "without_mask_rate": float(WITHOUT_MASK[y_pred].mean()) if len(y_pred) else None,
            "accuracy": float((y_true == y_pred).mean()) if len(y_true) else None}


def age_confusion(y_true, y_pred) -> float | None:
    """The share whose mask is right but whose age group is wrong (old called young or the reverse)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if not len(y_true):
        return None
    return float(((WITHOUT_MASK[y_true] == WITHOUT_MASK[y_pred]) & (OLD[y_true] != OLD[y_pred])).mean())


def age_scores(ages: list[str], y_true, y_pred, with_mask_old_recall: float) -> dict:
    """with_mask_old recall, the test split's age confusion, and accuracy and age confusion per AGE_BANDS
    band of the faces with a known age (bands without faces left out), with the worst band."""
    known = np.array([str(a).strip() != "" for a in ages], dtype=bool)
    years = np.array([int(float(a)) if k else -1 for a, k in zip(ages, known, strict=True)])
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    bands = {}
    for low, high, name in AGE_BANDS:
        inside = known & (years >= low) & (years < high)
        if inside.any():
            bands[name] = {"n": int(inside.sum()), "accuracy": float((y_true[inside] == y_pred[inside]).mean()),
                           "age_confusion": age_confusion(y_true[inside], y_pred[inside])}
    worst = min(bands, key=lambda name: bands[name]["accuracy"]) if bands else None
    return {"with_mask_old_recall": with_mask_old_recall, "age_confusion": age_confusion(y_true, y_pred),
            "bands": bands, "worst_band": worst}


def compute(model, rows: list[dict], split_dir, batch_size: int, y_pred, aligned_sources, seed: int = SEED) -> dict:
    """The worn_wrong, degraded and age slices of the test split `rows`, whose clean predictions are `y_pred`."""
    size = input_size(model)

    def predict(images: list[np.ndarray]) -> np.ndarray:
        return model.predict(resize_batch(images, size), batch_size=batch_size, verbose=0).argmax(axis=1)

    return slices(rows, [load_rgb(image_path(r, split_dir)) for r in rows], np.asarray(y_pred), predict, aligned_sources,
                  seed)


def slices(rows: list[dict], images: list[np.ndarray], y_pred: np.ndarray, predict: Predict, aligned_sources,
           seed: int = SEED) -> dict:
    """The three slices, given the rows' decoded images, their clean predictions, and predict(images) -> labels."""
    y_true = np.array([CLASSES.index(r["label"]) for r in rows])
    wm_old = y_true == CLASSES.index("with_mask_old")
    recall = float((y_pred[wm_old] == y_true[wm_old]).mean()) if wm_old.any() else None
    return {"worn_wrong": worn_wrong_slice(rows, images, y_true, y_pred, predict, aligned_sources, seed),
            "degraded": degraded_slice(images, y_true, y_pred, predict, seed),
            "age": age_scores([r.get("age", "") for r in rows], y_true, y_pred, recall)}


def worn_wrong_slice(rows, images, y_true, y_pred, predict: Predict, aligned_sources, seed: int) -> dict:
    """Scores per placement on the aligned unmasked faces, the pooled without-mask rate, and beside it
    the share of the real masked photos called with mask (the recall a fix must keep)."""
    faces = [i for i, r in enumerate(rows) if worn_wrong_face(r, aligned_sources)]
    placements = {p: worn_wrong_scores(y_true[faces], predict(worn_wrong_images([images[i] for i in faces], p, seed))
                                       if faces else []) for p in WORN_WRONG}
    masked = ~WITHOUT_MASK[y_true]
    return {"placements": placements,
            "without_mask_rate": float(np.mean([placements[p]["without_mask_rate"] for p in WORN_WRONG]))
            if faces else None,
            "worn_mask_recall": float((~WITHOUT_MASK[y_pred[masked]]).mean()) if masked.any() else None}


def degraded_slice(images, y_true, y_pred, predict: Predict, seed: int) -> dict:
    """Accuracy and macro-F1 of the whole split under each of DEGRADATIONS, the drop from clean accuracy,
    and the share of unmasked faces called masked (the failure seen on dim and grainy photos)."""
    clean = headline(y_true, y_pred)["accuracy"]
    kinds = {}
    for kind in DEGRADATIONS:
        predicted = predict(degraded_images(images, kind, seed))
        scores = headline(y_true, predicted)
        kinds[kind] = {"n": len(images), **scores, "drop": clean - scores["accuracy"],
                       "unmasked_called_masked": unmasked_called_masked(y_true, predicted)}
    return {"clean_accuracy": clean, "clean_unmasked_called_masked": unmasked_called_masked(y_true, y_pred),
            "kinds": kinds}


def unmasked_called_masked(y_true, y_pred) -> float | None:
    """The share of the faces without a mask that are called with mask (either age)."""
    unmasked = WITHOUT_MASK[np.asarray(y_true)]
    return float((~WITHOUT_MASK[np.asarray(y_pred)[unmasked]]).mean()) if unmasked.any() else None
