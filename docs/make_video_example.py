"""Regenerate docs/video_example.jpg: one frame of `python -m facemask video --out` on a made-up clip.

    python docs/make_video_example.py [--model models/best/model.keras] [--dataset ../shared/datasets/facemask-age]

Two masked and one unmasked chandrikadeb7 photo (MIT licensed; the other sources may not be
redistributed) move over a plain 640x480 background (benchmarks/bench_video.py's clip); the clip goes
through `video` with the default detector, and the annotated frame where all three faces are in view is
saved. Without a trained --model an untrained MobileNetV2 stands in, and the picture says so: run
after `dvc repro` for real labels.
"""
import argparse
import tempfile
from pathlib import Path

import cv2
from PIL import Image, ImageDraw

from facemask.core.images import load_rgb
from facemask.core.model import build_classifier, input_size
from facemask.core.outputs import BEST_MODEL
from facemask.ops.datasets import write_clip
from facemask.use.detect import make_detector
from facemask.use.export import keras_runner
from facemask.use.video import Classifier, load_classifier, run

OUT = Path("docs/video_example.jpg")
PHOTOS = ("with_mask_young/cdeb7_0_0_0066ichXly3gbb630i4w6j30u00tzjtk.jpg", "without_mask_young/cdeb7_0_0_aidai_0074.jpg",
          "with_mask_young/cdeb7_0999.png")
FRAMES = 45


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=BEST_MODEL)
    parser.add_argument("--dataset", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "datasets"
                        / "facemask-age")
    args = parser.parse_args()
    if args.model.is_file():
        classifier, note = load_classifier(args.model), None
    else:
        model = build_classifier("MobileNetV2", 224, None)
        classifier, note = Classifier(keras_runner(model), input_size(model), "untrained"), "untrained model: " \
            "labels meaningless (no models/best/model.keras here)"
    photos = [load_rgb(args.dataset / "images" / name) for name in PHOTOS]
    with tempfile.TemporaryDirectory() as tmp:
        clip, annotated = Path(tmp) / "clip.mp4", Path(tmp) / "annotated.mp4"
        write_clip(clip, photos, FRAMES, seed=4, face_height=(170, 190))
        run(str(clip), classifier, make_detector(), annotated)
        capture = cv2.VideoCapture(str(annotated))
        capture.set(cv2.CAP_PROP_POS_FRAMES, FRAMES - 1)
        _, frame = capture.read()
        capture.release()
    image = Image.fromarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    if note:
        ImageDraw.Draw(image).text((8, image.height - 24), note, fill=(255, 255, 0), stroke_width=2,
                                   stroke_fill=(0, 0, 0))
    image.save(OUT, quality=90)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
