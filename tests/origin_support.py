"""One pushed origin for the suites that clone it as runners would (test_ci_rerun, test_sweep): a bare git repository
and a DVC remote holding a complete run of a two-candidate project, its champion registered in an MLflow store.

It is built once a test run (in the background under `make test`, tests/conftest.py) and each suite takes its own
copy (copy_origin): the suites push to their origin, and a run cache shared between them would let one suite's
experiments skip the training the other checks. The DVC remote's committed URL is relative (`../dvc-storage`);
each clone names its copy's remote by absolute path in its local config (clone())."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import yaml

from facemask.core.backbones import BACKBONES
from facemask.core.params import Synthesize
from facemask.ops.datasets import generate
from tests.conftest import REAL_WEIGHTS
from tests.pipeline_support import build_once, copy_code, small_candidates, tiny_params

CHANGED, OTHER = "Other", "First"  # two small candidates: OTHER is the champion, CHANGED learns less
BROKEN_WEIGHTS = "weights/broken.txt"  # a file, so params accept it; not a weights file, so features fails
BROKEN_SWEEP = {"list": [{f"candidates.{CHANGED}.train.dropout": 0.2, f"candidates.{CHANGED}.train.learning_rate": 0.01},
                         {f"candidates.{CHANGED}.train.dropout": 0.5, f"candidates.{CHANGED}.train.learning_rate": 0.01},
                         {f"candidates.{CHANGED}.weights": BROKEN_WEIGHTS},
                         {f"candidates.{CHANGED}.train.dropout": 0.2, f"candidates.{CHANGED}.train.learning_rate": 0.003}]}
GIT_IDENTITY = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
# What a copy holds: the git origin, the DVC remote, the MLflow store (tracking database and artifacts).
STORES = ("origin.git", "dvc-storage", "mlflow.db", "artifacts")

# With ImageNet weights the small heads learn the generated classes (validation accuracy about 0.9); a random-weight
# backbone's pooled features vanish (about 1e-13) and its heads stay at chance, where no change can be worse.
LEARNS = (REAL_WEIGHTS / BACKBONES["MobileNetV2"].local_names[-1]).is_file()


def sh(*args: str, cwd: Path, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """A command with this environment's tools and a git identity; no tracking URI unless `env` gives one."""
    if env is None:
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
        env |= GIT_IDENTITY
    result = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True)
    assert not check or result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def dvc(*args: str, cwd: Path, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    return sh(sys.executable, "-m", "dvc", *args, cwd=cwd, check=check, env=env)


def origin_params() -> dict:
    params = tiny_params()
    # ten epochs to CHANGED's one: the tests change CHANGED and the champion stays (export and explain with it), or
    # wreck OTHER, the champion, and a worse one takes its place
    params["candidates"] = small_candidates(OTHER, epochs=10) | small_candidates(CHANGED, epochs=1)
    if LEARNS:
        params["features"]["weights_dir"] = str(REAL_WEIGHTS)
        for candidate in params["candidates"].values():
            candidate["weights"] = "imagenet"
    params["synthesize"].update(dict.fromkeys(Synthesize.POOL_COUNTS, 0))  # no pool in this project
    params["split"]["ratio"] = [0.5, 0.4, 0.1]  # enough validation photos for a wrecked model to be told apart
    params["ci"] = {"alpha": 0.05, "guards": {}}  # the tiny models' slices are not held
    return params


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, log: Path, seconds: float = 120) -> None:
    """Until `url` answers; fails with the log's end if `process` dies or time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {seconds}s: {log.read_text()[-3000:]}")


@contextmanager
def mlflow_server(root: Path):
    """`mlflow server` on 127.0.0.1 over root/mlflow.db and root/artifacts; yields its URI, stops it at the end."""
    port, log = free_port(), root / "mlflow.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "artifacts")],
        cwd=root, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
        env=os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})  # no GenAI job workers, as deploy/ runs it
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{uri}/health", server, log)
        yield uri
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def runner_env(tracking_uri: str) -> dict:
    """A runner's environment: the venv's tools, a git identity, the team's MLflow server, its own copy of the code."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.pop("PYTHONPATH", None)
    return env | GIT_IDENTITY | {"MLFLOW_TRACKING_URI": tracking_uri}


def build_origin(root: Path) -> None:
    """Clone A of an empty origin: the project (with a sweep file that has one broken experiment), `dvc repro` of
    the whole DAG against an MLflow server, everything committed and pushed (git, DVC cache, run cache)."""
    root.mkdir(parents=True)
    bare, a = root / "origin.git", root / "a"
    sh("git", "init", "-q", "--bare", str(bare), cwd=root)
    (root / "dvc-storage").mkdir()
    sh("git", "clone", "-q", str(bare), str(a), cwd=root)
    copy_code(a)
    (a / "params.yaml").write_text(yaml.safe_dump(origin_params(), sort_keys=False))
    (a / ".gitignore").write_text("mlflow.db\nmlruns/\n__pycache__/\n/reports/ci/\n/reports/sweeps/\n")
    (a / "weights").mkdir()
    (a / BROKEN_WEIGHTS).write_text("not a weights file\n")
    (a / "sweeps").mkdir()
    (a / "sweeps" / "broken.yaml").write_text(yaml.safe_dump(BROKEN_SWEEP, sort_keys=False))
    generate(a / "dataset", per_class=20, size=40)
    dvc("init", "-q", cwd=a)
    dvc("remote", "add", "-d", "storage", "../dvc-storage", cwd=a)  # relative: every copy's clones find theirs
    dvc("add", "-q", "dataset", cwd=a)
    sh("git", "add", "-A", cwd=a)
    sh("git", "commit", "-q", "-m", "pipeline", cwd=a)
    with mlflow_server(root) as uri:
        dvc("repro", cwd=a, env=runner_env(uri))
    sh("git", "add", "-A", cwd=a)
    sh("git", "commit", "-q", "-m", "results", cwd=a)
    sh("git", "push", "-q", "origin", "HEAD", cwd=a)
    dvc("push", "--run-cache", cwd=a)


def copy_origin(built: Path, root: Path) -> dict:
    """A suite's own copy of the origin's stores in `root`: {"root", "bare"}; clone into root (clone())."""
    for name in STORES:
        source = built / name
        if source.is_dir():
            shutil.copytree(source, root / name, symlinks=True)
        else:
            shutil.copy(source, root / name)
    return {"root": root, "bare": root / "origin.git"}


def clone(origin: dict, name: str) -> Path:
    """A fresh clone of the origin, beside its DVC remote, which its local config names by absolute path:
    `dvc exp run --temp` works in a copy under .dvc/tmp/exps/, where the committed relative URL points nowhere."""
    target = origin["root"] / name
    sh("git", "clone", "-q", str(origin["bare"]), str(target), cwd=origin["root"])
    dvc("remote", "modify", "--local", "storage", "url", str(origin["root"] / "dvc-storage"), cwd=target)
    return target


if __name__ == "__main__":  # `make test`'s background build (tests/conftest.py: pytest_sessionstart)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stopped early: its MLflow server is stopped too
    build_once(Path(sys.argv[1]), "origin", build_origin)
