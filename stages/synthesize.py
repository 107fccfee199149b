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
from PIL import Image

from facemask import UserError
from facemask.files import write_csv
from facemask.images import IMAGE_SUFFIXES, load_rgb
from facemask.masks import draw_mask
from facemask.params import load_params
from facemask.progress import bar
from facemask.project import project_path
from facemask.splits import image_path, split_rows
from facemask.stage import run

OUT_DIR = Path("data/synthetic")
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
        pool = project_path(params.pool)  # from the project root, also in a queued experiment's copy
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
