"""Benchmark of `python -m facemask video`: the face detectors, and video end to end on this machine.

    python benchmarks/bench_video.py [--model models/best/model.keras] [--dataset ../shared/datasets/facemask-age]

1. Detectors (every name in facemask.use.detect.DETECTORS, and BlazeFace's full-range model): recall on a
   sample of the dataset's masked and unmasked photos (tight face crops, as given) at the score
   threshold where at most --max-fp of the non-face images get a box; the non-face images are other
   dataset photos cut into 4x4 tiles and shuffled (same colours and textures, no face). Also recall on
   faces pasted into 640x480 frames (found when a box's centre is inside the face) and ms per frame.
2. Video end to end: a 640x480 clip with 1-3 moving faces through `video` (default detector, int8
   classifier, annotated video written), frames/s; beside it, the same clip through a loop built the
   way the original project runs (MTCNN, a Keras `predict` call per face per frame), and the ratio;
   and how often `video`'s labels agree with `predict` (Keras model, same detector) on the same frames.
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

import numpy as np

from facemask.core.images import load_rgb
from facemask.core.tensorflow_logs import quiet_tensorflow
from facemask.ops.datasets import clip_frames, write_clip
from facemask.use.detect import DETECTORS, BlazeFaceDetector, FaceDetector, crop, make_detector

REPO = Path(__file__).resolve().parents[1]
def scrambled(rgb: np.ndarray, rng, tiles: int = 4) -> np.ndarray:
    """The photo cut into tiles x tiles pieces, shuffled: its colours and textures without its face."""
    height, width = (rgb.shape[0] // tiles) * tiles, (rgb.shape[1] // tiles) * tiles
    pieces = [rgb[r * height // tiles:(r + 1) * height // tiles, c * width // tiles:(c + 1) * width // tiles]
              for r in range(tiles) for c in range(tiles)]
    order = rng.permutation(len(pieces))
    rows = [np.concatenate([pieces[order[r * tiles + c]] for c in range(tiles)], axis=1) for r in range(tiles)]
    return np.concatenate(rows, axis=0)


def best_score(faces) -> float:
    return max((face.score for face in faces), default=0.0)


def detector_table(detectors: dict, masked, unmasked, negatives, frames, max_fp: float) -> dict:
    results = {}
    for name, detector in detectors.items():
        detector.detect(masked[0])  # loads the network
        scores = {group: np.array([best_score(detector.detect(rgb)) for rgb in images])
                  for group, images in (("masked", masked), ("unmasked", unmasked), ("non_face", negatives))}
        allowed = int(np.floor(max_fp * len(negatives)))
        negative_scores = np.sort(scores["non_face"])[::-1]
        above = negative_scores[allowed] if allowed < len(negative_scores) else 0.0
        threshold = float(np.nextafter(above, 1.0)) if above > 0 else 1e-9  # strictly above the allowed ones
        found = total = 0
        started = time.perf_counter()
        for rgb, boxes in frames:
            faces = detector.detect(rgb)
            total += len(boxes)
            found += sum(any(x <= f.box[0] + f.box[2] / 2 <= x + w and y <= f.box[1] + f.box[3] / 2 <= y + h
                             for f in faces) for x, y, w, h in boxes)
        ms = 1000 * (time.perf_counter() - started) / len(frames)
        results[name] = {"recall_masked": round(float((scores["masked"] >= threshold).mean()), 3),
                         "recall_unmasked": round(float((scores["unmasked"] >= threshold).mean()), 3),
                         "false_positives": int((scores["non_face"] >= threshold).sum()),
                         "false_positives_at_own_cutoff": int((scores["non_face"] > 0).sum()),
                         "threshold": round(threshold, 4), "recall_in_frames": round(found / total, 3),
                         "ms_per_frame": round(ms, 1)}
        print(f"  {name}: {results[name]}", file=sys.stderr, flush=True)
    return results


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
    """Share of faces where video's labels equal predict's (Keras model, same detector) on the same frame."""
    import cv2

    from facemask.use.predict import Predictor

    predictor = Predictor(model, make_detector())
    by_frame = {}
    for record in records:
        if record.get("status") == "face":
            by_frame.setdefault(record["frame"], []).append(record)
    capture, same_frame, same_smoothed, compared = cv2.VideoCapture(str(clip)), 0, 0, 0
    for index in range(limit):
        ok, bgr = capture.read()
        if not ok:
            break
        expected = {tuple(r["box"]): r["label"] for r in predictor.predict_image(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB),
                                                                                 f"frame {index}")
                    if r["status"] == "face"}
        for record in by_frame.get(index, []):
            if tuple(record["box"]) in expected:
                compared += 1
                same_frame += record["frame_label"] == expected[tuple(record["box"])]
                same_smoothed += record["label"] == expected[tuple(record["box"])]
    capture.release()
    return {"faces_compared": compared, "frame_label_agreement": round(same_frame / max(1, compared), 3),
            "smoothed_label_agreement": round(same_smoothed / max(1, compared), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=REPO / "models" / "best" / "model.keras")
    parser.add_argument("--dataset", type=Path, default=REPO.parent / "shared" / "datasets" / "facemask-age")
    parser.add_argument("--per-group", type=int, default=80, help="photos per group (masked, unmasked, non-face)")
    parser.add_argument("--frames", type=int, default=30, help="640x480 frames for the detectors' speed and recall")
    parser.add_argument("--clip-frames", type=int, default=150, help="frames of the end-to-end clip (15 frames/s)")
    parser.add_argument("--baseline-frames", type=int, default=40, help="frames through the original-style loop")
    parser.add_argument("--max-fp", type=float, default=0.02, help="largest share of non-face images with a box")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    quiet_tensorflow()

    from facemask.core.model import input_size
    from facemask.core.resize import resize_batch
    from facemask.use.export import export
    from facemask.use.video import load_classifier, run

    rng = random.Random(0)
    photos = {group: sorted((args.dataset / "images").glob(f"{group}_*/*")) for group in ("with_mask", "without_mask")}
    if not all(photos.values()):
        sys.exit(f"bench_video: no dataset photos under {args.dataset}/images; pass --dataset")
    masked = [load_rgb(p) for p in rng.sample(photos["with_mask"], 2 * args.per_group)]
    unmasked = [load_rgb(p) for p in rng.sample(photos["without_mask"], 2 * args.per_group)]
    half = args.per_group // 2
    negatives = [scrambled(rgb, np.random.default_rng(i))
                 for i, rgb in enumerate(masked[args.per_group:][:half] + unmasked[args.per_group:][:half])]
    masked, unmasked = masked[:args.per_group], unmasked[:args.per_group]
    frames = list(clip_frames(masked[:2] + unmasked[:1], args.frames, seed=1))
    detectors = {name: make_detector(name) for name in DETECTORS}
    detectors["blazeface (full-range)"] = BlazeFaceDetector(model="full")
    report = {"cpus": os.cpu_count(), "photos_per_group": args.per_group, "max_fp": args.max_fp}
    print(f"bench_video: detectors on {args.per_group} masked, {args.per_group} unmasked, {len(negatives)} non-face "
          f"images and {args.frames} frames of 640x480", file=sys.stderr)
    report["detectors"] = detector_table(detectors, masked, unmasked, negatives, frames, args.max_fp)

    model, model_name = classifier_model(args.model)
    size = input_size(model)
    report["model"] = model_name
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        calibration = resize_batch(masked[:16] + unmasked[:16], size)
        int8 = export(model, tmp / "export", calibration, ("tflite_int8",))["tflite_int8"]
        clip_photos = [masked[2], unmasked[2], masked[3]]
        write_clip(tmp / "clip.mp4", clip_photos, args.clip_frames, seed=2)
        classifier = load_classifier(tmp / "none.keras", int8)
        records = io.StringIO()
        summary = run(str(tmp / "clip.mp4"), classifier, make_detector(), tmp / "annotated.mp4", records)
        report["video"] = {k: summary[k] for k in ("classifier", "frames_processed", "frames_dropped", "faces_seen",
                                                    "frames_per_second")}
        report["original_loop"] = original_loop(tmp / "clip.mp4", model, size, args.baseline_frames)
        report["speed_ratio"] = round(summary["frames_per_second"] / report["original_loop"]["frames_per_second"], 1)
        parsed = [json.loads(line) for line in records.getvalue().splitlines()]
        report["agreement_with_predict"] = label_agreement(tmp / "clip.mp4", parsed, model, 60)
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


def print_report(report: dict) -> None:
    print(f"## Detectors ({report['photos_per_group']} photos per group, threshold at <= {report['max_fp']:.0%} "
          f"false positives on non-face images, {report['cpus']} CPUs)\n")
    print("| detector | recall masked | recall unmasked | false positives | recall in 640x480 frames | ms / frame |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in report["detectors"].items():
        print(f"| {name} | {r['recall_masked']:.1%} | {r['recall_unmasked']:.1%} | {r['false_positives']} "
              f"(own cut-off: {r['false_positives_at_own_cutoff']}) | {r['recall_in_frames']:.1%} | "
              f"{r['ms_per_frame']} |")
    video, original = report["video"], report["original_loop"]
    print(f"\n## Video end to end (640x480, 1-3 faces, classifier: {report['model']})\n")
    print(f"- video (default detector, {video['classifier']}): {video['frames_per_second']} frames/s over "
          f"{video['frames_processed']} frames, {video['faces_seen']} faces seen")
    print(f"- original-style loop (MTCNN, Keras predict() per face): {original['frames_per_second']} frames/s over "
          f"{original['frames']} frames; video is {report['speed_ratio']}x faster")
    agreement = report["agreement_with_predict"]
    print(f"- labels equal to predict's on the same frames ({agreement['faces_compared']} faces): this frame's "
          f"{agreement['frame_label_agreement']:.1%}, smoothed {agreement['smoothed_label_agreement']:.1%}"
          + (" (untrained model: near-uniform probabilities, agreement not meaningful)"
             if report["model"].startswith("untrained") else ""))


if __name__ == "__main__":
    main()
