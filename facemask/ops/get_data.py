"""Get the dataset ingest reads, before a first `dvc repro` (`make run` runs this first).

In order: ingest.source is already there, or is a URL (ingest downloads it): nothing to do. Else, when it is
the path data/facemask-age.dvc tracks (the default), `dvc pull` it from the configured DVC remote, or else link
the dataset folder beside the checkout to it (params.yaml data.folder; ../shared/datasets/facemask-age on our
machines). Else stop with one message naming the three ways. Nothing the user has is changed or removed.

    python -m facemask.ops.get_data
"""
import argparse
import subprocess
from pathlib import Path

import yaml

from facemask.core import UserError
from facemask.core.files import is_url
from facemask.core.params import load_params
from facemask.core.project import project_path
from facemask.core.stage import run

DATASET_DVC = Path("data/facemask-age.dvc")


def tracked_path(dvc_file: Path = DATASET_DVC) -> Path | None:
    """The path data/facemask-age.dvc tracks (relative to the project), or None without that file."""
    if not dvc_file.is_file():
        return None
    return dvc_file.parent / yaml.safe_load(dvc_file.read_text())["outs"][0]["path"]


def dvc_pull(dvc_file: Path = DATASET_DVC) -> bool:
    """Whether `dvc pull` restored the dataset from the configured remote (False when the remote lacks it)."""
    result = subprocess.run(["dvc", "pull", "--quiet", str(dvc_file)], capture_output=True, text=True)
    return result.returncode == 0


def link(folder: Path, source: Path) -> None:
    """Make `source` a symbolic link to `folder`, creating its parent folders."""
    source.parent.mkdir(parents=True, exist_ok=True)
    source.symlink_to(folder.resolve(), target_is_directory=True)


def get_data(source: str, folder: str | None, pull=dvc_pull) -> str:
    """Make ingest.source `source` exist; returns what was done, or raises a UserError with the three ways."""
    if is_url(source):
        return f"ingest.source is a URL ({source}): ingest downloads it"
    path = Path(source)
    if path.exists():
        return f"dataset: {source}"
    default = path == tracked_path()  # your own ingest.source is never pulled over or linked
    if default and pull():
        return f"dataset: {source}, pulled from the DVC remote"
    if default and folder and project_path(folder).is_dir() and not path.is_symlink():
        link(project_path(folder), path)
        return f"dataset: {source} -> {project_path(folder).resolve()} (data.folder)"
    raise UserError(
        f"no dataset at ingest.source={source}. Provide it one of three ways: (1) a DVC remote that holds it "
        f"(`dvc remote modify --local storage url ...`; {DATASET_DVC} names it), then `make run`; (2) the dataset "
        f"folder at data.folder={folder} (params.yaml), linked in by `make run`; (3) ingest.source set to your own "
        "class-folder dataset: a folder, a .zip/.tar.gz archive or an http(s) URL")


def main() -> None:
    argparse.ArgumentParser(prog="python -m facemask.ops.get_data", description=__doc__.split("\n\n")[0]).parse_args()
    params = load_params()
    print(get_data(params.ingest.source, params.data.folder))


if __name__ == "__main__":
    run(main, "get_data")
