"""The MLflow model registry: the `champion` alias, the model.keras behind a models:/ or runs:/ URI, and rolling
the alias back to an earlier version. (What the registry serves, the pyfunc, is facemask.use.pyfunc.)"""
import atexit
import shutil
import tempfile
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from facemask.core import UserError
from facemask.store.tracking import connect

CHAMPION = "champion"  # the alias select sets and predict, serve and rollback read
# Set (the CI runner does): select registers its winner but leaves `champion` where it is; the runner moves it
# after the gate passed, on main. A pull request's run must not change what production serves.
HOLD_CHAMPION = "FACEMASK_HOLD_CHAMPION"


def local_model(uri: str) -> Path:
    """The model.keras of a models:/ or runs:/ URI, downloaded from the configured store for this process."""
    tracking_uri = connect()
    target = Path(tempfile.mkdtemp(prefix="facemask-model-"))
    atexit.register(shutil.rmtree, target, ignore_errors=True)
    try:
        downloaded = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(target)))
    except MlflowException as err:
        raise UserError(f"--model {uri}: not found in MLFLOW_TRACKING_URI={tracking_uri} ({err.message.splitlines()[0]}); "
                        "`dvc repro` registers the champion, or check the URI and MLFLOW_TRACKING_URI") from None
    found = sorted(downloaded.rglob("*.keras")) if downloaded.is_dir() else [downloaded]
    if not found or found[0].suffix != ".keras":
        raise UserError(f"--model {uri}: holds no .keras model; pass a model logged by the train stage")
    return found[0]


def rollback(model_name: str, version: int | None = None) -> tuple[str, str]:
    """Move `model_name`@champion to `version` (default: the newest version below the champion); returns (from, to)."""
    tracking_uri = connect()
    client = MlflowClient()
    try:
        current = int(client.get_model_version_by_alias(model_name, CHAMPION).version)
        versions = sorted(int(v.version) for v in client.search_model_versions(f"name = '{model_name}'"))
    except MlflowException as err:
        raise UserError(f"{model_name}@{CHAMPION}: not found in MLFLOW_TRACKING_URI={tracking_uri} "
                        f"({err.message.splitlines()[0]}); `dvc repro` (select) sets it") from None
    earlier = [v for v in versions if v < current]
    if version is None and not earlier:
        raise UserError(f"{model_name}@{CHAMPION} is version {current}, the first; there is no earlier version to roll back to")
    target = earlier[-1] if version is None else version
    if target not in earlier:
        raise UserError(f"--to {version}: not a version of {model_name} before the champion ({current}); "
                        f"choose one of: {', '.join(map(str, earlier)) or 'none'}")
    try:
        client.set_registered_model_alias(model_name, CHAMPION, str(target))
    except MlflowException as err:
        raise UserError(f"{model_name}@{CHAMPION}: this account may not move it ({err.message.splitlines()[0]}); "
                        "ask for MANAGE permission on the registered model") from None
    return str(current), str(target)


def champion_version(model_name: str) -> tuple[str, str] | None:
    """(version, run id) of `model_name`@champion in the configured store; None when it has no champion. An
    unreachable tracking server raises TrackingError (a UserError) from connect()."""
    connect()
    try:
        version = MlflowClient().get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException:
        return None
    return str(version.version), version.run_id


def run_artifact(run_id: str, artifact_path: str, target: Path) -> Path | None:
    """One artifact of a run, downloaded into `target`; None when the run does not have it."""
    try:
        return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact_path, dst_path=str(target)))
    except (MlflowException, OSError):
        return None


def model_version(uri: str) -> tuple[str, str]:
    """(a URI that names one fixed version, a label saying which) for a models:/ or runs:/ URI: an alias
    (models:/facemask@champion) is resolved now, so that what is downloaded is what the label names."""
    tracking_uri = connect()
    body = uri.removeprefix("models:/")
    if uri.startswith("runs:/") or "@" not in body:
        return uri, f"{body.replace('/', ' version ', 1)}" if uri.startswith("models:/") else uri
    name, alias = body.split("@", 1)
    try:
        version = MlflowClient().get_model_version_by_alias(name, alias).version
    except MlflowException as err:
        raise UserError(f"--model {uri}: not found in MLFLOW_TRACKING_URI={tracking_uri} ({err.message.splitlines()[0]}); "
                        "`dvc repro` registers the champion, or check the URI and MLFLOW_TRACKING_URI") from None
    return f"models:/{name}/{version}", f"{name} version {version} (@{alias})"


def promote(model_name: str, version: str) -> bool:
    """Point `model_name`@champion at `version`; False when it already did."""
    found = champion_version(model_name)
    if found and found[0] == str(version):
        return False
    try:
        MlflowClient().set_registered_model_alias(model_name, CHAMPION, str(version))
    except MlflowException as err:
        raise UserError(f"{model_name}@{CHAMPION}: could not be moved to version {version} "
                        f"({err.message.splitlines()[0]}); the CI account needs MANAGE on the model") from None
    return True
