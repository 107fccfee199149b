"""Classification metrics (scikit-learn) with a 95% confidence interval for accuracy (scipy)."""
from collections.abc import Callable

import numpy as np
from scipy.stats import binomtest
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score

from facemask.core import CLASSES
from facemask.core.images import REFRAMINGS


def classification_metrics(y_true, y_pred, classes=CLASSES) -> dict:
    """Accuracy with its Wilson 95% CI, macro-F1, and per-class precision/recall/F1."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    labels = list(range(len(classes)))
    correct = int((y_true == y_pred).sum())
    interval = binomtest(correct, len(y_true)).proportion_ci(confidence_level=0.95, method="wilson")
    report = classification_report(
        y_true, y_pred, labels=labels, target_names=list(classes), output_dict=True, zero_division=0
    )
    return {
        "n": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "accuracy_ci95": [float(interval.low), float(interval.high)],
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "per_class": {
            name: {key: float(report[name][key]) for key in ("precision", "recall", "f1-score")}
            for name in classes
        },
    }


def report_text(y_true, y_pred, classes=CLASSES) -> str:
    """scikit-learn's text classification report (the seed's format) plus the confusion matrix."""
    labels = list(range(len(classes)))
    text = classification_report(y_true, y_pred, labels=labels, target_names=list(classes), digits=4, zero_division=0)
    matrix = confusion_matrix(y_true, y_pred, labels=labels)
    rows = "\n".join(f"{name:>20} {' '.join(f'{v:5d}' for v in row)}" for name, row in zip(classes, matrix, strict=True))
    return f"{text}\nconfusion matrix (rows: true, columns: predicted, order as above)\n{rows}\n"


def accuracy_by(values, y_true, y_pred) -> dict:
    """Accuracy within each distinct value of `values` (e.g. the image's source)."""
    values, hits = np.asarray(values), np.asarray(y_true) == np.asarray(y_pred)
    return {str(v): {"accuracy": float(hits[values == v].mean()), "n": int((values == v).sum())} for v in sorted(set(values))}


def headline(y_true, y_pred) -> dict:
    """Just accuracy and macro-F1 of classification_metrics()."""
    metrics = classification_metrics(y_true, y_pred)
    return {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]}


def reframed_scores(y_true, predict: Callable[[str], np.ndarray]) -> dict:
    """Accuracy and macro-F1 with every image re-framed each way in REFRAMINGS (predict(view) -> labels),
    and their mean macro-F1. A model that reads the face, not the dataset's framing, keeps its scores."""
    scores = {view: headline(y_true, predict(view)) for view in REFRAMINGS}
    scores["mean_macro_f1"] = float(np.mean([scores[view]["macro_f1"] for view in REFRAMINGS]))
    return scores


def member_scores(y_true, predictions: dict) -> dict:
    """Accuracy and macro-F1 of each member of an averaged model on its own ({name: predicted labels})."""
    return {str(name): headline(y_true, y_pred) for name, y_pred in predictions.items()}


def prediction_rows(rows: list[dict], probabilities) -> list[dict]:
    """One row per photo (split.csv `rows`, in order) as predictions.csv holds them: file, source, true and
    predicted label, and each class's probability. The paired comparison (facemask.pipeline.paired) reads them."""
    return [{"file": r["file"], "source": r.get("source", ""), "actual": r["label"], "predicted": CLASSES[int(np.argmax(prob))],
             **{f"p_{c}": round(float(q), 5) for c, q in zip(CLASSES, prob, strict=True)}}
            for r, prob in zip(rows, probabilities, strict=True)]


def mcnemar(base_right, other_right) -> tuple[int, int, float]:
    """Paired comparison of two models on the same items (boolean arrays: was each one right?): the items
    only `other` gets right, only `base` gets right, and the exact two-sided McNemar p-value."""
    base_right, other_right = np.asarray(base_right, bool), np.asarray(other_right, bool)
    wins, losses = int(np.sum(other_right & ~base_right)), int(np.sum(base_right & ~other_right))
    return wins, losses, binomtest(wins, wins + losses).pvalue if wins + losses else 1.0
