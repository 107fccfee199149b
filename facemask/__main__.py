"""`facemask predict|video|serve|export|explain|rollback` (or `python -m facemask ...`): use the trained champion.

Each command's options, and the modules whose defaults they show, load only when that command is named, so
`facemask --help` answers without importing TensorFlow.
"""
import argparse
import sys
from pathlib import Path

from facemask.core.outputs import BEST_MODEL, EXPORT_DIR, EXPORT_REPORT
from facemask.core.params import Explain, Export, Select
from facemask.core.stage import run as run_entry_point
from facemask.core.tensorflow_logs import quiet_tensorflow

MODEL_HELP = (f"a saved .keras file (default {BEST_MODEL}) or a registry URI: models:/facemask@champion, "
              "models:/facemask/3, runs:/<run id>/model (read from MLFLOW_TRACKING_URI)")


def run_predict(args) -> int:
    from facemask.store.loading import load_model
    from facemask.use import predict
    from facemask.use.detect import make_detector

    predictor = predict.Predictor(load_model(args.model), make_detector(args.detector),
                                  whole_image=args.whole_image, margin=args.margin, detect=not args.no_detect)
    failed = predict.run(args.paths, predictor, args.out, args.json)
    if failed:
        print(f"predict: {failed} file(s) could not be read", file=sys.stderr)
    return 1 if failed else 0


def run_serve(args) -> None:
    from facemask.use.server.app import Limits
    from facemask.use.server.run import serve

    serve(args.model, args.host, args.port, args.detector, args.workers, args.queue, args.whole_image,
          args.max_pixels, Limits(args.max_bytes, args.max_images), args.access_log)


def run_video(args) -> None:
    from facemask.use import video
    from facemask.use.detect import make_detector

    classifier = video.load_classifier(args.model, args.export_dir, keras_only=args.keras)
    video.run(args.source, classifier, make_detector(args.detector), args.out, sys.stdout if args.json else None,
              args.show, args.smooth, args.stall_timeout, args.margin, detect_every=args.detect_every)


def run_export(args) -> None:
    from facemask.use import export

    report = export.export_and_check(args.model, args.split, args.out, args.metrics, args.calibration, args.seconds,
                                     args.formats, {"tflite_int8": (args.int8_min_agreement, args.int8_max_gap)})
    print(export.summary(report, args.out))


def run_explain(args) -> None:
    from facemask.pipeline.splits import split_images
    from facemask.store.loading import load_model
    from facemask.use import explain

    paths, labels = split_images("test", args.split)
    summary = explain.explain(load_model(args.model), paths, labels, args.out, args.per_class, args.seed)
    if args.mlflow:
        explain.log_to_mlflow(args.out, args.model)
    print(explain.summary_text(summary, args.out))


def run_rollback(args) -> None:
    from facemask.store.registry import CHAMPION, rollback

    before, after = rollback(args.name, args.to)
    print(f"rollback: {args.name}@{CHAMPION} moved from version {before} to version {after}")


def add_detector_option(cmd) -> None:
    from facemask.use.detect import DEFAULT_DETECTOR, DETECTORS

    cmd.add_argument("--detector", choices=sorted(DETECTORS), default=DEFAULT_DETECTOR,
                     help=f"face detector (default {DEFAULT_DETECTOR}, chosen by benchmarks/bench_detect.py)")


def predict_options(cmd) -> None:
    from facemask.use.predict import MARGIN

    cmd.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (searched recursively)")
    cmd.add_argument("--model", default=BEST_MODEL, help=MODEL_HELP)
    cmd.add_argument("--out", type=Path, help="also write each photo with boxes and labels drawn into this folder")
    cmd.add_argument("--json", action="store_true", help="print one JSON object per face (default: text)")
    cmd.add_argument("--whole-image", action="store_true", help="classify the whole image when no face is found")
    cmd.add_argument("--no-detect", action="store_true", help="classify each image whole (inputs are face crops)")
    cmd.add_argument("--margin", type=float, default=MARGIN, help="crop margin around each face, share of its size")
    add_detector_option(cmd)


def serve_options(cmd) -> None:
    from facemask.core.images import DEFAULT_MAX_PIXELS
    from facemask.use.server.app import DEFAULT_MAX_BYTES, DEFAULT_MAX_IMAGES
    from facemask.use.server.run import DEFAULT_HOST, DEFAULT_PORT, DEFAULT_QUEUE, DEFAULT_WORKERS

    cmd.add_argument("--model", default=BEST_MODEL, help=MODEL_HELP + "; or an exported .tflite file")
    cmd.add_argument("--host", default=DEFAULT_HOST)
    cmd.add_argument("--port", type=int, default=DEFAULT_PORT)
    cmd.add_argument("--workers", type=int, default=DEFAULT_WORKERS,
                     help=f"worker processes, each with its own detector and model (default: the CPUs, {DEFAULT_WORKERS})")
    cmd.add_argument("--queue", type=int, default=DEFAULT_QUEUE,
                     help="images that may wait for a worker; beyond them a request gets 503 with Retry-After")
    cmd.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES, help="largest accepted request body")
    cmd.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                     help="largest image (width x height), checked before decoding")
    cmd.add_argument("--max-images", type=int, default=DEFAULT_MAX_IMAGES, help="most images in one request")
    cmd.add_argument("--whole-image", action="store_true", help="default for ?whole_image=")
    cmd.add_argument("--access-log", action="store_true", help="print a line per request")
    add_detector_option(cmd)


