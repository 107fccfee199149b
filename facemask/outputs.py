"""Where the per-candidate stages write and select, export, explain and results read (as in dvc.yaml)."""
from pathlib import Path

CANDIDATE_MODELS = Path("models/candidates")
CANDIDATE_METRICS = Path("metrics/candidates")
BEST_DIR = Path("models/best")


def model_dir(candidate: str, root: Path = CANDIDATE_MODELS) -> Path:
    """models/candidates/<candidate>: the trained model and its MLflow record."""
    return Path(root) / candidate


def val_metrics(candidate: str, root: Path = CANDIDATE_METRICS) -> Path:
    """metrics/candidates/<candidate>_val.json, written by train@<candidate>."""
    return Path(root) / f"{candidate}_val.json"


def test_metrics(candidate: str, root: Path = CANDIDATE_METRICS) -> Path:
    """metrics/candidates/<candidate>.json, written by evaluate@<candidate>."""
    return Path(root) / f"{candidate}.json"
