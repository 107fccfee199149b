"""Stage export: the champion as TFLite (float, int8) and ONNX in models/export, parity and speed in
reports/export.json (facemask.use.export does the work; `facemask export` is the same by hand)."""
from facemask.core.outputs import BEST_MODEL, EXPORT_DIR, EXPORT_REPORT
from facemask.core.params import load_params
from facemask.core.stage import require, run
from facemask.pipeline.splits import SPLIT_DIR
from facemask.use.export import FORMATS, export_and_check, summary


def main() -> None:
    params = load_params().export
    report = export_and_check(require(BEST_MODEL, "select"), SPLIT_DIR, EXPORT_DIR, EXPORT_REPORT, params.calibration,
                              params.seconds, FORMATS, {"tflite_int8": (params.int8_min_agreement, params.int8_max_gap)})
    print(summary(report, EXPORT_DIR))


if __name__ == "__main__":
    run(main, "export")
