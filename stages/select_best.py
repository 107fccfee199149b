"""Stage select: pick the champion among the backbones by a validation metric, register it in MLflow.

The test split only reports; it never chooses. When the winner's 95% validation-accuracy CI overlaps
another candidate's, the result says "tie" (the data cannot really separate them). The winner is
copied to models/best/; metrics/best.json records the winner, why, and every candidate's numbers.
The model is registered (alias `champion`) only when its metric reaches `select.threshold`.
(Named select_best.py: a module named select.py would shadow Python's own `select`.)
"""
import shutil
import sys
from functools import reduce
from operator import getitem
from pathlib import Path

import mlflow
from mlflow import MlflowClient

from facemask import UserError
from facemask.files import read_json, write_json
from facemask.model import load
from facemask.params import load_section
from facemask.stage import require, run
from facemask.tracking import PIP_REQUIREMENTS, configure, run_tags

# Where each metric is in a candidate's numbers; reframed: the mean macro-F1 over re-framed photos.
METRICS = {"val_macro_f1": ("val", "macro_f1"), "val_accuracy": ("val", "accuracy"),
           "val_reframed_macro_f1": ("val", "reframed", "mean_macro_f1")}
BEST_DIR = Path("models/best")


def choose(candidates: dict[str, dict], metric: str) -> dict:
    """Return the winner by `metric` (ties on the value go to the first candidate) and who ties with it.

    Each candidate is {"val": {...}, "test": {...}} as written by train and evaluate.
    """
    if metric not in METRICS:
        raise UserError(f"select.metric={metric}: choose one of {', '.join(METRICS)}")
    score = {name: reduce(getitem, METRICS[metric], c) for name, c in candidates.items()}
    winner = max(candidates, key=lambda name: score[name])
    low, high = candidates[winner]["val"]["accuracy_ci95"]
    tied = [name for name, c in candidates.items()
            if name != winner and c["val"]["accuracy_ci95"][1] >= low and c["val"]["accuracy_ci95"][0] <= high]
    return {"winner": winner, "metric": metric, "value": score[winner], "tie_with": tied, "scores": score}


def summary(candidates: dict[str, dict], choice: dict) -> dict:
    """metrics/best.json: the winner, why, and every candidate's validation and test numbers."""
    tie = f"tie: its 95% val-accuracy CI overlaps {', '.join(choice['tie_with'])}" if choice["tie_with"] else "no tie"
    why = f"highest {choice['metric']} ({choice['value']:.4f}); {tie}"
    return {
        "winner": choice["winner"], "metric": choice["metric"], "value": choice["value"],
        "tie": bool(choice["tie_with"]), "why": why,
        "candidates": {
            name: {
                "weights": c.get("weights"), "image_size": c.get("image_size"),
                "val_accuracy": c["val"]["accuracy"], "val_macro_f1": c["val"]["macro_f1"],
                "val_accuracy_ci95": c["val"]["accuracy_ci95"],
                "val_reframed_macro_f1": c["val"].get("reframed", {}).get("mean_macro_f1"),
                "test_accuracy": c["test"]["accuracy"], "test_macro_f1": c["test"]["macro_f1"],
                "test_accuracy_ci95": c["test"]["accuracy_ci95"],
                "test_reframed_macro_f1": c["test"].get("reframed", {}).get("mean_macro_f1"),
                "test_recall": {k: v["recall"] for k, v in c["test"]["per_class"].items()},
            }
            for name, c in candidates.items()
        },
    }


def load_candidates(names: list[str], metrics_dir: Path = Path("metrics")) -> dict[str, dict]:
    candidates = {}
    for name in names:
        val_file, test_file = metrics_dir / f"{name}_val.json", metrics_dir / f"{name}.json"
        for path in (val_file, test_file):
            if not path.is_file():
                raise UserError(f"{path} is missing; run `dvc repro` so train and evaluate run for {name}")
        candidates[name] = {**read_json(val_file), "test": read_json(test_file)}
    return candidates


def register(winner: str, model_name: str) -> str:
    """Register the winner's logged model (logging it anew if its run is not in this store); alias champion."""
    configure()
    record = read_json(require(Path("models") / winner / "mlflow.json", f"train@{winner}"))
    try:
        mlflow.get_run(record["run_id"])
        model_uri = record["model_uri"]
    except mlflow.exceptions.MlflowException:
        with mlflow.start_run(run_name=f"select-{winner}", tags=run_tags(winner, "select")):
            model_uri = mlflow.keras.log_model(load(BEST_DIR / "model.keras"), name="model",
                                               pip_requirements=PIP_REQUIREMENTS).model_uri
    version = mlflow.register_model(model_uri, model_name).version
    MlflowClient().set_registered_model_alias(model_name, "champion", version)
    return str(version)


def main() -> None:
    params = load_section("select")
    names = sys.argv[1:]
    if not names:
        raise UserError("usage: python -m stages.select_best BACKBONE [BACKBONE ...]")
    candidates = load_candidates(names)
    choice = choose(candidates, params.get("metric", "val_macro_f1"))
    result = summary(candidates, choice)
    winner = choice["winner"]
    shutil.rmtree(BEST_DIR, ignore_errors=True)
    BEST_DIR.mkdir(parents=True)
    shutil.copyfile(Path("models") / winner / "model.keras", BEST_DIR / "model.keras")
    threshold = float(params.get("threshold", 0.0))
    if choice["value"] >= threshold:
        model_name = params.get("model_name", "facemask")
        result["registered"] = {"name": model_name, "version": register(winner, model_name), "alias": "champion"}
    else:
        result["registered"] = None
        result["why"] += f"; not registered: {choice['value']:.4f} < select.threshold={threshold}"
    write_json(BEST_DIR / "selection.json", result)
    write_json(Path("metrics") / "best.json", result)
    print(f"select: {winner} - {result['why']}")


if __name__ == "__main__":
    run(main, "select")
