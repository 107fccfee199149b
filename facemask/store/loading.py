"""The model a --model names: a saved .keras file, or a models:/ or runs:/ URI of the MLflow registry."""
from pathlib import Path

from facemask.core import UserError
from facemask.core.model import load

MODEL_URI_SCHEMES = ("models:/", "runs:/")


def load_model(spec):
    """The classifier --model names: a saved .keras file, or a models:/ or runs:/ URI fetched from the MLflow store
    (MLFLOW_TRACKING_URI); a UserError that says how to make one when there is none."""
    if str(spec).startswith(MODEL_URI_SCHEMES):
        from facemask.store.registry import local_model  # imports MLflow: only when a URI asks for it

        return load(local_model(str(spec)))
    if not Path(spec).is_file():
        raise UserError(f"{spec}: no such model; run `dvc repro` first, pass --model models/candidates/<candidate>/model.keras "
                        "or a registry URI such as models:/facemask@champion")
    return load(spec)
