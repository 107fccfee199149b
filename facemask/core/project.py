"""Where the project lives, so that paths in params.yaml mean the same in a queued experiment.

`dvc exp run --queue` runs the stages in a temporary copy of the repo (.dvc/tmp/exps/tmpXXXX inside it):
a path relative to the working directory would point into the copy, where nothing outside git and DVC's
tracking exists (../shared is not beside it) and whatever is written there goes away with it.
"""
import os
from pathlib import Path


def root() -> Path:
    """The project's root: DVC_ROOT, which DVC sets for every stage and, for a queued experiment, points at the
    repo it was queued from (not the temporary copy); the working directory when a stage is run by hand."""
    return Path(os.environ.get("DVC_ROOT") or ".").resolve()


def project_path(path: str | os.PathLike) -> Path:
    """A read-only path from params.yaml (data outside DVC's tracking), relative to the project's root: as
    written when the stage runs in the root (what a stage records of it stays as it was), else joined onto it."""
    path = Path(path).expanduser()
    return path if path.is_absolute() or Path.cwd().resolve() == root() else root() / path
