"""Stage select: picks by the named validation metric, says tie when CIs overlap, never uses test."""
import pytest

from facemask.core import UserError
from facemask.pipeline.selection import choose, summary

pytestmark = pytest.mark.unit  # the fast layer: make test-fast


def _candidate(val_f1, val_acc, ci, test_acc):
    return {"val": {"macro_f1": val_f1, "accuracy": val_acc, "accuracy_ci95": ci},
            "test": {"accuracy": test_acc, "macro_f1": test_acc, "accuracy_ci95": [0, 1], "per_class": {}}}


CANDIDATES = {
    "A": _candidate(0.80, 0.90, [0.86, 0.93], test_acc=0.99),   # best on test, must not matter
    "B": _candidate(0.90, 0.85, [0.80, 0.89], test_acc=0.50),
    "C": _candidate(0.70, 0.60, [0.50, 0.70], test_acc=0.70),
}


def test_picks_the_highest_validation_metric_not_test():
    assert choose(CANDIDATES, "val_macro_f1")["winner"] == "B"
    assert choose(CANDIDATES, "val_accuracy")["winner"] == "A"


def test_tie_when_confidence_intervals_overlap():
    choice = choose(CANDIDATES, "val_macro_f1")
    assert choice["tie_with"] == ["A"]  # B's CI [0.80, 0.89] overlaps A's, not C's
    result = summary(CANDIDATES, choice)
    assert result["tie"] and "tie" in result["why"] and set(result["candidates"]) == {"A", "B", "C"}


def test_reframed_metric_prefers_the_model_that_keeps_its_scores_when_photos_are_framed_differently():
    robust = {"A": {**CANDIDATES["A"], "val": {**CANDIDATES["A"]["val"], "reframed": {"mean_macro_f1": 0.6}}},
              "B": {**CANDIDATES["B"], "val": {**CANDIDATES["B"]["val"], "reframed": {"mean_macro_f1": 0.7}}}}
    robust["A"]["val"]["macro_f1"] = 0.95  # A is better on photos as they are ...
    assert choose(robust, "val_macro_f1")["winner"] == "A"
    choice = choose(robust, "val_reframed_macro_f1")  # ... B when they are re-framed
    assert choice["winner"] == "B" and choice["value"] == 0.7
    assert summary(robust, choice)["candidates"]["B"]["val_reframed_macro_f1"] == 0.7


def test_no_tie_when_intervals_are_apart():
    choice = choose({"A": CANDIDATES["A"], "C": CANDIDATES["C"]}, "val_accuracy")
    assert choice["winner"] == "A" and choice["tie_with"] == []


def test_unknown_metric_lists_the_choices():
    with pytest.raises(UserError, match="val_macro_f1"):
        choose(CANDIDATES, "test_accuracy")
