"""Benchmark of `python -m facemask video` end to end on this machine.

    python benchmarks/bench_video.py [--model models/best/model.keras] [--dataset ../shared/datasets/facemask-age]

Video end to end: a 640x480 clip with 1-3 moving faces through `video` (default detector, the TFLite export
video picks by the parity report, annotated video written), frames/s, with the detector on every frame and on
every DETECT_EVERY-th (the shipped default); beside it, the same clip through a loop
built the way the original project runs (MTCNN, a Keras `predict` call per face per frame), and the ratio; and
how often `video`'s labels (shipped default) agree with `predict` (Keras model, same detector) on the same
frames, faces matched by box overlap, for detected frames and for frames that reuse the last boxes. The detectors
themselves are compared on camera frames by benchmarks/bench_detect.py.
When --model is missing, an untrained MobileNetV2 at 224 px stands in: the speeds are real, the labels
meaningless (the output says so). Prints markdown; --json also writes the numbers.
"""
import argparse
import io
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from facemask.core.images import load_rgb
from facemask.core.tensorflow_logs import quiet_tensorflow
from facemask.ops.datasets import write_clip
from facemask.use.detect import FaceDetector, crop, make_detector

REPO = Path(__file__).resolve().parents[1]
def classifier_model(model_path: Path):
    """The saved model, or an untrained MobileNetV2 at 224 px when it is missing (speed only)."""
    from facemask.core.model import build_classifier, load

    if model_path.is_file():
        return load(model_path), str(model_path)
    return build_classifier("MobileNetV2", 224, None), "untrained MobileNetV2 224 px (no trained model here)"


def original_loop(clip: Path, model, image_size: int, limit: int) -> dict:
    """The original project's way: each frame through MTCNN, each face through its own Keras predict()."""
    import cv2

    from facemask.core.resize import resize_batch

    capture, detector, processed = cv2.VideoCapture(str(clip)), FaceDetector(), -1
    started = None
    while processed < limit:
        ok, bgr = capture.read()
        if not ok:
            break
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        for face in detector.detect(rgb):
            model.predict(resize_batch([crop(rgb, face.box)], image_size), verbose=0)
        processed += 1
        if processed == 0:  # the first frame builds MTCNN and predict's graph: not counted
            started = time.perf_counter()
    capture.release()
    seconds = time.perf_counter() - started
    return {"frames": processed, "frames_per_second": round(processed / seconds, 2)}


