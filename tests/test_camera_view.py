"""The camera slice (facemask.use.camera_view): test photos placed in camera frames, found by the shipped
detector, cropped as video crops them, scored beside the clean photos."""
import csv

import numpy as np
import pytest

from facemask.core import CLASSES
from facemask.core.images import load_rgb
from facemask.use.camera_view import HEIGHTS, camera_frame, camera_slice

ALIGNED = ["utkface_crop_part1"]


def test_a_camera_frame_holds_the_photo_at_a_face_height_and_is_the_same_for_the_same_seed():
    photo = np.full((120, 100, 3), 180, np.uint8)
    frame, (x, y, w, h) = camera_frame(photo, np.random.default_rng(3))
    again, box_again = camera_frame(photo, np.random.default_rng(3))
    assert frame.shape == (480, 640, 3) and frame.dtype == np.uint8
    assert HEIGHTS[0] <= h <= HEIGHTS[1] and w == round(100 * h / 120)
    assert x >= 0 and x + w <= 640 and y >= 0 and y + h <= 480
    assert np.array_equal(frame, again) and box_again == (x, y, w, h)


@pytest.fixture
def test_photos(real_dataset):
    """Two photos of each class and four aligned unmasked faces (the worn-wrong material), with their rows."""
    with open(real_dataset / "metadata.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    chosen = [r for label in CLASSES for r in [r for r in rows if r["label"] == label][:2]]
    chosen += [r for r in rows if r["source"] in ALIGNED and r["label"].startswith("without")][:4]
    return chosen, [load_rgb(real_dataset / r["file"]) for r in chosen]


def test_the_slice_scores_the_faces_the_detector_finds_beside_their_clean_scores(test_photos):
    rows, images = test_photos
    y_true = np.array([CLASSES.index(r["label"]) for r in rows])
    always = CLASSES.index("without_mask_young")

    def classify(crops):  # a classifier that calls every crop without_mask_young
        assert all(c.ndim == 3 and c.shape[2] == 3 and min(c.shape[:2]) >= 32 for c in crops)
        return np.eye(len(CLASSES))[[always] * len(crops)]

    camera = camera_slice(rows, images, y_true, classify, ALIGNED)
    assert camera["faces"] == len(rows) and camera["found"] >= 0.75
    assert camera["clean_accuracy"] == 1.0 and camera["clean_mask_accuracy"] == 1.0
    assert 0 < camera["mask_accuracy"] < 1 and camera["accuracy"] <= camera["mask_accuracy"]
    assert sum(band["faces"] for band in camera["by_height"].values()) == len(rows)
    worn = camera["worn_wrong"]
    aligned_unmasked = sum(r["source"] in ALIGNED and r["label"].startswith("without") for r in rows)
    assert worn["faces"] == 2 * aligned_unmasked and worn["found"] > 0  # each face, mask below the nose and under the chin
    assert worn["without_mask_rate"] == 1.0 and worn["margin_mean"] == 1.0
    assert camera_slice(rows, images, y_true, classify, ALIGNED) == camera  # the same frames every run
