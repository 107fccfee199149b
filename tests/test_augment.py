"""Stage augment: only the training split grows, balancing works, the output is reproducible; the light and
camera degradations change a seeded share of the augmented copies and, at 0, nothing."""
import copy
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from facemask.core.files import write_csv
from facemask.core.params import Augment
from facemask.pipeline.augment import CAMERA, augment, camera, copies_per_image, traced, transform_pipeline
from facemask.pipeline.degrade import AUGMENT_LEVELS, BLUR_RADIUS, DARK_GAIN, JPEG_QUALITY, NOISE_SIGMA, random_degrade
from facemask.pipeline.ingest import ingest
from facemask.pipeline.splitting import split
from tests.conftest import tree_digest

PARAMS = Augment(copies=1, balance=True, seed=3, flip=True, rotation=0.05, zoom_in=0.1, zoom_out=0.1, shift=0.05,
                 brightness=0.1, contrast=0.1)


def test_balancing_fills_every_class_to_the_same_total():
    plan = copies_per_image({"big": 10, "small": 3}, copies=1, balance=True)
    assert {label: len(c) + sum(c) for label, c in plan.items()} == {"big": 20, "small": 20}
    assert plan["small"] == [6, 6, 5]


def test_without_balancing_each_image_gets_the_same_copies():
    plan = copies_per_image({"big": 10, "small": 3}, copies=2, balance=False)
    assert plan == {"big": [2] * 10, "small": [2] * 3}


def _split(tiny_dataset, tmp_path):
    raw = tmp_path / "raw"
    rows, _ = ingest(tiny_dataset, raw)
    write_csv(raw / "manifest.csv", rows, list(rows[0]))
    rows, _ = split(raw, tmp_path / "split", ratio=(0.5, 0.25, 0.25), seed=1337)
    split_dir = tmp_path / "split"
    return [{**r, "path": split_dir / "train" / r["label"] / r["file"].rsplit("/", 1)[-1]}
            for r in rows if r["split"] == "train"], split_dir


def test_augment_writes_train_only_and_leaves_val_test_untouched(tiny_dataset, tmp_path):
    train_rows, split_dir = _split(tiny_dataset, tmp_path)
    before = tree_digest(split_dir)
    rows = augment(train_rows, tmp_path / "aug", PARAMS)
    assert tree_digest(split_dir) == before
    assert {r["file"].split("/")[0] for r in rows} == {"train"}
    assert {r["origin"] for r in rows} == {r["file"] for r in train_rows}
    totals = Counter(r["label"] for r in rows)
    assert len(set(totals.values())) == 1 and sum(totals.values()) == 2 * 4 * max(
        Counter(r["label"] for r in train_rows).values())
    assert all((tmp_path / "aug" / r["file"]).is_file() for r in rows)


def test_same_seed_gives_identical_files(tiny_dataset, tmp_path):
    train_rows, _ = _split(tiny_dataset, tmp_path)
    augment(train_rows, tmp_path / "a", PARAMS)
    augment(train_rows, tmp_path / "b", PARAMS)
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")


def test_the_traced_transforms_give_the_eager_pixels_for_any_image_size():
    import keras

    def run(transform_of) -> list[np.ndarray]:
        keras.utils.set_random_seed(PARAMS.seed)
        transform = transform_of(transform_pipeline(PARAMS, PARAMS.seed))
        photos = [_photo(0, 48), _photo(1, 64), _photo(0, 48), _photo(2, 80)]
        return [np.asarray(transform(photo.astype(np.float32))) for photo in photos]

    eager = run(lambda pipeline: lambda pixels: pipeline(pixels, training=True))
    for once, again in zip(eager, run(traced), strict=True):
        assert np.array_equal(once, again)
    assert not np.array_equal(eager[0], eager[2])  # the same photo twice: each call draws new transforms


def _photo(seed: int = 0, size: int = 64) -> np.ndarray:
    """A smooth photo-like image with some texture."""
    ramp = np.linspace(60, 200, size)[None, :, None] + np.linspace(0, 30, size)[:, None, None]
    return np.clip(ramp + np.random.default_rng(seed).normal(0, 8, (size, size, 3)), 0, 255).astype(np.uint8)


def _sharpness(rgb: np.ndarray) -> float:
    return float(np.abs(np.diff(rgb.astype(float), axis=1)).mean())


@pytest.mark.parametrize("kind", CAMERA)
def test_each_camera_degradation_changes_the_pixels_deterministically(kind):
    photo, params = _photo(), Augment(**{kind: 1.0})
    once = camera(photo, params, np.random.default_rng(1))
    assert once.shape == photo.shape and once.dtype == np.uint8
    assert np.abs(once.astype(float) - photo).mean() > 1
    assert np.array_equal(once, camera(photo, params, np.random.default_rng(1)))


def test_degradations_at_augment_levels_do_what_they_are_named_for():
    photo, rng = _photo(), np.random.default_rng(0)
    for _ in range(5):
        assert random_degrade(photo, "dark", rng).mean() < 0.65 * photo.mean()
        assert _sharpness(random_degrade(photo, "blur", rng)) < 0.8 * _sharpness(photo)
        noise = random_degrade(photo, "noise", rng).astype(float) - photo
        assert AUGMENT_LEVELS["noise"][0] * 0.8 < noise.std() < AUGMENT_LEVELS["noise"][1] * 1.1
        assert 0 < np.abs(random_degrade(photo, "jpeg", rng).astype(float) - photo).mean() < 20
    assert set(AUGMENT_LEVELS) == set(CAMERA)
    slice_levels = {"dark": DARK_GAIN, "noise": NOISE_SIGMA, "blur": BLUR_RADIUS, "jpeg": JPEG_QUALITY}
    assert all(low <= slice_levels[kind] <= high for kind, (low, high) in AUGMENT_LEVELS.items())  # as documented


def test_a_share_is_a_probability_per_copy():
    photo, rng = _photo(), np.random.default_rng(0)
    changed = [not np.array_equal(camera(photo, Augment(noise=0.3), rng), photo) for _ in range(400)]
    assert 0.22 < np.mean(changed) < 0.38


def test_camera_at_its_defaults_changes_nothing_and_draws_nothing():
    photo, rng = _photo(), np.random.default_rng(0)
    state = copy.deepcopy(rng.bit_generator.state)
    assert camera(photo, PARAMS, rng) is photo and rng.bit_generator.state == state


def test_camera_degradations_keep_the_keras_transforms_and_the_originals(tiny_dataset, tmp_path):
    """With blur and jpeg on every copy the same files are listed, the originals are byte-identical, and each
    augmented copy is much closer to the plain run's than another seed's is (same flips, zooms, shifts)."""
    train_rows, _ = _split(tiny_dataset, tmp_path)
    plain = augment(train_rows, tmp_path / "plain", PARAMS)
    assert augment(train_rows, tmp_path / "degraded", PARAMS.model_copy(update={"blur": 1.0, "jpeg": 1.0})) == plain
    augment(train_rows, tmp_path / "reseeded", PARAMS.model_copy(update={"seed": 4}))
    for row in plain:
        plain_copy, degraded, reseeded = (np.asarray(Image.open(tmp_path / run / row["file"]).convert("RGB")).astype(float)
                                          for run in ("plain", "degraded", "reseeded"))
        if row["copy"] == 0:
            assert (tmp_path / "plain" / row["file"]).read_bytes() == (tmp_path / "degraded" / row["file"]).read_bytes()
        else:
            assert 0 < np.abs(plain_copy - degraded).mean() < 0.6 * np.abs(plain_copy - reseeded).mean()
