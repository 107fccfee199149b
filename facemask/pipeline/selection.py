"""Stage select: pick the champion among the candidates by a validation metric, register it in MLflow.

The test split only reports; it never chooses. When the winner's 95% validation-accuracy CI overlaps
another candidate's, the result says "tie" (the data cannot really separate them). The winner is
copied to models/best/ (model.keras and champion.json, which names it: they change only when the
champion does, so export and explain re-run only then); metrics/best.json records the winner, why,
every candidate's numbers and the registered model version.
The model is registered (alias `champion`) only when its metric reaches `select.threshold`.
(Named select_best.py: a module named select.py would shadow Python's own `select`.)
"""
from functools import reduce
from operator import getitem
from pathlib import Path

from facemask.core import UserError
from facemask.core.files import read_json
from facemask.core.outputs import CANDIDATE_REPORTS, split_report

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
    """reports/select.json: the winner, why, and every candidate's validation and test numbers."""
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


def load_candidates(names: list[str], reports_dir: Path = CANDIDATE_REPORTS) -> dict[str, dict]:
    """Each candidate's validation and test numbers, as train and evaluate wrote them."""
    candidates = {}
    for name in names:
        val_file, test_file = split_report(name, "validation", reports_dir), split_report(name, "test", reports_dir)
        for path in (val_file, test_file):
            if not path.is_file():
                raise UserError(f"{path} is missing; run `dvc repro` so train and evaluate run for {name}")
        candidates[name] = {**read_json(val_file), "test": read_json(test_file)}
    return candidates
