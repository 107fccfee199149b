"""Sweeps across machines (facemask/ops/sweep.py): the sweep file's checks and expansion (unit), then end to end as
separate runners would do it: a bare git origin, a local DVC remote and one `mlflow server` on 127.0.0.1 that
every clone reaches; one sweep of four experiments, one of them broken, whose four jobs run at the same time,
each in its own clone; a gather in another clone; and its re-run, which runs only the broken one."""
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from facemask.ops.sweep_file import SweepError, load
from facemask.ops.sweep_report import DONE, FAILED, Row, metric_ci, promotion, ranked, table
from tests.origin_support import (
    BROKEN_WEIGHTS,
    CHANGED,
    clone,
    copy_origin,
    dvc,
    free_port,
    mlflow_server,
    origin_params,
    runner_env,
    sh,
)
from tests.pipeline_support import small_candidates

CANDIDATE = CHANGED  # the candidate the sweeps change; its sweep with a broken experiment is in the origin
GRID = {"grid": {f"candidates.{CANDIDATE}.train.dropout": [0.2, 0.5],
                 f"candidates.{CANDIDATE}.train.learning_rate": [0.01, 0.003]}}
JOB_TIMEOUT_S = 900


# ---- the sweep file (unit) ------------------------------------------------------------------------------------

@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A folder with the tiny params.yaml, as the working directory."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(origin_params(), sort_keys=False))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_sweep(project: Path, spec: dict, name: str = "s.yaml") -> Path:
    path = project / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.mark.unit
def test_a_grid_and_a_list_expand_in_order_with_stable_names(project):
    spec = {**GRID, "list": [{f"candidates.{CANDIDATE}.train.epochs": 2}]}
    sweep = load(write_sweep(project, spec), baseline="abc123")
    assert sweep.experiments == (
        {f"candidates.{CANDIDATE}.train.dropout": 0.2, f"candidates.{CANDIDATE}.train.learning_rate": 0.01},
        {f"candidates.{CANDIDATE}.train.dropout": 0.2, f"candidates.{CANDIDATE}.train.learning_rate": 0.003},
        {f"candidates.{CANDIDATE}.train.dropout": 0.5, f"candidates.{CANDIDATE}.train.learning_rate": 0.01},
        {f"candidates.{CANDIDATE}.train.dropout": 0.5, f"candidates.{CANDIDATE}.train.learning_rate": 0.003},
        {f"candidates.{CANDIDATE}.train.epochs": 2})
    assert sweep.targets == (f"train@{CANDIDATE}",) and sweep.name == "s"
    assert load(project / "s.yaml", baseline="abc123").id == sweep.id != load(project / "s.yaml", baseline="def").id
    assert sweep.run_args(1) == ["exp", "run", "--temp", "--pull", "--allow-missing", "-n", f"{sweep.id}-1",
                                 "-S", f"candidates.{CANDIDATE}.train.dropout=0.2",
                                 "-S", f"candidates.{CANDIDATE}.train.learning_rate=0.003", f"train@{CANDIDATE}"]
    matrix = sweep.matrix()["include"]
    assert [entry["index"] for entry in matrix] == [0, 1, 2, 3, 4]
    assert matrix[4] == {"index": 4, "name": f"{sweep.id}-4", "overrides": f"candidates.{CANDIDATE}.train.epochs=2"}


@pytest.mark.unit
def test_a_shared_setting_trains_every_candidate_and_targets_can_be_named(project):
    params = origin_params()
    params["candidates"] = small_candidates("A", "B")
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    assert load(write_sweep(project, {"grid": {"augment.copies": [1, 2]}}), baseline="x").targets == ("train@A", "train@B")
    named = {"targets": ["train@B"], "grid": {"augment.copies": [1, 2]}}
    assert load(write_sweep(project, named), baseline="x").candidates() == ["B"]


