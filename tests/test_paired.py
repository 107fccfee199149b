"""The paired comparison (facemask.pipeline.paired) on constructed predictions: a clear win and loss, noise
called noise, identical models, and photo sets that differ."""
import csv

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from facemask.core import CLASSES, UserError
from facemask.pipeline.paired import compare, read_predictions

pytestmark = pytest.mark.unit  # the fast layer: make test-fast

N = 207  # as many photos as the real validation split


def rows(correct: np.ndarray) -> list[dict]:
    """Predictions on N photos whose true labels cycle through the classes; wrong ones predict the next class."""
    actual = [CLASSES[i % len(CLASSES)] for i in range(len(correct))]
    predicted = [a if ok else CLASSES[(CLASSES.index(a) + 1) % len(CLASSES)] for a, ok in zip(actual, correct, strict=True)]
    pairs = enumerate(zip(actual, predicted, strict=True))
    return [{"file": f"images/{i}.png", "actual": a, "predicted": p} for i, (a, p) in pairs]


def right(wrong: list[int]) -> np.ndarray:
    correct = np.ones(N, bool)
    correct[wrong] = False
    return correct


BASE = right(list(range(0, 60, 3)))  # 20 photos wrong


def test_a_clear_win_is_better_and_a_clear_loss_worse():
    better = right([0, 3])  # fixes 18 of the base's 20 mistakes, breaks none
    verdict = compare(rows(BASE), rows(better))
    assert (verdict.verdict, verdict.wins, verdict.losses, verdict.n) == ("better", 18, 0, N)
    assert verdict.p_value < 0.001 and 0 < verdict.ci_low < verdict.delta < verdict.ci_high
    assert verdict.delta == pytest.approx(verdict.new - verdict.base)
    worse = compare(rows(better), rows(BASE))
    assert (worse.verdict, worse.wins, worse.losses) == ("worse", 0, 18)
    assert worse.ci_low < worse.delta < worse.ci_high < 0
    assert "0 wins, 18 losses" in worse.reason


def test_three_wins_against_five_losses_is_within_noise():
    new = BASE.copy()
    new[[0, 3, 6]] = True  # 3 of the base's mistakes fixed
    new[[100, 101, 102, 103, 104]] = False  # 5 new ones
    verdict = compare(rows(BASE), rows(new))
    assert (verdict.verdict, verdict.wins, verdict.losses) == ("within noise", 3, 5)
    assert verdict.p_value == pytest.approx(0.7265625)  # exact two-sided binomial: 2 * P(X <= 3 | 8, 1/2)
    assert verdict.ci_low < 0 < verdict.ci_high and verdict.delta < 0
    assert "p = 0.73" in verdict.reason


def test_identical_models_are_within_noise_with_a_zero_change():
    verdict = compare(rows(BASE), rows(BASE))
    assert (verdict.verdict, verdict.wins, verdict.losses, verdict.p_value) == ("within noise", 0, 0, 1.0)
    assert verdict.delta == verdict.ci_low == verdict.ci_high == 0


def test_the_metric_agrees_with_scikit_learn_and_rows_may_come_in_any_order_or_as_a_data_frame():
    new = right([1, 2, 50, 51, 52])
    base_rows, new_rows = rows(BASE), rows(new)
    verdict = compare(pd.DataFrame(base_rows), list(reversed(new_rows)))
    labels = [r["actual"] for r in new_rows]
    assert verdict.new == pytest.approx(f1_score(labels, [r["predicted"] for r in new_rows], average="macro"))
    assert verdict.base == pytest.approx(f1_score(labels, [r["predicted"] for r in base_rows], average="macro"))
    accuracy = compare(base_rows, new_rows, metric="accuracy")
    assert accuracy.delta == pytest.approx((N - 5) / N - (N - 20) / N)
    assert compare(base_rows, new_rows, seed=1).ci_low != verdict.ci_low  # the seed drives the resampling


def test_different_photo_sets_are_not_comparable_and_say_how_they_differ():
    base_rows, new_rows = rows(BASE), rows(BASE)
    new_rows[0] = {**new_rows[0], "file": "images/new.png"}
    verdict = compare(base_rows, new_rows[:-1])
    assert verdict.verdict == "not comparable" and np.isnan(verdict.p_value) and np.isnan(verdict.delta)
    assert verdict.reason.startswith("different photos: 2 only in the base's predictions, 1 only in the new model's")
    relabelled = rows(BASE)
    relabelled[5] = {**relabelled[5], "actual": CLASSES[0]}
    assert "1 relabelled" in compare(base_rows, relabelled).reason


def test_bad_input_is_named(tmp_path):
    with pytest.raises(UserError, match="twice"):
        compare(rows(BASE) + rows(BASE)[:1], rows(BASE))
    with pytest.raises(UserError, match="metric 'auc'"):
        compare(rows(BASE), rows(BASE), metric="auc")
    with pytest.raises(UserError, match="missing.csv: not found"):
        read_predictions(tmp_path / "missing.csv")
    path = tmp_path / "predictions.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["file", "actual", "predicted", "p_with_mask_young"])
        writer.writeheader()
        writer.writerows({**r, "p_with_mask_young": 0.5} for r in rows(BASE))
    assert compare(read_predictions(path), rows(BASE)).verdict == "within noise"
    path.write_text("file,label\na.png,with_mask_young\n")
    with pytest.raises(UserError, match="no column actual, predicted"):
        read_predictions(path)
