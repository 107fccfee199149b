"""`make run`'s first step: the dataset from where it is, the DVC remote, or the folder beside the checkout."""
import shutil
import subprocess

import pytest

from facemask.core import UserError
from facemask.ops import get_data as module
from facemask.ops.get_data import get_data

pytestmark = pytest.mark.unit  # the fast layer: make test-fast

DEFAULT = "data/external/facemask-age"


@pytest.fixture
def project(tmp_path, monkeypatch):
    """An empty project with the dataset's .dvc file, as a fresh clone has it."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data/facemask-age.dvc").write_text("outs:\n- md5: x.dir\n  path: external/facemask-age\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def no_remote():
    return False


def test_an_existing_source_is_left_as_it_is(project):
    (project / DEFAULT).mkdir(parents=True)
    assert get_data(DEFAULT, "elsewhere", pull=no_remote) == f"dataset: {DEFAULT}"
    assert not (project / DEFAULT).is_symlink()


def test_a_url_is_left_to_ingest(project):
    assert "ingest downloads it" in get_data("https://example.org/data.zip", None, pull=no_remote)
    assert not (project / "data/external").exists()


def test_the_dvc_remote_comes_first(project):
    pulled = []
    assert "pulled from the DVC remote" in get_data(DEFAULT, str(project / "beside"), pull=lambda: pulled.append(1) or True)
    assert pulled == [1] and not (project / DEFAULT).is_symlink()


def test_the_folder_beside_the_checkout_is_linked_in_without_a_manual_mkdir(project, tiny_dataset):
    message = get_data(DEFAULT, str(tiny_dataset), pull=no_remote)
    link = project / DEFAULT
    assert link.is_symlink() and link.resolve() == tiny_dataset.resolve()
    assert "data.folder" in message
    assert sorted(p.name for p in link.iterdir()) == sorted(p.name for p in tiny_dataset.iterdir())


def test_no_data_anywhere_names_the_three_ways(project):
    ways = r"\(1\) a DVC remote .*\(2\) the dataset folder at data.folder=nowhere.*\(3\) ingest.source"
    with pytest.raises(UserError, match=ways):
        get_data(DEFAULT, "nowhere", pull=no_remote)
    assert not (project / "data/external").exists()


def test_another_missing_path_is_not_pulled_or_linked(project, tiny_dataset):
    with pytest.raises(UserError, match="no dataset at ingest.source=mine"):
        get_data("mine", str(tiny_dataset), pull=lambda: pytest.fail("pulled for a path the .dvc file does not track"))
    assert not (project / "mine").exists()


def test_a_fresh_clone_pulls_the_dataset_from_the_dvc_remote(tmp_path, tiny_dataset, monkeypatch):
    """A real DVC project and local remote: tracked and pushed in one checkout, pulled by get_data in a clone."""
    def sh(*args, cwd):
        subprocess.run(args, cwd=cwd, check=True, capture_output=True)

    origin, clone, remote = tmp_path / "origin", tmp_path / "clone", tmp_path / "remote"
    (origin / "data/external").mkdir(parents=True)
    shutil.copytree(tiny_dataset, origin / DEFAULT)
    sh("git", "init", "-q", cwd=origin)
    sh("dvc", "init", "-q", cwd=origin)
    sh("dvc", "remote", "add", "-d", "storage", str(remote), cwd=origin)
    sh("dvc", "add", "-q", DEFAULT, cwd=origin)
    tracked = (origin / f"{DEFAULT}.dvc").read_text().replace("path: facemask-age", "path: external/facemask-age")
    (origin / "data/facemask-age.dvc").write_text(tracked)  # beside the git-ignored data/external/, as in the project
    (origin / f"{DEFAULT}.dvc").unlink()
    (origin / ".gitignore").write_text("/data/external/\n")
    sh("dvc", "push", "-q", cwd=origin)
    sh("git", "add", "-A", cwd=origin)
    sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "data", cwd=origin)
    sh("git", "clone", "-q", str(origin), str(clone), cwd=tmp_path)
    monkeypatch.chdir(clone)
    assert not (clone / DEFAULT).exists()
    assert "pulled from the DVC remote" in get_data(DEFAULT, None)
    assert sorted(p.name for p in (clone / DEFAULT).iterdir()) == sorted(p.name for p in tiny_dataset.iterdir())


def test_a_dvc_remote_without_the_dataset_is_not_an_answer(project):
    assert module.dvc_pull(project / "data/facemask-age.dvc") is False
