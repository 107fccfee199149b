"""Metrics agree with scikit-learn on a known confusion, and the CI brackets the accuracy."""
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, recall_score

from facemask.core.images import REFRAMINGS
from facemask.pipeline.evaluation import accuracy_by, classification_metrics, reframed_scores, report_text

pytestmark = pytest.mark.unit  # the fast layer: make test-fast

# A known confusion: rows are true classes 0..3, columns predictions.
CONFUSION = np.array([[8, 2, 0, 0], [1, 9, 0, 0], [0, 0, 7, 3], [0, 1, 0, 9]])
Y_TRUE = np.concatenate([[t] * n for t, row in enumerate(CONFUSION) for p, n in enumerate(row)])
Y_PRED = np.concatenate([[p] * n for t, row in enumerate(CONFUSION) for p, n in enumerate(row)])


def test_metrics_match_scikit_learn_and_the_confusion():
    metrics = classification_metrics(Y_TRUE, Y_PRED)
    assert metrics["accuracy"] == pytest.approx(33 / 40) == pytest.approx(accuracy_score(Y_TRUE, Y_PRED))
    assert metrics["macro_f1"] == pytest.approx(f1_score(Y_TRUE, Y_PRED, average="macro"))
    recalls = [metrics["per_class"][c]["recall"] for c in metrics["per_class"]]
    assert recalls == pytest.approx(recall_score(Y_TRUE, Y_PRED, average=None))
    assert recalls == pytest.approx([0.8, 0.9, 0.7, 0.9])
    low, high = metrics["accuracy_ci95"]
    assert low < 33 / 40 < high and low > 0.6 and high < 0.95


def test_report_text_has_the_seed_report_and_the_matrix():
    text = report_text(Y_TRUE, Y_PRED)
    assert "macro avg" in text and "without_mask_young" in text
    assert "    7     3" in text  # the without_mask_old row of the confusion matrix


def test_accuracy_by_source():
    result = accuracy_by(["a", "a", "b", "b"], [0, 1, 2, 3], [0, 0, 2, 3])
    assert result == {"a": {"accuracy": 0.5, "n": 2}, "b": {"accuracy": 1.0, "n": 2}}


def test_reframed_scores_score_each_view_and_average_macro_f1():
    y_true = np.array([0, 1, 2, 3] * 5)
    wrong_age = np.array([1, 0, 3, 2] * 5)
    scores = reframed_scores(y_true, lambda view: y_true if view == "tighter" else wrong_age)
    assert scores["tighter"] == {"accuracy": 1.0, "macro_f1": 1.0}
    assert scores["wider_edge"]["accuracy"] == scores["wider_black"]["accuracy"] == 0.0
    assert set(scores) == {*REFRAMINGS, "mean_macro_f1"} and scores["mean_macro_f1"] == pytest.approx(1 / 3)


def test_mcnemar_counts_the_items_only_one_model_gets_right_with_an_exact_p_value():
    from facemask.pipeline.evaluation import mcnemar

    base = [True, True, False, False, True, False]
    other = [True, False, True, True, True, True]
    wins, losses, p = mcnemar(base, other)
    assert (wins, losses) == (3, 1) and p == pytest.approx(0.625)
    assert mcnemar(base, base) == (0, 0, 1.0)
