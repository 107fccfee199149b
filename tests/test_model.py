"""The saved model takes raw RGB of any size, loads in safe mode, and weights resolve or fail clearly."""
import keras
import numpy as np
import pytest

from facemask.core import UserError
from facemask.core.backbones import BACKBONES, WeightsUnavailable, resolve_weights
from facemask.core.model import (
    average,
    build_classifier,
    build_ensemble,
    feature_extractor,
    head,
    input_size,
    load,
    members,
    pooled_layers,
)
from tests.conftest import REAL_WEIGHTS


@pytest.fixture(scope="module")
def tiny_model():
    """A TinyNet classifier: resizing, the head, saving and averaging do not depend on the backbone (every real
    backbone is built below; the pipeline tests save and load MobileNetV2 models in safe mode)."""
    return build_classifier("TinyNet", 32, None)


def _recipe(**settings):
    """A training recipe with these settings, the rest at their defaults."""
    from facemask.core.params import TrainingRecipe

    return TrainingRecipe(seed=1337, patience=5, **settings)


def test_raw_images_of_any_size_give_probabilities(tiny_model):
    for shape in [(1, 50, 40, 3), (1, 32, 32, 3), (1, 100, 30, 3)]:
        probabilities = tiny_model.predict(np.full(shape, 127, dtype=np.float32), verbose=0)
        assert probabilities.shape == (1, 4) and probabilities.sum() == pytest.approx(1, abs=1e-5)


def test_head_on_features_equals_the_full_model(tiny_model):
    images = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    features = feature_extractor(tiny_model).predict(images, verbose=0)
    np.testing.assert_allclose(head(tiny_model).predict(features, verbose=0),
                               tiny_model.predict(images, verbose=0), atol=1e-5)


def test_save_and_safe_mode_load_round_trip(tiny_model, tmp_path):
    tiny_model.save(tmp_path / "model.keras")
    images = np.random.default_rng(1).uniform(0, 255, (2, 45, 45, 3)).astype(np.float32)
    np.testing.assert_allclose(load(tmp_path / "model.keras").predict(images, verbose=0),
                               tiny_model.predict(images, verbose=0), atol=1e-5)


def test_a_seed_average_is_the_mean_of_its_members_and_survives_a_safe_load(tiny_model, tmp_path):
    keras.utils.set_random_seed(1)
    other = build_classifier("TinyNet", 32, None)
    averaged = average({"seed_0": tiny_model, "seed_1": other}, name="facemask_Tiny")
    averaged.save(tmp_path / "model.keras")
    loaded = load(tmp_path / "model.keras")
    images = np.random.default_rng(2).uniform(0, 255, (2, 50, 40, 3)).astype(np.float32)
    expected = (tiny_model.predict(images, verbose=0) + other.predict(images, verbose=0)) / 2
    np.testing.assert_allclose(loaded.predict(images, verbose=0), expected, atol=1e-5)
    assert [member.name for member in members(loaded)] == ["seed_0", "seed_1"]
    assert input_size(loaded) == 32 and members(tiny_model) == [tiny_model]


def test_every_backbone_builds_without_weights():
    for name, backbone in BACKBONES.items():
        model = build_classifier(name, max(backbone.min_size, 32), None)
        assert model.output_shape == (None, 4)


def test_too_small_image_size_is_refused():
    with pytest.raises(UserError, match="minimum of 71"):
        build_classifier("Xception", 64, None)


def test_weights_none_and_missing_file():
    assert resolve_weights("MobileNetV2", "none", None) is None
    with pytest.raises(WeightsUnavailable, match="does not exist"):
        resolve_weights("MobileNetV2", "/nowhere/weights.h5", None)
    with pytest.raises(WeightsUnavailable, match="TinyNet has no ImageNet weights .*; set weights: none"):
        resolve_weights("TinyNet", "imagenet", REAL_WEIGHTS)


