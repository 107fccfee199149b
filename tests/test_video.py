"""video: a short clip of dataset photos moving, annotated and tracked; bad and stalled sources end clearly."""
import http.server
import io
import json
import socketserver
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest
from PIL import Image

from benchmarks.bench_video import write_clip
from facemask.__main__ import main
from facemask.core import UserError
from facemask.core.images import load_rgb
from facemask.core.model import load
from facemask.use.detect import crop, make_detector
from facemask.use.face_tracks import Tracker
from facemask.use.predict import MARGIN, Predictor, label_fields
from facemask.use.video import load_classifier, run
from tests.champion_support import StubDetector, tiny_model_file
from tests.conftest import REAL_DATASET

FRAMES, SIZE, FPS = 30, (320, 240), 10.0
PHOTOS = ("with_mask_young/cdeb7_0_0_0066ichXly3gbb630i4w6j30u00tzjtk.jpg",
          "without_mask_young/utk_18_0_0_20170103201519511.jpg")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """(clip file, true face boxes per frame): 3 s at 10 frames/s, one face, a second from frame 10 on."""
    files = [REAL_DATASET / "images" / name for name in PHOTOS]
    if not all(f.is_file() for f in files):
        pytest.skip(f"real dataset photos not present under {REAL_DATASET}")
    path = tmp_path_factory.mktemp("clip") / "clip.avi"
    truth = write_clip(path, [load_rgb(f) for f in files], FRAMES, SIZE, FPS, seed=3, face_height=(90, 100))
    return path, truth


@pytest.fixture(scope="module")
def cli_run(clip, tmp_path_factory):
    """The records (JSON lines) and annotated video of one `python -m facemask video` run over the clip."""
    out = tmp_path_factory.mktemp("out") / "annotated.mp4"
    stdout = io.StringIO()
    real_stdout, sys.stdout = sys.stdout, stdout
    try:
        assert main(["video", str(clip[0]), "--model", str(tiny_model_file()), "--keras", "--json",
                     "--out", str(out)]) == 0
    finally:
        sys.stdout = real_stdout
    return [json.loads(line) for line in stdout.getvalue().splitlines()], out


def read_frames(path) -> list[np.ndarray]:
    capture, frames = cv2.VideoCapture(str(path)), []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def test_output_video_has_the_inputs_frames_size_and_rate(clip, cli_run):
    _, out = cli_run
    frames = read_frames(out)
    assert len(frames) == FRAMES and frames[0].shape == (SIZE[1], SIZE[0], 3)
    assert cv2.VideoCapture(str(out)).get(cv2.CAP_PROP_FPS) == pytest.approx(FPS)
    assert not np.array_equal(frames[0], read_frames(clip[0])[0])  # boxes and labels drawn


def test_json_lines_cover_every_frame_and_end_with_a_summary(cli_run):
    records, _ = cli_run
    *faces, summary = records
    assert sorted({r["frame"] for r in faces}) == list(range(FRAMES))
    assert all(r["time"] == pytest.approx(r["frame"] / FPS) for r in faces)
    assert summary["status"] == "summary" and summary["frames_processed"] == FRAMES
    assert summary["frames_dropped"] == 0 and summary["faces_seen"] == sum(summary["per_class"].values()) == 2


def test_each_face_keeps_one_track_id(clip, cli_run):
    records, _ = cli_run
    _, truth = clip
    ids_per_face = [set(), set()]
    found = 0
    for record in records[:-1]:
        if record["status"] != "face":
            continue
        x, y, w, h = record["box"]
        for k, (tx, ty, tw, th) in enumerate(truth[record["frame"]]):
            if tx <= x + w / 2 <= tx + tw and ty <= y + h / 2 <= ty + th:
                ids_per_face[k].add(record["track"])
                found += 1
    assert found >= 0.9 * sum(len(boxes) for boxes in truth)  # the default detector finds nearly every face
    assert [len(ids) for ids in ids_per_face] == [1, 1] and ids_per_face[0] != ids_per_face[1]


