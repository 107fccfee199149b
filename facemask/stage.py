"""Entry-point helper for stage modules: user errors and Ctrl-C become one clear line, no traceback."""
import sys
from pathlib import Path

from facemask import UserError


def run(main, name: str) -> None:
    try:
        main()
    except UserError as err:
        sys.exit(f"{name}: error: {err}")
    except KeyboardInterrupt:
        print(f"{name}: interrupted; run `dvc repro` again to finish (training resumes from its last checkpoint)",
              file=sys.stderr)
        sys.exit(130)


def candidate_arg(stage: str) -> str:
    """The one candidate named on the command line of `python -m stages.<stage> NAME`."""
    if len(sys.argv) != 2:
        raise UserError(f"usage: python -m stages.{stage} CANDIDATE (a name under train.backbones in params.yaml)")
    return sys.argv[1]


def require(path, target: str) -> Path:
    """`path` if it exists; else a UserError naming it and the `dvc repro` target that makes it."""
    if not Path(path).exists():
        raise UserError(f"{path}: not found; run `dvc repro {target}` first")
    return Path(path)
