"""Stage select: pick the champion among the candidates by a validation metric, register it in MLflow.

The test split only reports; it never chooses. When the winner's 95% validation-accuracy CI overlaps
another candidate's, the result says "tie" (the data cannot really separate them). The winner is
copied to models/best/ (model.keras and champion.json, which names it: they change only when the
champion does, so export and explain re-run only then); metrics/best.json records the winner, why,
every candidate's numbers and the registered model version.
The model is registered (alias `champion`) only when its metric reaches `select.threshold`.
(Named select_best.py: a module named select.py would shadow Python's own `select`.)
"""
import contextlib
import shutil
from functools import reduce
from operator import getitem
from pathlib import Path

import mlflow
from mlflow import MlflowClient

from facemask import UserError
from facemask.files import read_json, write_json
from facemask.outputs import BEST_DIR, CANDIDATE_METRICS, model_dir, test_metrics, val_metrics
from facemask.params import load_params
from facemask.registry import CHAMPION
from facemask.stage import require, run
from facemask.tracking import configure, log_model, run_tags

# Where each metric is in a candidate's numbers; reframed: the mean macro-F1 over re-framed photos.
METRICS = {"val_macro_f1": ("val", "macro_f1"), "val_accuracy": ("val", "accuracy"),
           "val_reframed_macro_f1": ("val", "reframed", "mean_macro_f1")}


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


def load_candidates(names: list[str], metrics_dir: Path = CANDIDATE_METRICS) -> dict[str, dict]:
    """Each candidate's validation and test numbers, as train and evaluate wrote them."""
    candidates = {}
    for name in names:
        val_file, test_file = val_metrics(name, metrics_dir), test_metrics(name, metrics_dir)
        for path in (val_file, test_file):
            if not path.is_file():
                raise UserError(f"{path} is missing; run `dvc repro` so train and evaluate run for {name}")
        candidates[name] = {**read_json(val_file), "test": read_json(test_file)}
    return candidates


def register(winner: str, model_name: str) -> str:
    """Register the winner's logged model (logging it anew if its run is not in this store); alias champion.
    A version whose alias cannot be set is deleted again: the registry never holds a half-registered winner."""
    configure()
    record = read_json(require(model_dir(winner) / "mlflow.json", f"train@{winner}"))
    try:
        mlflow.get_run(record["run_id"])
        model_uri = record["model_uri"]
    except mlflow.exceptions.MlflowException:
        with mlflow.start_run(run_name=f"select-{winner}", tags=run_tags(winner, "select")):
            model_uri = log_model(BEST_DIR / "model.keras")
    version = mlflow.register_model(model_uri, model_name).version
    client = MlflowClient()
    try:
        client.set_registered_model_alias(model_name, CHAMPION, version)
    except mlflow.exceptions.MlflowException:
        with contextlib.suppress(mlflow.exceptions.MlflowException):  # no version left behind that is not champion
            client.delete_model_version(model_name, version)
        raise
    return str(version)


def main() -> None:
    all_params = load_params()
    params = all_params.select
    candidates = load_candidates(list(all_params.candidates))
    choice = choose(candidates, params.metric)
    result = summary(candidates, choice)
    winner = choice["winner"]
    shutil.rmtree(BEST_DIR, ignore_errors=True)
    BEST_DIR.mkdir(parents=True)
    shutil.copyfile(model_dir(winner) / "model.keras", BEST_DIR / "model.keras")
    record = read_json(model_dir(winner) / "mlflow.json")
    result["run_id"] = record["run_id"]
    write_json(BEST_DIR / "champion.json", {"candidate": winner, **record})
    if choice["value"] >= params.threshold:
        version = register(winner, params.model_name)
        result["registered"] = {"name": params.model_name, "version": version, "alias": CHAMPION}
    else:
        result["registered"] = None
        result["why"] += f"; not registered: {choice['value']:.4f} < select.threshold={params.threshold}"
    write_json(Path("metrics") / "best.json", result)
    print(f"select: {winner} - {result['why']}")


if __name__ == "__main__":
    run(main, "select")
