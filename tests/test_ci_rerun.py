"""The CI loop end to end, on one machine: a bare git origin and a local-folder DVC remote. Clone A runs
the pipeline and pushes everything; clone B (no dataset, no outputs) changes one candidate and runs
`python -m facemask.ops.ci`, which re-runs exactly what changed, reports it, pushes it, and gates on the
champion's validation metric."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from facemask.core.params import Synthesize
from facemask.ops.datasets import generate
from tests.conftest import tree_digest
from tests.pipeline_support import copy_code, small_candidates, tiny_params

pytestmark = pytest.mark.slow
CHANGED, OTHER = "Other", "First"  # two small candidates; the test changes one of them


def sh(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env |= {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    result = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True)
    assert not check or result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def dvc(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    return sh(sys.executable, "-m", "dvc", *args, cwd=cwd, check=check)


def runner(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return sh(sys.executable, "-m", "facemask.ops.ci", *args, cwd=cwd, check=False)


def ci_params() -> dict:
    params = tiny_params()
    params["candidates"] = small_candidates(OTHER, CHANGED, epochs=2)
    params["synthesize"].update(dict.fromkeys(Synthesize.POOL_COUNTS, 0))  # no pool in this project
    params["ci"] = {"max_drop": 1.0}
    return params


def stages_rerun(report: str) -> set[str]:
    """The stage names in the report's "Stages re-run" table."""
    table = report.split("## Stages re-run")[1].split("## Champion")[0]
    return {line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ") and "| why |" not in line}


def set_param(project: Path, dotted: str, value) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    *parents, key = dotted.split(".")
    node = params
    for name in parents:
        node = node[name]
    node[key] = value
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def origin(tmp_path_factory) -> dict:
    """A bare origin and a DVC remote holding a complete run, pushed from clone A."""
    root = tmp_path_factory.mktemp("ci")
    bare, storage, a = root / "origin.git", root / "dvc-storage", root / "a"
    sh("git", "init", "-q", "--bare", str(bare), cwd=root)
    storage.mkdir()
    sh("git", "clone", "-q", str(bare), str(a), cwd=root)
    copy_code(a)
    (a / "params.yaml").write_text(yaml.safe_dump(ci_params(), sort_keys=False))
    (a / ".gitignore").write_text("mlflow.db\nmlruns/\n__pycache__/\n/reports/ci/\n")
    generate(a / "dataset", per_class=12, size=40)
    dvc("init", "-q", cwd=a)
    dvc("remote", "add", "-d", "storage", str(storage), cwd=a)
    dvc("add", "-q", "dataset", cwd=a)
    sh("git", "add", "-A", cwd=a)
    sh("git", "commit", "-q", "-m", "pipeline", cwd=a)
    dvc("repro", cwd=a)
    sh("git", "add", "-A", cwd=a)
    sh("git", "commit", "-q", "-m", "results", cwd=a)
    sh("git", "push", "-q", "origin", "HEAD", cwd=a)
    dvc("push", cwd=a)
    return {"bare": bare, "root": root}


@pytest.fixture
def clone_b(origin, tmp_path) -> Path:
    b = tmp_path / "b"
    sh("git", "clone", "-q", str(origin["bare"]), str(b), cwd=tmp_path)
    assert not (b / "dataset").exists() and not (b / "data" / "raw").exists()  # only git: no data, no outputs
    return b


def test_a_change_to_one_candidate_reruns_only_it_reports_and_pushes(clone_b):
    set_param(clone_b, f"candidates.{CHANGED}.train.dropout", 0.5)
    sh("git", "commit", "-q", "-am", "dropout 0.5", cwd=clone_b)

    first = runner("--base", "HEAD~1", "--commit", cwd=clone_b)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    report = (clone_b / "reports" / "ci" / "report.md").read_text()
    ran = stages_rerun(report)
    best = json.loads((clone_b / "metrics" / "best.json").read_text())
    expected = {f"train@{CHANGED}", f"evaluate@{CHANGED}", "select", "results"}
    champion_changed = "`champion` moved: yes" in report and best["winner"] == CHANGED
    assert expected <= ran and ran - expected <= ({"export", "explain"} if champion_changed else set()), report
    assert f"param candidates.{CHANGED}.train.dropout: 0.3 -> 0.5" in report
    assert f"candidates.{CHANGED}.train.dropout" in report.split("## Params against the base")[1]
    metrics_section = report.split("## Metrics against the base")[1]
    assert f"metrics/candidates/{CHANGED}" in metrics_section and "Change" in metrics_section  # its rows, with deltas
    assert (clone_b / "reports" / "ci" / "plots" / "index.html").is_file()
    assert "Quality gate: passed" in report
    assert json.loads(dvc("data", "status", "--not-in-remote", "--json", cwd=clone_b).stdout or "{}") \
        .get("not_in_remote", []) == []

    second = runner("--base", "HEAD~1", cwd=clone_b)  # --commit left a clean tree
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "No changes: every stage was up to date" in (clone_b / "reports" / "ci" / "report.md").read_text()


def test_a_drop_of_the_selection_metric_fails_the_gate_with_the_reason(clone_b):
    """The base's champion scored higher than the pipeline gives now (its select.json says 1.0): select
    re-runs, the metric falls by more than ci.max_drop, the runner exits 1 and says why."""
    set_param(clone_b, "ci.max_drop", 0.02)
    best = json.loads((clone_b / "reports" / "select.json").read_text())
    (clone_b / "reports" / "select.json").write_text(json.dumps({**best, "value": 1.0}))
    sh("git", "commit", "-q", "-am", "a base whose champion scored 1.0", cwd=clone_b)
    result = runner("--base", "HEAD", cwd=clone_b)
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "quality gate FAILED" in result.stderr and "ci.max_drop=0.02" in result.stderr
    assert "**Quality gate: FAILED" in (clone_b / "reports" / "ci" / "report.md").read_text()


def test_an_unreachable_remote_says_so_once_and_loses_nothing(clone_b, tmp_path):
    dvc("remote", "modify", "--local", "storage", "url", str(tmp_path / "gone"), cwd=clone_b)
    head, files = sh("git", "rev-parse", "HEAD", cwd=clone_b).stdout, tree_digest(clone_b / "stages")
    result = runner("--base", "HEAD~1", cwd=clone_b)
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "remote unavailable" in lines[0] and "gone" in lines[0], result.stderr
    assert "remote unavailable" in (clone_b / "reports" / "ci" / "report.md").read_text()
    assert sh("git", "rev-parse", "HEAD", cwd=clone_b).stdout == head and tree_digest(clone_b / "stages") == files
    assert sh("git", "status", "--porcelain", "--untracked-files=no", cwd=clone_b).stdout == ""


@pytest.mark.parametrize("setup, fragment", [
    (lambda b: None, "base commit 'deadbeef' is not in this clone's history; fetch it"),
    (lambda b: set_param(b, "ci.max_drop", 0.5), "the work tree has uncommitted changes (params.yaml); commit them"),
], ids=["base-not-in-history", "dirty-work-tree"])
def test_a_bad_base_or_a_dirty_tree_is_refused_in_one_line(clone_b, setup, fragment):
    setup(clone_b)
    result = runner("--base", "deadbeef" if "deadbeef" in fragment else "HEAD~1", cwd=clone_b)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("ci: error: "), result.stderr
    assert fragment in lines[0] and not (clone_b / "data" / "raw").exists()
