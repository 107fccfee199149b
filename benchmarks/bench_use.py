"""Benchmark of using the champion: speed per export format, whole-photo latency, face-detection recall.

    python benchmarks/bench_use.py [--model models/best/model.keras] [--dataset ../shared/datasets/facemask-age]

1. Classification speed per format (Keras, TFLite float/int8, ONNX; 2 threads): batch-1 latency and
   faces/s at batch 32, on the model exported afresh into a temporary folder.
2. Whole-photo latency (decode + detect + crop + classify) per backbone model in models/*/model.keras.
3. Detection recall: share of the dataset's photos where MTCNN finds at least one face, on a sample of
   masked photos (with_mask_*) and of unmasked ones, as predict detects (padded photo, then unpadded)
   and unpadded only.
4. Test-split scores of --model through predict's path (detect, crop, classify; the whole photo when
   no face is found) beside evaluate's (the whole photo): what re-framing by the detector costs.
Prints a markdown report; writes benchmarks/results/bench_use.json.
"""
import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from facemask.core import CLASSES
from facemask.core.images import list_class_images, load_rgb
from facemask.core.tensorflow_logs import quiet_tensorflow
from facemask.pipeline.splits import split_images
from facemask.use.detect import FaceDetector

REPO = Path(__file__).resolve().parents[1]


def format_speed(model_path: Path, calibration: list[Path], seconds: float) -> dict:
    from facemask.core.model import input_size, load
    from facemask.core.resize import load_batch
    from facemask.use.export import FORMATS, export, keras_runner, runner, timing

    model = load(model_path)
    size = input_size(model)
    results = {"keras": timing(keras_runner(model), size, seconds=seconds)}
    with tempfile.TemporaryDirectory() as tmp:
        files = export(model, tmp, load_batch(calibration, size), FORMATS)
        for name, path in files.items():
            results[name] = {**timing(runner(path), size, seconds=seconds), "bytes": path.stat().st_size}
    return {"model": str(model_path), "image_size": size, "formats": results}


def whole_photo_latency(model_paths: list[Path], photos: list[Path]) -> dict:
    from facemask.core.model import load
    from facemask.use.predict import Predictor

    detector = FaceDetector()
    rgbs = [load_rgb(p) for p in photos]
    detect_ms = []
    for rgb in [rgbs[0], *rgbs]:  # the first call builds MTCNN
        started = time.perf_counter()
        detector.detect(rgb)
        detect_ms.append(1000 * (time.perf_counter() - started))
    results = {"detection_only": {"ms_p50": round(float(np.median(detect_ms[1:])), 1)}}
    for path in model_paths:
        predictor = Predictor(load(path), detector, whole_image=True)
        predictor.predict_image(rgbs[0], "warm-up")
        times, statuses = [], []
        for photo in photos:  # decoding counts: a photo arrives as a file
            started = time.perf_counter()
            statuses += [r["status"] for r in predictor.predict_image(load_rgb(photo), str(photo))]
            times.append(1000 * (time.perf_counter() - started))
        classify_ms = []
        for rgb in rgbs:
            started = time.perf_counter()
            predictor.classify([rgb])
            classify_ms.append(1000 * (time.perf_counter() - started))
        results[path.parent.name] = {"photos": len(photos), "faces": statuses.count("face"),
                                     "whole_image_fallbacks": statuses.count("whole_image"),
                                     "classify_ms_p50": round(float(np.median(classify_ms)), 1),
                                     "ms_p50": round(float(np.median(times)), 1),
                                     "ms_p90": round(float(np.percentile(times, 90)), 1)}
    return results


def detection_recall(groups: dict[str, list[Path]]) -> dict:
    results = {}
    for setting, detector in (("as predict does (padded, then unpadded)", FaceDetector()),
                              ("unpadded only", FaceDetector(pad=0.0))):
        for group, photos in groups.items():
            found = sum(bool(detector.detect(load_rgb(p))) for p in photos)
            results[f"{group}, {setting}"] = {"photos": len(photos), "with_a_face": found,
                                              "recall": round(found / len(photos), 3)}
    return results


