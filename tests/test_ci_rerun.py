"""The CI loop end to end, on one machine: a bare git origin and a local-folder DVC remote (this module's copy of
tests/origin_support.py's, built once a run). Clone A ran the pipeline and pushed everything; clone B (no dataset,
no outputs, no MLflow store: production's champion is the base commit's) changes one candidate and runs
`python -m facemask.ops.ci`, which re-runs exactly what changed, reports it, pushes it, and gates: a harmless change
passes within noise, a harmful one fails as worse, a guarded slice below its floor fails naming it."""
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from facemask.ops.ci import RemoteUnavailable, default_remote
from facemask.pipeline.paired import read_predictions
from tests.conftest import REAL_WEIGHTS, tree_digest
from tests.origin_support import CHANGED, LEARNS, OTHER, clone, copy_origin, dvc, sh

pytestmark = pytest.mark.slow


def runner(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return sh(sys.executable, "-m", "facemask.ops.ci", *args, cwd=cwd, check=False)


def stages_rerun(report: str) -> set[str]:
    """The stage names in the report's folded "Stages re-run" table."""
    table = report.split("<summary>Stages re-run")[1].split("</details>")[0]
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
def origin(origin_build, tmp_path_factory) -> dict:
    """This module's copy of the pushed origin (tests/origin_support.py); its tests push to it in turn."""
    return copy_origin(origin_build, tmp_path_factory.mktemp("ci"))


@pytest.fixture
def clone_b(origin, tmp_path) -> Path:
    b = clone(origin, f"b-{tmp_path.name}")
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
    assert f"candidates.{CHANGED}.train.dropout" in report.split("<summary>Params against the base")[1]
    metrics_section = report.split("<summary>Metrics against the base")[1]
    assert f"metrics/candidates/{CHANGED}" in metrics_section and "Change" in metrics_section  # its rows, with deltas
    assert (clone_b / "reports" / "ci" / "plots" / "index.html").is_file()
    assert report.startswith(f"**PASS: the champion {best['winner']} is within noise of the base commit's champion")
    assert f"**{CHANGED}**: param candidates.{CHANGED}.train.dropout: 0.3 -> 0.5" in report
    assert "| validation | " in report and "| test (reported, never gated) | " in report
    assert best["verdict"] in ("wins", "within noise") and "p_value" in best
    assert "`champion` moved: yes: champion -> version 1" in report  # after the gate, on main (--commit)
    assert json.loads(dvc("data", "status", "--not-in-remote", "--json", cwd=clone_b).stdout or "{}") \
        .get("not_in_remote", []) == []

    second = runner("--base", "HEAD~1", cwd=clone_b)  # --commit left a clean tree
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    again = (clone_b / "reports" / "ci" / "report.md").read_text()
    assert "No changes: every stage was up to date" in again and "`champion` moved: no: it is production's version 1" in again


@pytest.mark.skipif(not LEARNS, reason=f"no ImageNet MobileNetV2 weights in {REAL_WEIGHTS}: random-weight heads stay "
                                         "at chance, and a model at chance cannot get worse")
def test_a_harmful_change_fails_the_gate_as_worse(clone_b):
    """A learning rate too small to learn anything, for the champion's candidate: the new champion (it, or the
    candidate that learns less) is worse than the base's on the same validation photos; the runner exits 1 and its
    first line says why. Only the changed candidate re-trains."""
    set_param(clone_b, f"candidates.{OTHER}.train.learning_rate", 1e-7)
    sh("git", "commit", "-q", "-am", "a learning rate that wrecks training", cwd=clone_b)
    result = runner("--base", "HEAD~1", cwd=clone_b)
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "ci: FAIL: the champion" in result.stderr and "is worse than the base commit's champion" in result.stderr
    report = (clone_b / "reports" / "ci" / "report.md").read_text()
    assert report.startswith("**FAIL: the champion") and "| **worse** |" in report
    assert "`champion` moved: no: the gate failed" in report
    held_back = next(line for line in report.splitlines() if line.startswith("Not run: "))  # a pull request's
    assert held_back.endswith(": the gate failed, and a failing change is not shipped.")   # failing change
    assert {"export", "explain", "results"} <= set(held_back.removeprefix("Not run: ").split(":")[0].split(", "))
    assert f"train@{OTHER}" in stages_rerun(report) and not {f"train@{CHANGED}", "export", "explain", "results"} \
        & stages_rerun(report)
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException, match="champion"):  # registered, but production's alias never moved
        MlflowClient(tracking_uri=f"sqlite:///{clone_b / 'mlflow.db'}").get_model_version_by_alias("facemask", "champion")


