"""Shared fixtures: tiny generated class-folder datasets, and the real dataset when it is present."""
import hashlib
from pathlib import Path

import pytest

from facemask.ops.datasets import generate

REPO = Path(__file__).resolve().parents[1]
REAL_DATASET = REPO.parent / "shared" / "datasets" / "facemask-age"
REAL_WEIGHTS = REPO.parent / "shared" / "weights"


@pytest.fixture
def tiny_dataset(tmp_path) -> Path:
    """Four class folders of 6 generated 40x40 images each (PNG and JPEG mixed)."""
    root = tmp_path / "dataset"
    generate(root, per_class=6, size=40)
    return root


@pytest.fixture
def real_dataset() -> Path:
    if not REAL_DATASET.is_dir():
        pytest.skip(f"real dataset not present at {REAL_DATASET} (only on machines with ../shared)")
    return REAL_DATASET


def tree_digest(root: Path) -> dict:
    """{relative path: md5} of every file under root, to prove a folder was left untouched."""
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}
