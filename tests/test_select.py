"""Stage select: leads by the named validation metric, never uses test, and lets the paired test on the same
validation photos say whether the leader wins or is within noise (then the stated rule chooses)."""
import pytest

from facemask.core import CLASSES, UserError
from facemask.pipeline.selection import best_metrics, choose, summary

pytestmark = pytest.mark.unit  # the fast layer: make test-fast

N = 100  # validation photos


def _predictions(wrong: range) -> list[dict]:
    """Rows of N photos, wrong on the photo numbers in `wrong` (called the next class)."""
    actual = [CLASSES[i % 4] for i in range(N)]
    return [{"file": f"{i}.png", "actual": a, "predicted": CLASSES[(CLASSES.index(a) + (i in wrong)) % 4]}
            for i, a in enumerate(actual)]


def _candidate(val_f1, val_acc, test_acc, wrong=range(0), megabytes=10.0):
    return {"val": {"macro_f1": val_f1, "accuracy": val_acc, "accuracy_ci95": [0, 1]},
            "test": {"accuracy": test_acc, "macro_f1": test_acc, "accuracy_ci95": [0, 1], "per_class": {}},
            "predictions": _predictions(wrong), "model_bytes": int(megabytes * 1e6)}


CANDIDATES = {
    "A": _candidate(0.80, 0.90, test_acc=0.99, wrong=range(0, 30)),  # best on test, must not matter
    "B": _candidate(0.90, 0.85, test_acc=0.50, wrong=range(0, 2)),
    "C": _candidate(0.70, 0.60, test_acc=0.70, wrong=range(0, 40)),
}


def test_picks_the_highest_validation_metric_not_test_and_says_it_wins_when_the_paired_test_agrees():
    choice = choose(CANDIDATES, "val_macro_f1")
    assert (choice["winner"], choice["verdict"], choice["against"]) == ("B", "wins", "A")
    assert choice["why"].startswith("B wins against A: 28 wins, 0 losses, p = ")
    assert choose(CANDIDATES, "val_accuracy")["winner"] == "A"


def test_within_noise_the_smaller_model_is_chosen_and_the_rule_is_stated():
    close = {"big": _candidate(0.91, 0.91, 0.9, wrong=range(0, 5), megabytes=80),
             "small": _candidate(0.90, 0.90, 0.9, wrong=range(2, 9), megabytes=9)}
    choice = choose(close, "val_macro_f1")
    assert (choice["leader"], choice["winner"], choice["verdict"], choice["against"]) == ("big", "small", "within noise", "big")
    assert "small and big within noise (2 wins, 4 losses" in choice["why"]
    assert choice["why"].endswith("chose small by the smaller model (9.0 MB against 80.0 MB)")
    same_size = {name: {**c, "model_bytes": 9_000_000} for name, c in close.items()}
    assert choose(same_size, "val_macro_f1")["why"].endswith("chose big by the higher val_macro_f1 (0.9100 against 0.9000; "
                                                            "models of equal size)")


def test_the_summary_and_best_metrics_carry_the_verdict():
    choice = choose(CANDIDATES, "val_macro_f1")
    result = {**summary(CANDIDATES, choice), "registered": None}
    assert set(result["candidates"]) == {"A", "B", "C"} and result["paired"]["wins"] == 28
    best = best_metrics(result)
    assert (best["winner"], best["verdict"], best["against"], best["wins"], best["losses"]) == ("B", "wins", "A", 28, 0)
    assert best["p_value"] < 0.001 and 0 < best["delta_ci95"][0] < best["delta"] < best["delta_ci95"][1]
    alone = choose({"B": CANDIDATES["B"]}, "val_macro_f1")
    assert alone["verdict"] == "only candidate" and "wins" not in best_metrics({**summary({"B": CANDIDATES["B"]}, alone),
                                                                              "registered": None})


def test_reframed_metric_prefers_the_model_that_keeps_its_scores_when_photos_are_framed_differently():
    robust = {"A": {**CANDIDATES["A"], "val": {**CANDIDATES["A"]["val"], "reframed": {"mean_macro_f1": 0.6}}},
              "B": {**CANDIDATES["B"], "val": {**CANDIDATES["B"]["val"], "reframed": {"mean_macro_f1": 0.7}}}}
    robust["A"]["val"]["macro_f1"] = 0.95  # A is better on photos as they are ...
    assert choose(robust, "val_macro_f1")["leader"] == "A"
    choice = choose(robust, "val_reframed_macro_f1")  # ... B when they are re-framed
    assert choice["winner"] == "B" and choice["value"] == 0.7
    assert summary(robust, choice)["candidates"]["B"]["val_reframed_macro_f1"] == 0.7


def test_unknown_metric_lists_the_choices():
    with pytest.raises(UserError, match="val_macro_f1"):
        choose(CANDIDATES, "test_accuracy")