def test_imagenet_unavailable_offline_says_which_file_to_put_where(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr("keras.utils.get_file", offline)
    with pytest.raises(WeightsUnavailable, match="densenet169_weights_tf_dim_ordering_tf_kernels_notop.h5.*weights: none"):
        resolve_weights("DenseNet169", "imagenet", tmp_path)


def test_imagenet_is_found_in_the_local_weights_dir():
    if not REAL_WEIGHTS.is_dir():
        pytest.skip(f"no local weights at {REAL_WEIGHTS}")
    assert resolve_weights("Xception", "imagenet", REAL_WEIGHTS).endswith("xception_weights_tf_dim_ordering_tf_kernels_notop.h5")
    assert "mobilenet_v2" in resolve_weights("MobileNetV2", "imagenet", REAL_WEIGHTS)


def test_ensemble_concatenates_member_features_under_one_head():
    ensemble = build_ensemble({"MobileNetV2": None, "TinyNet": None}, 32)  # a real backbone beside a small one
    images = np.random.default_rng(2).uniform(0, 255, (2, 40, 50, 3)).astype(np.float32)
    features = feature_extractor(ensemble).predict(images, verbose=0)
    assert features.shape == (2, 1280 + 32)
    np.testing.assert_allclose(head(ensemble).predict(features, verbose=0), ensemble.predict(images, verbose=0), atol=1e-5)
    per_member = [feature_extractor(ensemble, layer).predict(images, verbose=0)
                  for layer in pooled_layers(["MobileNetV2", "TinyNet"]).values()]
    np.testing.assert_array_equal(np.concatenate(per_member, axis=1), features)


def test_fine_tuning_keeps_pretrained_batchnorm_in_inference_mode():
    """Keras 3 ignores training=False at the backbone's call once fit() runs: train freezes BN layers."""
    from facemask.pipeline.fitting import fine_tune_model
    from tests.champion_support import backbone_of

    model = build_classifier("MobileNetV2", 32, None)
    fine_tune_model(model, _recipe(fine_tune_layers=20), pretrained=True, steps=10)
    extractor = feature_extractor(model)
    images = np.random.default_rng(3).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(extractor(images, training=True), extractor(images, training=False), atol=1e-5)
    assert any(layer.trainable for layer in backbone_of(model).layers)
    fine_tune_model(model, _recipe(fine_tune_layers="all"), pretrained=False, steps=10)  # from scratch: BN must learn
    batchnorms = [layer for layer in backbone_of(model).layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert batchnorms and all(layer.trainable for layer in batchnorms)


def test_a_cosine_fine_tune_schedule_decays_the_rate_to_zero_over_the_phase():
    from facemask.pipeline.fitting import fine_tune_model

    model = build_classifier("MobileNetV2", 32, None)
    optimizer = fine_tune_model(model, _recipe(fine_tune_learning_rate=0.01, fine_tune_schedule="cosine"),
                                pretrained=True, steps=10).optimizer
    rates = []
    for step in (0, 5, 10):
        optimizer.iterations.assign(step)
        rates.append(float(optimizer.learning_rate))
    assert rates == pytest.approx([0.01, 0.005, 0.0], abs=1e-6)
    constant = fine_tune_model(model, _recipe(fine_tune_learning_rate=0.01), pretrained=True, steps=10).optimizer
    constant.iterations.assign(10)
    assert float(constant.learning_rate) == pytest.approx(0.01)


class Tracked(np.ndarray):
    """An ndarray a weak reference can follow."""


def test_label_smoothing_trains_on_one_hot_targets_and_training_keeps_no_images_alive(tmp_path, monkeypatch):
    import gc
    import weakref

    import mlflow

    from facemask.core.params import TrainingRecipe
    from facemask.pipeline.checkpoint import Checkpoint
    from facemask.pipeline.fitting import loss, train_phases

    recipe = TrainingRecipe(seed=1337, patience=5, epochs=0, fine_tune_epochs=1, fine_tune_layers=5, batch_size=4)
    assert loss(recipe) == "sparse_categorical_crossentropy"
    params = recipe.model_copy(update={"label_smoothing": 0.1})
    assert loss(params).get_config()["label_smoothing"] == pytest.approx(0.1)
    model = build_classifier("TinyNet", 32, None)
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 255, (8, 32, 32, 3)).astype(np.float32), np.array([0, 1, 2, 3] * 2)
    images = [x.copy().view(Tracked), y, x, y]  # what fine-tuning trains and validates on
    alive = weakref.ref(images[0])
    monkeypatch.setattr(mlflow, "log_metrics", lambda *args, **kwargs: None)  # no tracking store needed
    rows = train_phases(model, {}, lambda: tuple(images), params, Checkpoint(tmp_path, "test"), pretrained=False)
    assert len(rows) == 1 and np.isfinite(rows[0]["val_loss"])
    images.clear()
    gc.collect()
    assert alive() is None  # TensorFlow keeps the dataset alive: its arrays must be dropped (cross-validation)
    model.save(tmp_path / "model.keras")
    assert load(tmp_path / "model.keras").predict(x, verbose=0).shape == (8, 4)