def video_options(cmd) -> None:
    from facemask.use.predict import MARGIN
    from facemask.use.video import DETECT_EVERY, SMOOTH_FRAMES, STALL_TIMEOUT_S

    cmd.add_argument("source", metavar="SOURCE", help="a video file, a webcam index (0) or a stream URL (rtsp://...)")
    cmd.add_argument("--model", type=Path, default=BEST_MODEL)
    cmd.add_argument("--export-dir", type=Path, default=EXPORT_DIR,
                     help="TFLite exports used instead of --model when they exist and are not older (int8 only if "
                          "reports/export.json shows >= 99%% agreement with --model, else float)")
    cmd.add_argument("--keras", action="store_true", help="use --model even when the exports exist")
    cmd.add_argument("--out", type=Path, help="write the annotated video here (.mp4 or .avi)")
    cmd.add_argument("--json", action="store_true", help="print one JSON object per frame and face, then a summary")
    cmd.add_argument("--show", action="store_true", help="show the annotated frames in a window (q quits)")
    cmd.add_argument("--smooth", type=int, default=SMOOTH_FRAMES, help="frames a face's probabilities are averaged over")
    cmd.add_argument("--stall-timeout", type=float, default=STALL_TIMEOUT_S, help="seconds without a frame before giving up")
    cmd.add_argument("--margin", type=float, default=MARGIN, help="crop margin around each face, share of its size")
    cmd.add_argument("--detect-every", type=int, default=DETECT_EVERY,
                     help="run the detector on every n-th frame; the frames between reuse its boxes (1: every frame)")
    add_detector_option(cmd)


def export_options(cmd) -> None:
    from facemask.use.export import FORMATS

    def formats(text: str) -> tuple:
        chosen = tuple(name.strip() for name in text.split(",") if name.strip())
        unknown = sorted(set(chosen) - set(FORMATS))
        if unknown or not chosen:
            raise argparse.ArgumentTypeError(
                f"unknown format(s) {', '.join(unknown) or '(none)'}; choose from {','.join(FORMATS)}")
        return chosen

    defaults = Export()  # params.yaml's export section, as the pipeline's export stage passes it
    cmd.add_argument("--model", default=BEST_MODEL, help=MODEL_HELP)
    cmd.add_argument("--split", type=Path, default=Path("data/split"), help="split stage output (split.csv)")
    cmd.add_argument("--out", type=Path, default=EXPORT_DIR)
    cmd.add_argument("--metrics", type=Path, default=EXPORT_REPORT, help="the parity and speed report")
    cmd.add_argument("--formats", type=formats, default=FORMATS, help=f"comma-separated, of: {','.join(FORMATS)}")
    cmd.add_argument("--calibration", type=int, default=defaults.calibration, help="training images for int8 calibration")
    cmd.add_argument("--seconds", type=float, default=defaults.seconds, help="timing per format")
    cmd.add_argument("--int8-min-agreement", type=float, default=defaults.int8_min_agreement,
                     help="least share of test images where int8 keeps the Keras model's top-1")
    cmd.add_argument("--int8-max-gap", type=float, default=defaults.int8_max_gap,
                     help="largest mean probability gap (total variation) of int8 to the Keras model")


def explain_options(cmd) -> None:
    cmd.add_argument("--model", default=BEST_MODEL, help=MODEL_HELP)
    cmd.add_argument("--split", type=Path, default=Path("data/split"))
    cmd.add_argument("--out", type=Path, default=Path("reports/explain"))
    cmd.add_argument("--per-class", type=int, default=Explain().per_class)
    cmd.add_argument("--seed", type=int, default=Explain().seed)
    cmd.add_argument("--mlflow", action="store_true", help="log the maps to the champion's MLflow run")


def rollback_options(cmd) -> None:
    cmd.add_argument("--to", type=int, help="the version (default: the newest one before the champion)")
    cmd.add_argument("--name", default=Select().model_name, help="the registered model (params.yaml select.model_name)")


# name: (help, options, what runs it)
COMMANDS = {
    "predict": ("classify every face in photos and folders", predict_options, run_predict),
    "video": ("label every face in a video file, webcam or stream, frame by frame", video_options, run_video),
    "serve": ("serve the model over HTTP: a page at /, POST /predict, /health, /metrics, /docs", serve_options,
              run_serve),
    "export": ("TFLite (float, int8) and ONNX, with parity and speed report", export_options, run_export),
    "explain": ("Grad-CAM maps for a sample of test images per class", explain_options, run_explain),
    "rollback": ("move the registry's champion alias back to an earlier version", rollback_options, run_rollback),
}
WITHOUT_KERAS = {"rollback", "serve"}  # serve: only its workers import TensorFlow


def parser(argv: list[str]) -> argparse.ArgumentParser:
    """The parser for `argv`: every command's name, and the options of the one argv names."""
    top = argparse.ArgumentParser(prog="facemask", description=__doc__.split("\n\n")[0])
    commands = top.add_subparsers(required=True, metavar="COMMAND")
    named = next((arg for arg in argv if arg in COMMANDS), None)
    for name, (text, options, command) in COMMANDS.items():
        cmd = commands.add_parser(name, help=text, description=text)
        if name == named:
            if name not in WITHOUT_KERAS:
                quiet_tensorflow()  # before the command's modules import Keras
            options(cmd)
        cmd.set_defaults(command=command)
    return top


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser(argv).parse_args(argv)
    return args.command(args) or 0


def cli() -> None:
    """The `facemask` console script."""
    run_entry_point(lambda: sys.exit(main()), "facemask")


if __name__ == "__main__":
    cli()
