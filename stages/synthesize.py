"""Stage synthesize: training-only masked faces, drawn on aligned UTKFace photos.

All genuine with_mask_old photos come from one source (tight web crops), while the unmasked faces
are mostly aligned UTKFace crops: a model can learn "web crop = masked old" instead of the face.
Drawing a mask on aligned UTKFace faces (older faces from a separate pool -> with_mask_old; young
faces of the *training* split -> with_mask_young) gives both masked classes the unmasked classes'
source and framing. These images only ever join the training set (augment); val and test stay real.
Writes data/synthetic/<class>/* and data/synthetic/synthetic.csv (file, label, origin).
"""
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from facemask import UserError
from facemask.files import write_csv
from facemask.images import IMAGE_SUFFIXES, load_rgb
from facemask.params import load_params
from facemask.progress import bar
from facemask.splits import image_path, split_rows
from facemask.stage import run

OUT_DIR = Path("data/synthetic")
# Mask outline on an aligned face, as (x, y) fractions of width and height: nose bridge to chin.
MASK_OUTLINE = ((0.17, 0.53), (0.35, 0.47), (0.50, 0.44), (0.65, 0.47), (0.83, 0.53), (0.86, 0.70),
                (0.76, 0.86), (0.62, 0.95), (0.50, 0.97), (0.38, 0.95), (0.24, 0.86), (0.15, 0.70))
COLOURS = ((168, 200, 232), (236, 236, 240), (32, 32, 38), (122, 124, 134), (42, 52, 92), (222, 172, 184),
           (110, 170, 150))


def draw_mask(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw a fabric mask (random colour, jittered outline, pleats, ear loops) over the lower face."""
    height, width = pixels.shape[:2]
    jitter = rng.uniform(-0.025, 0.025, (len(MASK_OUTLINE), 2)) + rng.uniform(-0.02, 0.02, 2)
    outline = [((x + dx) * width, (y + dy) * height) for (x, y), (dx, dy) in zip(MASK_OUTLINE, jitter, strict=True)]
    colour = np.array(COLOURS[rng.integers(len(COLOURS))]) * rng.uniform(0.85, 1.1)
    layer = Image.new("RGB", (width, height), tuple(int(c) for c in np.clip(colour, 0, 255)))
    alpha = Image.new("L", (width, height), 0)
    ImageDraw.Draw(alpha).polygon(outline, fill=255)
    draw = ImageDraw.Draw(layer)
    shade = tuple(int(c) for c in np.clip(colour * 0.8, 0, 255))
    for fraction in (0.60, 0.71, 0.82):  # pleats
        y = fraction * height + rng.uniform(-2, 2)
        draw.line([(0.2 * width, y), (0.8 * width, y)], fill=shade, width=max(1, width // 100))
    face = Image.fromarray(pixels)
    loops = ImageDraw.Draw(face)
    for side, edge in ((outline[0], 0.0), (outline[4], 1.0)):
        loops.line([side, (edge * width, 0.45 * height)], fill=tuple(int(c) for c in colour), width=max(1, width // 80))
    # A vertical light gradient and soft edges make the fabric look less like a flat sticker.
    light = np.linspace(1.08, 0.85, height)[:, None, None]
    layer = Image.fromarray(np.clip(np.asarray(layer) * light, 0, 255).astype(np.uint8))
    face.paste(layer, (0, 0), alpha.filter(ImageFilter.GaussianBlur(max(1, width // 150))))
    return np.asarray(face)


def synthesize(old_faces: list[Path], young_faces: list[Path], out_dir: Path, seed: int) -> list[dict]:
    """Write a masked copy of each face: old_faces -> with_mask_old, young_faces -> with_mask_young."""
    rng = np.random.default_rng(seed)
    rows = []
    jobs = [(label, path) for label, faces in (("with_mask_old", old_faces), ("with_mask_young", young_faces))
            for path in faces]
    for label, path in bar(jobs, "synthesize", unit="face"):
        target = out_dir / label / f"{path.stem}__synthmask.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(draw_mask(load_rgb(path), rng)).save(target, quality=95)
        rows.append({"file": f"{label}/{target.name}", "label": label, "origin": str(path)})
    return rows


def pick(paths: list[Path], count: int, seed: int) -> list[Path]:
    """A seeded sample of `count` paths (all of them if fewer)."""
    order = np.random.default_rng(seed).permutation(len(paths))
    return [paths[i] for i in sorted(order[:count])]


def main() -> None:
    params = load_params().synthesize
    old_faces = []
    if params.old_from_pool > 0:
        pool = Path(params.pool)
        if not pool.is_dir():
            raise UserError(f"synthesize.pool={pool} is not a folder of aligned older faces; "
                            "point it at one or set synthesize.old_from_pool: 0")
        faces = sorted(p for p in pool.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        old_faces = pick(faces, params.old_from_pool, params.seed)
    aligned = set(params.aligned_sources)
    young = [image_path(r) for r in split_rows("train")
             if r["label"] == "without_mask_young" and r.get("source") in aligned]
    young_faces = pick(young, params.young_from_train, params.seed + 1)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    rows = synthesize(old_faces, young_faces, OUT_DIR, params.seed)
    write_csv(OUT_DIR / "synthetic.csv", rows, ["file", "label", "origin"])
    print(f"synthesize: {len(old_faces)} with_mask_old and {len(young_faces)} with_mask_young training faces")


if __name__ == "__main__":
    run(main, "synthesize")