@pytest.mark.unit
@pytest.mark.parametrize("spec, message", [
    ({"grid": {f"candidates.{CANDIDATE}.train.dropuot": [0.1]}},
     f"s.yaml: candidates.{CANDIDATE}.train.dropuot is not a setting in params.yaml; "
     f"did you mean candidates.{CANDIDATE}.train.dropout?"),
    ({"grid": {"candidates.Nobody.image_size": [32]}}, "s.yaml: candidates.Nobody.image_size is not a setting in params.yaml"),
    ({"grid": {f"candidates.{CANDIDATE}.train.dropout": [0.3, 5]}},
     f"s.yaml: experiment 1 (candidates.{CANDIDATE}.train.dropout=5): candidates.{CANDIDATE}.train.dropout must be "
     "a number >= 0 and <= 0.99, got 5"),
    ({"grids": {}}, "s.yaml: grids is not a sweep setting; the settings are: name, targets, grid, list"),
    ({"grid": {f"candidates.{CANDIDATE}.train.dropout": 0.3}}, "s.yaml: grid must map each params key to a non-empty list"),
    ({"list": [{f"candidates.{CANDIDATE}.train.dropout": 0.3}] * 2},
     f"experiment 1 (candidates.{CANDIDATE}.train.dropout=0.3) repeats an earlier one"),
    ({}, "s.yaml: no experiments; give a grid: or a list: of overrides"),
    ({"name": "a b", "list": [{"train.patience": 3}]}, "s.yaml: name 'a b' must be 1-40 letters"),
], ids=["typo", "unknown-candidate", "out-of-range", "unknown-section", "grid-not-list", "repeat", "empty", "bad-name"])
def test_a_bad_sweep_file_is_refused_naming_the_file_and_the_key(project, spec, message):
    with pytest.raises(SweepError) as refused:
        load(write_sweep(project, spec), baseline="x")
    assert str(refused.value).startswith(str(project / "s.yaml")) and message.removeprefix("s.yaml") in str(refused.value)


@pytest.mark.unit
def test_expand_prints_the_matrix_and_a_bad_file_is_one_line(project):
    write_sweep(project, GRID)
    sh("git", "init", "-q", ".", cwd=project)
    sh("git", "commit", "-q", "--allow-empty", "-m", "base", cwd=project)
    expanded = sweep_cli(project, {}, "expand", "s.yaml")
    assert expanded.returncode == 0, expanded.stderr
    assert len(json.loads(expanded.stdout)["include"]) == 4
    write_sweep(project, {"grid": {"train.patiense": [3]}})
    refused = sweep_cli(project, {}, "expand", "s.yaml")
    assert refused.returncode == 2 and refused.stderr.strip().splitlines() == [
        "sweep: error: s.yaml: train.patiense is not a setting in params.yaml; did you mean train.patience?"]


@pytest.mark.unit
def test_the_table_ranks_done_rows_by_the_metric_then_failed_ones_and_names_the_promotion():
    rows = [Row(0, "s-0", "a=1", "T", DONE, 0.5, verdict="within noise: ...", train_seconds=3.0),
            Row(1, "s-1", "a=2", "T", FAILED, log_tail="Traceback\nValueError: not a weights file"),
            Row(2, "s-2", "a=3", "T", DONE, 0.75, (0.5, 0.9), "better: ...", 2.0),
            Row(3, "s-3", "a=4", "T")]
    assert [row.name for row in ranked(rows)] == ["s-2", "s-0", "s-1", "s-3"]
    promote = promotion(ranked(rows)[0], {"a": 3}, {"a": 1})
    text = table("s", "val_macro_f1", rows, ["a fact"], promote)
    assert "| 1 | s-2 | `a=3` | T | done | 0.7500 | [0.500, 0.900] | better: ... | 2.0 |" in text
    assert "| 4 | s-3 | `a=4` | T | not run |" in text and "ValueError: not a weights file" in text
    assert "- `a`: 1 -> 3" in text and "dvc exp apply s-2" in text
    assert "No experiment is better than the champion" not in text
    assert "No experiment is better than the champion: promoting s-0 changes T's settings" in "\n".join(
        promotion(rows[0], {"a": 1}, {"a": 1}))
    assert promotion(None, {}, {}) == ["No experiment finished: nothing to promote."]


@pytest.mark.unit
def test_the_metric_ci_is_a_bootstrap_over_the_photos():
    actual, predicted = ["a", "b"] * 20, ["a", "b"] * 15 + ["b", "a"] * 5
    low, high = metric_ci(actual, predicted, "accuracy")
    assert 0 <= low < 0.75 < high <= 1
    assert metric_ci(actual, actual, "accuracy") == (1.0, 1.0) and metric_ci(actual, predicted, "reframed") is None


# ---- end to end -------------------------------------------------------------------------------------------------