def label_agreement(clip: Path, records: list[dict], model, limit: int) -> dict:
    """Share of faces where video's labels equal predict's (Keras model, same detector) on the same frame; a
    video face is compared with predict's face of the largest box overlap (IoU >= 0.5), per kind of frame."""
    import cv2
    import numpy as np

    from facemask.use.detect import iou
    from facemask.use.predict import Predictor

    predictor = Predictor(model, make_detector())
    by_frame = {}
    for record in records:
        if record.get("status") == "face":
            by_frame.setdefault(record["frame"], []).append(record)
    counts = {kind: {"faces_compared": 0, "frame_label_agreement": 0, "smoothed_label_agreement": 0}
              for kind in ("detected", "boxes_reused")}
    capture = cv2.VideoCapture(str(clip))
    for index in range(limit):
        ok, bgr = capture.read()
        if not ok:
            break
        expected = [r for r in predictor.predict_image(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), f"frame {index}")
                    if r["status"] == "face"]
        if not expected:
            continue
        boxes = np.asarray([r["box"] for r in expected], np.float64)
        for record in by_frame.get(index, []):
            overlaps = iou(tuple(record["box"]), boxes)
            if overlaps.max() < 0.5:
                continue
            label, kind = expected[int(overlaps.argmax())]["label"], counts["detected" if record["detected"] else "boxes_reused"]
            kind["faces_compared"] += 1
            kind["frame_label_agreement"] += record["frame_label"] == label
            kind["smoothed_label_agreement"] += record["label"] == label
    capture.release()
    for kind in counts.values():
        for key in ("frame_label_agreement", "smoothed_label_agreement"):
            kind[key] = round(kind[key] / max(1, kind["faces_compared"]), 3)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=REPO / "models" / "best" / "model.keras")
    parser.add_argument("--dataset", type=Path, default=REPO.parent / "shared" / "datasets" / "facemask-age")
    parser.add_argument("--per-group", type=int, default=16, help="masked and unmasked photos for the clip and int8 calibration")
    parser.add_argument("--clip-frames", type=int, default=150, help="frames of the end-to-end clip (15 frames/s)")
    parser.add_argument("--baseline-frames", type=int, default=40, help="frames through the original-style loop")
    parser.add_argument("--export-report", type=Path, default=REPO / "reports" / "export.json",
                        help="the parity report that decides int8 or float, as video decides")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    quiet_tensorflow()

    from facemask.core.model import input_size
    from facemask.core.resize import resize_batch
    from facemask.use.export import export
    from facemask.use.video import DETECT_EVERY, load_classifier, run

    rng = random.Random(0)
    photos = {group: sorted((args.dataset / "images").glob(f"{group}_*/*")) for group in ("with_mask", "without_mask")}
    if not all(photos.values()):
        sys.exit(f"bench_video: no dataset photos under {args.dataset}/images; pass --dataset")
    masked = [load_rgb(p) for p in rng.sample(photos["with_mask"], args.per_group)]
    unmasked = [load_rgb(p) for p in rng.sample(photos["without_mask"], args.per_group)]
    report = {"cpus": os.cpu_count()}

    model, model_name = classifier_model(args.model)
    size = input_size(model)
    report["model"] = model_name
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        calibration = resize_batch(masked[:16] + unmasked[:16], size)
        export(model, tmp / "export", calibration, ("tflite", "tflite_int8"))
        clip_photos = [masked[2], unmasked[2], masked[3]]
        write_clip(tmp / "clip.mp4", clip_photos, args.clip_frames, seed=2)
        classifier = load_classifier(tmp / "none.keras", tmp / "export", report=args.export_report)
        every_frame = run(str(tmp / "clip.mp4"), classifier, make_detector(), tmp / "annotated.mp4", detect_every=1)
        records = io.StringIO()
        summary = run(str(tmp / "clip.mp4"), classifier, make_detector(), tmp / "annotated.mp4", records)
        report["video"] = {k: summary[k] for k in ("classifier", "frames_processed", "frames_dropped", "faces_seen",
                                                    "frames_per_second")}
        report["video"]["detect_every"] = DETECT_EVERY
        report["video"]["frames_per_second_detecting_every_frame"] = every_frame["frames_per_second"]
        report["original_loop"] = original_loop(tmp / "clip.mp4", model, size, args.baseline_frames)
        report["speed_ratio"] = round(summary["frames_per_second"] / report["original_loop"]["frames_per_second"], 1)
        parsed = [json.loads(line) for line in records.getvalue().splitlines()]
        report["agreement_with_predict"] = label_agreement(tmp / "clip.mp4", parsed, model, 60)
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


def print_report(report: dict) -> None:
    video, original = report["video"], report["original_loop"]
    print(f"## Video end to end (640x480, 1-3 faces, {report['cpus']} CPUs, classifier: {report['model']})\n")
    print(f"- video (default detector, {video['classifier']}): {video['frames_per_second']} frames/s over "
          f"{video['frames_processed']} frames with the detector on 1 frame in {video['detect_every']} (the "
          f"default), {video['frames_per_second_detecting_every_frame']} frames/s on every frame; "
          f"{video['faces_seen']} faces seen")
    print(f"- original-style loop (MTCNN, Keras predict() per face): {original['frames_per_second']} frames/s over "
          f"{original['frames']} frames; video is {report['speed_ratio']}x faster")
    untrained = " (untrained model: near-uniform probabilities, agreement not meaningful)" \
        if report["model"].startswith("untrained") else ""
    for kind, agreement in report["agreement_with_predict"].items():
        print(f"- labels equal to predict's on the same frames, {kind.replace('_', ' ')} "
              f"({agreement['faces_compared']} faces): this frame's {agreement['frame_label_agreement']:.1%}, "
              f"smoothed {agreement['smoothed_label_agreement']:.1%}{untrained}")

if __name__ == "__main__":
    main()
