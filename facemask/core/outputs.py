"""Where the stages write and what reads it (as in dvc.yaml).

DVC metrics are a few headline numbers per candidate (metrics/), so `dvc metrics show/diff` fit a terminal; the
details (per class, per source, slices, speeds) are report data beside them (reports/), which the results
table, the plots and the CI report read.
"""
from pathlib import Path

CANDIDATE_MODELS = Path("models/candidates")
CANDIDATE_METRICS = Path("metrics/candidates")
REPORTS = Path("reports")
CANDIDATE_REPORTS = REPORTS / "candidates"
BEST_DIR = Path("models/best")
BEST_MODEL = BEST_DIR / "model.keras"  # the champion: what predict, serve, video, export and explain use
BEST_METRICS = Path("metrics/best.json")  # the winner, its metric and registration
SELECTION_REPORT = REPORTS / "select.json"  # and every candidate's numbers side by side
EXPORT_DIR = Path("models/export")
EXPORT_FILES = {"tflite": "model.tflite", "tflite_int8": "model_int8.tflite", "onnx": "model.onnx"}  # by format
EXPORT_REPORT = REPORTS / "export.json"
HEADLINE = ("accuracy", "macro_f1")  # what a candidate's metrics files hold, per split


def model_dir(candidate: str, root: Path = CANDIDATE_MODELS) -> Path:
    """models/candidates/<candidate>: the trained model and its MLflow record."""
    return Path(root) / candidate


def val_metrics(candidate: str, root: Path = CANDIDATE_METRICS) -> Path:
    """metrics/candidates/<candidate>_val.json: validation headline numbers, written by train@<candidate>."""
    return Path(root) / f"{candidate}_val.json"


def test_metrics(candidate: str, root: Path = CANDIDATE_METRICS) -> Path:
    """metrics/candidates/<candidate>.json: test headline numbers, written by evaluate@<candidate>."""
    return Path(root) / f"{candidate}.json"


def split_report(candidate: str, split: str, root: Path = CANDIDATE_REPORTS) -> Path:
    """reports/candidates/<candidate>/<split>.json: everything measured on that split, by train@<candidate>
    (validation) or evaluate@<candidate> (test, slices too)."""
    return Path(root) / candidate / f"{split}.json"


def val_predictions(candidate: str, root: Path = CANDIDATE_REPORTS) -> Path:
    """reports/candidates/<candidate>/val_predictions.csv: one row per validation photo (file, true and predicted
    label, probabilities), by train@<candidate>; the paired comparisons of select and CI read it."""
    return Path(root) / candidate / "val_predictions.csv"


def val_slices(candidate: str, root: Path = CANDIDATE_REPORTS) -> Path:
    """reports/candidates/<candidate>/val_slices.json: the slices on the validation photos, by evaluate@<candidate>;
    the CI gate holds the champion's to their floors (ci.floors)."""
    return Path(root) / candidate / "val_slices.json"


def headline(split: str, scores: dict) -> dict:
    """The DVC metrics of one split: {split}_accuracy and {split}_macro_f1 from its full scores."""
    return {f"{split}_{name}": scores[name] for name in HEADLINE}
