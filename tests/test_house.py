"""The house's rules (docs/architecture.md): no TensorFlow behind a light import or a --help, and dvc.yaml's
code deps as the stages' imports give them. `make lint` checks the floors themselves (lint-imports)."""
import subprocess
import sys

import pytest

from facemask.ops import dag
from tests.conftest import REPO

LOADS_TF = """
import runpy, sys
sys.argv = [{name!r}, *{args!r}]
try:
    runpy.{runner}({target!r}, run_name="__main__")
except SystemExit:
    pass
print("tensorflow" in sys.modules, "keras" in sys.modules, file=sys.stderr)
"""


def loads_tensorflow(runner: str, target: str, *args: str) -> bool:
    code = LOADS_TF.format(name=target, args=list(args), runner=runner, target=target)
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    return result.stderr.strip().splitlines()[-1] != "False False"


@pytest.mark.unit
def test_import_facemask_and_its_light_modules_leave_tensorflow_out():
    code = ("import sys, facemask, facemask.core.params, facemask.core.images, facemask.ops.ci, facemask.ops.results; "
            "print('tensorflow' in sys.modules or 'keras' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


@pytest.mark.parametrize("runner, target", [
    ("run_module", "facemask"), ("run_module", "facemask.ops.ci"), ("run_module", "facemask.ops.get_data"),
    *(("run_path", str(path.relative_to(REPO))) for path in sorted((REPO / "benchmarks").glob("*.py"))),
])
def test_help_answers_without_tensorflow(runner, target):
    assert not loads_tensorflow(runner, target, "--help")


def test_a_commands_help_loads_only_that_command():
    assert not loads_tensorflow("run_module", "facemask", "rollback", "--help")
    assert loads_tensorflow("run_module", "facemask", "export", "--help")  # its options come from facemask.use.export


@pytest.mark.parametrize("stage, needs_tensorflow", [
    ("ingest", False), ("split", False), ("synthesize", False), ("results", False), ("select_best", False),
    ("train", True),
])
def test_a_stage_loads_tensorflow_only_if_it_needs_it_and_quietly(stage, needs_tensorflow):
    """Every stage run starts a fresh interpreter; TensorFlow's import alone costs seconds, and its start-up
    lines (written to stderr before any log level applies) stay off the terminal of those that need it."""
    code = f"import sys, stages.{stage}; print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == str(needs_tensorflow) and result.stderr == "", result.stderr


@pytest.mark.unit
def test_dvc_yaml_lists_the_code_each_stage_imports():
    assert dag.differences() == {}, "dvc.yaml's code deps are out of date: python -m facemask.ops.dag --write"


@pytest.mark.unit
def test_a_new_import_shows_as_a_missing_dep(tmp_path):
    (tmp_path / "stages").mkdir()
    (tmp_path / "facemask" / "core").mkdir(parents=True)
    (tmp_path / "facemask" / "core" / "__init__.py").write_text("CLASSES = ()\n")
    (tmp_path / "facemask" / "core" / "extra.py").write_text("from facemask.core import CLASSES\n")
    (tmp_path / "stages" / "demo.py").write_text("from facemask.core.extra import CLASSES\n")
    (tmp_path / "dvc.yaml").write_text("stages:\n  demo:\n    cmd: python -m stages.demo\n    deps:\n"
                                       "      - stages/demo.py\n      - data/in\n")
    assert dag.differences(tmp_path / "dvc.yaml") == {
        "demo": (["facemask/core/__init__.py", "facemask/core/extra.py"], [])}
