"""Camera frames made from photos (facemask.core.scenes), the detection benchmark's material."""
import numpy as np
import pytest

from facemask.core.scenes import FRAME_SIZE, camera, centre_in, free_boxes, hand, place, room

pytestmark = pytest.mark.unit


def test_a_room_is_a_640x480_rgb_frame_that_differs_by_seed():
    first, again, other = room(np.random.default_rng(1)), room(np.random.default_rng(1)), room(np.random.default_rng(2))
    assert first.shape == (480, 640, 3) and first.dtype == np.uint8
    assert np.array_equal(first, again) and not np.array_equal(first, other)


def test_free_boxes_fit_the_frame_and_keep_apart_or_say_they_cannot():
    rng = np.random.default_rng(0)
    boxes = free_boxes(rng, [(200, 300), (120, 120), (60, 80)])
    width, height = FRAME_SIZE
    for x, y, w, h in boxes:
        assert x >= 0 and x + w <= width and y >= 0 and y + h <= height
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert a[0] + a[2] <= b[0] or b[0] + b[2] <= a[0] or a[1] + a[3] <= b[1] or b[1] + b[3] <= a[1]
    assert free_boxes(rng, [(400, 400), (400, 400)]) is None


def test_place_puts_the_photo_in_its_box_and_a_hand_only_where_it_is_drawn():
    frame = np.zeros((480, 640, 3), np.uint8)
    placed = place(frame, np.full((50, 40, 3), 200, np.uint8), (10, 20, 80, 100))
    assert (placed[20:120, 10:90] == 200).all() and placed.sum() == 200 * 3 * 80 * 100
    with_hand = place(frame, hand(np.random.default_rng(0), 100), (300, 200, 100, 100))
    inside = with_hand[200:300, 300:400].any(axis=-1)
    assert 0.2 < inside.mean() < 0.9 and with_hand.sum() == with_hand[200:300, 300:400].sum()


def test_the_camera_darkens_blurs_adds_noise_and_compresses():
    rng = np.random.default_rng(0)
    frame = room(rng)
    dark = camera(frame, rng, light=0.5)
    assert abs(dark.mean() - frame.mean() * 0.5) < 3
    noisy = camera(frame, rng, noise=8, jpeg_quality=40)
    assert noisy.shape == frame.shape and 3 < np.abs(noisy.astype(int) - frame).mean() < 20


def test_a_box_counts_as_on_a_placed_photo_when_its_centre_lies_in_it():
    placed = (100, 100, 50, 60)
    assert centre_in((110, 120, 20, 20), placed) and centre_in((90, 90, 70, 80, 0.9), placed)  # a score is ignored
    assert not centre_in((140, 100, 40, 40), placed) and not centre_in((0, 0, 50, 50), placed)
