"""Read-only paths in params.yaml are relative to the project's root, also in a queued experiment, which DVC
runs in a temporary copy of the repo (.dvc/tmp/exps/tmpXXXX) with DVC_ROOT naming the repo it came from."""
from pathlib import Path

import pytest

from facemask.core.backbones import BACKBONES, resolve_weights
from facemask.core.project import project_path, root

pytestmark = pytest.mark.unit  # the fast layer: make test-fast


@pytest.fixture
def queued_copy(tmp_path, monkeypatch) -> Path:
    """The repo (tmp/repo) as DVC_ROOT, the working directory a temporary copy inside it; returns the repo."""
    repo = tmp_path / "repo"
    copy = repo / ".dvc" / "tmp" / "exps" / "tmpcopy"
    copy.mkdir(parents=True)
    monkeypatch.setenv("DVC_ROOT", str(repo))
    monkeypatch.chdir(copy)
    return repo


def test_a_queued_run_reads_a_relative_path_from_the_repo_it_was_queued_from(queued_copy):
    (queued_copy.parent / "pool").mkdir()
    assert root() == queued_copy
    assert project_path("../pool") == queued_copy / "../pool" and project_path("../pool").is_dir()
    assert not Path("../pool").is_dir()  # what the working directory alone would have given


def test_in_the_root_a_relative_path_stays_as_written(tmp_path, monkeypatch):
    """A stage run in the root (dvc repro, or by hand) sees the path as written: what it records is unchanged."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    assert project_path("../shared/pool") == Path("../shared/pool")
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    assert project_path("../shared/pool") == Path("../shared/pool")


def test_an_absolute_or_home_path_is_kept(queued_copy):
    assert project_path("/data/pool") == Path("/data/pool")
    assert project_path("~/pool") == Path.home() / "pool"


def test_a_queued_run_finds_imagenet_weights_in_a_relative_weights_dir(queued_copy):
    weights = queued_copy.parent / "weights" / BACKBONES["MobileNetV2"].keras_file
    weights.parent.mkdir()
    weights.write_bytes(b"")
    assert resolve_weights("MobileNetV2", "imagenet", "../weights") == str(queued_copy / "../weights" / weights.name)
