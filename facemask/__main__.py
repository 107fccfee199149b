"""`facemask predict|serve|export|explain` (or `python -m facemask ...`): use the trained champion (README)."""
import argparse
import sys
from pathlib import Path

from facemask import explain, export, predict, serve
from facemask.detect import DEFAULT_DETECTOR, DETECTORS, make_detector
from facemask.export import FORMATS
from facemask.params import Explain, Export, Select
from facemask.predict import DEFAULT_MODEL
from facemask.splits import split_images

MODEL_HELP = (f"a saved .keras file (default {DEFAULT_MODEL}) or a registry URI: models:/facemask@champion, "
              "models:/facemask/3, runs:/<run id>/model (read from MLFLOW_TRACKING_URI)")


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    return args.command(args) or 0


def run_predict(args) -> int:
    predictor = predict.Predictor(predict.load_model(args.model), make_detector(args.detector),
                                  whole_image=args.whole_image, margin=args.margin, detect=not args.no_detect)
    failed = predict.run(args.paths, predictor, args.out, args.json)
    if failed:
        print(f"predict: {failed} file(s) could not be read", file=sys.stderr)
    return 1 if failed else 0


def run_serve(args) -> None:
    predictor = predict.Predictor(predict.load_model(args.model), make_detector(args.detector),
                                  whole_image=args.whole_image)
    serve.serve(predictor, args.host, args.port, args.max_bytes, str(args.model))


def run_video(args) -> None:
    from facemask import video

    classifier = video.load_classifier(args.model, args.int8, keras_only=args.keras)
    video.run(args.source, classifier, make_detector(args.detector), args.out, sys.stdout if args.json else None,
              args.show, args.smooth, args.stall_timeout, args.margin)


def run_export(args) -> None:
    report = export.export_and_check(args.model, args.split, args.out, args.metrics, args.calibration, args.seconds,
                                     args.formats, {"tflite_int8": (args.int8_min_agreement, args.int8_max_gap)})
    for name, result in report["formats"].items():
        parity = f"top-1 agreement {result['top1_agreement']:.2%}, " if "top1_agreement" in result else ""
        print(f"export: {name:12} {parity}{result['faces_per_second']} faces/s, "
              f"{result['latency_ms_p50']} ms (batch 1)")
    fastest = max(report["formats"], key=lambda name: report["formats"][name]["faces_per_second"])
    print(f"export: {len(report['formats']) - 1} formats written to {args.out}, parity within tolerance; "
          f"fastest {fastest} ({report['formats'][fastest]['faces_per_second']} faces/s)")


def run_explain(args) -> None:
    paths, labels = split_images("test", args.split)
    summary = explain.explain(predict.load_model(args.model), paths, labels, args.out, args.per_class, args.seed)
    if args.mlflow:
        explain.log_to_mlflow(args.out, args.model)
    for label, result in summary.items():
        print(f"explain: {label:20} {result['correct']}/{result['n']} correct, mask map lower-half share "
              f"{result['mask_map_lower_half_share']:.2f}, age map {result['age_map_lower_half_share']:.2f}")
    print(f"explain: Grad-CAM maps of {sum(r['n'] for r in summary.values())} test images in {args.out}")


def run_rollback(args) -> None:
    from facemask.registry import rollback

    before, after = rollback(args.name, args.to)
    print(f"rollback: {args.name}@champion moved from version {before} to version {after}")


def formats(text: str) -> tuple:
    chosen = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = sorted(set(chosen) - set(FORMATS))
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"unknown format(s) {', '.join(unknown) or '(none)'}; choose from {','.join(FORMATS)}")
    return chosen


