"""A sweep in MLflow: one parent run per sweep, one child run per experiment (tagged with the sweep id, its index
and overrides), and the stage runs of each experiment nested under its child (store.tracking.run_tags reads
SWEEP_RUN_ENV). Every runner finds the parent by its tags, so no runner has to be first."""
import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID  # the tag MLflow's UI nests runs by

from facemask.store.registry import CHAMPION
from facemask.store.tracking import EXPERIMENT, configure

SWEEP_ID, SWEEP_INDEX, ROLE = "sweep_id", "sweep_index", "sweep_role"
LOG_TAIL = "sweep_log_tail"
TAG_LIMIT = 5000  # characters of a log tail kept in a tag (MLflow allows 8,000)


def _experiment_id() -> str:
    """Connect (failing fast when the server does not answer) and return the project's MLflow experiment id."""
    configure()
    return mlflow.get_experiment_by_name(os.environ.get("MLFLOW_EXPERIMENT_NAME", EXPERIMENT)).experiment_id


def _search(client: MlflowClient, experiment_id: str, where: str) -> list:
    return client.search_runs([experiment_id], where, order_by=["attributes.start_time ASC"])


def _oldest(runs: list):
    return min(runs, key=lambda run: (run.info.start_time, run.info.run_id))


def parent_run(sweep_id: str, file: str, baseline: str) -> str:
    """The id of the sweep's parent run, created by the first runner that asks.

    Runners that start together may each create one: all then keep the oldest (start time, then id) and
    delete their own if it is not that one, so every child hangs off the same parent."""
    client, experiment_id = MlflowClient(), _experiment_id()
    where = f"tags.{SWEEP_ID} = '{sweep_id}' and tags.{ROLE} = 'parent'"
    found = _search(client, experiment_id, where)
    if found:
        return _oldest(found).info.run_id
    mine = client.create_run(experiment_id, run_name=f"sweep {sweep_id}",
                             tags={SWEEP_ID: sweep_id, ROLE: "parent", "sweep_file": file, "sweep_baseline": baseline})
    oldest = _oldest(_search(client, experiment_id, where))
    if oldest.info.run_id != mine.info.run_id:
        client.delete_run(mine.info.run_id)
    return oldest.info.run_id


def child_run(parent_id: str, sweep_id: str, index: int, name: str, overrides: dict) -> str:
    """The id of experiment `index`'s child run: the one a failed earlier try left (running again), else a new one."""
    client = MlflowClient()
    experiment_id = client.get_run(parent_id).info.experiment_id
    where = f"tags.{SWEEP_ID} = '{sweep_id}' and tags.{SWEEP_INDEX} = '{index}' and tags.{ROLE} = 'experiment'"
    found = _search(client, experiment_id, where)
    if found:
        run_id = found[0].info.run_id
        client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
        client.set_tag(run_id, LOG_TAIL, "")
        return run_id
    return client.create_run(experiment_id, run_name=name, tags={
        MLFLOW_PARENT_RUN_ID: parent_id, SWEEP_ID: sweep_id, SWEEP_INDEX: str(index), ROLE: "experiment",
        "dvc_experiment": name, "sweep_overrides": json.dumps(overrides)}).info.run_id


def finish_child(run_id: str, metrics: dict[str, float], log_file, log_tail: str | None) -> None:
    """Log the experiment's metrics and output; FAILED (with its last lines in a tag) when `log_tail` is given."""
    client = MlflowClient()
    for key, value in metrics.items():
        client.log_metric(run_id, key, value)
    client.log_artifact(run_id, str(log_file), "sweep")
    if log_tail is not None:
        client.set_tag(run_id, LOG_TAIL, log_tail[-TAG_LIMIT:])
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED if log_tail is not None else RunStatus.FINISHED))


def children(sweep_id: str) -> dict[int, dict]:
    """{index: {"status", "run_id", "log_tail"}} of the sweep's child runs."""
    client, experiment_id = MlflowClient(), _experiment_id()
    where = f"tags.{SWEEP_ID} = '{sweep_id}' and tags.{ROLE} = 'experiment'"
    return {int(run.data.tags[SWEEP_INDEX]): {"status": run.info.status, "run_id": run.info.run_id,
                                             "log_tail": run.data.tags.get(LOG_TAIL, "")}
            for run in _search(client, experiment_id, where)}


def champion(model_name: str) -> dict | None:
    """The registry's champion: {"version", "run_id", "candidate"}; None when the model or its alias is absent."""
    client = MlflowClient()
    try:
        version = client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException:
        return None
    candidate = client.get_run(version.run_id).data.tags.get("candidate") if version.run_id else None
    return {"version": version.version, "run_id": version.run_id, "candidate": candidate}


def run_file(run_id: str, artifact_path: str) -> Path | None:
    """One artifact of a run, downloaded for this process; None when the run has no such artifact."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no progress bar in the table's output
    target = Path(tempfile.mkdtemp(prefix="facemask-sweep-"))
    atexit.register(shutil.rmtree, target, ignore_errors=True)
    try:
        return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact_path, dst_path=str(target)))
    except (MlflowException, OSError):
        return None


def close_parent(parent_id: str, table_file) -> None:
    """Attach the gathered table to the parent run and end it."""
    client = MlflowClient()
    client.log_artifact(parent_id, str(table_file), "sweep")
    client.set_terminated(parent_id, RunStatus.to_string(RunStatus.FINISHED))
