"""Export the champion to TFLite (float32 and int8) and ONNX, check parity, and time every format.

Every format takes the same input as the Keras model: raw RGB (0..255, float32), but at a fixed
size, the model's resize size (TFLite wants static shapes). `facemask.core.resize.load_batch` resizes
exactly as the model does, so its batches make the model's own resize a no-op and results match.
int8 is full-integer quantisation (weights and activations, calibrated on training images) with
float32 input and output, so callers feed and read the same thing for every format.
"""
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from facemask.core import UserError
from facemask.core.files import write_json
from facemask.core.model import input_size, load
from facemask.core.outputs import EXPORT_FILES
from facemask.core.params import Export
from facemask.core.progress import bar
from facemask.core.resize import load_batch
from facemask.pipeline.splits import split_images
from facemask.store.loading import load_model

FORMATS = tuple(EXPORT_FILES)
# Parity with the Keras model on the test split: (least share of equal top-1, largest mean gap), the gap
# being the total variation distance between the two probability vectors of an image.
TOLERANCE = {"tflite": (1.0, 1e-4), "onnx": (1.0, 1e-4),
             "tflite_int8": (Export().int8_min_agreement, Export().int8_max_gap)}


def export(model, out_dir, calibration: np.ndarray, formats=FORMATS) -> dict[str, Path]:
    """Write each format into out_dir; `calibration` is an (n, size, size, 3) batch for int8.

    All formats convert one SavedModel with a fixed input size. ONNX goes through tf2onnx's frozen
    graph of it, not Keras's own ONNX export, which leaves Normalization constants (DenseNet169's
    scaling) as extra graph inputs.
    """
    from facemask.core.quiet_tf import tf

    size = input_size(model)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    with tempfile.TemporaryDirectory() as tmp:
        saved = str(Path(tmp) / "saved_model")
        model.export(saved, format="tf_saved_model", verbose=False,
                     input_signature=[tf.TensorSpec((None, size, size, 3), tf.float32, name="image")])
        for name in bar(formats, "export: converting", unit="format"):
            written[name] = out_dir / EXPORT_FILES[name]
            if name == "onnx":
                _saved_model_to_onnx(saved, written[name])
                continue
            converter = tf.lite.TFLiteConverter.from_saved_model(saved)
            if name == "tflite_int8":
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
                converter.representative_dataset = lambda: ([image[None]] for image in calibration)
                converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            written[name].write_bytes(converter.convert())
    return written


def _saved_model_to_onnx(saved: str, path: Path) -> None:
    import logging

    from tf2onnx import convert, tf_loader

    levels = {name: logging.getLogger(name).level for name in ("tf2onnx", "tensorflow")}
    for name in levels:  # tf2onnx logs every optimiser pass, TF warns of its own deprecated helpers
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        graph, inputs, outputs = tf_loader.from_saved_model(saved, None, None, tag="serve",
                                                             signatures=["serving_default"])
        convert.from_graph_def(graph, input_names=inputs, output_names=outputs, output_path=str(path))
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def keras_runner(model):
    """A function from an (n, size, size, 3) float32 batch to (n, 4) probabilities, for a loaded Keras model."""
    return lambda batch: np.asarray(model.predict_on_batch(batch))


def runner(path, threads: int = 2):
    """A function from an (n, size, size, 3) float32 batch to (n, 4) probabilities, for any format."""
    path = Path(path)
    if path.suffix == ".keras":
        return keras_runner(load(path))
    if path.suffix == ".onnx":
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda batch: session.run(None, {name: np.asarray(batch, np.float32)})[0]
    if path.suffix == ".tflite":
        return _tflite_runner(path, threads)
    raise ValueError(f"{path}: not a .keras, .tflite or .onnx model")


def _interpreter(path: Path, threads: int | None = None):
    from facemask.core.quiet_tf import tf

    with warnings.catch_warnings():  # tf.lite.Interpreter is deprecated for ai_edge_litert, still in TF 2.21
        warnings.simplefilter("ignore")
        return tf.lite.Interpreter(model_path=str(path), num_threads=threads)


def tflite_input_size(path) -> int:
    """The square image size a TFLite export takes (exports have a fixed input size)."""
    return int(_interpreter(Path(path)).get_input_details()[0]["shape"][1])


def _tflite_runner(path: Path, threads: int):
    interpreter = _interpreter(path, threads)
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]
    shape = [None]

    def predict(batch):
        batch = np.asarray(batch, np.float32)
        if shape[0] != batch.shape:
            interpreter.resize_tensor_input(input_index, batch.shape)
            interpreter.allocate_tensors()
            shape[0] = batch.shape
        interpreter.set_tensor(input_index, batch)
        interpreter.invoke()
        return interpreter.get_tensor(output_index).copy()

    return predict


