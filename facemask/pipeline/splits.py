"""Where the split stage puts each image (data/split/<split>/<class>/<name>), and how to list a split
(and the augmented training set, data/augmented/augment.csv)."""
from pathlib import Path

import numpy as np

from facemask.core import CLASSES, UserError
from facemask.core.files import read_csv

SPLIT_DIR = Path("data/split")
AUGMENTED_DIR = Path("data/augmented")


def image_path(row: dict, split_dir: Path = SPLIT_DIR) -> Path:
    """The file of one split.csv row."""
    return Path(split_dir) / row["split"] / row["label"] / Path(row["file"]).name


def split_rows(split: str, split_dir: Path = SPLIT_DIR) -> list[dict]:
    """The split.csv rows of one split (train, val or test)."""
    table = Path(split_dir) / "split.csv"
    if not table.is_file():
        raise UserError(f"{table}: not found; run `dvc repro split` first (or pass the split folder)")
    return [row for row in read_csv(table) if row["split"] == split]


def split_images(split: str, split_dir: Path = SPLIT_DIR) -> tuple[list[Path], np.ndarray]:
    """Image paths and class indices of one split."""
    rows = split_rows(split, split_dir)
    return [image_path(r, split_dir) for r in rows], np.array([CLASSES.index(r["label"]) for r in rows], dtype=int)


def training_images(augmented_dir: Path = AUGMENTED_DIR) -> tuple[list[Path], np.ndarray]:
    """Image paths and class indices of the training set the models learn from (stage augment's output)."""
    table = Path(augmented_dir) / "augment.csv"
    if not table.is_file():
        raise UserError(f"{table}: not found; run `dvc repro augment` first")
    rows = read_csv(table)
    return [Path(augmented_dir) / r["file"] for r in rows], np.array([CLASSES.index(r["label"]) for r in rows], dtype=int)
