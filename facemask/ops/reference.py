"""What the CI gate compares the new champion with: production's champion and its validation predictions.

First the registry's `champion` (what serves): the validation predictions its training run logged; when the
registry cannot be reached or has none, the base commit's champion and its git-tracked predictions. When the
validation photos changed since, the registry's model is scored on today's photos instead (rescored()).
Read before the pipeline re-runs: select moves the alias.
"""
import csv
import io
import subprocess
from dataclasses import dataclass
from pathlib import Path

from facemask.core import UserError
from facemask.core.outputs import val_predictions
from facemask.pipeline.paired import read_predictions

ARTIFACT = "validation/val_predictions.csv"  # where train@<candidate> logs them in its run


@dataclass(frozen=True)
class Reference:
    name: str  # production's champion in a phrase, e.g. "the registry's facemask version 3 (run 1a2b...)"
    rows: list[dict] | None  # its validation predictions; None: none could be had (`name` says why)
    model_uri: str | None = None  # its model, to score on today's photos when the photos differ
    version: str | None = None  # its version in the registry; None: not the registry's


def production(model_name: str, base: str, best_before: dict | None, scratch: Path) -> Reference:
    """The registry's champion, else the base commit's (see the module's docstring)."""
    from facemask.store.registry import champion_version, run_artifact  # MLflow: only when the gate runs

    try:
        found = champion_version(model_name)
    except UserError as err:
        found, unreachable = None, f"the registry is not reachable ({str(err).split(';')[0]})"
    else:
        unreachable = "" if found else f"the registry has no {model_name}@champion"
    if found:
        version, run_id = found
        name = f"the registry's {model_name} version {version} (run {run_id[:8]})"
        downloaded = run_artifact(run_id, ARTIFACT, scratch)
        return Reference(name, read_predictions(downloaded) if downloaded else None, f"models:/{model_name}/{version}",
                         version)
    if best_before:
        winner = best_before["winner"]
        rows = committed_rows(base, val_predictions(winner))
        return Reference(f"the base commit's champion {winner} ({unreachable})", rows)
    return Reference(f"{unreachable}, and the base commit has no champion", None)


def committed_rows(revision: str, path: Path) -> list[dict] | None:
    """A predictions CSV as committed at `revision`; None when it is not there."""
    shown = subprocess.run(["git", "show", f"{revision}:{path.as_posix()}"], capture_output=True, text=True)
    return list(csv.DictReader(io.StringIO(shown.stdout))) if shown.returncode == 0 and shown.stdout else None


def rescored(model_uri: str) -> list[dict]:
    """The model at `model_uri` scored on today's validation photos (data/split), as train writes predictions."""
    from facemask.core.tensorflow_logs import quiet_tensorflow

    quiet_tensorflow()
    from facemask.core.model import input_size
    from facemask.core.resize import load_batch
    from facemask.pipeline.evaluation import prediction_rows
    from facemask.pipeline.splits import image_path, split_rows
    from facemask.store.loading import load_model

    model = load_model(model_uri)
    rows = split_rows("val")
    probabilities = model.predict(load_batch([image_path(r) for r in rows], input_size(model)), verbose=0)
    return prediction_rows(rows, probabilities)
