"""The model a server's workers run: a TFLite file, and the version label every answer carries.

`--model` names a saved .keras file, a registry URI (models:/facemask@champion) or a .tflite file. For a
Keras model, the export in models/export is used when reports/export.json says it was made from this very
model (same sha256) and is within its parity tolerance; of the TFLite formats that qualify (float, int8),
the one with the lower batch-1 latency there, as a request usually holds one face. Otherwise the model is
converted to float TFLite as the server starts, in a process of its own: the server's process never imports
TensorFlow.
"""
import atexit
import hashlib
import json
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from facemask.core import UserError
from facemask.core.outputs import EXPORT_REPORT
from facemask.use.server import worker

TFLITE_FORMATS = ("tflite", "tflite_int8")


@dataclass(frozen=True)
class ServedModel:
    tflite: Path  # what every worker loads
    version: str  # which model answers: a registry version, or a file and its sha256
    format: str  # tflite or tflite_int8, and where the file came from


def resolve(spec, report_path=EXPORT_REPORT) -> ServedModel:
    """The ServedModel for a --model: a .tflite file as it is, else the Keras model's export or conversion."""
    text = str(spec)
    if text.startswith(("models:/", "runs:/")):
        from facemask.store.registry import local_model, model_version

        pinned, version = model_version(text)
        keras_file = local_model(pinned)
    else:
        keras_file = Path(spec)
        if not keras_file.is_file():
            raise UserError(f"--model {spec}: no such model; run `dvc repro` first, pass a .keras or .tflite file, "
                            "or a registry URI such as models:/facemask@champion")
        version = f"{keras_file} sha256:{sha256(keras_file)[:12]}"
        if keras_file.suffix == ".tflite":
            return ServedModel(keras_file, version, "tflite (as given)")
    exported = checked_export(keras_file, Path(report_path))
    if exported is not None:
        name, path = exported
        return ServedModel(path, version, f"{name} (export checked in {report_path})")
    return ServedModel(convert(keras_file), version, "tflite (converted at start)")


def checked_export(keras_file: Path, report_path: Path) -> tuple[str, Path] | None:
    """(format, file) of the fastest TFLite export that the parity report passed for this model, or None."""
    if not report_path.is_file():
        return None
    formats = json.loads(report_path.read_text()).get("formats", {})
    source = Path(formats.get("keras", {}).get("file", ""))
    if not source.is_file() or sha256(source) != sha256(keras_file):
        return None
    passed = [(result["latency_ms_p50"], name, Path(result["file"])) for name, result in formats.items()
              if name in TFLITE_FORMATS and result.get("ok") and Path(result["file"]).is_file()]
    return min(passed)[1:] if passed else None


def convert(keras_file: Path) -> Path:
    """The Keras model converted to float TFLite in a temporary folder (removed when the server exits)."""
    folder = Path(tempfile.mkdtemp(prefix="facemask-serve-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as converter:
        return Path(converter.submit(worker.convert, str(keras_file), str(folder)).result())


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