def predict_all(fn, batch: np.ndarray, batch_size: int = 32) -> np.ndarray:
    return np.concatenate([fn(batch[i:i + batch_size]) for i in range(0, len(batch), batch_size)])


def parity(reference: np.ndarray, probabilities: np.ndarray, tolerance: tuple, y_true=None) -> dict:
    """How closely a format's probabilities follow the Keras model's, and whether within `tolerance`."""
    agreement = float((reference.argmax(1) == probabilities.argmax(1)).mean())
    gaps = np.abs(reference - probabilities).sum(axis=1) / 2  # total variation distance per image
    min_agreement, max_mean_gap = tolerance
    result = {"n": len(reference), "top1_agreement": round(agreement, 4),
              "mean_probability_gap": round(float(gaps.mean()), 6), "max_probability_gap": round(float(gaps.max()), 6),
              "ok": bool(agreement >= min_agreement and gaps.mean() <= max_mean_gap),
              "tolerance": {"min_top1_agreement": min_agreement, "max_mean_probability_gap": max_mean_gap}}
    if y_true is not None:
        result["accuracy"] = round(float((probabilities.argmax(1) == np.asarray(y_true)).mean()), 4)
    return result


def timing(fn, image_size: int, batch_size: int = 32, seconds: float = 3.0) -> dict:
    """Batch-1 latency (median ms) and throughput at `batch_size` (faces/s), each for about `seconds`."""
    rng = np.random.default_rng(0)
    one = rng.uniform(0, 255, (1, image_size, image_size, 3)).astype(np.float32)
    many = rng.uniform(0, 255, (batch_size, image_size, image_size, 3)).astype(np.float32)
    fn(one), fn(many)  # warm-up: graph building, tensor allocation
    latencies, deadline = [], time.perf_counter() + seconds / 2
    while time.perf_counter() < deadline or len(latencies) < 3:
        started = time.perf_counter()
        fn(one)
        latencies.append(time.perf_counter() - started)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds / 2 or count < 2 * batch_size:
        fn(many)
        count += batch_size
    return {"latency_ms_p50": round(1000 * float(np.median(latencies)), 2),
            "faces_per_second": round(count / (time.perf_counter() - started), 1), "batch_size": batch_size}


def export_and_check(model_path, split_dir, out_dir, metrics_path, calibration_count: int, seconds: float,
                     formats=FORMATS, tolerance: dict | None = None, seed: int = 1337) -> dict:
    """Export, check parity on the test split, time each format; write the report; fail on parity.

    `tolerance` overrides TOLERANCE per format (a smoke model's near-uniform answers flip under int8).
    """
    tolerance = {**TOLERANCE, **(tolerance or {})}
    model = load_model(model_path)
    size = input_size(model)
    train_paths, _ = split_images("train", split_dir)
    test_paths, y_test = split_images("test", split_dir)
    if not train_paths or not test_paths:
        raise UserError(f"{split_dir}: needs train images (int8 calibration) and test images (parity)")
    chosen = np.random.default_rng(seed).permutation(len(train_paths))[:calibration_count]
    files = export(model, out_dir, load_batch([train_paths[i] for i in sorted(chosen)], size), formats)
    test = load_batch(test_paths, size)
    keras_run = keras_runner(model)
    reference = predict_all(keras_run, test)
    accuracy = round(float((reference.argmax(1) == y_test).mean()), 4)
    report = {"image_size": size, "test_images": len(test_paths),
              "formats": {"keras": {"file": str(model_path), "accuracy": accuracy,
                                    **timing(keras_run, size, seconds=seconds)}}}
    for name, path in bar(files.items(), "export: parity and speed", total=len(files), unit="format"):
        run_format = runner(path)
        report["formats"][name] = {"file": str(path), "bytes": path.stat().st_size,
                                   **parity(reference, predict_all(run_format, test), tolerance[name], y_test),
                                   **timing(run_format, size, seconds=seconds)}
    write_json(metrics_path, report)
    failed = [name for name, r in report["formats"].items() if r.get("ok") is False]
    if failed:
        raise UserError(f"parity outside tolerance for {', '.join(failed)}; see {metrics_path}")
    return report


def summary(report: dict, out_dir) -> str:
    """What export prints: each format's parity and speed, then the fastest."""
    lines = []
    for name, result in report["formats"].items():
        parity_text = f"top-1 agreement {result['top1_agreement']:.2%}, " if "top1_agreement" in result else ""
        lines.append(f"export: {name:12} {parity_text}{result['faces_per_second']} faces/s, "
                     f"{result['latency_ms_p50']} ms (batch 1)")
    fastest = max(report["formats"], key=lambda name: report["formats"][name]["faces_per_second"])
    lines.append(f"export: {len(report['formats']) - 1} formats written to {out_dir}, parity within tolerance; "
                 f"fastest {fastest} ({report['formats'][fastest]['faces_per_second']} faces/s)")
    return "\n".join(lines)
