"""Stage explain: Grad-CAM maps of test images per class in reports/explain, logged to the champion's MLflow run
(facemask.use.explain does the work; `facemask explain` is the same by hand)."""
from pathlib import Path

from facemask.core.outputs import BEST_MODEL
from facemask.core.params import load_params
from facemask.core.stage import require, run
from facemask.pipeline.splits import split_images
from facemask.store.loading import load_model
from facemask.use.explain import explain, log_to_mlflow, summary_text

OUT_DIR = Path("reports/explain")


def main() -> None:
    params = load_params().explain
    paths, labels = split_images("test")
    summary = explain(load_model(require(BEST_MODEL, "select")), paths, labels, OUT_DIR, params.per_class, params.seed)
    log_to_mlflow(OUT_DIR, BEST_MODEL)
    print(summary_text(summary, OUT_DIR))


if __name__ == "__main__":
    run(main, "explain")
