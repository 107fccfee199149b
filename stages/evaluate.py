"""Stage evaluate@<backbone>: score the saved model on the held-out test split, and only there.

Metrics (scikit-learn): accuracy with its 95% CI, macro-F1, per-class precision/recall/F1, accuracy
per image source and under fixed re-framings (does the model read the face, or the photo's origin and
framing?), inference images/s, and for a seed-averaged model each member's own accuracy and macro-F1.
Writes metrics/<backbone>.json, plots/<backbone>/confusion.csv (a DVC confusion plot) and
reports/<backbone>/{classification_report.txt, predictions.csv}; logs into the backbone's MLflow run.
"""
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import mlflow  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402

from facemask import CLASSES  # noqa: E402
from facemask.evaluation import accuracy_by, classification_metrics, member_scores, reframed_scores, report_text  # noqa: E402
from facemask.files import write_csv, write_json  # noqa: E402
from facemask.images import load_batch  # noqa: E402
from facemask.model import input_size, load, members, predict_labels  # noqa: E402
from facemask.params import load_section  # noqa: E402
from facemask.splits import SPLIT_DIR, image_path, split_rows  # noqa: E402
from facemask.stage import candidate_arg, require, run  # noqa: E402
from facemask.tracking import configure, recorded_run_id, start_run  # noqa: E402


def evaluate(model, rows: list[dict], split_dir: Path = SPLIT_DIR, batch_size: int = 32) -> dict:
    """Predict every row's image and score it; returns metrics, per-image predictions and timing."""
    paths = [image_path(r, split_dir) for r in rows]
    y_true = np.array([CLASSES.index(r["label"]) for r in rows])
    started = time.perf_counter()
    batch = load_batch(paths, input_size(model))
    loaded = time.perf_counter()
    probabilities = model.predict(batch, batch_size=batch_size, verbose=0)
    inferred = time.perf_counter()
    y_pred = probabilities.argmax(axis=1)
    metrics = classification_metrics(y_true, y_pred)
    metrics["accuracy_by_source"] = accuracy_by([r.get("source", "unknown") for r in rows], y_true, y_pred)
    metrics["images_per_second"] = round(len(rows) / (inferred - loaded), 1)
    metrics["images_per_second_with_decode"] = round(len(rows) / (inferred - started), 1)
    metrics["reframed"] = reframed_scores(y_true, lambda view: predict_labels(model, paths, batch_size, view))
    if len(averaged := members(model)) > 1:  # a seed-averaged model: each member's own score, for the spread
        metrics["members"] = member_scores(y_true, {member.name: member.predict(batch, batch_size=batch_size, verbose=0)
                                                    .argmax(axis=1) for member in averaged})
    predictions = [
        {"file": r["file"], "source": r.get("source", ""), "actual": r["label"], "predicted": CLASSES[p],
         **{f"p_{c}": round(float(q), 5) for c, q in zip(CLASSES, prob)}}
        for r, p, prob in zip(rows, y_pred, probabilities)
    ]
    return {"metrics": metrics, "predictions": predictions, "y_true": y_true, "y_pred": y_pred}


def main() -> None:
    backbone = candidate_arg("evaluate")
    params = load_section("evaluate")
    configure()  # an unreachable tracking server fails here, before evaluating
    model_dir = Path("models") / backbone
    model = load(require(model_dir / "model.keras", f"train@{backbone}"))
    result = evaluate(model, split_rows("test"), SPLIT_DIR, int(params.get("batch_size", 32)))
    metrics = {"backbone": backbone, "split": "test", **result["metrics"]}
    report_dir = Path("reports") / backbone
    write_json(Path("metrics") / f"{backbone}.json", metrics)
    write_csv(Path("plots") / backbone / "confusion.csv",
              [{"actual": p["actual"], "predicted": p["predicted"]} for p in result["predictions"]])
    write_csv(report_dir / "predictions.csv", result["predictions"])
    text = report_text(result["y_true"], result["y_pred"])
    (report_dir / "classification_report.txt").write_text(text)
    _log_to_mlflow(backbone, model_dir, metrics, report_dir, result)
    print(f"evaluate@{backbone}: test accuracy {metrics['accuracy']:.4f} "
          f"(95% CI {metrics['accuracy_ci95'][0]:.3f}-{metrics['accuracy_ci95'][1]:.3f}), "
          f"macro-F1 {metrics['macro_f1']:.4f}, {metrics['images_per_second']} img/s\n{text}")


def _log_to_mlflow(backbone: str, model_dir: Path, metrics: dict, report_dir: Path, result: dict) -> None:
    """Add test metrics and artifacts to the backbone's training run (a new run if it is not in this store)."""
    with start_run(backbone, "evaluate", recorded_run_id(backbone, model_dir.parent)):
        mlflow.log_metrics({"test_accuracy": metrics["accuracy"], "test_macro_f1": metrics["macro_f1"],
                            "test_accuracy_ci95_low": metrics["accuracy_ci95"][0],
                            "test_accuracy_ci95_high": metrics["accuracy_ci95"][1],
                            "test_images_per_second": metrics["images_per_second"],
                            "test_reframed_macro_f1": metrics["reframed"]["mean_macro_f1"],
                            **{f"test_recall_{c}": v["recall"] for c, v in metrics["per_class"].items()}})
        mlflow.log_artifact(str(report_dir / "classification_report.txt"), "evaluation")
        mlflow.log_artifact(str(report_dir / "predictions.csv"), "evaluation")
        mlflow.log_dict(metrics, "evaluation/test_metrics.json")
        display = ConfusionMatrixDisplay.from_predictions(
            result["y_true"], result["y_pred"], labels=list(range(len(CLASSES))), display_labels=list(CLASSES),
            xticks_rotation=30)
        mlflow.log_figure(display.figure_, "evaluation/confusion_matrix.png")


if __name__ == "__main__":
    run(main, "evaluate")
