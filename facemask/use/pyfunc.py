"""The model as MLflow logs and serves it: a pyfunc (`mlflow models serve`) around the saved Keras model, the
detector and predict's Predictor, with its signature, input example and pip requirements."""
import base64
import io
import threading
from importlib.metadata import distribution, packages_distributions
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema
from PIL import Image

from facemask.core.images import ImageError, decode_base64_image
from facemask.core.model import load
from facemask.use.detect import make_detector
from facemask.use.predict import Predictor

KERAS_ARTIFACT = "keras_model"
# One row per image: base64 bytes (or a data: URL) and an optional file name; whole_image as `predict --whole-image`.
SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("string", "image"), ColSpec("string", "filename", required=False)]),
    params=ParamSchema([ParamSpec("whole_image", "boolean", False)]),
)


class FaceClassifier(mlflow.pyfunc.PythonModel):
    """What `mlflow models serve` runs: a DataFrame of base64 images in, `predict --json`'s records out.

    The images are decoded as predict decodes files and go through the same Predictor (detector, crop, the
    saved Keras model with its own preprocessing); an image that cannot be read gives an `error` record.
    MLflow's scoring server calls predict from several threads at once, and the Predictor (OpenCV's YuNet, the
    Keras model) is not made for that: 16 concurrent requests crashed `mlflow models serve` with SIGSEGV
    (benchmarks/bench_serve.py); so one request runs at a time."""

    def load_context(self, context):
        self.predictor = Predictor(load(context.artifacts[KERAS_ARTIFACT]), make_detector())
        self.lock = threading.Lock()

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> list[dict]:
        whole_image = bool((params or {}).get("whole_image", False))
        records = []
        for number, row in enumerate(model_input.to_dict("records")):
            name = row.get("filename") if isinstance(row.get("filename"), str) else f"image_{number}"
            try:
                rgb = decode_base64_image(row["image"], name)
                with self.lock:
                    records += self.predictor.predict_image(rgb, name, whole_image=whole_image)
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


def pip_requirements() -> list[str]:
    """What a logged model needs to be served, at the versions installed here. TensorFlow is named by the
    distribution that provides it (tensorflow-cpu here): MLflow's own inference would list both."""
    names = (packages_distributions()["tensorflow"][0], "keras", "numpy", "pillow")
    return [f"{dist.metadata['Name']}=={dist.version}" for dist in map(distribution, names)]


def log_model(model_file: Path) -> str:
    """Log a saved Keras model into the active run as the pyfunc `mlflow models serve` runs (signature, input
    example); returns its model URI."""
    return log_classifier(Path(model_file), pip_requirements()).model_uri