def add_detector_option(cmd) -> None:
    cmd.add_argument("--detector", choices=sorted(DETECTORS), default=DEFAULT_DETECTOR,
                     help=f"face detector (default {DEFAULT_DETECTOR}, chosen by benchmarks/bench_video.py)")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="facemask", description=__doc__)
    commands = top.add_subparsers(required=True, metavar="COMMAND")

    cmd = commands.add_parser("predict", help="classify every face in photos and folders")
    cmd.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (searched recursively)")
    cmd.add_argument("--model", default=DEFAULT_MODEL, help=MODEL_HELP)
    cmd.add_argument("--out", type=Path, help="also write each photo with boxes and labels drawn into this folder")
    cmd.add_argument("--json", action="store_true", help="print one JSON object per face (default: text)")
    cmd.add_argument("--whole-image", action="store_true", help="classify the whole image when no face is found")
    cmd.add_argument("--no-detect", action="store_true", help="classify each image whole (inputs are face crops)")
    cmd.add_argument("--margin", type=float, default=0.2, help="crop margin around each face, share of its size")
    add_detector_option(cmd)
    cmd.set_defaults(command=run_predict)

    cmd = commands.add_parser("serve", help="serve the model over HTTP (POST /predict, GET /health)")
    cmd.add_argument("--model", default=DEFAULT_MODEL, help=MODEL_HELP)
    cmd.add_argument("--host", default="127.0.0.1")
    cmd.add_argument("--port", type=int, default=8000)
    cmd.add_argument("--max-bytes", type=int, default=10 * 1024 * 1024, help="largest accepted request body")
    cmd.add_argument("--whole-image", action="store_true", help="default for ?whole_image=")
    add_detector_option(cmd)
    cmd.set_defaults(command=run_serve)

    cmd = commands.add_parser("video", help="label every face in a video file, webcam or stream, frame by frame")
    cmd.add_argument("source", metavar="SOURCE", help="a video file, a webcam index (0) or a stream URL (rtsp://...)")
    cmd.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    cmd.add_argument("--int8", type=Path, default=Path("models/export/model_int8.tflite"),
                     help="int8 TFLite export, used instead of --model when it exists and is not older")
    cmd.add_argument("--keras", action="store_true", help="use --model even when the int8 export exists")
    cmd.add_argument("--out", type=Path, help="write the annotated video here (.mp4 or .avi)")
    cmd.add_argument("--json", action="store_true", help="print one JSON object per frame and face, then a summary")
    cmd.add_argument("--show", action="store_true", help="show the annotated frames in a window (q quits)")
    cmd.add_argument("--smooth", type=int, default=5, help="frames a face's probabilities are averaged over")
    cmd.add_argument("--stall-timeout", type=float, default=10.0, help="seconds without a frame before giving up")
    cmd.add_argument("--margin", type=float, default=0.2, help="crop margin around each face, share of its size")
    add_detector_option(cmd)
    cmd.set_defaults(command=run_video)

    cmd = commands.add_parser("export", help="TFLite (float, int8) and ONNX, with parity and speed report")
    cmd.add_argument("--model", default=DEFAULT_MODEL, help=MODEL_HELP)
    cmd.add_argument("--split", type=Path, default=Path("data/split"), help="split stage output (split.csv)")
    cmd.add_argument("--out", type=Path, default=Path("models/export"))
    cmd.add_argument("--metrics", type=Path, default=Path("metrics/export.json"))
    cmd.add_argument("--formats", type=formats, default=FORMATS, help=f"comma-separated, of: {','.join(FORMATS)}")
    defaults = Export()  # params.yaml's export section, as the pipeline's export stage passes it
    cmd.add_argument("--calibration", type=int, default=defaults.calibration, help="training images for int8 calibration")
    cmd.add_argument("--seconds", type=float, default=defaults.seconds, help="timing per format")
    cmd.add_argument("--int8-min-agreement", type=float, default=defaults.int8_min_agreement,
                     help="least share of test images where int8 keeps the Keras model's top-1")
    cmd.add_argument("--int8-max-gap", type=float, default=defaults.int8_max_gap,
                     help="largest mean probability gap (total variation) of int8 to the Keras model")
    cmd.set_defaults(command=run_export)

    cmd = commands.add_parser("explain", help="Grad-CAM maps for a sample of test images per class")
    cmd.add_argument("--model", default=DEFAULT_MODEL, help=MODEL_HELP)
    cmd.add_argument("--split", type=Path, default=Path("data/split"))
    cmd.add_argument("--out", type=Path, default=Path("reports/explain"))
    cmd.add_argument("--per-class", type=int, default=Explain().per_class)
    cmd.add_argument("--seed", type=int, default=Explain().seed)
    cmd.add_argument("--mlflow", action="store_true", help="log the maps to the champion's MLflow run")
    cmd.set_defaults(command=run_explain)

    cmd = commands.add_parser("rollback", help="move the registry's champion alias back to an earlier version")
    cmd.add_argument("--to", type=int, help="the version (default: the newest one before the champion)")
    cmd.add_argument("--name", default=Select().model_name, help="the registered model (params.yaml select.model_name)")
    cmd.set_defaults(command=run_rollback)
    return top


def cli() -> None:
    """The `facemask` console script."""
    from facemask.stage import run

    run(lambda: sys.exit(main()), "facemask")


if __name__ == "__main__":
    cli()