def test_a_guarded_slice_beyond_its_bound_fails_naming_it(clone_b):
    """Nothing re-trains (ci.guards is read by the gate alone): a bound just beyond what the champion's committed
    validation slices measure (its smallest class's recall, else its largest drop on degraded photos) fails the
    gate by the slice's name."""
    best = json.loads((clone_b / "metrics" / "best.json").read_text())
    reports = clone_b / "reports" / "candidates" / best["winner"]
    rows = read_predictions(reports / "val_predictions.csv")
    counts = Counter(r["actual"] for r in rows)
    smallest = min(counts, key=lambda label: counts[label])
    recall = sum(r["predicted"] == smallest for r in rows if r["actual"] == smallest) / counts[smallest]
    kind, drop = max(((k, v["drop"]) for k, v in json.loads((reports / "val_slices.json").read_text())["degraded"]
                      ["kinds"].items()), key=lambda item: item[1])
    if recall < 1:
        guards, name = {"smallest_class_recall": round(recall + 0.01, 2)}, f"recall of {smallest} (smallest class"
    elif drop > 0.01:
        guards, name = {"degraded_max_drop": round(drop - 0.01, 2)}, f"accuracy drop when {kind}"
    else:
        pytest.skip(f"the champion gets every {smallest} photo right and loses nothing on degraded photos")
    set_param(clone_b, "ci.guards", guards)
    sh("git", "commit", "-q", "-am", f"hold the champion's validation slices to {guards}", cwd=clone_b)
    result = runner("--base", "HEAD~1", cwd=clone_b)
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"ci: FAIL: guarded slice '{name}" in result.stderr
    report = (clone_b / "reports" / "ci" / "report.md").read_text()
    assert report.startswith(f"**FAIL: guarded slice '{name}") and "| **no** |" in report
    assert "Stages re-run" not in report  # the gate alone read the new bound


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
    (lambda b: set_param(b, "ci.alpha", 0.01), "the work tree has uncommitted changes (params.yaml); commit them"),
], ids=["base-not-in-history", "dirty-work-tree"])
def test_a_bad_base_or_a_dirty_tree_is_refused_in_one_line(clone_b, setup, fragment):
    setup(clone_b)
    result = runner("--base", "deadbeef" if "deadbeef" in fragment else "HEAD~1", cwd=clone_b)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("ci: error: "), result.stderr
    assert fragment in lines[0] and not (clone_b / "data" / "raw").exists()


def test_the_default_remote_is_named_by_one_dvc_call_and_its_absence_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    dvc("init", "--no-scm", cwd=tmp_path)
    with pytest.raises(RemoteUnavailable, match="no default DVC remote is configured; add one"):
        default_remote()
    dvc("remote", "add", "other", str(tmp_path / "elsewhere"), cwd=tmp_path)
    dvc("remote", "add", "-d", "storage", str(tmp_path / "a store=here"), cwd=tmp_path)  # a space, an equals sign
    assert default_remote() == ("storage", str(tmp_path / "a store=here"))
    dvc("remote", "add", "--local", "-d", "mine", "../beside", cwd=tmp_path)  # the local level wins; stored relative
    assert default_remote() == ("mine", str(tmp_path.parent / "beside"))     # to .dvc/, read back resolved
