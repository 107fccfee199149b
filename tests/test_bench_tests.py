"""benchmarks/bench_tests.py's reading of what it measured: pytest's output, the process log, process kinds."""
import json
import subprocess
import sys

import pytest

from benchmarks.bench_tests import HOOK, LOG_ENV, kind, processes, slowest, suite, summary_line

pytestmark = pytest.mark.unit

OUTPUT = """.......
============================= slowest 25 durations =============================
250.67s setup    tests/test_team_tracking.py::test_runs_on_the_server
13.14s call     tests/test_bad_input.py::test_by_hand[train-before-features]
0.01s teardown tests/test_a.py::test_b
385 passed, 5 warnings in 724.00s (0:12:03)
"""


def test_the_slowest_tests_and_the_summary_are_read_from_pytests_output():
    assert slowest(OUTPUT) == [
        {"seconds": 250.67, "phase": "setup", "test": "tests/test_team_tracking.py::test_runs_on_the_server"},
        {"seconds": 13.14, "phase": "call", "test": "tests/test_bad_input.py::test_by_hand[train-before-features]"},
        {"seconds": 0.01, "phase": "teardown", "test": "tests/test_a.py::test_b"}]
    assert summary_line(OUTPUT) == "385 passed, 5 warnings in 724.00s (0:12:03)"


@pytest.mark.parametrize("argv, expected", [
    ("/p/stages/train.py Tiny", "stage train"),
    ("/v/site-packages/dvc/__main__.py exp run --temp", "dvc exp run"),
    ("/v/bin/dvc exp queue-worker w1 --clean", "dvc exp queue-worker"),
    ("/v/site-packages/dvc/__main__.py status --json", "dvc status"),
    ("/v/site-packages/mlflow/__main__.py server --port 5000", "mlflow server"),
    ("/p/facemask/__main__.py serve --model m", "facemask serve"),
    ("/v/site-packages/uvicorn/__main__.py --port 5000", "uvicorn"),
    ("-c", "python -c (pytest-xdist workers, multiprocessing children)"),
    ("/p/facemask/ops/sweep.py job s.yaml", "sweep.py"),
    ("/tmp/pytest-of-root/pytest-1/sweep0/a/facemask/ops/sweep.py job s.yaml", "sweep.py"),  # not pytest
    ("/v/site-packages/pytest/__main__.py -q -n 3", "pytest"),
])
def test_a_process_is_named_by_what_it_runs(argv, expected):
    assert kind(argv) == expected


def test_the_hook_logs_a_process_and_the_log_adds_up(tmp_path):
    (tmp_path / "bench_tests_hook.py").write_text(HOOK)
    log = tmp_path / "processes.jsonl"
    for code in ("import bench_tests_hook", "import bench_tests_hook, json"):
        subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True,
                       env={"PYTHONPATH": str(tmp_path), LOG_ENV: str(log)})
    subprocess.run([sys.executable, "-c", "import bench_tests_hook"], cwd=tmp_path, check=True,
                   env={"PYTHONPATH": str(tmp_path)})  # not measuring: nothing logged
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(rows) == 2 and all(row["cpu"] > 0 and not row["tensorflow"] for row in rows)
    spent = processes(log)
    assert spent["count"] == 2 and spent["tensorflow"] == {"count": 0, "cpu_seconds": 0}
    assert spent["by_kind"][0]["name"].startswith("python -c") and spent["by_kind"][0]["count"] == 2
    assert rows[0]["cwd"] == str(tmp_path) and spent["by_suite"] == [
        {"name": "test_the_hook_logs_a_process_a", "count": 2, "tensorflow": 0,  # pytest's name for tmp_path
         "cpu_seconds": spent["by_kind"][0]["cpu_seconds"]}]


@pytest.mark.parametrize("cwd, expected", [
    ("/tmp/pytest-of-root/pytest-7/smoke/project", "smoke"),
    ("/tmp/pytest-of-root/pytest-7/popen-gw2/team0/project", "team"),
    ("/tmp/pytest-of-root/pytest-7/popen-gw0/test_a_queued_grid_runs_in_tem0/project/.dvc/tmp/exps/run/tmp1",
     "test_a_queued_grid_runs_in_tem"),
    ("/tmp/bench-tests-x/main", "elsewhere"),
])
def test_a_process_is_put_in_the_suite_whose_temporary_folder_it_ran_in(cwd, expected):
    assert suite(cwd) == expected
