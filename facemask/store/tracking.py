"""MLflow set-up: the embedded SQLite store unless MLFLOW_TRACKING_URI says otherwise."""
import base64
import json
import logging
import os
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import mlflow
import yaml
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from facemask.core import UserError, project
from facemask.core.outputs import CANDIDATE_MODELS

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
EXPERIMENT = "facemask"
REACH_TIMEOUT_S = 5
# MLflow's UI opens an experiment without this tag on its GenAI views; this kind opens it on the runs table.
EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND = "mlflow.experimentKind", "custom_model_development"
# A server whose store fails is retried for seconds, not MLflow's default of minutes (7 retries).
HTTP_RETRIES = "2"
SWEEP_RUN_ENV = "FACEMASK_SWEEP_RUN_ID"  # the MLflow run of the sweep experiment a stage runs in


class TrackingError(UserError):
    """The configured MLflow tracking server does not answer."""


def connect() -> str:
    """Point MLflow at the configured store (no experiment: enough to read the registry); return its URI.

    A tracking server is asked for /health and then for one experiment, with short timeouts: an
    unreachable server, refused credentials or a failing database fail here, in seconds, instead of
    after MLflow's minutes of retries (or after training).
    """
    uri = os.environ.get("MLFLOW_TRACKING_URI") or embedded_store()[0]
    quiet_mlflow()
    if uri.startswith(("http://", "https://")):
        check_reachable(uri)
        check_store(uri)
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", HTTP_RETRIES)
    mlflow.set_tracking_uri(uri)
    return uri


def embedded_store() -> tuple[str, str]:
    """(tracking URI, artifact location) of the embedded store: mlflow.db and mlruns/ in the project's root.

    A queued experiment (`dvc exp run --queue`) runs in a temporary copy of the repo; project.root() is the
    repo it was queued from, so its runs land beside everyone else's instead of vanishing with the copy.
    """
    root = project.root()
    return f"sqlite:///{root / 'mlflow.db'}", (root / "mlruns").as_uri()


def quiet_mlflow() -> None:
    """Keep MLflow's INFO lines (creating tables, experiments) and its schema hints out of stage output."""
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column", category=UserWarning)


def configure() -> str:
    """connect(), then select the experiment (created on first use, marked as model training for the UI)."""
    uri = connect()
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME", EXPERIMENT)
    if uri == embedded_store()[0] and mlflow.get_experiment_by_name(name) is None:
        mlflow.create_experiment(name, artifact_location=embedded_store()[1])  # not in a queued run's copy
    experiment = mlflow.set_experiment(name)
    if experiment.tags.get(EXPERIMENT_KIND_TAG) != MODEL_TRAINING_KIND:
        mlflow.set_experiment_tag(EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND)
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


def check_store(uri: str, timeout: float = REACH_TIMEOUT_S) -> None:
    """Raise TrackingError unless the server at `uri` accepts these credentials (MLFLOW_TRACKING_USERNAME and
    MLFLOW_TRACKING_PASSWORD, as MLflow reads them) and its backend store answers one search."""
    request = urllib.request.Request(f"{uri.rstrip('/')}/api/2.0/mlflow/experiments/search?max_results=1")
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if user and password:
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return
    except urllib.error.HTTPError as err:
        status, detail = err.code, err.read(300).decode(errors="replace").strip()
    except OSError as err:
        status, detail = None, str(getattr(err, "reason", err))
    if status == 401:
        raise TrackingError(f"MLFLOW_TRACKING_URI={uri}: the server wants credentials; set MLFLOW_TRACKING_USERNAME "
                            "and MLFLOW_TRACKING_PASSWORD (an account its admin created)")
    if status == 403 or (status is not None and status < 500):
        return  # signed in: what this account may do is checked call by call
    raise TrackingError(f"MLFLOW_TRACKING_URI={uri}: the server answers but its store does not "
                        f"({status or ''} {detail}); is its database running? (deploy/tracking_server.sh status)")


def start_run(candidate: str, stage: str, run_id: str | None = None, run_name: str | None = None) -> mlflow.ActiveRun:
    """Resume run `run_id` if this store has it, else start a new run named `run_name` (default: `candidate`).

    MLflow tags the run with the git commit itself (mlflow.source.git.commit)."""
    if run_id:
        try:
            mlflow.get_run(run_id)
            return mlflow.start_run(run_id=run_id)
        except mlflow.exceptions.MlflowException:
            pass
    return mlflow.start_run(run_name=run_name or candidate, tags=run_tags(candidate, stage))


def recorded_run_id(candidate: str, models_dir: Path = CANDIDATE_MODELS) -> str | None:
    """The id of `candidate`'s training run, from the mlflow.json that train writes beside its model."""
    record = Path(models_dir) / candidate / "mlflow.json"
    return json.loads(record.read_text())["run_id"] if record.is_file() else None


def run_tags(candidate: str, stage: str) -> dict:
    """Tags every run carries: DVC experiment (when run by `dvc exp run`), candidate, stage; and, inside a sweep's
    experiment (facemask/ops/sweep.py sets SWEEP_RUN_ENV), the experiment's run as parent, so MLflow nests it there."""
    tags = {"dvc_experiment": os.environ.get("DVC_EXP_NAME", ""), "candidate": candidate, "stage": stage}
    if os.environ.get(SWEEP_RUN_ENV):
        tags[MLFLOW_PARENT_RUN_ID] = os.environ[SWEEP_RUN_ENV]
    return tags


def split_digest(lock: Path = Path("dvc.lock"), split_dir: str = "data/split") -> str | None:
    """DVC's hash of the split folder, as dvc.lock records it (None when the split was not made by DVC)."""
    if not lock.is_file():
        return None
    outs = yaml.safe_load(lock.read_text()).get("stages", {}).get("split", {}).get("outs", [])
    return next((out["md5"].removesuffix(".dir") for out in outs if out.get("path") == split_dir), None)


def log_split_dataset(split_dir: Path = Path("data/split")) -> None:
    """Record the split the active run trained on as its MLflow dataset input: split.csv's rows, named by DVC's
    hash of the split (MLflow's digest of the rows when DVC did not make it), so the runs table tells data apart."""
    import pandas as pd

    table = pd.read_csv(split_dir / "split.csv")
    with warnings.catch_warnings():  # MLflow registers its local-file source twice and says so
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
        dataset = mlflow.data.from_pandas(table, source=str(split_dir.resolve()), name="split", digest=split_digest())
    mlflow.log_input(dataset, context="training")
