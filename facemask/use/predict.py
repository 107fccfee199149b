"""Classify every face in photos with the saved champion: detect, crop, one record per face.

The one preprocessing path: a face crop (or the whole image) goes through the same resize as
`facemask.core.resize.load_batch` and then the saved model, exactly as the evaluate stage does.
"""
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from facemask.core import CLASSES, UserError
from facemask.core.images import IMAGE_SUFFIXES, ImageError, load_rgb
from facemask.core.model import input_size
from facemask.core.resize import resize_batch
from facemask.use.detect import FaceDetector, crop, make_detector

MARGIN = 0.2  # crop margin around each face, share of its size


def label_fields(probabilities) -> dict:
    """The JSON fields for one face: label, mask, age_group, confidence, per-class probabilities."""
    best = int(np.argmax(probabilities))
    label = CLASSES[best]
    return {
        "label": label,
        "mask": label.startswith("with_mask"),
        "age_group": label.rsplit("_", 1)[1],
        "confidence": round(float(probabilities[best]), 5),
        "probabilities": {c: round(float(p), 5) for c, p in zip(CLASSES, probabilities, strict=True)},
    }


@dataclass
class Classifier:
    """Class probabilities for a list of RGB images or face crops of any size, resized exactly as load_batch
    does; `run` is the model (Keras or an export), `name` says which model file runs."""

    run: object  # (n, size, size, 3) float32 batch -> (n, 4) probabilities
    image_size: int
    name: str

    def __call__(self, crops: list[np.ndarray]) -> np.ndarray:
        return np.asarray(self.run(resize_batch(crops, self.image_size))) if crops else np.zeros((0, len(CLASSES)))


class Predictor:
    """A loaded model and detector: `predict_image(rgb, file)` gives one record per face.

    `model` is a Keras model or a Classifier (an exported TFLite model, as the server's workers run).
    detect=False classifies every image whole (inputs that are face crops already, like the dataset).
    """

    def __init__(self, model, detector: FaceDetector | None = None, whole_image: bool = False, margin: float = MARGIN,
                 detect: bool = True):
        self.model, self.whole_image, self.margin, self.detect = model, whole_image or not detect, margin, detect
        self.detector = detector or make_detector()
        self.classify = model if isinstance(model, Classifier) else \
            Classifier(lambda batch: model.predict_on_batch(batch), input_size(model), "Keras")

    def predict_image(self, rgb: np.ndarray, file: str, whole_image: bool | None = None) -> list[dict]:
        """Records for every face found; with no face, the whole image's record or a `no_face` one."""
        whole_image = self.whole_image if whole_image is None else whole_image
        faces = self.detector.detect(rgb) if self.detect else []
        if faces:
            probabilities = self.classify([crop(rgb, face.box, self.margin) for face in faces])
            return [{"file": file, "status": "face", "box": list(face.box), "detector_score": face.score,
                     **label_fields(p)} for face, p in zip(faces, probabilities, strict=True)]
        if whole_image:
            height, width = rgb.shape[:2]
            return [{"file": file, "status": "whole_image", "box": [0, 0, width, height], "detector_score": None,
                     **label_fields(self.classify([rgb])[0])}]
        return [{"file": file, "status": "no_face"}]


