"""The MLflow model registry as the way to use a model: a --model that is a models:/ or runs:/ URI, the pyfunc
that `mlflow models serve` runs, and rolling the champion alias back to an earlier version."""
import atexit
import base64
import io
import shutil
import tempfile
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema
from PIL import Image

from facemask import UserError
from facemask.images import ImageError, base64_bytes, load_rgb
from facemask.serve import Upload
from facemask.tracking import connect

CHAMPION = "champion"
KERAS_ARTIFACT = "keras_model"
# One row per image: base64 bytes (or a data: URL) and an optional file name; whole_image as `predict --whole-image`.
SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("string", "image"), ColSpec("string", "filename", required=False)]),
    params=ParamSchema([ParamSpec("whole_image", "boolean", False)]),
)


def decode_image(text: str, name: str):
    """The RGB array of a base64 image (a data: URL works too); ImageError names `name` when it is not one."""
    try:
        data = base64_bytes(text)
    except ValueError as err:
        raise ImageError(f"{name}: image is not valid base64 ({err})") from None
    return load_rgb(Upload(data, name))


class FaceClassifier(mlflow.pyfunc.PythonModel):
    """What `mlflow models serve` runs: a DataFrame of base64 images in, `predict --json`'s records out.

    The images are decoded as predict decodes files and go through the same Predictor (detector, crop, the
    saved Keras model with its own preprocessing); an image that cannot be read gives an `error` record."""

    def load_context(self, context):
        from facemask.detect import make_detector
        from facemask.model import load
        from facemask.predict import Predictor

        self.predictor = Predictor(load(context.artifacts[KERAS_ARTIFACT]), make_detector())

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> list[dict]:
        whole_image = bool((params or {}).get("whole_image", False))
        records = []
        for number, row in enumerate(model_input.to_dict("records")):
            name = row.get("filename") if isinstance(row.get("filename"), str) else f"image_{number}"
            try:
                records += self.predictor.predict_image(decode_image(row["image"], name), name, whole_image=whole_image)
            except ImageError as err:
                records.append({"file": name, "status": "error", "error": str(err)})
        return records


def example_request() -> tuple[pd.DataFrame, dict]:
    """The logged input example: one small PNG, classified whole."""
    pixels = Image.linear_gradient("L").resize((48, 48)).convert("RGB")
    buffer = io.BytesIO()
    pixels.save(buffer, format="PNG")
    return pd.DataFrame({"image": [base64.b64encode(buffer.getvalue()).decode()], "filename": ["example.png"]}), \
        {"whole_image": True}


def log_classifier(model_file: Path, pip_requirements: list[str]):
    """Log `model_file` into the active run as a FaceClassifier pyfunc (MLflow checks the example serves)."""
    return mlflow.pyfunc.log_model(name="model", python_model=FaceClassifier(), artifacts={KERAS_ARTIFACT: str(model_file)},
                                   signature=SIGNATURE, input_example=example_request(), pip_requirements=pip_requirements)


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
