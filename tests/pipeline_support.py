"""Helpers for the pipeline tests: the smoke project's params (TINY) and build, a stage module run in a subprocess."""
import copy
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from facemask.core.files import read_json
from facemask.core.outputs import split_report
from facemask.ops.datasets import generate
from facemask.ops.sweep_file import with_overrides
from tests.conftest import REPO, tree_digest

PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())

# The smoke project (tests/conftest.py): every stage of dvc.yaml, one epoch, on generated images at 32 px, weights
# none (its models learn the same wherever it runs). Its three candidates take params.yaml's recipes (SMOKE) on
# TinyNet, a stub backbone, where the tests are about the pipeline, not the network: fine-tuning a real backbone
# costs a minute of graph building a run. CANDIDATE is MobileNetV2's recipe, two seeds averaged, each a head epoch
# then four fine-tune epochs: the interruption test kills the second seed's fine-tune between epochs, the
# determinism test re-runs it, the distribute test re-trains it on two devices (consistency training is left to
# test_consistency.py). FROM_START takes Xception's recipe and fine-tunes from the start, skipping the head phase,
# as MobileNetV2 does in params.yaml. The Ensemble keeps a real backbone: MobileNetV2 beside a TinyNet, one head.
CANDIDATE, FROM_START = "Tiny", "TinyFromStart"
SMOKE = {  # smoke candidate: (the params.yaml candidate whose recipe it takes, its settings, its train settings)
    CANDIDATE: ("MobileNetV2", {"backbones": ["TinyNet"]},
                {"fine_tune_epochs": 4, "fine_tune_layers": "all", "fine_tune_learning_rate": 0.001,
                 "seeds": [1337, 7], "consistency": 0}),
    FROM_START: ("Xception", {"backbones": ["TinyNet"]}, {"epochs": 0, "fine_tune_epochs": 1, "fine_tune_layers": 2}),
    "Ensemble": ("Ensemble", {"backbones": ["MobileNetV2", "TinyNet"]}, {}),
}
TINY = {
    "ingest": {"source": "dataset", "min_size": 16},
    "augment": {"copies": 1},
    "features": {"weights_dir": ""},
    "candidates": {"image_size": 32, "weights": "none"},
    "train": {"epochs": 1, "fine_tune_epochs": 0},
    "select": {"threshold": 0.0},
    "synthesize": {"pool": "pool", "old_from_pool": 4},
    # A random-weight model's near-uniform answers flip under int8: only float parity is enforced here.
    "export": {"seconds": 0.5, "calibration": 20, "int8_min_agreement": 0, "int8_max_gap": 1},
    "explain": {"per_class": 1},
}
CHECKPOINTS = Path(".checkpoints") / CANDIDATE
CHECKPOINT = CHECKPOINTS / "seed_7" / "checkpoint.npz"  # the last member's


def tiny_params() -> dict:
    """params.yaml with TINY's settings and the SMOKE candidates: every stage in seconds on generated images."""
    params = copy.deepcopy(PARAMS)
    for section in ("ingest", "augment", "features", "select", "synthesize", "export", "explain"):
        params[section].update(TINY[section])
    recipes, params["candidates"] = params["candidates"], {}
    for name, (recipe_of, settings, train) in SMOKE.items():
        candidate = copy.deepcopy(recipes[recipe_of]) | TINY["candidates"] | settings
        candidate["train"].update(TINY["train"] | train)
        params["candidates"][name] = candidate
    return params


def small_candidates(*names: str, backbone: str = "MobileNetV2", **train) -> dict:
    """Candidates that train in seconds: a head over `backbone` at 32 px on weights none, `train` overriding."""
    recipe = {"epochs": 1, "fine_tune_epochs": 0, "batch_size": 16, "learning_rate": 0.01, "dropout": 0.3, **train}
    return {name: {"backbones": [backbone], "image_size": 32, "weights": "none", "train": dict(recipe)}
            for name in names}


