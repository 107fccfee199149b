"""crossval's report: seed members beside their average, degraded views' drops, and pairing with a run on
other data."""
import json

import numpy as np
import pytest

from benchmarks.crossval import paired_with, report, table

pytestmark = pytest.mark.unit  # the fast layer: make test-fast

LABELS = np.array([0, 1, 2, 3, 0, 1, 2, 3])
ROWS = [{"source": "a" if i % 2 else "b"} for i in range(len(LABELS))]


def _probabilities(predicted: list[int], confidence: float = 0.925) -> np.ndarray:
    return np.eye(4)[predicted] * (confidence - (1 - confidence) / 3) + (1 - confidence) / 3


def test_several_seeds_are_scored_averaged_and_each_on_its_own():
    right, two_wrong = _probabilities(list(LABELS)), _probabilities([1, 1, 2, 3, 1, 1, 2, 3])
    results = {("pipeline", 1): {"plain": right, "flip": right}, ("pipeline", 2): {"plain": two_wrong, "flip": right}}
    summary = report(LABELS, ROWS, results, [1, 2])
    assert set(summary) == {"pipeline/plain", "pipeline/flip", "pipeline/plain seed 1", "pipeline/plain seed 2"}
    assert summary["pipeline/plain seed 1"]["accuracy"] == 1.0
    assert summary["pipeline/plain seed 2"]["accuracy"] == 0.75
    assert summary["pipeline/plain seed 2"]["only_pipeline_right"] == 2  # paired with the average
    assert summary["pipeline/plain"]["predicted"] == LABELS.tolist()  # the surer member outvotes
    assert "| pipeline/plain seed 2 | 0.750 |" in table(summary, None)


def test_rows_are_paired_with_an_earlier_run_on_the_same_photos(tmp_path):
    earlier = tmp_path / "before.json"
    before = report(LABELS, ROWS, {("pipeline", 1): {"plain": _probabilities([1, 1, 2, 3, 1, 1, 2, 3])} | {
        "flip": _probabilities(list(LABELS))}}, [1])
    earlier.write_text(json.dumps({"labels": LABELS.tolist(), "folds": 5, "seeds": [1], "scores": before}))
    now = report(LABELS, ROWS, {("pipeline", 1): {"plain": _probabilities(list(LABELS)),
                                                  "flip": _probabilities(list(LABELS))}}, [1])
    paired_with(LABELS, now, earlier, folds=5, fold_seed=1)
    assert now["pipeline/plain"]["against"] == {"only_this_right": 2, "only_pipeline_right": 0, "p_value": 0.5}
    assert "| 0 / 0 (1.0) | 2 / 0 (0.5) |" in table(now, earlier)
    with pytest.raises(SystemExit, match="before.json: other photos or folds"):
        paired_with(LABELS, now, earlier, folds=3, fold_seed=1)
    with pytest.raises(SystemExit, match="before.json has no row 'pipeline/plain seed 7'"):
        paired_with(LABELS, now, earlier, folds=5, fold_seed=1, row="pipeline/plain seed 7")


def test_each_degraded_view_reports_its_drop_from_plain():
    right, three_wrong = _probabilities(list(LABELS)), _probabilities([1, 1, 2, 3, 1, 1, 2, 0])
    summary = report(LABELS, ROWS, {("pipeline", 1): {"plain": right, "flip": right, "noise": three_wrong}}, [1])
    assert summary["pipeline/noise"]["accuracy"] == 0.625
    assert summary["pipeline/noise"]["drop"] == 0.375
    assert summary["pipeline/noise"]["only_pipeline_right"] == 3
    assert "drop" not in summary["pipeline/flip"]
    assert "| pipeline/noise | 0.625 (+0.375) |" in table(summary, None)
