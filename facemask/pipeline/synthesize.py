"""Stage synthesize: training-only masked faces, drawn on aligned UTKFace photos.

All genuine with_mask_old photos come from one source (tight web crops), while the unmasked faces
are mostly aligned UTKFace crops: a model can learn "web crop = masked old" instead of the face.
Drawing a mask on aligned UTKFace faces (older faces from a separate pool -> with_mask_old; young
faces of the *training* split -> with_mask_young) gives both masked classes the unmasked classes'
source and framing. These images only ever join the training set (augment); val and test stay real.

Optionally (worn_wrong_from_train, worn_wrong_from_pool) the mask is also drawn worn wrong (below the nose,
under the chin; facemask.pipeline.masks.WORN_WRONG in turn) on unmasked training-split aligned faces and on pool
faces, labelled *without mask* of the face's age as the original project does. Test-split faces are
never drawn on: they are the evaluation's worn_wrong slice (facemask.pipeline.slices).
Writes data/synthetic/<class>/* and data/synthetic/synthetic.csv (file, label, origin).
"""
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from facemask.core import UserError
from facemask.core.images import IMAGE_SUFFIXES, load_rgb
from facemask.core.params import Synthesize
from facemask.core.progress import bar
from facemask.core.project import project_path
from facemask.pipeline.masks import WORN_WRONG, draw_mask
from facemask.pipeline.splits import image_path

OUT_DIR = Path("data/synthetic")


def synthesize(old_faces: list[Path], young_faces: list[Path], out_dir: Path, seed: int,
               worn_wrong: Sequence[tuple[str, Path]] = ()) -> list[dict]:
    """Write a masked copy of each face: old_faces -> with_mask_old, young_faces -> with_mask_young, and
    each (label, face) of `worn_wrong` with the mask worn wrong (WORN_WRONG in turn) -> label."""
    rng = np.random.default_rng(seed)
    rows = []
    jobs = [(label, path, "worn") for label, faces in (("with_mask_old", old_faces), ("with_mask_young", young_faces))
            for path in faces]
    jobs += [(label, path, WORN_WRONG[i % len(WORN_WRONG)]) for i, (label, path) in enumerate(worn_wrong)]
    for label, path, placement in bar(jobs, "synthesize", unit="face"):
        suffix = "synthmask" if placement == "worn" else placement
        target = out_dir / label / f"{path.stem}__{suffix}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(draw_mask(load_rgb(path), rng, placement)).save(target, quality=95)
        rows.append({"file": f"{label}/{target.name}", "label": label, "origin": str(path)})
    return rows


def pick(items: list, count: int, seed: int) -> list:
    """A seeded sample of `count` items (all of them if fewer), in their original order."""
    order = np.random.default_rng(seed).permutation(len(items))
    return [items[i] for i in sorted(order[:count])]


def unmasked_training_faces(rows: list[dict], aligned_sources: set[str]) -> list[tuple[str, Path]]:
    """(label, path) of the unmasked faces of an aligned source among `rows`, training split only (the
    test split's are the evaluation's worn_wrong slice)."""
    return [(r["label"], image_path(r)) for r in rows
            if r["split"] == "train" and r["label"].startswith("without_mask") and r.get("source") in aligned_sources]


def pool_faces(params: Synthesize) -> list[Path]:
    """The pool's images, sorted; a UserError naming the settings when the folder is missing."""
    pool = project_path(params.pool)  # from the project root, also in a queued experiment's copy
    if not pool.is_dir():
        zeros = " and ".join(f"synthesize.{name}: 0" for name in params.POOL_COUNTS)
        raise UserError(f"synthesize.pool={pool} is not a folder of aligned older faces; point it at one or set {zeros}")
    return sorted(p for p in pool.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
