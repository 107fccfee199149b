"""Consistency training pairs each image with a degraded copy and penalises their disagreement, in
training only; the classifier it trains saves and loads as any other."""
import numpy as np
import pytest

from facemask.core.model import build_classifier, load
from facemask.pipeline.consistency import ConsistencyTrainer, jensen_shannon, with_degraded_copies
from tests.test_distribute import TWO_CPUS


def _images(n: int, size: int = 32) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (n, size, size, 3)).astype(np.float32)


def test_each_image_is_followed_by_a_degraded_copy_drawn_from_the_generator():
    batch = _images(6)
    paired = with_degraded_copies(batch, np.random.default_rng(1))
    assert paired.shape == (6, 2, 32, 32, 3) and paired.dtype == np.float32
    np.testing.assert_array_equal(paired[:, 0], batch)
    assert all(np.abs(paired[i, 1] - batch[i]).mean() > 1 for i in range(6))
    np.testing.assert_array_equal(paired, with_degraded_copies(batch, np.random.default_rng(1)))
    assert not np.array_equal(paired, with_degraded_copies(batch, np.random.default_rng(2)))


def test_jensen_shannon_is_zero_for_equal_predictions_and_ln2_for_disjoint_ones():
    p = np.array([[0.7, 0.1, 0.1, 0.1], [1.0, 0.0, 0.0, 0.0]], np.float32)
    q = np.array([[0.7, 0.1, 0.1, 0.1], [0.0, 1.0, 0.0, 0.0]], np.float32)
    np.testing.assert_allclose(jensen_shannon(p, q), [0.0, np.log(2)], atol=1e-5)
    np.testing.assert_allclose(jensen_shannon(p, q), jensen_shannon(q, p), atol=1e-7)


def test_pairs_get_the_loss_of_both_images_and_the_penalty_and_single_images_the_loss_alone():
    import keras

    inputs = keras.Input((32, 32, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(8, 3)(keras.layers.Rescaling(1 / 255)(inputs)))
    classifier = keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(pooled))
    trainer = ConsistencyTrainer(classifier, weight=3.0)
    trainer.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    pairs, y = with_degraded_copies(_images(4), np.random.default_rng(1)), np.array([0, 1, 2, 3])
    predicted = trainer(pairs)
    assert predicted.shape == (4, 2, 4)
    np.testing.assert_allclose(predicted[:, 1], classifier(pairs[:, 1]), atol=1e-6)
    image_loss, copy_loss = (float(trainer.compute_loss(None, y, classifier(pairs[:, k]))) for k in (0, 1))
    penalty = 3.0 * float(np.mean(jensen_shannon(predicted[:, 0], predicted[:, 1])))
    assert penalty > 0
    assert float(trainer.compute_loss(None, y, predicted)) == pytest.approx((image_loss + copy_loss) / 2 + penalty,
                                                                            rel=1e-5)


def test_fine_tuning_with_consistency_trains_on_pairs_and_saves_a_plain_classifier(tmp_path, monkeypatch):
    import mlflow

    from facemask.core.params import TrainingRecipe
    from facemask.pipeline.checkpoint import Checkpoint
    from facemask.pipeline.fitting import batches, train_phases

    params = TrainingRecipe(seed=1337, patience=5, epochs=0, fine_tune_epochs=1, fine_tune_layers=5, batch_size=4,
                            consistency=1.0)
    x, y = _images(8), np.array([0, 1, 2, 3] * 2)
    data = batches(x, y, params, paired=True)
    data.shuffle(0)
    images, targets, weights = data[0]
    assert images.shape == (4, 2, 32, 32, 3) and targets.shape[0] == weights.shape[0] == 4  # 4 images, 4 copies
    np.testing.assert_array_equal(images[:, 0], x[data.order[:4]])
    np.testing.assert_array_equal(images, data[0][0])  # the same copies for the same (seed, epoch, batch)
    model = build_classifier("TinyNet", 32, None)  # the pairs are the point, not the network
    monkeypatch.setattr(mlflow, "log_metrics", lambda *args, **kwargs: None)  # no tracking store needed
    rows = train_phases(model, {}, lambda: (x, y, x, y), params, Checkpoint(tmp_path, "test"), pretrained=False)
    assert len(rows) == 1 and np.isfinite(rows[0]["loss"]) and np.isfinite(rows[0]["val_loss"])
    model.save(tmp_path / "model.keras")
    loaded = load(tmp_path / "model.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


# On two logical CPU devices (a fresh interpreter), 6 pairs in batches of 4: each device gets 2 pairs, then 1
# (an odd number of images, were a pair two samples); validation: 6 images.
MIRRORED_FIT = TWO_CPUS + """
import numpy as np, keras
from facemask.pipeline.consistency import ConsistencyTrainer
from facemask.pipeline.distribute import training_strategy
from facemask.core.params import TrainingRecipe
from facemask.pipeline.fitting import batches
strategy = training_strategy("mirrored")
x = np.random.default_rng(0).uniform(0, 255, (6, 32, 32, 3)).astype(np.float32)
y = np.array([0, 1, 2, 3, 0, 1])
data = batches(x, y, TrainingRecipe(seed=1, patience=5, batch_size=4, consistency=1.0), paired=True)
with strategy.scope():
    inputs = keras.Input((32, 32, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(8, 3)(keras.layers.Rescaling(1 / 255)(inputs)))
    trainer = ConsistencyTrainer(keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(pooled)), 1.0)
    trainer.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
history = trainer.fit(data.feed(strategy), validation_data=(x, y), epochs=2, verbose=0).history
print("losses", history["loss"] + history["val_loss"])
"""


def test_pairs_stay_whole_when_a_batch_is_split_over_two_devices():
    import subprocess
    import sys

    from tests.conftest import REPO

    result = subprocess.run([sys.executable, "-c", MIRRORED_FIT], cwd=REPO, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "mirrored over 2 devices" in result.stdout
    losses = [float(v) for v in result.stdout.split("losses")[1].strip(" []\n").split(",")]
    assert len(losses) == 4 and all(np.isfinite(losses))
