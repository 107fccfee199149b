"""Shared fixtures: tiny generated class-folder datasets, the real dataset when it is present, and the smoke
project (every stage run once on generated images) that the end-to-end tests share."""
import hashlib
import shutil
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


@pytest.fixture(scope="session")
def smoke_build(tmp_path_factory, worker_id) -> Path:
    """The smoke project (tests/pipeline_support.py), built once a run - by the first pytest-xdist worker
    that asks, the others wait for it; read it, or copy it (smoke_project)."""
    from filelock import FileLock

    from tests.pipeline_support import build_smoke_project

    shared = tmp_path_factory.getbasetemp()
    shared = shared.parent if worker_id != "master" else shared  # the folder all workers' temp folders are in
    root, built = shared / "smoke", shared / "smoke.built"
    with FileLock(shared / "smoke.lock"):
        if not built.exists():
            shutil.rmtree(root, ignore_errors=True)  # a build that failed on another worker
            build_smoke_project(root)
            built.touch()
    return root / "project"


@pytest.fixture
def smoke_project(smoke_build, tmp_path) -> Path:
    """A fresh copy of the smoke project, for a test that writes into it."""
    project = tmp_path / "smoke"
    shutil.copytree(smoke_build, project, symlinks=True)
    return project
