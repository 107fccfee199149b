"""Shared fixtures: tiny generated class-folder datasets, the real dataset when it is present, and what the
end-to-end tests share: the smoke project (every stage run once on generated images) and the pushed origin."""
import hashlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from facemask.ops.datasets import generate

# Every dvc command would start a usage-analytics daemon (a Python process each, 160 a run); none in tests.
os.environ["DVC_NO_ANALYTICS"] = "1"
# Where PYTHONDONTWRITEBYTECODE is set (as on our machines), every process the tests start - stages, CLIs, CI and
# sweep runners, in projects whose facemask/ and stages/ are fresh copies - would compile what it imports of them
# again (about 1 s of CPU a stage); without it, the first process in a project writes the .pyc files (git-ignored)
# and the others read them.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

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


# What the end-to-end suites share, each built once a run: the smoke project, the pushed origin.
BACKGROUND_BUILDS = ("tests.pipeline_support", "tests.origin_support")


def pytest_sessionstart(session) -> None:
    """Under pytest-xdist (`make test`), the smoke project and the origin start building at once in background
    processes, while the workers run other tests; their fixtures then wait for them instead of building them."""
    config = session.config
    if hasattr(config, "workerinput") or not config.getoption("numprocesses", None):
        return
    shared = config._tmp_path_factory.getbasetemp()  # workers' temp folders are made inside it
    config.background_builds = []
    for module in BACKGROUND_BUILDS:
        log = (shared / f"{module.rsplit('.', 1)[1]}.background.log").open("w")
        config.background_builds.append(subprocess.Popen([sys.executable, "-m", module, str(shared)], cwd=REPO,
                                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True))


def pytest_sessionfinish(session) -> None:
    """A background build still running (tests stopped early) is stopped with everything it started."""
    for builder in getattr(session.config, "background_builds", []):
        if builder.poll() is None:
            os.killpg(builder.pid, signal.SIGTERM)
            builder.wait()


def shared_temp(tmp_path_factory, worker_id) -> Path:
    """The folder all pytest-xdist workers' temp folders are in (this process's own without xdist)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if worker_id != "master" else base


@pytest.fixture(scope="session")
def smoke_build(tmp_path_factory, worker_id) -> Path:
    """The smoke project (tests/pipeline_support.py), built once a run - in the background from the start under
    `make test`, else by the first pytest-xdist worker that asks; read it, or copy it (smoke_project)."""
    from tests.pipeline_support import build_once, build_smoke_project

    return build_once(shared_temp(tmp_path_factory, worker_id), "smoke", build_smoke_project) / "project"


@pytest.fixture(scope="session")
def origin_build(tmp_path_factory, worker_id) -> Path:
    """The pushed origin (tests/origin_support.py), built once a run like the smoke project; suites copy it."""
    from tests.origin_support import build_origin
    from tests.pipeline_support import build_once

    return build_once(shared_temp(tmp_path_factory, worker_id), "origin", build_origin)


@pytest.fixture
def smoke_project(smoke_build, tmp_path) -> Path:
    """A fresh copy of the smoke project, for a test that writes into it."""
    project = tmp_path / "smoke"
    shutil.copytree(smoke_build, project, symlinks=True)
    return project


# The order in which `make test` (pytest-xdist, --dist loadfile --no-loadscope-reorder) hands test files to its
# workers, each taking the next file as it runs out: first the longest files that need no shared build (while the
# smoke project and the origin build in the background), then those that copy the origin (ready after about
# 4 minutes), then those that copy the smoke project, then the rest in their usual order to fill the gaps.
LONGEST_FIRST = ("test_team_tracking.py", "test_queue_sweep.py", "test_serve.py", "test_export.py",
                 "test_ci_rerun.py", "test_sweep.py",
                 "test_determinism.py", "test_distribute.py", "test_interruption.py")


def pytest_collection_modifyitems(session, config, items) -> None:
    """Longest files first (LONGEST_FIRST), the rest in their usual order; each file's tests keep theirs."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
