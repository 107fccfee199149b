"""Evaluation slices: degradations change pixels as named and reproduce, worn-wrong masks cover and uncover
the intended parts of an aligned face and keep the without-mask label, and the slices run end to end."""
import keras
import numpy as np
import pytest
from PIL import Image

from facemask.core import CLASSES
from facemask.core.resize import load_batch, resizer
from facemask.pipeline.degrade import DEGRADATIONS, NOISE_SIGMA, degrade
from facemask.pipeline.evaluate import slice_metrics
from facemask.pipeline.masks import WORN_WRONG, draw_mask
from facemask.pipeline.slices import AGE_BANDS, age_scores, compute, degraded_images, slices, worn_wrong_face
from facemask.pipeline.splits import image_path

ALIGNED = ("utkface_crop_part1",)  # as params.yaml's synthesize.aligned_sources

SIZE = 200
# Parts of an aligned 200x200 face (UTKFace's layout), as (rows, columns).
EYES = (slice(50, 70), slice(50, 150))
NOSE_TIP = (slice(100, 116), slice(88, 112))
MOUTH = (slice(136, 150), slice(80, 120))
CHIN = (slice(190, 200), slice(80, 120))


def _photo(seed: int = 0) -> np.ndarray:
    """A smooth 200x200 RGB photo-like image with some texture."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(60, 200, SIZE)[None, :, None] + np.linspace(0, 30, SIZE)[:, None, None]
    return np.clip(ramp + rng.normal(0, 8, (SIZE, SIZE, 3)), 0, 255).astype(np.uint8)


def _sharpness(rgb: np.ndarray) -> float:
    return float(np.abs(np.diff(rgb.astype(float), axis=1)).mean())


def test_each_degradation_changes_the_pixels_as_named():
    photo = _photo()
    rng = np.random.default_rng
    dark, noise = degrade(photo, "dark", rng(1)), degrade(photo, "noise", rng(1))
    blur, jpeg = degrade(photo, "blur", rng(1)), degrade(photo, "jpeg20", rng(1))
    assert all(d.shape == photo.shape and d.dtype == np.uint8 for d in (dark, noise, blur, jpeg))
    assert dark.mean() < 0.35 * photo.mean() and dark.std() > 0
    difference = noise.astype(float) - photo
    assert abs(difference.mean()) < 1 and difference.std() == pytest.approx(NOISE_SIGMA, rel=0.1)
    assert _sharpness(blur) < 0.5 * _sharpness(photo) and abs(blur.mean() - photo.mean()) < 2
    assert 1 < np.abs(jpeg.astype(float) - photo).mean() < 15 and abs(jpeg.mean() - photo.mean()) < 3
    with pytest.raises(ValueError, match="unknown degradation"):
        degrade(photo, "fog", rng(1))


def test_degradations_are_seeded_per_image():
    photos = [_photo(0), _photo(1)]
    for kind in DEGRADATIONS:
        first, again = degraded_images(photos, kind, seed=3), degraded_images(photos, kind, seed=3)
        assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
        # image 1 gets the same noise whatever image 0 is
        assert np.array_equal(degraded_images([_photo(5), photos[1]], kind, seed=3)[1], first[1])
    assert not np.array_equal(degraded_images(photos, "noise", seed=3)[0], degraded_images(photos, "noise", seed=4)[0])


def _changed(placement: str, seed: int) -> np.ndarray:
    face = np.full((SIZE, SIZE, 3), 128, dtype=np.uint8)
    return (draw_mask(face, np.random.default_rng(seed), placement) != face).any(axis=2)


@pytest.mark.parametrize("seed", range(5))
def test_worn_wrong_masks_cover_and_uncover_the_intended_parts(seed):
    worn, below_nose, under_chin = (_changed(p, seed) for p in ("worn", *WORN_WRONG))
    assert worn[NOSE_TIP].mean() > 0.95 and worn[MOUTH].mean() > 0.95
    assert not below_nose[NOSE_TIP].any() and below_nose[MOUTH].mean() > 0.5 and below_nose[CHIN].mean() > 0.95
    assert not under_chin[NOSE_TIP].any() and not under_chin[MOUTH].any() and under_chin[CHIN].mean() > 0.95
    assert not (worn[EYES].any() or below_nose[EYES].any() or under_chin[EYES].any())
    assert under_chin.mean() < below_nose.mean() < worn.mean()


def _rows() -> list[dict]:
    """One test row per (class, source) pair, UTKFace ones with an age."""
    rows = []
    for source, age in (("utkface_crop_part1", 25), ("somertonman_hackathon", "")):
        for label in CLASSES:
            years = age if age == "" else age + 50 * label.endswith("_old")
            rows.append({"file": f"images/{label}/{source}_{label}.png", "label": label, "source": source,
                         "age": str(years), "split": "test"})
    return rows


def test_worn_wrong_faces_are_unmasked_aligned_faces_scored_as_without_mask_of_their_own_age():
    rows = _rows()
    chosen = [r for r in rows if worn_wrong_face(r, ALIGNED)]
    assert [(r["source"], r["label"]) for r in chosen] == [("utkface_crop_part1", "without_mask_old"),
                                                          ("utkface_crop_part1", "without_mask_young")]
    images = [_photo(i) for i in range(len(rows))]
    calls = []

    def always_without_mask_old(batch):
        calls.append(len(batch))
        return np.full(len(batch), CLASSES.index("without_mask_old"))

    result = slices(rows, images, np.arange(len(rows)) % 4, always_without_mask_old, ALIGNED)["worn_wrong"]
    for placement in WORN_WRONG:  # called without mask: all; right age: the old face only
        assert result["placements"][placement] == {"n": 2, "without_mask_rate": 1.0, "accuracy": 0.5}
    assert result["without_mask_rate"] == 1.0 and result["worn_mask_recall"] == 1.0
    assert calls == [2, 2] + [len(rows)] * len(DEGRADATIONS)


def test_age_scores_per_band_worst_band_and_confusion():
    wm_old, wm_young, wo_old, wo_young = range(4)
    ages = ["18", "25", "25", "65", "65", "80", ""]
    y_true = [wo_young, wo_young, wo_young, wo_old, wo_old, wo_old, wm_old]
    y_pred = [wo_young, wo_young, wo_old, wo_young, wo_old, wm_old, wm_young]
    scores = age_scores(ages, y_true, y_pred, with_mask_old_recall=0.0)
    assert scores["bands"] == {"0-19": {"n": 1, "accuracy": 1.0, "age_confusion": 0.0},
                               "20-39": {"n": 2, "accuracy": 0.5, "age_confusion": 0.5},
                               "60-69": {"n": 2, "accuracy": 0.5, "age_confusion": 0.5},
                               "70+": {"n": 1, "accuracy": 0.0, "age_confusion": 0.0}}
    assert scores["worst_band"] == "70+" and scores["with_mask_old_recall"] == 0.0
    assert scores["age_confusion"] == pytest.approx(3 / 7)  # the mask right, the age wrong
    assert [name for _, _, name in AGE_BANDS] == ["0-19", "20-39", "40-59", "60-69", "70+"]


def _tiny_model(size: int = 16) -> keras.Model:
    """Raw RGB in, resized inside, mean colour -> softmax: enough to run the slices end to end."""
    inputs = keras.Input(shape=(None, None, 3))
    x = keras.layers.Rescaling(1 / 255)(resizer(size)(inputs))
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(len(CLASSES), activation="softmax", kernel_initializer="glorot_uniform")(x)
    keras.utils.set_random_seed(0)
    return keras.Model(inputs, outputs)


def test_slices_end_to_end_on_a_tiny_model(tmp_path):
    rows = _rows()
    for i, row in enumerate(rows):
        path = image_path(row, tmp_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_photo(i)).save(path)
    model = _tiny_model()
    y_pred = model.predict(load_batch([image_path(r, tmp_path) for r in rows], 16), verbose=0).argmax(axis=1)
    result = compute(model, rows, tmp_path, 4, y_pred, ALIGNED)
    assert result == compute(model, rows, tmp_path, 4, y_pred, ALIGNED)  # deterministic
    clean = float((y_pred == [CLASSES.index(r["label"]) for r in rows]).mean())
    assert result["degraded"]["clean_accuracy"] == pytest.approx(clean)
    for kind in DEGRADATIONS:
        scores = result["degraded"]["kinds"][kind]
        assert scores["n"] == len(rows) and scores["drop"] == pytest.approx(clean - scores["accuracy"])
    assert all(v["n"] == 2 for v in result["worn_wrong"]["placements"].values())
    assert set(result["age"]["bands"]) == {"20-39", "70+"}
    flat = slice_metrics(result)
    assert {"test_worn_wrong_without_mask_rate", "test_worn_wrong_below_nose_without_mask_rate",
            "test_degraded_jpeg20_accuracy", "test_with_mask_old_recall", "test_age_70_plus_accuracy"} <= set(flat)
    assert all(isinstance(v, float) for v in flat.values())


def test_slices_without_aligned_faces_or_ages_have_no_values_to_log():
    rows = [{**r, "source": "somertonman_hackathon", "age": ""} for r in _rows()]
    result = slices(rows, [_photo(i) for i in range(len(rows))], np.zeros(len(rows), dtype=int),
                    lambda batch: np.zeros(len(batch), dtype=int), ALIGNED)
    assert result["worn_wrong"]["without_mask_rate"] is None and result["age"]["bands"] == {}
    assert result["age"]["worst_band"] is None and result["age"]["with_mask_old_recall"] == 1.0
    degraded = result["degraded"]  # every face called with_mask_old: every unmasked face called masked
    assert degraded["clean_unmasked_called_masked"] == 1.0
    assert all(v["unmasked_called_masked"] == 1.0 for v in degraded["kinds"].values())
    flat = slice_metrics(result)
    assert "test_worn_wrong_without_mask_rate" not in flat and "test_degraded_dark_accuracy" in flat
