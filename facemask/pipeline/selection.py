"""Stage select: pick the champion among the candidates by a validation metric, register it in MLflow.

The test split only reports; it never chooses. The candidate with the highest metric leads; the paired test
(facemask.pipeline.paired: the same validation photos, exact McNemar and a bootstrap CI of the change) says
whether it beats each other candidate or is within noise of it. Among the leader and those within noise of it,
the smallest model wins (fewest bytes to load and run; equal sizes: the higher metric), and the result says
so: "X wins" or "X and Y within noise; chose X by ...". The winner is copied to models/best/ (model.keras and
champion.json, which names it: they change only when the champion does, so export and explain re-run only
then); metrics/best.json records the winner, the verdict against its closest rival and the registered version.
The model is registered (alias `champion`) only when its metric reaches `select.threshold`.
(Named select_best.py: a module named select.py would shadow Python's own `select`.)
"""
from dataclasses import asdict
from functools import reduce
from operator import getitem
from pathlib import Path

from facemask.core import UserError
from facemask.core.files import read_json
from facemask.core.outputs import CANDIDATE_MODELS, CANDIDATE_REPORTS, model_dir, split_report, val_predictions
from facemask.pipeline.paired import BETTER, PairedVerdict, compare, read_predictions

# Where each metric is in a candidate's numbers; reframed: the mean macro-F1 over re-framed photos.
METRICS = {"val_macro_f1": ("val", "macro_f1"), "val_accuracy": ("val", "accuracy"),
           "val_reframed_macro_f1": ("val", "reframed", "mean_macro_f1")}
# What the paired test compares per photo (re-framed predictions are not kept per photo: their macro-F1 stands in).
PAIRED_METRIC = {"val_macro_f1": "macro_f1", "val_accuracy": "accuracy", "val_reframed_macro_f1": "macro_f1"}


def choose(candidates: dict[str, dict], metric: str, alpha: float = 0.05) -> dict:
    """The winner, why, and the paired verdicts (see the module's docstring).

    Each candidate is {"val": {...}, "test": {...}, "predictions": [per-photo validation rows], "model_bytes": int}
    as train and evaluate wrote them (load_candidates).
    """
    if metric not in METRICS:
        raise UserError(f"select.metric={metric}: choose one of {', '.join(METRICS)}")
    score = {name: reduce(getitem, METRICS[metric], c) for name, c in candidates.items()}
    leader = max(candidates, key=lambda name: score[name])  # equal values: the first candidate

    def paired(base: str, new: str) -> PairedVerdict:
        return compare(candidates[base]["predictions"], candidates[new]["predictions"], metric=PAIRED_METRIC[metric],
                       alpha=alpha)

    against_leader = {name: paired(name, leader) for name in candidates if name != leader}
    close = [name for name, verdict in against_leader.items() if verdict.verdict != BETTER]
    winner = min([leader, *close], key=lambda name: (_megabytes(candidates[name]), -score[name]))
    choice = {"winner": winner, "metric": metric, "value": score[winner], "scores": score, "leader": leader,
              "within_noise_of_leader": close}
    rivals = sorted((name for name in candidates if name != winner), key=lambda name: -score[name])
    if not rivals:
        return {**choice, "verdict": "only candidate", "against": None, "paired": None,
                "why": f"the only candidate ({metric} {score[winner]:.4f})"}
    rival = rivals[0]
    verdict = paired(rival, winner)
    if verdict.verdict == BETTER:
        why = f"{winner} wins against {rival}: {verdict.reason}"
    else:
        rule = _rule(candidates, winner, rival, score, metric)
        why = f"{winner} and {rival} within noise ({verdict.reason}); chose {winner} by {rule}"
    return {**choice, "verdict": "wins" if verdict.verdict == BETTER else verdict.verdict, "against": rival,
            "paired": verdict, "why": why}


def _rule(candidates: dict[str, dict], winner: str, rival: str, score: dict, metric: str) -> str:
    """The stated rule that picked `winner` over `rival`, which the data cannot separate from it."""
    mine, theirs = _megabytes(candidates[winner]), _megabytes(candidates[rival])
    if mine < theirs:
        return f"the smaller model ({mine} MB against {theirs} MB)"
    return f"the higher {metric} ({score[winner]:.4f} against {score[rival]:.4f}; models of equal size)"


def _megabytes(candidate: dict) -> float:
    """The model's size to 0.1 MB: what counts as smaller (a few bytes of metadata do not)."""
    return round(candidate["model_bytes"] / 1e6, 1)


def summary(candidates: dict[str, dict], choice: dict) -> dict:
    """reports/select.json: the winner, why, the paired verdicts, and every candidate's validation and test numbers."""
    paired = choice["paired"]
    return {
        "winner": choice["winner"], "metric": choice["metric"], "value": choice["value"], "why": choice["why"],
        "verdict": choice["verdict"], "against": choice["against"], "paired": asdict(paired) if paired else None,
        "leader": choice["leader"], "within_noise_of_leader": choice["within_noise_of_leader"],
        "candidates": {
            name: {
                "weights": c.get("weights"), "image_size": c.get("image_size"), "model_bytes": c["model_bytes"],
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


def best_metrics(result: dict) -> dict:
    """metrics/best.json: the winner, its metric and registration, and the paired verdict against its closest rival."""
    paired = result["paired"] or {}
    return {key: result[key] for key in ("winner", "metric", "value", "registered", "verdict", "against")} | (
        {"wins": paired["wins"], "losses": paired["losses"], "p_value": paired["p_value"], "delta": paired["delta"],
         "delta_ci95": [paired["ci_low"], paired["ci_high"]]} if paired else {})


def load_candidates(names: list[str], reports_dir: Path = CANDIDATE_REPORTS, models_dir: Path = CANDIDATE_MODELS) \
        -> dict[str, dict]:
    """Each candidate's validation and test numbers, validation predictions and model size, as train and evaluate
    wrote them."""
    candidates = {}
    for name in names:
        val_file, test_file = split_report(name, "validation", reports_dir), split_report(name, "test", reports_dir)
        rows, model = val_predictions(name, reports_dir), model_dir(name, models_dir) / "model.keras"
        for path in (val_file, test_file, rows, model):
            if not path.is_file():
                raise UserError(f"{path} is missing; run `dvc repro` so train and evaluate run for {name}")
        candidates[name] = {**read_json(val_file), "test": read_json(test_file), "predictions": read_predictions(rows),
                            "model_bytes": model.stat().st_size}
    return candidates
