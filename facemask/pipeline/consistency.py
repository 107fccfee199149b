"""Consistency training: each training image beside a degraded copy of itself (dark, noisy, blurred or
JPEG, facemask.pipeline.degrade's augment levels), and a loss that asks both for the same prediction.

The copy is made per batch, so every epoch draws new degradations; the penalty is the Jensen-Shannon
divergence between the two predictions, as AugMix (Hendrycks et al., 2020) uses it. Only fine-tuning
on images uses it (`consistency` > 0 in a candidate's train params).
"""
import numpy as np

from facemask.core.quiet_tf import keras
from facemask.pipeline.degrade import AUGMENT_LEVELS, random_degrade


def with_degraded_copies(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`batch` (n, h, w, 3; 0-255 floats) as n pairs (n, 2, h, w, 3): each image, then a degraded copy of it
    (a kind drawn uniformly from AUGMENT_LEVELS, its level from that kind's range). A pair is one sample, so
    a batch split over devices never separates one."""
    kinds = list(AUGMENT_LEVELS)
    copies = [random_degrade(np.clip(np.rint(image), 0, 255).astype(np.uint8), kinds[rng.integers(len(kinds))], rng)
              for image in batch]
    return np.stack([batch, np.asarray(copies, dtype=batch.dtype)], axis=1)


def jensen_shannon(p, q):
    """The Jensen-Shannon divergence between rows of probabilities `p` and `q` (natural log)."""
    mean = keras.ops.clip((p + q) / 2, 1e-7, 1.0)

    def kl(a):
        return keras.ops.sum(a * (keras.ops.log(keras.ops.clip(a, 1e-7, 1.0)) - keras.ops.log(mean)), axis=-1)

    return (kl(p) + kl(q)) / 2


class ConsistencyTrainer(keras.Model):
    """Trains `classifier` on pairs from with_degraded_copies: its compiled loss on both images of a pair,
    plus `weight` x the mean Jensen-Shannon divergence of the pair's predictions. Validation batches are
    single images and get the compiled loss alone. Save the classifier, not this wrapper."""

    def __init__(self, classifier: keras.Model, weight: float):
        super().__init__(name=f"{classifier.name}_consistency")
        self.classifier, self.weight = classifier, weight

    def call(self, images, training=False):
        if len(images.shape) == 4:
            return self.classifier(images, training=training)
        flat = keras.ops.reshape(images, (-1, *images.shape[2:]))  # pairs -> rows 2i, 2i+1
        probabilities = self.classifier(flat, training=training)
        return keras.ops.reshape(probabilities, (-1, 2, probabilities.shape[-1]))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if len(y_pred.shape) == 2:
            return super().compute_loss(x, y, y_pred, sample_weight, training)
        image, copy = y_pred[:, 0], y_pred[:, 1]
        compiled = (super().compute_loss(x, y, image, sample_weight, training)
                    + super().compute_loss(x, y, copy, sample_weight, training)) / 2
        return compiled + self.weight * keras.ops.mean(jensen_shannon(image, copy))

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """The metrics of the undegraded images."""
        return super().compute_metrics(x, y, y_pred if len(y_pred.shape) == 2 else y_pred[:, 0], sample_weight)
