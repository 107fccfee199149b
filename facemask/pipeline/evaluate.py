"""Stage evaluate@<candidate>: score the saved model on the held-out test split, and only there.

Metrics (scikit-learn): accuracy with its 95% CI, macro-F1, per-class precision/recall/F1, accuracy
per image source and under fixed re-framings (does the model read the face, or the photo's origin and
framing?), inference images/s, and for a seed-averaged model each member's own accuracy and macro-F1.
Under `slices`, separate from the headline test scores (facemask.pipeline.slices, made in memory from the test
split): masks worn wrong (below the nose, under the chin) on unmasked test faces, whose label stays
without mask; the test split dark, noisy, blurred and as JPEG quality 20; accuracy per age band.
Writes metrics/candidates/<candidate>.json, plots/<candidate>/confusion.csv (a DVC confusion plot) and
reports/candidates/<candidate>/{classification_report.txt, predictions.csv}; logs into the candidate's MLflow run.
"""
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np

from facemask.core import CLASSES
from facemask.core.model import input_size, members, predict_labels
from facemask.core.resize import load_batch
from facemask.pipeline.evaluation import (
    accuracy_by,
    classification_metrics,
    member_scores,
    prediction_rows,
    reframed_scores,
)
from facemask.pipeline.slices import compute as compute_slices
from facemask.pipeline.splits import image_path

matplotlib.use("Agg")


# The slice numbers evaluate prints (all are in the metrics file and MLflow).
SUMMARY = ("test_worn_wrong_without_mask_rate", "test_degraded_dark_accuracy", "test_degraded_noise_accuracy",
           "test_degraded_blur_accuracy", "test_degraded_jpeg20_accuracy", "test_with_mask_old_recall")


def evaluate(model, rows: list[dict], split_dir: Path, batch_size: int, aligned_sources) -> dict:
    """Predict every row's image and score it; returns metrics, per-image predictions and timing."""
    paths = [image_path(r, split_dir) for r in rows]
    y_true = np.array([CLASSES.index(r["label"]) for r in rows])
    started = time.perf_counter()
    batch = load_batch(paths, input_size(model), desc="test images")
    decoding = time.perf_counter() - started
    model.predict(batch[:batch_size], batch_size=batch_size, verbose=0)  # builds the graph: not timed
    loaded = time.perf_counter()
    probabilities = model.predict(batch, batch_size=batch_size, verbose=0)
    inferred = time.perf_counter()
    y_pred = probabilities.argmax(axis=1)
    metrics = classification_metrics(y_true, y_pred)
    metrics["accuracy_by_source"] = accuracy_by([r.get("source", "unknown") for r in rows], y_true, y_pred)
    metrics["images_per_second"] = round(len(rows) / (inferred - loaded), 1)
    metrics["images_per_second_with_decode"] = round(len(rows) / (inferred - loaded + decoding), 1)
    metrics["reframed"] = reframed_scores(y_true, lambda view: predict_labels(model, paths, batch_size, view))
    if len(averaged := members(model)) > 1:  # a seed-averaged model: each member's own score, for the spread
        metrics["members"] = member_scores(y_true, {member.name: member.predict(batch, batch_size=batch_size, verbose=0)
                                                    .argmax(axis=1) for member in averaged})
    metrics["slices"] = compute_slices(model, rows, split_dir, batch_size, y_pred, aligned_sources)
    return {"metrics": metrics, "predictions": prediction_rows(rows, probabilities), "y_true": y_true, "y_pred": y_pred}


def slice_metrics(slices: dict) -> dict:
    """The slices' headline numbers as flat MLflow metric names (those without a value left out)."""
    worn_wrong, age = slices["worn_wrong"], slices["age"]
    flat = {"test_worn_wrong_without_mask_rate": worn_wrong["without_mask_rate"],
            "test_worn_mask_recall": worn_wrong["worn_mask_recall"],
            **{f"test_worn_wrong_{p}_without_mask_rate": v["without_mask_rate"]
               for p, v in worn_wrong["placements"].items()},
            **{f"test_degraded_{k}_{m}": v[m] for k, v in slices["degraded"]["kinds"].items()
               for m in ("accuracy", "macro_f1", "unmasked_called_masked")},
            "test_with_mask_old_recall": age["with_mask_old_recall"], "test_age_confusion": age["age_confusion"],
            **{f"test_age_{band.replace('+', '_plus')}_accuracy": v["accuracy"] for band, v in age["bands"].items()}}
    return {name: value for name, value in flat.items() if value is not None}
