"""MLflow set-up: the embedded SQLite store unless MLFLOW_TRACKING_URI says otherwise."""
import os
import subprocess

import mlflow

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
EXPERIMENT = "facemask"


def configure() -> str:
    """Point MLflow at the configured store and experiment; return the tracking URI."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME", EXPERIMENT))
    return uri


def run_tags(backbone: str, stage: str) -> dict:
    """Tags every run carries: git commit, DVC experiment (when run by `dvc exp run`), backbone, stage."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "git_commit": commit,
        "dvc_experiment": os.environ.get("DVC_EXP_NAME", ""),
        "backbone": backbone,
        "stage": stage,
    }
