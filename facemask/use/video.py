"""`python -m facemask video SOURCE`: every face in a video file, webcam or stream, tracked and labelled.

Every `detect_every`-th frame goes through the face detector (2 by default: YuNet costs most of a frame's
time, and a face moves little in 1/15 s); the frames between reuse the last detection's boxes, cropped anew
from their own pixels. Each frame's face crops go through the classifier in one batch
(a TFLite export when it exists - int8 only if its parity report shows it agrees with the Keras model
on 99% of the test photos, else float - otherwise the Keras model; all take the same resized crops as
predict); a tracker keeps one id per face and averages its probabilities over the last frames, so
labels do not flicker. A file is read frame by frame, every frame processed; a live source (webcam,
stream URL) is read on its own thread and only its newest frame is kept, so frames that arrive while
one is processed are dropped and counted, never queued.
"""
import json
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facemask.core import UserError
from facemask.core.files import read_json
from facemask.core.outputs import EXPORT_DIR, EXPORT_FILES, EXPORT_REPORT
from facemask.store.loading import load_model
from facemask.use.detect import crop
from facemask.use.face_tracks import Tracker
from facemask.use.predict import MARGIN, Classifier, annotate, label_fields

# int8 labels video's faces only if it keeps the Keras top-1 on this share of the test photos (reports/export.json);
# otherwise the float export, which agrees fully and is as fast here (3.8 ms a face each).
INT8_MIN_AGREEMENT = 0.99
FORMAT_NAMES = {"tflite_int8": "int8 TFLite", "tflite": "float TFLite"}
SMOOTH_FRAMES = 5  # frames a face's probabilities are averaged over
DETECT_EVERY = 2  # the detector runs on every n-th frame; the others reuse its boxes (benchmarks/bench_video.py)
STALL_TIMEOUT_S = 10.0  # seconds without a frame before giving up
CODECS = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "MJPG", ".mov": "mp4v"}
HOW_TO_SOURCE = "pass a video file, a webcam index such as 0, or a stream URL (rtsp://..., http://...)"


def load_classifier(model_path, export_dir=EXPORT_DIR, keras_only: bool = False, report=EXPORT_REPORT,
                    notes=sys.stderr) -> Classifier:
    """The TFLite export in `export_dir` that answers like the model at `model_path`, else that model.

    The int8 export runs only if the export's parity report says it keeps the Keras top-1 on at least
    INT8_MIN_AGREEMENT of the test photos; otherwise the float export (top-1 agreement 1.0). An export older
    than the model is skipped with a note; no `export_dir` or `keras_only`: the Keras model.
    """
    from facemask.core.model import input_size
    from facemask.use.export import keras_runner, runner, tflite_input_size

    model_path = Path(model_path)
    for kind in () if keras_only or export_dir is None else _trusted_formats(Path(report)):
        path = Path(export_dir) / EXPORT_FILES[kind]
        if not path.is_file():
            continue
        if model_path.is_file() and path.stat().st_mtime < model_path.stat().st_mtime:
            print(f"video: {path} is older than {model_path}; skipped (run `python -m facemask export` to refresh "
                  "the exports)", file=notes)
            continue
        return Classifier(runner(path), tflite_input_size(path), f"{path} ({FORMAT_NAMES[kind]})")
    model = load_model(model_path)
    return Classifier(keras_runner(model), input_size(model), f"{model_path} (Keras)")


def _trusted_formats(report: Path) -> tuple[str, ...]:
    """The TFLite formats to try, fastest first: int8 only where the parity report vouches for it."""
    int8 = read_json(report).get("formats", {}).get("tflite_int8", {}) if report.is_file() else {}
    return ("tflite_int8", "tflite") if int8.get("top1_agreement", 0) >= INT8_MIN_AGREEMENT else ("tflite",)


class SourceProblem(Exception):
    """The source failed midway; the message names it and what to try."""


@dataclass
class Source:
    """An opened capture: `live` sources drop frames, files do not."""

    name: str
    capture: object
    live: bool
    fps: float
    size: tuple  # (width, height)
    frame_count: int  # from the file's header; 0 when unknown or live