def predict_path_scores(model_path: Path) -> dict:
    """Test-split accuracy and macro-F1 through predict (the most confident face found, else the whole
    photo) and through evaluate's path (the whole photo), for the same model."""
    from facemask.core.model import load, predict_labels
    from facemask.pipeline.evaluation import classification_metrics
    from facemask.use.predict import Predictor

    model = load(model_path)
    paths, y_true = split_images("test", REPO / "data" / "split")
    predictor = Predictor(model, whole_image=True)
    chosen = [max(predictor.predict_image(load_rgb(p), str(p)), key=lambda r: r["detector_score"] or 0)
              for p in paths]
    scores = {}
    for name, labels in (("predict (detect, crop, classify)", [CLASSES.index(r["label"]) for r in chosen]),
                         ("evaluate (whole photo)", predict_labels(model, paths))):
        metrics = classification_metrics(y_true, labels)
        scores[name] = {"accuracy": round(metrics["accuracy"], 4), "macro_f1": round(metrics["macro_f1"], 4)}
    return {"model": str(model_path), "photos": len(paths),
            "faces_found": sum(r["status"] == "face" for r in chosen), "scores": scores}


def markdown(report: dict) -> str:
    speed = report["format_speed"]
    lines = [f"## Classification speed ({speed['model']}, {speed['image_size']} px, "
             f"{report['machine']['cpus']} CPUs)", "",
             "| format | size MB | batch-1 latency ms | faces/s (batch 32) |", "|---|---:|---:|---:|"]
    for name, r in speed["formats"].items():
        size = f"{r['bytes'] / 1e6:.1f}" if "bytes" in r else ""
        lines.append(f"| {name} | {size} | {r['latency_ms_p50']} | {r['faces_per_second']} |")
    lines += ["", "## Whole-photo latency: decode + detect + crop + classify, per photo", "",
              "| model | photos | faces found | whole-image fallbacks | classify one face, p50 ms | photo p50 ms "
              "| photo p90 ms |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in report["whole_photo"].items():
        if name != "detection_only":
            lines.append(f"| {name} | {r['photos']} | {r['faces']} | {r['whole_image_fallbacks']} "
                         f"| {r['classify_ms_p50']} | {r['ms_p50']} | {r['ms_p90']} |")
    lines.append(f"\nDetection alone (MTCNN): p50 {report['whole_photo']['detection_only']['ms_p50']} ms per photo; "
                 f"load average before the run: {report['machine']['load_average']}.")
    lines += ["", "## Face-detection recall (photos with at least one face found)", "",
              "| sample | photos | found | recall |", "|---|---:|---:|---:|"]
    for name, r in report["detection_recall"].items():
        lines.append(f"| {name} | {r['photos']} | {r['with_a_face']} | {r['recall']:.1%} |")
    path = report["predict_path"]
    lines += ["", f"## Test split through predict ({path['model']}; a face found on {path['faces_found']} of "
              f"{path['photos']} photos)", "", "| path | accuracy | macro-F1 |", "|---|---:|---:|"]
    lines += [f"| {name} | {r['accuracy']:.3f} | {r['macro_f1']:.3f} |" for name, r in path["scores"].items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=REPO / "models" / "best" / "model.keras")
    parser.add_argument("--dataset", type=Path, default=REPO.parent / "shared" / "datasets" / "facemask-age")
    parser.add_argument("--masked", type=int, default=100, help="masked photos sampled for detection recall")
    parser.add_argument("--unmasked", type=int, default=50)
    parser.add_argument("--photos", type=int, default=20, help="photos timed per backbone")
    parser.add_argument("--seconds", type=float, default=5.0, help="timing per format")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "bench_use.json")
    args = parser.parse_args()
    quiet_tensorflow()
    for path in (args.model, args.dataset):
        if not path.exists():
            sys.exit(f"bench_use: {path} not found (run `dvc repro`; the dataset lives in ../shared)")
    pairs = list_class_images(args.dataset / "images", CLASSES)
    rng = random.Random(1337)
    masked = rng.sample([p for p, label in pairs if label.startswith("with_mask")], args.masked)
    unmasked = rng.sample([p for p, label in pairs if label.startswith("without_mask")], args.unmasked)
    backbones = sorted((REPO / "models" / "candidates").glob("*/model.keras"))
    report = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average": round(os.getloadavg()[0], 2)},
        "format_speed": format_speed(args.model, rng.sample([p for p, _ in pairs], 100), args.seconds),
        "whole_photo": whole_photo_latency(backbones, rng.sample(masked + unmasked, args.photos)),
        "detection_recall": detection_recall({"masked (with_mask_*)": masked, "unmasked (without_mask_*)": unmasked}),
        "predict_path": predict_path_scores(args.model),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(report))


if __name__ == "__main__":
    main()