def copy_code(project: Path) -> None:
    """This checkout's pipeline (dvc.yaml, stages/, facemask/) into `project`."""
    for name in ("dvc.yaml", "stages", "facemask"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, project / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, project / name)


def dvc(*args, cwd) -> subprocess.CompletedProcess:
    """`dvc ARGS` in `cwd` with this environment's tools, the embedded MLflow store (no tracking URI)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, env=env, capture_output=True, text=True)


def build_smoke_project(root: Path) -> Path:
    """`dvc repro` of the whole DAG with TINY's params, in root/project."""
    project = root / "project"
    project.mkdir(parents=True)
    copy_code(project)
    (project / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    generate(project / "dataset", per_class=20, size=40)
    generate(project / "pool", per_class=2, size=40)
    assert dvc("init", "--no-scm", cwd=project).returncode == 0
    result = dvc("repro", cwd=project)
    (root / "repro.log").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return project


def build_once(shared: Path, name: str, build) -> Path:
    """shared/<name>, made by `build` by whichever process gets here first (the others wait on a file lock and
    reuse it); a build that failed is started again."""
    from filelock import FileLock

    root, built = shared / name, shared / f"{name}.built"
    with FileLock(shared / f"{name}.lock"):
        if not built.exists():
            shutil.rmtree(root, ignore_errors=True)
            build(root)
            built.touch()
    return root


def write_params(project: Path, changes: dict) -> None:
    project.mkdir(parents=True, exist_ok=True)
    (project / "params.yaml").write_text(yaml.safe_dump(with_overrides(PARAMS, changes), sort_keys=False))


def run_stage(project: Path, module: str, *args, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m stages.<module> ARGS` in `project`, importing this checkout's code."""
    environ = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    environ.update(PYTHONPATH=str(REPO), **(env or {}))
    return subprocess.run([sys.executable, "-m", f"stages.{module}", *args], cwd=project, env=environ,
                          capture_output=True, text=True, timeout=300)


def assert_user_error(result: subprocess.CompletedProcess, stage: str, *fragments: str) -> str:
    """The stage failed with exit status 1 and one `<stage>: error: ...` line, no traceback; returns it."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"{stage}: error: "), result.stderr
    for fragment in fragments:
        assert fragment in line, line
    return line


def dvc_popen(project: Path, *args, log: Path) -> subprocess.Popen:
    """`dvc ARGS` started in its own process group (so a test can SIGKILL it with the stage it runs)."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return subprocess.Popen([sys.executable, "-m", "dvc", *args], cwd=project, env=env, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def checkpoint_state(project: Path) -> dict:
    """The last member's training checkpoint state (phase, epoch, ...), or {} when there is none yet."""
    try:
        with np.load(project / CHECKPOINT, allow_pickle=False) as saved:
            return json.loads(str(saved["state"]))
    except FileNotFoundError:
        return {}


def outputs(project: Path) -> dict:
    """What a run produced, comparable across runs: files, feature arrays, val metrics (no timings), weights."""
    from facemask.core.model import load

    features = np.load(project / "data" / "features" / CANDIDATE / "features.npz")
    metrics = read_json(project / split_report(CANDIDATE, "validation"))
    model = load(project / "models" / "candidates" / CANDIDATE / "model.keras")
    return {
        "split": tree_digest(project / "data" / "split"),
        "augmented": tree_digest(project / "data" / "augmented"),
        "features": {k: hashlib.md5(features[k].tobytes()).hexdigest() for k in features.files},
        "metrics": {k: v for k, v in metrics.items() if not k.endswith("seconds")},
        "history": (project / "plots" / CANDIDATE / "history.csv").read_text(),
        "weights": [hashlib.md5(w.tobytes()).hexdigest() for w in model.get_weights()],
    }


if __name__ == "__main__":  # `make test`'s background smoke build (tests/conftest.py: pytest_sessionstart)
    build_once(Path(sys.argv[1]), "smoke", build_smoke_project)
