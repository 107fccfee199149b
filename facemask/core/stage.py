"""Helpers for stage modules: user errors and Ctrl-C as one clear line (no traceback), the candidate argument,
required inputs, and the code each stage depends on as dvc.yaml lists it."""
import sys
from pathlib import Path

import yaml

from facemask.core import UserError

ROOT = Path(__file__).resolve().parents[2]
DVC_YAML = ROOT / "dvc.yaml"
CODE_FOLDERS = ("facemask/", "stages/")


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


def stages(dvc_yaml: Path = DVC_YAML) -> dict:
    """dvc.yaml's stages with their definitions (foreach stages by their `do`)."""
    return {name: stage.get("do", stage) for name, stage in yaml.safe_load(dvc_yaml.read_text())["stages"].items()}


def listed_code(stage: dict) -> list[str]:
    """The deps of a stage definition that are code (under facemask/ or stages/)."""
    return [dep for dep in stage.get("deps", []) if dep.startswith(CODE_FOLDERS)]


def stage_code(name: str, dvc_yaml: Path = DVC_YAML) -> list[Path]:
    """The code files dvc.yaml lists for stage `name`, as paths: what a checkpoint of it is only valid for."""
    return [dvc_yaml.parent / dep for dep in listed_code(stages(dvc_yaml)[name])]
