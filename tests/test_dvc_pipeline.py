"""The DVC DAG: dvc.yaml is valid and consistent, and a tiny end-to-end `dvc repro` works and re-runs nothing."""
import csv
import json
import sqlite3

import pytest
import yaml

from facemask.core.files import read_json
from facemask.core.outputs import EXPORT_REPORT, split_report, val_predictions, val_slices
from tests.conftest import REPO
from tests.pipeline_support import CANDIDATE, FROM_START, PARAMS, SMOKE, TINY, dvc, tiny_params

DVC_YAML = yaml.safe_load((REPO / "dvc.yaml").read_text())
SMOKE_CANDIDATES = list(tiny_params()["candidates"])


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


def history(project, candidate: str) -> list[tuple[str, str]]:
    """(seed, phase) of each epoch in the candidate's training history."""
    with open(project / "plots" / candidate / "history.csv", newline="") as history:
        return [(row["seed"], row["phase"]) for row in csv.DictReader(history)]


@pytest.mark.slow
def test_end_to_end_repro_then_noop(smoke_project):
    """The smoke project ran every stage (tests/conftest.py); a second `dvc repro` runs none."""
    project = smoke_project
    second = dvc("repro", cwd=project)
    assert second.returncode == 0 and "Running stage" not in second.stdout, second.stdout

    shown = json.loads(dvc("metrics", "show", "--json", cwd=project).stdout)
    files = next(iter(shown.values()))["data"]
    best = files["metrics/best.json"]["data"]
    assert best["winner"] in SMOKE_CANDIDATES and best["registered"]["alias"] == "champion"
    assert best["verdict"] in ("wins", "within noise") and best["against"] in SMOKE_CANDIDATES  # the paired test
    for name in SMOKE_CANDIDATES:
        headline = files[f"metrics/candidates/{name}.json"]["data"]
        assert sorted(headline) == ["test_accuracy", "test_macro_f1"] and 0 <= headline["test_accuracy"] <= 1
        assert read_json(project / split_report(name, "test"))["split"] == "test"  # the details beside the metrics
        assert (project / val_predictions(name)).is_file() and (project / val_slices(name)).is_file()  # what CI reads
        assert (project / "models" / "candidates" / name / "model.keras").is_file()
    assert (project / "models" / "best" / "model.keras").is_file()
    results = (project / "reports" / "results.md").read_text()
    assert all(name in results for name in SMOKE_CANDIDATES) and f"**{best['winner']}** (champion)" in results
    from_start = SMOKE[FROM_START][2]
    assert history(project, FROM_START) == [(str(PARAMS["train"]["seed"]), "fine_tune")] * from_start["fine_tune_epochs"]
    tiny_recipe = SMOKE[CANDIDATE][2]
    seeds = [str(seed) for seed in tiny_recipe["seeds"]]
    phases = ["head"] * TINY["train"]["epochs"] + ["fine_tune"] * tiny_recipe["fine_tune_epochs"]
    assert history(project, CANDIDATE) == [(seed, phase) for seed in seeds for phase in phases]
    members = read_json(project / split_report(CANDIDATE, "test"))["members"]  # each member scored on its own too
    assert sorted(members) == [f"seed_{seed}" for seed in sorted(seeds)]
    assert {"tflite", "tflite_int8", "onnx"} <= set(read_json(project / EXPORT_REPORT)["formats"])
    assert len(json.dumps(files)) < 3000  # a few headline numbers, not every slice: `dvc metrics show` fits a terminal
    assert (project / "reports" / "explain" / "gradcam_with_mask_old.jpg").is_file()
    synthetic = (project / "data" / "augmented" / "augment.csv").read_text()
    assert synthetic.count("__synthmask") >= 4  # the pool's faces joined the training set

    with sqlite3.connect(project / "mlflow.db") as db:
        runs = db.execute("select name from runs").fetchall()
        aliases = db.execute("select alias from registered_model_aliases").fetchall()
        params = db.execute("select count(*) from params").fetchone()[0]
        verdicts = db.execute("select value from tags where key = 'select_verdict'").fetchall()
    assert sorted(r[0] for r in runs) == sorted(SMOKE_CANDIDATES) and ("champion",) in aliases
    assert verdicts == [(best["verdict"],)]  # on the champion's run
    assert params > 0
