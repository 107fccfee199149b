"""The face detectors on dataset photos placed in a 640x480 frame, on a frame without a face, and their
weights and names given wrong; the default on drawn rooms and hands (benchmarks/bench_detect.py measures it at scale)."""
import shutil

import numpy as np
import pytest
from PIL import Image

from facemask.core import UserError
from facemask.core.images import load_rgb
from facemask.core.scenes import camera, hand, place, room
from facemask.use.detect import DETECTORS, YuNetDetector, iou, make_detector

# Tight crops as the dataset holds them: the default gets a masked face, the others an unmasked one
# (benchmarks/bench_detect.py measures every detector on masked faces).
PLACED = {"yunet": ("with_mask_old", "hack_10.png"), "blazeface": ("without_mask_old", None),
          "mtcnn": ("without_mask_old", None), "haar": ("without_mask_old", None)}


def framed(photo, side: int = 120, at: tuple = (400, 200)) -> tuple[np.ndarray, tuple]:
    """The photo resized to side x side and placed at `at` in a grey 640x480 frame; (frame, its box)."""
    frame = np.full((480, 640, 3), 128, np.uint8)
    x, y = at
    frame[y:y + side, x:x + side] = np.asarray(Image.fromarray(load_rgb(photo)).resize((side, side)))
    return frame, (x, y, side, side)


@pytest.mark.parametrize("name", sorted(PLACED))
def test_a_placed_face_is_found_where_it_was_placed(real_dataset, name):
    label, file = PLACED[name]
    folder = real_dataset / "images" / label
    frame, placed = framed(folder / file if file else sorted(folder.iterdir())[0])
    faces = make_detector(name).detect(frame)
    assert faces, f"{name} found no face"
    assert iou(faces[0].box, np.array([placed], float))[0] >= 0.5


@pytest.mark.parametrize("name", ["yunet", "blazeface", "haar"])
def test_a_frame_without_a_face_gets_no_box_at_the_default_cut_off(name):
    ramp = np.linspace(0, 255, 640, dtype=np.uint8)
    frame = np.stack([np.tile(ramp, (480, 1))] * 3, axis=-1)
    assert make_detector(name).detect(frame) == []


def test_the_default_detector_boxes_no_drawn_room_or_hand():
    rng = np.random.default_rng(3)
    detector = make_detector()
    for _ in range(4):
        frame = place(room(rng), hand(rng, 160), (240, 160, 160, 160))
        assert detector.detect(camera(frame, rng, noise=4, jpeg_quality=70)) == []


def test_missing_or_altered_weights_name_the_file_and_the_fix(tmp_path):
    missing = tmp_path / "face_detection_yunet.onnx"
    with pytest.raises(UserError, match=r"face_detection_yunet.onnx: the yunet detector's weights are missing; restore"):
        YuNetDetector(weights=missing).detect(np.zeros((64, 64, 3), np.uint8))
    shutil.copyfile(YuNetDetector.WEIGHTS, missing)
    with missing.open("r+b") as altered:
        altered.seek(1000)
        altered.write(b"\x00" * 16)
    with pytest.raises(UserError, match="not the YuNet weights this project ships .*damaged or replaced"):
        YuNetDetector(weights=missing).detect(np.zeros((64, 64, 3), np.uint8))


@pytest.mark.unit
def test_an_unknown_detector_name_lists_the_known_ones():
    with pytest.raises(UserError, match="unknown detector 'retina'; choose one of: " + ", ".join(DETECTORS)):
        make_detector("retina")