def sweep_cli(clone: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "facemask.ops.sweep", *args], cwd=clone, env=env or None,
                          capture_output=True, text=True, timeout=JOB_TIMEOUT_S)


def start_jobs(clones: list[Path], env: dict, file: str) -> list[subprocess.Popen]:
    """`job FILE --index i` in clone i, all started at once (as a matrix's runners would)."""
    return [subprocess.Popen([sys.executable, "-m", "facemask.ops.sweep", "job", file, "--index", str(i)], cwd=clone,
                             env=env, stdout=(clone.parent / f"{clone.name}.log").open("w"), stderr=subprocess.STDOUT)
            for i, clone in enumerate(clones)]


def wait_all(processes: list[subprocess.Popen]) -> list[int]:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    return [process.wait(timeout=max(1, deadline - time.monotonic())) for process in processes]


@pytest.fixture(scope="module")
def origin(origin_build, tmp_path_factory):
    """This module's copy of the pushed origin (tests/origin_support.py), its champion registered, and an MLflow
    server on the copy's store that every clone reaches; the server is stopped at the end."""
    copied = copy_origin(origin_build, tmp_path_factory.mktemp("sweep"))
    with mlflow_server(copied["root"]) as uri:
        yield copied | {"uri": uri, "env": runner_env(uri)}


def mlflow_client(origin: dict):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=origin["uri"], registry_uri=origin["uri"])


def sweep_runs(origin: dict, sweep_id: str) -> tuple[list, list]:
    """(parent runs, child runs) of a sweep in the server, deleted runs left out."""
    client = mlflow_client(origin)
    experiment = client.get_experiment_by_name("facemask").experiment_id
    runs = client.search_runs([experiment], f"tags.sweep_id = '{sweep_id}'")
    return ([r for r in runs if r.data.tags["sweep_role"] == "parent"],
            [r for r in runs if r.data.tags["sweep_role"] == "experiment"])