def collect(paths) -> list[tuple[Path, Path | None]]:
    """(file, folder it was found in or None) for each path: files as given, folders recursively."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            found += [(p, path) for p in sorted(path.rglob("*"))
                      if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")]
        else:
            found.append((path, None))
    return found


def annotate(rgb: np.ndarray, records: list[dict]) -> Image.Image:
    """The photo with a box and `mask/no mask, age, confidence` drawn for each record."""
    image = Image.fromarray(rgb)
    draw = ImageDraw.Draw(image)
    line = max(2, round(max(image.size) / 300))
    font = ImageFont.load_default(size=max(12, round(max(image.size) / 40)))
    for record in records:
        if record["status"] == "no_face":
            draw.text((line, line), "no face found", fill=(255, 200, 0), font=font,
                      stroke_width=2, stroke_fill=(0, 0, 0))
            continue
        x, y, w, h = record["box"]
        colour = (0, 200, 80) if record["mask"] else (230, 40, 40)
        text = f"{'mask' if record['mask'] else 'no mask'}, {record['age_group']} {record['confidence']:.0%}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        label_height = bottom - top + 2 * line
        label_y = y - label_height if y >= label_height else y + h
        draw.rectangle((x, y, x + w - 1, y + h - 1), outline=colour, width=line)
        draw.rectangle((x, label_y, x + right - left + 2 * line, label_y + label_height), fill=colour)
        draw.text((x + line - left, label_y + line - top), text, fill=(255, 255, 255), font=font)
    return image


def output_path(out_dir: Path, file: Path, folder: Path | None) -> Path:
    """Where the annotated copy of `file` goes: mirrors the folder it came from; JPEG/PNG kept, else PNG."""
    relative = Path(folder.name) / file.relative_to(folder) if folder else Path(file.name)
    target = out_dir / relative
    return target if target.suffix.lower() in (".jpg", ".jpeg", ".png") else target.with_name(target.name + ".png")


def output_paths(files: list[tuple[Path, Path | None]], out_dir: Path) -> list[Path]:
    """output_path of each (file, folder); a UserError if one would overwrite an input or another file's copy.

    A target that exists and is no input is overwritten: it is taken for an earlier run's output, so that
    running again into the same --out folder works.
    """
    for folder in {folder for _, folder in files if folder is not None}:
        if out_dir.resolve().is_relative_to(folder.resolve()):
            raise UserError(f"--out {out_dir} is inside the input folder {folder}: a later run would read the "
                            "annotated copies as photos; pass an --out folder outside it")
    inputs = {file.resolve(): file for file, _ in files}
    written, targets = {}, []
    for file, folder in files:
        target = output_path(out_dir, file, folder)
        key = target.resolve()
        if key in inputs:
            raise UserError(f"--out {out_dir}: the annotated copy of {file} would overwrite the input {inputs[key]}; "
                            "pass another --out folder")
        if key in written:
            raise UserError(f"--out {out_dir}: the annotated copies of {written[key]} and {file} would both be "
                            f"{target}; predict them in separate runs with different --out folders")
        written[key] = file
        targets.append(target)
    return targets


def format_text(record: dict) -> str:
    """One human-readable line for a record."""
    if record["status"] == "error":
        return f"{record['file']}: error: {record['error']}"
    if record["status"] == "no_face":
        return f"{record['file']}: no face found"
    whole = " (whole image)" if record["status"] == "whole_image" else ""
    return (f"{record['file']}: {record['label']} ({'mask' if record['mask'] else 'no mask'}, {record['age_group']}) "
            f"{record['confidence']:.1%} box={record['box']}{whole}")


def run(paths, predictor: Predictor, out_dir: Path | None = None, as_json: bool = False, stream=None) -> int:
    """Predict every photo under `paths`, printing one line per face; returns how many files failed."""
    from tqdm import tqdm

    files = collect(paths)
    if not files:
        raise UserError(f"no image files found in: {' '.join(map(str, paths))}")
    targets = output_paths(files, Path(out_dir)) if out_dir is not None else [None] * len(files)
    failed, stream = 0, stream or sys.stdout
    show_bar = any(folder for _, folder in files)
    for (file, _), target in tqdm(zip(files, targets, strict=True), total=len(files), unit="photo",
                                  disable=None if show_bar else True, file=sys.stderr):
        try:
            rgb = load_rgb(file)
            records = predictor.predict_image(rgb, str(file))
        except ImageError as err:  # unreadable, missing, not an image, too many pixels
            failed += 1
            records, rgb = [{"file": str(file), "status": "error", "error": str(err)}], None
        for record in records:
            tqdm.write(json.dumps(record) if as_json else format_text(record), file=stream)
        if target is not None and rgb is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            annotate(rgb, records).save(target)
    return failed