def test_labels_match_predict_on_the_same_frames(clip, cli_run):
    """Detected frames: the boxes and per-frame probabilities of `predict` on that frame. The frames between
    (--detect-every 2): the previous frame's boxes, classified from this frame's own crops."""
    records, _ = cli_run
    predictor = Predictor(load(tiny_model_file()), make_detector())
    frames = read_frames(clip[0])
    for frame in range(0, len(frames), 7):
        rgb = cv2.cvtColor(frames[frame], cv2.COLOR_BGR2RGB)
        got = [r for r in records[:-1] if r["frame"] == frame and r["status"] == "face"]
        if frame % 2 == 0:
            expected = [{"box": r["box"], **r} for r in predictor.predict_image(rgb, "frame") if r["status"] == "face"]
        else:
            boxes = [r["box"] for r in records[:-1] if r["frame"] == frame - 1 and r["status"] == "face"]
            probabilities = predictor.classify([crop(rgb, box, MARGIN) for box in boxes])
            expected = [{"box": box, **label_fields(p)} for box, p in zip(boxes, probabilities, strict=True)]
        assert got and [r["box"] for r in got] == [r["box"] for r in expected]
        assert all(r["detected"] == (frame % 2 == 0) for r in got)
        for mine, theirs in zip(got, expected, strict=True):
            assert mine["frame_label"] == theirs["label"]
            np.testing.assert_allclose(list(mine["frame_probabilities"].values()),
                                       list(theirs["probabilities"].values()), atol=1e-4)


def test_smoothed_label_is_the_mean_of_the_tracks_last_frames(cli_run):
    records, _ = cli_run
    history = {}
    for record in records[:-1]:
        if record["status"] == "face":
            history.setdefault(record["track"], []).append(list(record["frame_probabilities"].values()))
            expected = np.mean(history[record["track"]][-5:], axis=0)
            np.testing.assert_allclose(list(record["probabilities"].values()), expected, atol=2e-5)


@pytest.mark.unit
def test_tracker_keeps_ids_through_motion_and_short_misses():
    tracker = Tracker(smooth=3, max_missed=2)
    p = np.array([0.7, 0.1, 0.1, 0.1])
    first = [t.id for t in tracker.update([(0, 0, 50, 50), (200, 0, 50, 50)], [p, p[::-1]])]
    moved = [t.id for t in tracker.update([(205, 5, 50, 50), (8, 4, 50, 50)], [p[::-1], p])]
    assert first == [1, 2] and moved == [2, 1]
    tracker.update([], [])  # one frame without faces: the tracks live on
    assert [t.id for t in tracker.update([(10, 6, 50, 50)], [p])] == [1]
    for _ in range(3):
        tracker.update([], [])
    assert [t.id for t in tracker.update([(10, 6, 50, 50)], [p])] == [3]  # track 1 ended: a new id
    assert tracker.faces_per_class() == {"with_mask_old": 2, "with_mask_young": 0, "without_mask_old": 0,
                                         "without_mask_young": 1}


def test_truncated_file_names_itself_and_keeps_what_was_written(clip, tmp_path):
    data = clip[0].read_bytes()
    truncated = tmp_path / "truncated.avi"
    truncated.write_bytes(data[:len(data) // 2])
    out, report = tmp_path / "partial.mp4", io.StringIO()
    classifier = load_classifier(tiny_model_file(), None)
    with pytest.raises(UserError, match=r"truncated.avi: the file ends after \d+ of its 30 frames.*re-encode"):
        run(str(truncated), classifier, make_detector(), out, report=report)
    written = read_frames(out)
    assert 0 < len(written) < FRAMES and f"{len(written)} frames processed" in report.getvalue()
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(data[:4000])
    with pytest.raises(UserError, match="broken.mp4: could not be opened: not a readable video"):
        run(str(broken), classifier, make_detector())


def test_missing_source_exits_nonzero_with_one_clear_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "facemask", "video", str(tmp_path / "nope.mp4"), "--model",
                             str(tiny_model_file()), "--keras"], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"facemask: error: {tmp_path / 'nope.mp4'}: no such video file; pass a video file, a webcam index" \
        in result.stderr


def test_out_over_the_input_is_refused(clip, tmp_path):
    before = clip[0].read_bytes()
    with pytest.raises(UserError, match="is the input video"):
        run(str(clip[0]), load_classifier(tiny_model_file(), None), make_detector(), clip[0])
    assert clip[0].read_bytes() == before


class SlowDetector(StubDetector):
    """One face per frame, found slowly: frames of a live source arrive faster than they are processed."""

    def detect(self, rgb):
        time.sleep(0.1)
        return super().detect(rgb)


@pytest.fixture
def mjpeg_stream():
    """An MJPEG stream on 127.0.0.1 that sends 40 frames at 50 frames/s, then stalls (connection kept open)."""
    release = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            for i in range(40):
                data = io.BytesIO()
                Image.fromarray(np.full((120, 160, 3), i * 6, np.uint8)).save(data, "JPEG")
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n"
                                 % (len(data.getvalue()), data.getvalue()))
                time.sleep(0.02)
            release.wait(60)

        def log_message(self, *args):
            pass

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/stream.mjpg"
    release.set()
    server.shutdown()
    server.server_close()