def table_rows(report: str) -> list[dict]:
    """The ranked table's rows as {column: cell}."""
    lines = [line for line in report.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    return [dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")), strict=True)) for line in lines[1:]]


def run_sweep(origin: dict, file: str, tag: str) -> tuple[str, list[int]]:
    """The sweep's id (from `expand`) and the exit statuses of its jobs, each in a fresh clone, all at once."""
    first = clone(origin, f"{tag}-0")
    expanded = sweep_cli(first, origin["env"], "expand", file)
    assert expanded.returncode == 0, expanded.stderr
    matrix = json.loads(expanded.stdout)["include"]
    clones = [first] + [clone(origin, f"{tag}-{i}") for i in range(1, len(matrix))]
    statuses = wait_all(start_jobs(clones, origin["env"], file))
    return matrix[0]["name"].rsplit("-", 1)[0], statuses


def job_log(origin: dict, tag: str, index: int) -> str:
    return (origin["root"] / f"{tag}-{index}.log").read_text()


@pytest.fixture(scope="module")
def swept(origin) -> dict:
    """The sweep with one broken experiment, its four jobs run at once; the champion before it."""
    champion_before = mlflow_client(origin).get_model_version_by_alias("facemask", "champion").version
    sweep_id, statuses = run_sweep(origin, "sweeps/broken.yaml", "broken")
    return {"id": sweep_id, "statuses": statuses, "champion_before": champion_before}


@pytest.mark.slow
def test_four_runners_at_once_give_one_ranked_table_with_verdicts_a_failed_row_and_one_parent_run(origin, swept):
    sweep_id = swept["id"]
    assert swept["statuses"] == [0, 0, 1, 0], [job_log(origin, "broken", i)[-2000:] for i in range(4)]
    assert "FAILED" in job_log(origin, "broken", 2)

    gatherer = clone(origin, "broken-gather")
    gathered = sweep_cli(gatherer, origin["env"], "gather", "sweeps/broken.yaml")
    assert gathered.returncode == 0, gathered.stdout[-3000:] + gathered.stderr[-3000:]
    report = (gatherer / "reports" / "sweeps" / f"{sweep_id}.md").read_text()
    rows = table_rows(report)
    assert [row["status"] for row in rows] == ["done", "done", "done", "FAILED"], report
    assert {row["experiment"] for row in rows} == {f"{sweep_id}-{i}" for i in range(4)}, report
    metrics = [float(row["val_macro_f1"]) for row in rows[:3]]
    assert metrics == sorted(metrics, reverse=True) and all(0 <= m <= 1 for m in metrics), report
    for row in rows[:3]:
        assert row["95% CI"].startswith("[") and float(row["train s"]) > 0, row
        assert row["verdict vs champion"].split(":")[0] in ("better", "within noise", "worse"), row
        assert "wins" in row["verdict vs champion"] and "photos" in row["verdict vs champion"], row
    assert rows[3]["experiment"] == f"{sweep_id}-2" and BROKEN_WEIGHTS in rows[3]["overrides"]
    details = gathered.stdout.split(f"{sweep_id}-2 FAILED: its last log lines")[1]
    assert "features" in details, details
    assert "its validation predictions as its run logged them" in report
    assert f"dvc exp apply {rows[0]['experiment']}" in report and report in gathered.stdout
    strict = sweep_cli(gatherer, origin["env"], "gather", "sweeps/broken.yaml", "--strict")
    assert strict.returncode == 1 and f"1 of 4 rows did not finish: {sweep_id}-2" in strict.stderr, strict.stderr

    parents, children = sweep_runs(origin, sweep_id)
    assert len(parents) == 1 and len(children) == 4, [r.data.tags for r in parents + children]
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert sorted(int(r.data.tags["sweep_index"]) for r in children) == [0, 1, 2, 3]
    done = [r for r in children if r.data.tags["sweep_index"] != "2"]
    assert all(r.info.status == "FINISHED" and f"{CANDIDATE}.val_macro_f1" in r.data.metrics for r in done)
    failed = [r for r in children if r.info.status == "FAILED"]
    assert [r.data.tags["sweep_index"] for r in failed] == ["2"] and failed[0].data.tags["sweep_log_tail"]
    overrides = {json.dumps(json.loads(r.data.tags["sweep_overrides"]), sort_keys=True) for r in children}
    assert len(overrides) == 4
    client = mlflow_client(origin)
    for child in done:  # each experiment's train run hangs under its child
        nested = client.search_runs([child.info.experiment_id], f"tags.mlflow.parentRunId = '{child.info.run_id}'")
        assert [r.data.tags["stage"] for r in nested] == ["train"], child.data.tags
    assert client.get_model_version_by_alias("facemask", "champion").version == swept["champion_before"]

    third = clone(origin, "broken-third")
    dvc("exp", "pull", "origin", "--all-commits", cwd=third)
    shown = json.loads(dvc("exp", "show", "--json", cwd=third).stdout)
    names = {exp["revs"][0]["name"] for baseline in shown for exp in baseline.get("experiments") or []}
    assert names >= {f"{sweep_id}-{i}" for i in (0, 1, 3)}, names


@pytest.mark.slow
def test_a_rerun_runs_only_the_failed_experiment_and_reuses_its_run(origin, swept):
    sweep_id = swept["id"]
    rerun = [clone(origin, f"rerun-{i}") for i in range(4)]
    again = wait_all(start_jobs(rerun, origin["env"], "sweeps/broken.yaml"))
    logs = [(origin["root"] / f"rerun-{i}.log").read_text() for i in range(4)]
    assert again == [0, 0, 1, 0], logs
    for i in (0, 1, 3):
        assert f"sweep: {sweep_id}-{i} is on origin already; skipped" in logs[i] and "Running stage" not in logs[i]
    parents, children = sweep_runs(origin, sweep_id)
    assert len(parents) == 1 and len(children) == 4  # the failed experiment's run was reused, not doubled


@pytest.mark.slow
def test_an_unreachable_server_or_remote_fails_fast_in_one_line(origin):
    runner = clone(origin, "unreachable")
    gone = {**origin["env"], "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}"}
    result = sweep_cli(runner, gone, "job", "sweeps/broken.yaml", "--index", "0")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 3 and len(lines) == 1 and "no MLflow tracking server answers there" in lines[0], result.stderr
    dvc("remote", "modify", "--local", "storage", "url", str(origin["root"] / "gone"), cwd=runner)
    result = sweep_cli(runner, origin["env"], "gather", "sweeps/broken.yaml")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 3 and len(lines) == 1 and "remote unavailable" in lines[0], result.stderr
    assert not (runner / "reports" / "sweeps").exists()
