"""Regenerate docs/predict_example.jpg: the champion's `predict` output on a 2x2 collage of test photos.

    python docs/make_predict_example.py [--model models/best/model.keras]

Takes the first two masked and the first two unmasked (any age group) test-split photos from
chandrikadeb7 (MIT licensed; the other sources may not be redistributed), in a seeded order among
those at least 300 px a side, and draws what `python -m facemask predict --out` draws. Run after `dvc repro`.
"""
import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from facemask.core import UserError
from facemask.core.images import load_rgb
from facemask.core.outputs import BEST_MODEL
from facemask.core.stage import run
from facemask.pipeline.splits import image_path, split_rows
from facemask.store.loading import load_model
from facemask.use.predict import Predictor, annotate

OUT = Path("docs/predict_example.jpg")
TILE = 400
SOURCE = "chandrikadeb7_face_mask_detection"


def pick_photos(seed: int = 1337) -> list[Path]:
    """Masked, unmasked, unmasked, masked: test-split photos from SOURCE, at least 300 px a side."""
    rows = [r for r in split_rows("test")
            if r.get("source") == SOURCE and min(int(r["width"]), int(r["height"])) >= 300]
    rows = [rows[i] for i in np.random.default_rng(seed).permutation(len(rows))]
    masked = [image_path(r) for r in rows if r["label"].startswith("with_mask")][:2]
    unmasked = [image_path(r) for r in rows if r["label"].startswith("without_mask")][:2]
    if len(masked) < 2 or len(unmasked) < 2:
        raise UserError(f"fewer than two masked and two unmasked {SOURCE} test photos of 300 px or more "
                        "(split.csv needs its source column); run `dvc repro split`")
    return [masked[0], unmasked[0], unmasked[1], masked[1]]


def collage(photos: list[Path]) -> np.ndarray:
    """The photos centre-cropped to TILE x TILE, in a 2x2 grid."""
    canvas = Image.new("RGB", (2 * TILE, 2 * TILE))
    for index, path in enumerate(photos):
        tile = ImageOps.fit(Image.fromarray(load_rgb(path)), (TILE, TILE))
        canvas.paste(tile, ((index % 2) * TILE, (index // 2) * TILE))
    return np.asarray(canvas)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=BEST_MODEL)
    args = parser.parse_args()
    photos = pick_photos()
    rgb = collage(photos)
    records = Predictor(load_model(args.model)).predict_image(rgb, OUT.name)
    annotate(rgb, records).save(OUT, quality=90)
    for photo in photos:
        print(photo)
    for record in records:
        print(json.dumps({k: record[k] for k in ("status", "box", "label", "confidence") if k in record}))


if __name__ == "__main__":
    run(main, "make_predict_example")
