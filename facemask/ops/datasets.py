"""Small datasets for smoke runs and tests: a stratified subsample of a real one, generated images, or a
generated video clip of moving faces (benchmarks/bench_video.py, docs/make_video_example.py).

    python -m facemask.ops.datasets subsample SOURCE DEST --per-class 24
    python -m facemask.ops.datasets generate DEST --per-class 24
"""
import argparse
import csv
import random
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from facemask.core import CLASSES, UserError
from facemask.core.images import list_class_images
from facemask.core.scenes import FRAME_SIZE

# A distinct look per class, so a model can learn something from generated images.
_COLOURS = {"with_mask_old": (200, 200, 210), "with_mask_young": (90, 160, 230),
            "without_mask_old": (180, 140, 110), "without_mask_young": (230, 190, 160)}


def subsample(source: Path, dest: Path, per_class: int, seed: int = 1337) -> int:
    """Copy `per_class` random images of each class (and their metadata.csv rows) from source to dest."""
    root = source / "images" if (source / "images").is_dir() else source
    pairs = list_class_images(root, CLASSES)
    if not pairs:
        raise UserError(f"{source}: no class folders {list(CLASSES)} found")
    rng = random.Random(seed)
    chosen = []
    for label in CLASSES:
        files = [p for p, lab in pairs if lab == label]
        chosen += rng.sample(files, min(per_class, len(files)))
    _refuse_existing(dest)
    for path in chosen:
        target = dest / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    metadata = source / "metadata.csv"
    if metadata.is_file():
        names = {(p.parent.name, p.name) for p in chosen}
        with open(metadata, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows = [r for r in reader if (r["label"], Path(r["file"]).name) in names]
            fields = reader.fieldnames
        with open(dest / "metadata.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
    return len(chosen)


def generate(dest: Path, per_class: int, size: int = 48, seed: int = 0) -> int:
    """Write `per_class` synthetic face-like PNG/JPEG images per class (a tinted oval, a 'mask' band)."""
    _refuse_existing(dest)
    rng = np.random.default_rng(seed)
    for label in CLASSES:
        folder = dest / label
        folder.mkdir(parents=True)
        for i in range(per_class):
            noise = rng.integers(0, 40, (size, size, 3))
            image = Image.fromarray(np.clip(np.array(_COLOURS[label]) - noise, 0, 255).astype(np.uint8))
            draw = ImageDraw.Draw(image)
            draw.ellipse((size // 5, size // 8, 4 * size // 5, 7 * size // 8), outline=(60, 40, 30), width=2)
            if label.startswith("with_mask"):
                draw.rectangle((size // 4, size // 2, 3 * size // 4, 3 * size // 4), fill=(240, 240, 255))
            suffix = ".png" if i % 2 else ".jpg"
            image.save(folder / f"{label}_{i:03d}{suffix}")
    return per_class * len(CLASSES)


def clip_frames(photos: list[np.ndarray], count: int, size=FRAME_SIZE, seed: int = 0, face_height=(150, 200)):
    """`count` RGB frames of `size` (width, height) on a smooth background, each with the (x, y, w, h)
    box of every face in it: face k of n enters at frame k*count/(n+1) and stays, moving and bouncing
    inside its own vertical lane (a k-th of the width, so faces never overlap), so the first part of
    the clip has one face and the last part all of them."""
    rng = np.random.default_rng(seed)
    width, height = size
    ramp_x, ramp_y = np.linspace(40, 200, width), np.linspace(60, 180, height)
    background = np.stack([ramp_x[None, :] + 0 * ramp_y[:, None], ramp_y[:, None] + 0 * ramp_x[None, :],
                           (ramp_x[None, :] + ramp_y[:, None]) / 2], axis=-1).astype(np.uint8)
    faces = []
    for k, photo in enumerate(photos):
        h = int(rng.integers(*face_height))
        w = max(1, round(photo.shape[1] * h / photo.shape[0]))
        small = np.asarray(Image.fromarray(photo).resize((w, h), Image.Resampling.BILINEAR))
        lane = (k * width // len(photos), max((k + 1) * width // len(photos) - w, k * width // len(photos)))
        position = np.array([rng.uniform(*lane), rng.uniform(0, height - h)])
        velocity = rng.uniform(2, 5, 2) * rng.choice([-1, 1], 2)
        faces.append({"image": small, "position": position, "velocity": velocity, "lane": lane,
                      "start": k * count // (len(photos) + 1) if k else 0})
    for index in range(count):
        frame, boxes = background.copy(), []
        for face in faces:
            if index < face["start"]:
                continue
            h, w = face["image"].shape[:2]
            for axis, (low, high) in ((0, face["lane"]), (1, (0, height - h))):
                face["position"][axis] += face["velocity"][axis]
                if not low <= face["position"][axis] <= high:
                    face["velocity"][axis] *= -1
                    face["position"][axis] = min(max(face["position"][axis], low), high)
            x, y = (round(v) for v in face["position"])
            frame[y:y + h, x:x + w] = face["image"]
            boxes.append((x, y, w, h))
        yield frame, boxes


def write_clip(path: Path, photos: list[np.ndarray], count: int, size=FRAME_SIZE, fps: float = 15.0, seed: int = 0,
               face_height=(150, 200)):
    """Write clip_frames(...) as a video file (.mp4 or .avi); returns the true boxes of each frame."""
    import cv2

    codec = "MJPG" if Path(path).suffix == ".avi" else "mp4v"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, size)
    truth = []
    for frame, boxes in clip_frames(photos, count, size, seed, face_height):
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        truth.append(boxes)
    writer.release()
    return truth


def _refuse_existing(dest: Path) -> None:
    if dest.exists() and any(dest.iterdir()):
        raise UserError(f"{dest}: already exists and is not empty; choose a new folder")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    sub = commands.add_parser("subsample", help="stratified random subsample of a class-folder dataset")
    sub.add_argument("source", type=Path)
    sub.add_argument("dest", type=Path)
    sub.add_argument("--per-class", type=int, default=24)
    sub.add_argument("--seed", type=int, default=1337)
    gen = commands.add_parser("generate", help="synthetic images (for tests and machines without data)")
    gen.add_argument("dest", type=Path)
    gen.add_argument("--per-class", type=int, default=24)
    gen.add_argument("--size", type=int, default=48)
    args = parser.parse_args()
    if args.command == "subsample":
        count = subsample(args.source, args.dest, args.per_class, args.seed)
    else:
        count = generate(args.dest, args.per_class, args.size)
    print(f"wrote {count} images to {args.dest}")


if __name__ == "__main__":
    from facemask.core.stage import run

    run(main, "datasets")
