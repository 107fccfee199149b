"""Stage evaluate@<candidate>: the test split's metrics, report, predictions and confusion matrix, logged to the
candidate's MLflow run (facemask.pipeline.evaluate does the scoring); and the slices of the validation photos,
which the CI gate guards (the test split is reported, never gated)."""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import mlflow
from sklearn.metrics import ConfusionMatrixDisplay

from facemask.core import CLASSES
from facemask.core.files import read_csv, write_csv, write_json
from facemask.core.model import load
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
from facemask.core.stage import candidate_arg, require, run
from facemask.pipeline.evaluate import SUMMARY, evaluate, slice_metrics
from facemask.pipeline.evaluation import report_text
from facemask.pipeline.slices import compute as compute_slices
from facemask.pipeline.splits import SPLIT_DIR, split_rows
from facemask.store.tracking import configure, recorded_run_id, start_run


def main() -> None:
    candidate = candidate_arg("evaluate")
    params = load_params()
    configure()  # an unreachable tracking server fails here, before evaluating
    model = load(require(model_dir(candidate) / "model.keras", f"train@{candidate}"))
    result = evaluate(model, split_rows("test"), SPLIT_DIR, params.evaluate.batch_size, params.synthesize.aligned_sources)
    metrics = {"candidate": candidate, "split": "test", **result["metrics"]}
    report_dir = CANDIDATE_REPORTS / candidate
    write_json(test_metrics(candidate), headline("test", metrics))
    write_json(split_report(candidate, "test"), metrics)
    write_csv(Path("plots") / candidate / "confusion.csv",
              [{"actual": p["actual"], "predicted": p["predicted"]} for p in result["predictions"]])
    write_csv(report_dir / "predictions.csv", result["predictions"])
    val_rows = split_rows("val")
    predicted = {r["file"]: r["predicted"] for r in read_csv(require(val_predictions(candidate), f"train@{candidate}"))}
    val_pred = [CLASSES.index(predicted[r["file"]]) for r in val_rows]
    write_json(val_slices(candidate), compute_slices(model, val_rows, SPLIT_DIR, params.evaluate.batch_size, val_pred,
                                                     params.synthesize.aligned_sources))
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


if __name__ == "__main__":
    run(main, "evaluate")