def test_live_source_drops_frames_and_a_stall_ends_within_the_timeout(mjpeg_stream, tmp_path):
    out, records = tmp_path / "live.avi", io.StringIO()
    started = time.perf_counter()
    with pytest.raises(UserError, match=r"stream.mjpg: the stream stalled \(no frame for 2 s\).*--stall-timeout"):
        run(mjpeg_stream, load_classifier(tiny_model_file(), None), SlowDetector([(10, 10, 60, 60)]), out, records,
            stall_timeout=2.0, report=io.StringIO())
    assert time.perf_counter() - started < 15
    summary = json.loads(records.getvalue().splitlines()[-1])
    assert summary["frames_dropped"] > 0 and 1 <= summary["frames_processed"] < 40
    assert summary["frames_processed"] + summary["frames_dropped"] <= 40
    assert len(read_frames(out)) == summary["frames_processed"] + summary["frames_dropped"]  # dropped ones repeated


@pytest.mark.unit
def test_iou_is_one_for_the_same_box_and_the_overlap_share_otherwise():
    from facemask.use.detect import iou

    boxes = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [20, 20, 5, 5], [0, 0, 0, 0]], np.float64)
    assert np.allclose(iou((0, 0, 10, 10), boxes), [1.0, 50 / 150, 0.0, 0.0])


@pytest.mark.parametrize("int8_agreement, runs", [(0.9663, "float TFLite"), (0.995, "int8 TFLite"), (None, "float TFLite")])
def test_int8_labels_video_only_where_the_parity_report_vouches_for_it(tmp_path, monkeypatch, int8_agreement, runs):
    import facemask.use.export

    model = tiny_model_file()
    exports = tmp_path / "export"
    exports.mkdir()
    for name in ("model.tflite", "model_int8.tflite"):
        (exports / name).write_bytes(b"tflite")
    report = tmp_path / "export.json"
    if int8_agreement is not None:
        report.write_text(json.dumps({"formats": {"tflite_int8": {"top1_agreement": int8_agreement}}}))
    monkeypatch.setattr(facemask.use.export, "runner", lambda path: path)
    monkeypatch.setattr(facemask.use.export, "tflite_input_size", lambda path: 32)
    classifier = load_classifier(model, exports, report=report)
    assert classifier.name.endswith(f"({runs})")
    assert load_classifier(model, exports, keras_only=True, report=report).name.endswith("(Keras)")


def test_an_export_older_than_the_model_is_skipped_with_a_note(tmp_path):
    import os

    exports, notes = tmp_path / "export", io.StringIO()
    exports.mkdir()
    (exports / "model.tflite").write_bytes(b"tflite")
    model = tiny_model_file()
    os.utime(exports / "model.tflite", (model.stat().st_mtime - 60,) * 2)
    classifier = load_classifier(model, exports, report=tmp_path / "none.json", notes=notes)
    assert classifier.name.endswith("(Keras)") and "model.tflite is older than" in notes.getvalue()


def test_detect_every_below_one_is_refused_naming_the_option(clip):
    with pytest.raises(UserError, match="--detect-every 0"):
        run(str(clip[0]), load_classifier(tiny_model_file(), keras_only=True), StubDetector([]), detect_every=0)
