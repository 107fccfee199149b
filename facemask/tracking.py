"""MLflow set-up: the embedded SQLite store unless MLFLOW_TRACKING_URI says otherwise."""
import json
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import mlflow

from facemask import UserError

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
EXPERIMENT = "facemask"
REACH_TIMEOUT_S = 5
# What a logged model needs to be served; mlflow's inference would list tensorflow and tensorflow-cpu both.
PIP_REQUIREMENTS = ["tensorflow-cpu==2.21.0", "keras==3.15.1", "numpy==2.4.6"]


class TrackingError(UserError):
    """The configured MLflow tracking server does not answer."""


def configure() -> str:
    """Point MLflow at the configured store and experiment; return the tracking URI.

    A tracking server is asked for /health first, with a short timeout: an unreachable server fails
    here, in seconds, instead of after MLflow's minutes of retries (or after training).
    """
    uri = os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    if uri.startswith(("http://", "https://")):
        check_reachable(uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME", EXPERIMENT))
    return uri


def check_reachable(uri: str, timeout: float = REACH_TIMEOUT_S) -> None:
    """Raise TrackingError unless a server answers at `uri` (any HTTP status counts as an answer)."""
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout):
            return
    except urllib.error.HTTPError:
        return  # it answered (perhaps behind a proxy or auth): MLflow's own calls will tell the rest
    except (OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
    raise TrackingError(
        f"MLFLOW_TRACKING_URI={uri}: no MLflow tracking server answers there ({reason}). Start the server "
        f"(`mlflow server`), fix the address, or unset MLFLOW_TRACKING_URI to log into the embedded store "
        f"({DEFAULT_TRACKING_URI})"
    )


def start_run(backbone: str, stage: str, run_id: str | None = None, run_name: str | None = None) -> mlflow.ActiveRun:
    """Resume run `run_id` if this store has it, else start a new run named `run_name` (default: `backbone`)."""
    if run_id:
        try:
            mlflow.get_run(run_id)
            return mlflow.start_run(run_id=run_id)
        except mlflow.exceptions.MlflowException:
            pass
    return mlflow.start_run(run_name=run_name or backbone, tags=run_tags(backbone, stage))


def recorded_run_id(backbone: str, models_dir: Path = Path("models")) -> str | None:
    """The id of `backbone`'s training run, from the models/<backbone>/mlflow.json that train writes."""
    record = Path(models_dir) / backbone / "mlflow.json"
    return json.loads(record.read_text())["run_id"] if record.is_file() else None


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
