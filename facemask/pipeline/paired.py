"""Two models compared on the same photos: does the change hold, or is it noise?

Rows are per-photo predictions ("file", "actual", "predicted", as in a candidate's predictions.csv), matched by
"file". The verdict needs two things to agree: the exact McNemar test on the photos only one model gets right
(wins, losses; `evaluation.mcnemar`) and a paired bootstrap 95% CI of the change in the metric
(`scipy.stats.bootstrap(paired=True)`, percentile). "better"/"worse" only when p < alpha and the CI excludes 0
on that side; otherwise "within noise". Photos that differ between the two sets make them "not comparable".
"""
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import bootstrap

from facemask.core import CLASSES, UserError
from facemask.core.files import read_csv
from facemask.pipeline.evaluation import mcnemar

COLUMNS = ("file", "actual", "predicted")
METRICS = ("macro_f1", "accuracy")
BETTER, WITHIN_NOISE, WORSE, NOT_COMPARABLE = "better", "within noise", "worse", "not comparable"


@dataclass(frozen=True)
class PairedVerdict:
    metric: str  # e.g. "macro_f1"
    n: int  # photos compared (same files in both)
    base: float  # metric of the base model on those photos
    new: float
    delta: float  # new - base
    ci_low: float  # paired bootstrap 95% CI of delta
    ci_high: float
    wins: int  # photos the new model gets right and the base wrong
    losses: int  # the reverse
    p_value: float  # exact McNemar (two-sided) on wins/losses
    verdict: str  # "better" | "within noise" | "worse" | "not comparable"
    reason: str  # one sentence, e.g. "3 wins, 5 losses, p = 0.73; CI of the change [-0.03, +0.02]"


