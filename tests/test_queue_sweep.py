"""A sweep on DVC's queue, end to end: a two-value grid queued with `dvc exp run --queue -S`, run by
`dvc queue start`. Each run happens in a temporary copy of the repo (.dvc/tmp/exps/tmpXXXX), so this
checks what would be lost with it: the DVC-tracked dataset must be checked out there, a relative path to
data outside the repo (synthesize.pool, ../pool) must still be found, and the MLflow runs must land in
the original repo's embedded store, tagged with their experiment's name."""
import json
import time
from pathlib import Path

import pytest
import yaml

from facemask.ops.datasets import generate
from tests.origin_support import dvc, sh
from tests.pipeline_support import copy_code, small_candidates, tiny_params

pytestmark = pytest.mark.slow
CANDIDATE, DROPOUTS = "Tiny", (0.2, 0.5)
QUEUE_TIMEOUT_S = 600
# Each look at the queue is a `dvc exp show` process (about 1 s of CPU): every 3 s, under `make test`'s load (the
# queue takes about 200 s there), the looks took CPU from the experiments they waited for.
POLL_S = 10


def tiny_project(root: Path) -> Path:
    """A git + DVC repo with one tiny candidate, its dataset DVC-tracked and a face pool beside it (../pool)."""
    project = root / "project"
    sh("git", "init", "-q", str(project), cwd=root)
    copy_code(project)
    params = tiny_params()
    params["candidates"] = small_candidates(CANDIDATE, backbone="TinyNet")
    params["synthesize"].update(pool="../pool", old_from_pool=2, young_from_train=0, worn_wrong_from_train=0,
                                worn_wrong_from_pool=0)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (project / ".gitignore").write_text("mlflow.db\nmlruns/\n__pycache__/\n")
    generate(project / "dataset", per_class=12, size=40)  # the fewest that leave val and test a photo per class
    generate(root / "pool" / "images", per_class=1, size=40)
    dvc("init", "-q", cwd=project)
    dvc("add", "-q", "dataset", cwd=project)
    sh("git", "add", "-A", cwd=project)
    sh("git", "commit", "-q", "-m", "tiny project", cwd=project)
    return project


def experiments(project: Path) -> dict:
    """{experiment name: (its executor's state, None once done; its data)} from `dvc exp show --json`."""
    shown = json.loads(dvc("exp", "show", "--json", cwd=project).stdout)
    return {exp["revs"][0]["name"]: ((exp.get("executor") or {}).get("state"), exp["revs"][0].get("data"))
            for baseline in shown for exp in baseline.get("experiments") or []}


def wait_for_queue(project: Path) -> str:
    """Poll the experiments' states (`dvc exp show`) until none is queued or running; then `dvc queue status`.

    Not `dvc queue status` while the worker runs: it asks the worker for its state through kombu's filesystem
    broker, whose half-written message can crash the worker with a JSONDecodeError (celery/kombu#1551,
    treeverse/dvc-task#73), leaving the next experiment queued for ever (seen once in `make test`)."""
    deadline = time.monotonic() + QUEUE_TIMEOUT_S
    while time.monotonic() < deadline:
        states = [state for state, _ in experiments(project).values()]
        if not any(state in ("queued", "running") for state in states):
            return dvc("queue", "status", cwd=project).stdout
        time.sleep(POLL_S)
    pytest.fail(f"the queue did not finish in {QUEUE_TIMEOUT_S} s:\n{states}")


def mlflow_runs(project: Path) -> dict:
    """{dvc_experiment tag: its run} of the runs in the project's embedded store."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("facemask").experiment_id])
    return {run.data.tags["dvc_experiment"]: run for run in runs}


def test_a_queued_grid_runs_in_temporary_copies_and_is_recorded_in_the_repo(tmp_path):
    project = tiny_project(tmp_path)
    grid = ",".join(map(str, DROPOUTS))
    dvc("exp", "run", "--queue", "-S", f"candidates.{CANDIDATE}.train.dropout={grid}", f"train@{CANDIDATE}",
        cwd=project)

    started = time.monotonic()
    dvc("queue", "start", "--jobs", "1", cwd=project)
    status = wait_for_queue(project)
    print(f"two queued experiments finished in {time.monotonic() - started:.0f} s")

    found = {name: data for name, (_, data) in experiments(project).items()}
    logs = "".join(dvc("queue", "logs", name, cwd=project, check=False).stdout[-3000:] for name in found)
    assert len(found) == 2 and status.count(" Success") == 2, status + logs
    dropouts = {name: data["params"]["params.yaml"]["data"]["candidates"][CANDIDATE]["train"]["dropout"]
                for name, data in found.items()}
    assert sorted(dropouts.values()) == sorted(DROPOUTS)
    for data in found.values():
        assert 0 <= data["metrics"][f"metrics/candidates/{CANDIDATE}_val.json"]["data"]["val_macro_f1"] <= 1
        assert data["outs"]["data/synthetic"]["nfiles"] == 3  # the pool's two faces (../pool) and synthetic.csv

    runs = mlflow_runs(project)
    assert set(found) <= set(runs), {name: run.data.tags for name, run in runs.items()}
    for name, dropout in dropouts.items():
        run = runs[name]
        assert run.data.tags["stage"] == "train" and float(run.data.params["dropout"]) == dropout
        assert "val_macro_f1" in run.data.metrics
        assert run.info.artifact_uri.startswith((project / "mlruns").as_uri())