def open_source(text: str, timeout: float = 10.0) -> Source:
    """Open a webcam index, a stream URL or a video file; a UserError names SOURCE and what to try."""
    import cv2

    if text.isdigit():
        capture, live = cv2.VideoCapture(int(text)), True
    elif "://" in text:
        milliseconds = int(timeout * 1000)  # reads time out later than frames() notices a stall, to name it so
        capture = cv2.VideoCapture(text, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, milliseconds,
                                                          cv2.CAP_PROP_READ_TIMEOUT_MSEC, milliseconds + 2000])
        live = True
    else:
        path = Path(text)
        if not path.is_file():
            raise UserError(f"{text}: no such video file; {HOW_TO_SOURCE}")
        capture, live = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG), False
    if not capture.isOpened():
        what = ("no camera with that index; try another index, or check the camera is connected and free"
                if text.isdigit() else "the stream did not open; check the URL, the network and that the stream is up"
                if live else "not a readable video (damaged, truncated or an unknown format); play it elsewhere "
                             "or re-encode it, e.g. `ffmpeg -i SOURCE -c:v libx264 fixed.mp4`")
        raise UserError(f"{text}: could not be opened: {what}")
    fps = capture.get(cv2.CAP_PROP_FPS)
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    count = 0 if live else max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))
    return Source(text, capture, live, fps if 0 < fps <= 1000 else 25.0, size, count)


class LatestFrame:
    """Reads a live source on its own thread, keeping only the newest frame (older ones are dropped)."""

    def __init__(self, capture):
        self.capture, self.dropped, self.ended = capture, 0, False
        self._frame, self._stop = None, False
        self._ready = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True, name="video-reader")
        self._thread.start()

    def _read(self) -> None:
        while not self._stop:
            ok, frame = self.capture.read()
            with self._ready:
                if not ok:
                    self.ended = True
                elif self._frame is not None:
                    self.dropped += 1
                self._frame = frame if ok else self._frame
                self._ready.notify()
            if not ok:
                return

    def take(self, timeout: float):
        """(the newest frame, frames dropped before it), or (None, 0) once the source ended or stalled."""
        with self._ready:
            self._ready.wait_for(lambda: self._frame is not None or self.ended, timeout)
            frame, self._frame = self._frame, None
            dropped, self.dropped = self.dropped, 0
            return frame, dropped

    def stop(self, timeout: float) -> bool:
        """Ask the reader to stop; True when it did within `timeout` (the capture can then be released)."""
        self._stop = True
        self._thread.join(timeout)
        return not self._thread.is_alive()


def frames(source: Source, stall_timeout: float):
    """(BGR frame, frames dropped just before it) until the source ends; a SourceProblem when it fails."""
    if not source.live:
        read = 0
        while True:
            ok, frame = source.capture.read()
            if not ok:
                break
            read += 1
            yield frame, 0
        if read == 0:
            raise SourceProblem(f"{source.name}: no frame could be read (damaged or truncated file); "
                                "re-encode it, e.g. `ffmpeg -i SOURCE -c:v libx264 fixed.mp4`")
        if source.frame_count and read < source.frame_count:
            raise SourceProblem(f"{source.name}: the file ends after {read} of its {source.frame_count} frames "
                                "(truncated or damaged); re-copy it or re-encode it, e.g. "
                                "`ffmpeg -i SOURCE -c:v libx264 fixed.mp4`")
        return
    reader = LatestFrame(source.capture)
    try:
        while True:
            frame, dropped = reader.take(stall_timeout)
            if frame is None:
                what = "ended" if reader.ended else f"stalled (no frame for {stall_timeout:g} s)"
                raise SourceProblem(f"{source.name}: the stream {what}; check the camera or stream and run again"
                                    + ("" if reader.ended else ", or raise --stall-timeout"))
            yield frame, dropped
    finally:
        if reader.stop(stall_timeout + 5):  # a read in progress ends by its own timeout
            source.capture.release()


