"""Helpers for the hardening tests: run a real stage module in a subprocess, and a tiny trained DVC project."""
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
from facemask.core.params import Synthesize
from facemask.ops.datasets import generate
from tests.conftest import REPO, tree_digest
from tests.test_dvc_pipeline import _tiny_params, dvc

PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
# Without weights MobileNetV2's pooled features are almost constant: the head phase barely learns (and
# stops early, restoring its best epoch); fine-tuning every layer does learn. Both phases checkpoint.
# Two seeds: the candidate is two models averaged, and a kill in the second one's fine-tune must restore
# the first from its checkpoint.
BACKBONE = "MobileNetV2"
TRAIN = {"epochs": 30, "learning_rate": 0.01, "fine_tune_epochs": 3, "fine_tune_layers": "all",
         "fine_tune_learning_rate": 0.001, "seeds": [1337, 7]}
CHECKPOINTS = Path(".checkpoints") / BACKBONE
CHECKPOINT = CHECKPOINTS / "seed_7" / "checkpoint.npz"  # the last member's


def with_changes(params: dict, changes: dict) -> dict:
    """A deep copy of `params` with {"section.key.sub": value} changes applied."""
    params = copy.deepcopy(params)
    for dotted, value in changes.items():
        *parents, key = dotted.split(".")
        node = params
        for name in parents:
            node = node[name]
        node[key] = value
    return params


def write_params(project: Path, changes: dict) -> None:
    project.mkdir(parents=True, exist_ok=True)
    (project / "params.yaml").write_text(yaml.safe_dump(with_changes(PARAMS, changes), sort_keys=False))


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


_TRAINED = {}


def trained_project(tmp_path_factory) -> Path:
    """A fresh copy of a tiny project after one uninterrupted `dvc repro train@<BACKBONE>` (built once a session)."""
    if "root" not in _TRAINED:
        root = tmp_path_factory.mktemp("trained") / "project"
        root.mkdir()
        for name in ("dvc.yaml", "stages", "facemask"):
            (shutil.copytree if (REPO / name).is_dir() else shutil.copy)(REPO / name, root / name)
        params = _tiny_params()
        params["synthesize"].update(dict.fromkeys(Synthesize.POOL_COUNTS, 0))  # no pool in this project
        params["train"]["patience"] = 10
        params["candidates"][BACKBONE]["train"].update(TRAIN)
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        generate(root / "dataset", per_class=20, size=40)
        assert dvc("init", "--no-scm", cwd=root).returncode == 0
        result = dvc("repro", f"train@{BACKBONE}", cwd=root)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        _TRAINED["root"] = root
    copy_ = tmp_path_factory.mktemp("copy") / "project"
    shutil.copytree(_TRAINED["root"], copy_, symlinks=True)
    return copy_


def outputs(project: Path) -> dict:
    """What a run produced, comparable across runs: files, feature arrays, val metrics (no timings), weights."""
    from facemask.core.model import load

    features = np.load(project / "data" / "features" / BACKBONE / "features.npz")
    metrics = read_json(project / split_report(BACKBONE, "validation"))
    model = load(project / "models" / "candidates" / BACKBONE / "model.keras")
    return {
        "split": tree_digest(project / "data" / "split"),
        "augmented": tree_digest(project / "data" / "augmented"),
        "features": {k: hashlib.md5(features[k].tobytes()).hexdigest() for k in features.files},
        "metrics": {k: v for k, v in metrics.items() if not k.endswith("seconds")},
        "history": (project / "plots" / BACKBONE / "history.csv").read_text(),
        "weights": [hashlib.md5(w.tobytes()).hexdigest() for w in model.get_weights()],
    }
