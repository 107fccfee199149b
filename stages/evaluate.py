"""Stage evaluate@<candidate>: the test split's metrics, report, predictions and confusion matrix, logged to the
candidate's MLflow run (facemask.pipeline.evaluate does the scoring; facemask.use.camera_view the camera slice,
the test photos as video finds and crops them in camera frames); and the slices of the validation photos,
which the CI gate guards (the test split is reported, never gated)."""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import mlflow
from sklearn.metrics import ConfusionMatrixDisplay

from facemask.core import CLASSES
from facemask.core.files import read_csv, write_csv, write_json
from facemask.core.images import load_rgb
from facemask.core.model import input_size, load
from facemask.core.outputs import (
    CANDIDATE_REPORTS,
    headline,
    model_dir,
    split_report,
    test_metrics,
    val_predictions,
    val_slices,
)
from facemask.core.params import load_params
from facemask.core.resize import resize_batch
from facemask.core.stage import candidate_arg, require, run
from facemask.pipeline.evaluate import SUMMARY, evaluate, slice_metrics
from facemask.pipeline.evaluation import report_text
from facemask.pipeline.slices import compute as compute_slices
from facemask.pipeline.splits import SPLIT_DIR, image_path, split_rows
from facemask.store.tracking import configure, recorded_run_id, start_run
from facemask.use.camera_view import camera_slice


def main() -> None:
    candidate = candidate_arg("evaluate")
    params = load_params()
    configure()  # an unreachable tracking server fails here, before evaluating
    model = load(require(model_dir(candidate) / "model.keras", f"train@{candidate}"))
    rows, batch_size, aligned = split_rows("test"), params.evaluate.batch_size, params.synthesize.aligned_sources
    result = evaluate(model, rows, SPLIT_DIR, batch_size, aligned)
    metrics = {"candidate": candidate, "split": "test", **result["metrics"]}
    size = input_size(model)
    metrics["slices"]["camera"] = camera_slice(
        rows, [load_rgb(image_path(r, SPLIT_DIR)) for r in rows], result["y_pred"],
        lambda crops: model.predict(resize_batch(crops, size), batch_size=batch_size, verbose=0), aligned)
    report_dir = CANDIDATE_REPORTS / candidate
    write_json(test_metrics(candidate), headline("test", metrics))
    write_json(split_report(candidate, "test"), metrics)
    write_csv(Path("plots") / candidate / "confusion.csv",
              [{"actual": p["actual"], "predicted": p["predicted"]} for p in result["predictions"]])
    write_csv(report_dir / "predictions.csv", result["predictions"])
    val_rows = split_rows("val")
    predicted = {r["file"]: r["predicted"] for r in read_csv(require(val_predictions(candidate), f"train@{candidate}"))}
    val_pred = [CLASSES.index(predicted[r["file"]]) for r in val_rows]
    write_json(val_slices(candidate), compute_slices(model, val_rows, SPLIT_DIR, batch_size, val_pred, aligned))
    text = report_text(result["y_true"], result["y_pred"])
    (report_dir / "classification_report.txt").write_text(text)
    _log_to_mlflow(candidate, metrics, report_dir, result)
    print(f"evaluate@{candidate}: test accuracy {metrics['accuracy']:.4f} "
          f"(95% CI {metrics['accuracy_ci95'][0]:.3f}-{metrics['accuracy_ci95'][1]:.3f}), "
          f"macro-F1 {metrics['macro_f1']:.4f}, {metrics['images_per_second']} img/s "
          f"(report: {report_dir / 'classification_report.txt'})")
    summary = ", ".join(f"{k} {v:.3f}" for k, v in slice_metrics(metrics["slices"]).items() if k in SUMMARY)
    print(f"evaluate@{candidate}: slices (not the headline test): {summary}")
    print(f"evaluate@{candidate}: camera slice: {camera_summary(metrics['slices']['camera'])}")


def camera_summary(camera: dict) -> str:
    """The camera slice in one line: faces found, mask/no-mask accuracy beside clean, worn wrong called without."""
    if camera["accuracy"] is None:
        return f"the detector found none of the {camera['faces']} faces"
    worn = camera["worn_wrong"]
    worn_text = (f"worn wrong called without mask {worn['without_mask_rate']:.3f} (margin {worn['margin_mean']:.2f})"
                 if worn["without_mask_rate"] is not None else "no worn-wrong face found")
    return (f"found {camera['found']:.3f} of {camera['faces']}; mask/no-mask {camera['mask_accuracy']:.3f} "
            f"(clean {camera['clean_mask_accuracy']:.3f}), accuracy {camera['accuracy']:.3f} "
            f"(clean {camera['clean_accuracy']:.3f}); {worn_text}")


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


if __name__ == "__main__":
    run(main, "evaluate")