def read_predictions(path) -> list[dict]:
    """The rows of a predictions CSV (evaluate's test or train's validation predictions.csv)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: not found; run `dvc repro` (train and evaluate write each candidate's predictions)")
    rows = read_csv(path)
    missing = [c for c in COLUMNS if rows and c not in rows[0]]
    if missing:
        raise UserError(f"{path}: has no column {', '.join(missing)}; a predictions CSV needs {', '.join(COLUMNS)}")
    return rows


def compare(base_rows, new_rows, *, metric: str = "macro_f1", alpha: float = 0.05, resamples: int = 2000,
            seed: int = 0) -> PairedVerdict:
    """The new model against the base on the photos both were scored on (see the module's docstring)."""
    if metric not in METRICS:
        raise UserError(f"metric {metric!r}: the paired comparison knows {', '.join(METRICS)}")
    base, new = _by_file(base_rows, "base"), _by_file(new_rows, "new")
    labels = _labels(base, new)
    if reason := _mismatch(base, new):
        return PairedVerdict(metric, len(base.keys() & new.keys()), _score(metric, base, labels), _score(metric, new, labels),
                             math.nan, math.nan, math.nan, 0, 0, math.nan, NOT_COMPARABLE, reason)
    files = sorted(base)
    actual = np.array([labels.index(base[f]["actual"]) for f in files])
    old_pred = np.array([labels.index(base[f]["predicted"]) for f in files])
    new_pred = np.array([labels.index(new[f]["predicted"]) for f in files])
    wins, losses, p_value = mcnemar(old_pred == actual, new_pred == actual)
    score = _macro_f1 if metric == "macro_f1" else _accuracy
    before, after = float(score(actual, old_pred, len(labels))), float(score(actual, new_pred, len(labels)))
    ci_low, ci_high = _delta_ci(score, actual, old_pred, new_pred, len(labels), resamples, seed)
    if p_value < alpha and ci_low > 0:
        verdict = BETTER
    elif p_value < alpha and ci_high < 0:
        verdict = WORSE
    else:
        verdict = WITHIN_NOISE
    reason = (f"{wins} wins, {losses} losses, p = {p_value:.2g}; CI of the change [{ci_low:+.3f}, {ci_high:+.3f}] "
              f"on {len(files)} photos")
    return PairedVerdict(metric, len(files), before, after, after - before, ci_low, ci_high, wins, losses,
                         float(p_value), verdict, reason)


def metric_interval(actual: list[str], predicted: list[str], metric: str, resamples: int = 2000,
                    seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of `metric` of one model's predictions over its photos (macro-F1 over the
    labels that occur, as scikit-learn's f1_score(average="macro") computes it)."""
    labels = sorted(set(actual) | set(predicted))
    y_true, y_pred = (np.array([labels.index(label) for label in values]) for values in (actual, predicted))
    score = _macro_f1 if metric == "macro_f1" else _accuracy
    return _percentile_ci((y_true, y_pred), lambda y, p, axis=-1: score(y, p, len(labels)), resamples, seed)


def _by_file(rows, side: str) -> dict[str, dict]:
    """{file: row}; a DataFrame is taken as its records. Duplicate files are refused (they cannot be paired)."""
    if hasattr(rows, "to_dict"):
        rows = rows.to_dict("records")
    by_file: dict[str, dict] = {}
    for row in rows:
        if row["file"] in by_file:
            raise UserError(f"the {side} predictions list {row['file']} twice; each photo must appear once")
        by_file[row["file"]] = row
    return by_file


def _labels(*tables: dict[str, dict]) -> list[str]:
    """The project's classes, then any other label the rows use (constructed data may use its own)."""
    seen = {str(row[key]) for table in tables for row in table.values() for key in ("actual", "predicted")}
    return list(CLASSES) + sorted(seen - set(CLASSES))


def _mismatch(base: dict[str, dict], new: dict[str, dict]) -> str:
    """Why the two sets cannot be paired ("" when they can): files only in one, or the same file labelled differently."""
    only_base, only_new = len(base.keys() - new.keys()), len(new.keys() - base.keys())
    if only_base or only_new:
        return (f"different photos: {only_base} only in the base's predictions, {only_new} only in the new "
                f"model's, {len(base.keys() & new.keys())} in both (the split or the data changed)")
    relabelled = sum(base[f]["actual"] != new[f]["actual"] for f in base)
    if relabelled:
        return f"the same photos with different true labels: {relabelled} relabelled (the data changed)"
    return "" if base else "no photos to compare"


def _score(metric: str, table: dict[str, dict], labels: list[str]) -> float:
    """The metric of one set of rows on its own photos (what a not-comparable verdict can still show)."""
    if not table:
        return math.nan
    actual = np.array([labels.index(r["actual"]) for r in table.values()])
    predicted = np.array([labels.index(r["predicted"]) for r in table.values()])
    return float((_macro_f1 if metric == "macro_f1" else _accuracy)(actual, predicted, len(labels)))


def _accuracy(actual: np.ndarray, predicted: np.ndarray, _classes: int) -> np.ndarray:
    return np.mean(actual == predicted, axis=-1)


def _macro_f1(actual: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """Macro-F1 over every class along the last axis (vectorised over resamples); a class with no true and no
    predicted photo counts 0, as scikit-learn's f1_score(labels=..., zero_division=0) does."""
    f1 = []
    for c in range(classes):
        is_true, is_pred = actual == c, predicted == c
        true_pos = np.sum(is_true & is_pred, axis=-1)
        denominator = np.sum(is_true, axis=-1) + np.sum(is_pred, axis=-1)
        f1.append(np.divide(2 * true_pos, denominator, out=np.zeros(np.shape(denominator)), where=denominator > 0))
    return np.mean(f1, axis=0)


def _delta_ci(score, actual, old_pred, new_pred, classes: int, resamples: int, seed: int) -> tuple[float, float]:
    """Paired bootstrap 95% CI (percentile) of score(new) - score(base): photos resampled together."""
    def delta(y, old, new, axis=-1):
        return score(y, new, classes) - score(y, old, classes)

    return _percentile_ci((actual, old_pred, new_pred), delta, resamples, seed)


def _percentile_ci(columns: tuple, statistic, resamples: int, seed: int) -> tuple[float, float]:
    """95% percentile-bootstrap interval of a vectorised `statistic` of per-photo columns resampled together."""
    result = bootstrap(columns, statistic, paired=True, vectorized=True, n_resamples=resamples, confidence_level=0.95,
                       method="percentile", random_state=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)
