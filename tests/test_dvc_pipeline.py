"""The DVC DAG: dvc.yaml is valid and consistent, and a tiny end-to-end `dvc repro` works and re-runs nothing."""
import csv
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from facemask.core.files import read_json
from facemask.core.outputs import EXPORT_REPORT, split_report
from facemask.ops.datasets import generate

REPO = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
DVC_YAML = yaml.safe_load((REPO / "dvc.yaml").read_text())


def dvc(*args, cwd):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, env=env, capture_output=True, text=True)


def test_dvc_yaml_is_valid():
    result = dvc("stage", "list", cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "select" in result.stdout and "train@MobileNetV2" in result.stdout


def test_candidates_are_named_once():
    """dvc.yaml lists no candidate: its per-candidate stages come from params.yaml's candidates, and
    select depends on the folders they write into (dvc dag shows every edge)."""
    assert not any(name in (REPO / "dvc.yaml").read_text() for name in PARAMS["candidates"])
    stages = dvc("stage", "list", "--name-only", cwd=REPO).stdout.split()
    for name in PARAMS["candidates"]:
        assert {f"features@{name}", f"train@{name}", f"evaluate@{name}"} <= set(stages)
    assert {"reports/candidates", "models/candidates"} <= set(DVC_YAML["stages"]["select"]["deps"])
    dag = dvc("dag", "--dot", "select", cwd=REPO).stdout
    assert all(f'"evaluate@{name}" -> "select"' in dag or f'"train@{name}" -> "select"' in dag
               for name in PARAMS["candidates"]), dag


TINY = {
    "ingest": {"source": "dataset", "min_size": 16},
    "augment": {"copies": 1},
    "features": {"weights_dir": ""},
    "candidates": {"image_size": 71, "weights": "none"},  # 71 px: Xception's minimum
    "train": {"epochs": 1, "fine_tune_epochs": 0},
    # One candidate skips the head phase and fine-tunes from the start, as MobileNetV2 does in params.yaml.
    "train_from_start": ("MobileNetV2", {"epochs": 0, "fine_tune_epochs": 1, "fine_tune_layers": "all"}),
    "select": {"threshold": 0.0},
    "synthesize": {"pool": "pool", "old_from_pool": 4},
    # A random-weight model's near-uniform answers flip under int8: only float parity is enforced here.
    "export": {"seconds": 0.5, "calibration": 20, "int8_min_agreement": 0, "int8_max_gap": 1},
    "explain": {"per_class": 1},
}


def _tiny_params() -> dict:
    params = json.loads(json.dumps(PARAMS))
    params["ingest"].update(TINY["ingest"])
    params["augment"].update(TINY["augment"])
    params["features"].update(TINY["features"])
    for candidate in params["candidates"].values():
        candidate.update(TINY["candidates"])
        candidate["train"].update(TINY["train"])
    name, spec = TINY["train_from_start"]
    params["candidates"][name]["train"].update(spec)
    params["select"].update(TINY["select"])
    for section in ("synthesize", "export", "explain"):
        params[section].update(TINY[section])
    return params


@pytest.mark.slow
def test_end_to_end_repro_then_noop(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    for name in ("dvc.yaml", "stages", "facemask"):
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, project / name)
    (project / "params.yaml").write_text(yaml.safe_dump(_tiny_params(), sort_keys=False))
    generate(project / "dataset", per_class=20, size=40)
    generate(project / "pool", per_class=2, size=40)
    assert dvc("init", "--no-scm", cwd=project).returncode == 0

    first = dvc("repro", cwd=project)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    second = dvc("repro", cwd=project)
    assert second.returncode == 0 and "Running stage" not in second.stdout, second.stdout

    shown = json.loads(dvc("metrics", "show", "--json", cwd=project).stdout)
    files = next(iter(shown.values()))["data"]
    best = files["metrics/best.json"]["data"]
    assert best["winner"] in PARAMS["candidates"] and best["registered"]["alias"] == "champion"
    for name in PARAMS["candidates"]:
        headline = files[f"metrics/candidates/{name}.json"]["data"]
        assert sorted(headline) == ["test_accuracy", "test_macro_f1"] and 0 <= headline["test_accuracy"] <= 1
        assert read_json(project / split_report(name, "test"))["split"] == "test"  # the details beside the metrics
        assert (project / "models" / "candidates" / name / "model.keras").is_file()
    assert (project / "models" / "best" / "model.keras").is_file()
    results = (project / "reports" / "results.md").read_text()
    assert all(name in results for name in PARAMS["candidates"]) and f"**{best['winner']}** (champion)" in results
    start_name = TINY["train_from_start"][0]
    with open(project / "plots" / start_name / "history.csv", newline="") as history:
        rows = [(row["seed"], row["phase"]) for row in csv.DictReader(history)]
    seeds = [str(s) for s in PARAMS["candidates"][start_name]["train"].get("seeds", [PARAMS["train"]["seed"]])]
    assert rows == [(seed, "fine_tune") for seed in seeds]  # per seed: no head phase, one fine-tune epoch
    if len(seeds) > 1:  # the averaged model's test metrics also score each member on its own
        members = read_json(project / split_report(start_name, "test"))["members"]
        assert sorted(members) == sorted(f"seed_{s}" for s in seeds)
    assert {"tflite", "tflite_int8", "onnx"} <= set(read_json(project / EXPORT_REPORT)["formats"])
    assert len(json.dumps(files)) < 3000  # a few headline numbers, not every slice: `dvc metrics show` fits a terminal
    assert (project / "reports" / "explain" / "gradcam_with_mask_old.jpg").is_file()
    synthetic = (project / "data" / "augmented" / "augment.csv").read_text()
    assert synthetic.count("__synthmask") >= 4  # the pool's faces joined the training set

    with sqlite3.connect(project / "mlflow.db") as db:
        runs = db.execute("select name from runs").fetchall()
        aliases = db.execute("select alias from registered_model_aliases").fetchall()
        params = db.execute("select count(*) from params").fetchone()[0]
    assert sorted(r[0] for r in runs) == sorted(PARAMS["candidates"]) and ("champion",) in aliases
    assert params > 0
