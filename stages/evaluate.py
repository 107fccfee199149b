"""Stage evaluate@<candidate>: score the saved model on the held-out test split, and only there.

Metrics (scikit-learn): accuracy with its 95% CI, macro-F1, per-class precision/recall/F1, accuracy
per image source and under fixed re-framings (does the model read the face, or the photo's origin and
framing?), inference images/s, and for a seed-averaged model each member's own accuracy and macro-F1.
Under `slices`, separate from the headline test scores (facemask.slices, made in memory from the test
split): masks worn wrong (below the nose, under the chin) on unmasked test faces, whose label stays
without mask; the test split dark, noisy, blurred and as JPEG quality 20; accuracy per age band.
Writes metrics/candidates/<candidate>.json, plots/<candidate>/confusion.csv (a DVC confusion plot) and
reports/<candidate>/{classification_report.txt, predictions.csv}; logs into the candidate's MLflow run.
"""
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import mlflow
import numpy as np
from sklearn.metrics import ConfusionMatrixDisplay

from facemask import CLASSES
from facemask.evaluation import accuracy_by, classification_metrics, member_scores, reframed_scores, report_text
from facemask.files import write_csv, write_json
from facemask.images import load_batch
from facemask.model import input_size, load, members, predict_labels
from facemask.outputs import model_dir, test_metrics
from facemask.params import load_params
from facemask.slices import compute as compute_slices
from facemask.splits import SPLIT_DIR, image_path, split_rows
from facemask.stage import candidate_arg, require, run
from facemask.tracking import configure, recorded_run_id, start_run

# The slice numbers evaluate prints (all are in the metrics file and MLflow).
SUMMARY = ("test_worn_wrong_without_mask_rate", "test_degraded_dark_accuracy", "test_degraded_noise_accuracy",
           "test_degraded_blur_accuracy", "test_degraded_jpeg20_accuracy", "test_with_mask_old_recall")


def evaluate(model, rows: list[dict], split_dir: Path, batch_size: int) -> dict:
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
    metrics["slices"] = compute_slices(model, rows, split_dir, batch_size, y_pred)
    predictions = [
        {"file": r["file"], "source": r.get("source", ""), "actual": r["label"], "predicted": CLASSES[p],
         **{f"p_{c}": round(float(q), 5) for c, q in zip(CLASSES, prob, strict=True)}}
        for r, p, prob in zip(rows, y_pred, probabilities, strict=True)
    ]
    return {"metrics": metrics, "predictions": predictions, "y_true": y_true, "y_pred": y_pred}


def main() -> None:
    candidate = candidate_arg("evaluate")
    params = load_params().evaluate
    configure()  # an unreachable tracking server fails here, before evaluating
    model = load(require(model_dir(candidate) / "model.keras", f"train@{candidate}"))
    result = evaluate(model, split_rows("test"), SPLIT_DIR, params.batch_size)
    metrics = {"candidate": candidate, "split": "test", **result["metrics"]}
    report_dir = Path("reports") / candidate
    write_json(test_metrics(candidate), metrics)
    write_csv(Path("plots") / candidate / "confusion.csv",
              [{"actual": p["actual"], "predicted": p["predicted"]} for p in result["predictions"]])
    write_csv(report_dir / "predictions.csv", result["predictions"])
    text = report_text(result["y_true"], result["y_pred"])
    (report_dir / "classification_report.txt").write_text(text)
    _log_to_mlflow(candidate, metrics, report_dir, result)
    print(f"evaluate@{candidate}: test accuracy {metrics['accuracy']:.4f} "
          f"(95% CI {metrics['accuracy_ci95'][0]:.3f}-{metrics['accuracy_ci95'][1]:.3f}), "
          f"macro-F1 {metrics['macro_f1']:.4f}, {metrics['images_per_second']} img/s "
          f"(report: {report_dir / 'classification_report.txt'})")
    summary = ", ".join(f"{k} {v:.3f}" for k, v in slice_metrics(metrics["slices"]).items() if k in SUMMARY)
    print(f"evaluate@{candidate}: slices (not the headline test): {summary}")


def _log_to_mlflow(candidate: str, metrics: dict, report_dir: Path, result: dict) -> None:
    """Add test metrics and artifacts to the candidate's training run (a new run if it is not in this store)."""
    with start_run(candidate, "evaluate", recorded_run_id(candidate)):
        mlflow.log_metrics({"test_accuracy": metrics["accuracy"], "test_macro_f1": metrics["macro_f1"],
                            "test_accuracy_ci95_low": metrics["accuracy_ci95"][0],
                            "test_accuracy_ci95_high": metrics["accuracy_ci95"][1],
                            "test_images_per_second": metrics["images_per_second"],
                            "test_reframed_macro_f1": metrics["reframed"]["mean_macro_f1"],
                            **{f"test_recall_{c}": v["recall"] for c, v in metrics["per_class"].items()},
                            **slice_metrics(metrics["slices"])})
        mlflow.log_artifact(str(report_dir / "classification_report.txt"), "evaluation")
        mlflow.log_artifact(str(report_dir / "predictions.csv"), "evaluation")
        mlflow.log_dict(metrics, "evaluation/test_metrics.json")
        display = ConfusionMatrixDisplay.from_predictions(
            result["y_true"], result["y_pred"], labels=list(range(len(CLASSES))), display_labels=list(CLASSES),
            xticks_rotation=30)
        mlflow.log_figure(display.figure_, "evaluation/confusion_matrix.png")


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


if __name__ == "__main__":
    run(main, "evaluate")