def output_writer(out: Path, source: Source):
    """A VideoWriter for `out` at the source's frame rate and size; refuses to write over the source."""
    import cv2

    if not source.live and out.resolve() == Path(source.name).resolve():
        raise UserError(f"--out {out} is the input video; pass another --out file")
    codec = CODECS.get(out.suffix.lower())
    if codec is None:
        raise UserError(f"--out {out}: unknown video type; end the name with one of {', '.join(CODECS)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*codec), source.fps, source.size)
    if not writer.isOpened():
        raise UserError(f"--out {out}: could not be written; check the folder exists and is writable")
    return writer


def frame_records(frame: int, seconds: float, faces, tracks, frame_probabilities, detected: bool = True) -> list[dict]:
    """The JSON records of one frame: one per face (its track's smoothed label and this frame's own; `detected`
    false where the box is the last detection's), or one `no_face` record."""
    if not faces:
        return [{"frame": frame, "time": round(seconds, 3), "status": "no_face", "detected": detected}]
    return [{"frame": frame, "time": round(seconds, 3), "status": "face", "track": track.id, "box": list(face.box),
             "detected": detected, "detector_score": face.score, **label_fields(track.probabilities()),
             "frame_label": label_fields(p)["label"],
             "frame_probabilities": label_fields(p)["probabilities"]}
            for face, track, p in zip(faces, tracks, frame_probabilities, strict=True)]


def run(source_text: str, classifier: Classifier, detector, out: Path | None = None, json_stream=None,
        show: bool = False, smooth: int = SMOOTH_FRAMES, stall_timeout: float = STALL_TIMEOUT_S, margin: float = MARGIN,
        report=sys.stderr, detect_every: int = DETECT_EVERY) -> dict:
    """Process SOURCE until it ends (or Ctrl-C); returns the summary, also printed to `report`.

    When the source fails midway, what was written to `out` is closed as a playable file, the summary
    is printed, and a UserError names the problem.
    """
    import cv2

    if detect_every < 1:
        raise UserError(f"--detect-every {detect_every}: must be 1 (every frame) or more")
    if show:
        _check_display()
    source = open_source(source_text, stall_timeout)
    writer = output_writer(Path(out), source) if out is not None else None
    tracker, problem = Tracker(smooth=smooth), None
    processed = dropped = 0
    started = time.perf_counter()
    stream = frames(source, stall_timeout)
    try:
        for bgr, dropped_before in stream:
            dropped += dropped_before
            seconds = processed / source.fps if not source.live else time.perf_counter() - started
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            detected = processed % detect_every == 0
            if detected:
                faces = detector.detect(rgb)
            probabilities = classifier([crop(rgb, face.box, margin) for face in faces])
            tracks = tracker.update([face.box for face in faces], probabilities)
            records = frame_records(processed + dropped, seconds, faces, tracks, probabilities, detected)
            processed += 1
            for record in records if json_stream is not None else ():
                print(json.dumps(record), file=json_stream, flush=True)
            if writer is not None or show:
                drawn = cv2.cvtColor(np.asarray(annotate(rgb, records)), cv2.COLOR_RGB2BGR)
                for _ in range(1 + dropped_before if writer is not None else 0):  # keeps a live recording's timing
                    writer.write(drawn)
                if show and _show(drawn, source.name):
                    break
    except SourceProblem as err:
        problem = str(err)
    except KeyboardInterrupt:
        pass
    finally:
        stream.close()  # a live source's reader thread stops here
        if writer is not None:
            writer.release()
        if not source.live:
            source.capture.release()
        if show:
            cv2.destroyAllWindows()
    elapsed = time.perf_counter() - started
    summary = {"status": "summary", "source": source_text, "classifier": classifier.name,
               "frames_processed": processed, "frames_dropped": dropped,
               "faces_seen": sum(tracker.faces_per_class().values()), "per_class": tracker.faces_per_class(),
               "seconds": round(elapsed, 2), "frames_per_second": round(processed / elapsed, 1) if elapsed else 0.0}
    if json_stream is not None:
        print(json.dumps(summary), file=json_stream, flush=True)
    print(format_summary(summary, out), file=report)
    if problem:
        raise UserError(problem)
    return summary


def format_summary(summary: dict, out=None) -> str:
    per_class = ", ".join(f"{label} {n}" for label, n in summary["per_class"].items() if n) or "none"
    written = f"; wrote {out}" if out is not None else ""
    return (f"video: {summary['source']}: {summary['frames_processed']} frames processed, "
            f"{summary['frames_dropped']} dropped, {summary['faces_seen']} faces seen ({per_class}), "
            f"{summary['frames_per_second']} frames/s{written}")


def _check_display() -> None:
    import os

    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or sys.platform in ("win32", "darwin")):
        raise UserError("--show: no display here (DISPLAY is not set); write the annotated video with --out instead")


def _show(bgr: np.ndarray, title: str) -> bool:
    """Show a frame; True when the user pressed q or Esc."""
    import cv2

    try:
        cv2.imshow(title, bgr)
        return cv2.waitKey(1) & 0xFF in (ord("q"), 27)
    except cv2.error:
        raise UserError("--show: this OpenCV has no window support (opencv-python-headless); use --out, or "
                        "install opencv-python on a machine with a display") from None
