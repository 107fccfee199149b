"""A team's MLflow, for real on 127.0.0.1: deploy/tracking_server.sh starts PostgreSQL and `mlflow server` (basic
auth, proxied artifacts); a tiny pipeline logs into it; predict, serve and `mlflow models serve` load the
champion from its registry; a database outage fails fast and leaves no half-registered model; credentials count."""
import base64
import contextlib
import glob
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from facemask.core.params import Synthesize
from facemask.ops.datasets import generate
from tests.conftest import REPO
from tests.pipeline_support import copy_code, small_candidates, tiny_params

SCRIPT = REPO / "deploy" / "tracking_server.sh"
CANDIDATES = ("First", "Second")
CHAMPION = "models:/facemask@champion"

# About 5 minutes on 2 cores (the tiny pipeline is 2 of them): slow, still part of `make test`.
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not (glob.glob("/usr/lib/postgresql/*/bin/initdb") or shutil.which("initdb")) or not shutil.which("curl"),
    reason="PostgreSQL server binaries (apt-get install -y postgresql) or curl missing; .ci/run installs them")]


def ours_left(temporary: Path) -> list[Path]:
    """What is left in a TMPDIR, but the bytecode of TensorFlow AutoGraph's generated modules, which it writes there
    and Python compiles beside them wherever bytecode is written."""
    def autograph(path: Path) -> bool:
        return path.name == "__pycache__" and all(f.name.startswith("__autograph_generated_file") for f in path.iterdir())

    return [path for path in temporary.iterdir() if not autograph(path)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_env(**extra) -> dict:
    """This environment without any MLflow settings, the venv's tools first on PATH, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return {**env, **extra}


def script(command: str, server: dict) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), command], env=server["env"], capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def server():
    """PostgreSQL + mlflow server in a fresh folder (traversable by the postgres user), stopped at the end."""
    folder = Path(tempfile.mkdtemp(prefix="facemask-tracking-"))
    folder.chmod(0o755)
    port = free_port()
    info = {"uri": f"http://127.0.0.1:{port}", "dir": folder, "admin": ("admin", secrets.token_urlsafe(16)),
            "env": base_env(TRACKING_DIR=str(folder), TRACKING_PORT=str(port), TRACKING_PG_PORT=str(free_port()),
                            PYTHON=sys.executable)}
    info["env"]["MLFLOW_AUTH_ADMIN_PASSWORD"] = info["admin"][1]  # base_env() leaves every MLFLOW_ variable out
    started = time.perf_counter()
    result = script("start", info)
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        info["start_seconds"] = time.perf_counter() - started
        yield info
    finally:
        stopped = script("stop", info)
        shutil.rmtree(folder, ignore_errors=True)
        assert stopped.returncode == 0, stopped.stderr


def client_env(server: dict, user: tuple[str, str] | None = None) -> dict:
    """The environment of a pipeline or CLI process that uses the server as `user` (default: admin)."""
    name, password = user or server["admin"]
    return base_env(MLFLOW_TRACKING_URI=server["uri"], MLFLOW_TRACKING_USERNAME=name, MLFLOW_TRACKING_PASSWORD=password)


def run_in(project: Path, env: dict, *args, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=project, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def project(server, tmp_path_factory) -> Path:
    """A tiny DVC project (two candidates) after `dvc repro select` against the server."""
    root = tmp_path_factory.mktemp("team") / "project"
    root.mkdir()
    copy_code(root)
    params = tiny_params()
    params["candidates"] = small_candidates(*CANDIDATES, backbone="TinyNet")
    params["synthesize"].update(dict.fromkeys(Synthesize.POOL_COUNTS, 0))  # no pool in this project
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    generate(root / "dataset", per_class=12, size=40)
    env = client_env(server)
    assert run_in(root, env, "-m", "dvc", "init", "--no-scm").returncode == 0
    result = run_in(root, env, "-m", "dvc", "repro", "select", timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return root


@pytest.fixture
def as_user(server, monkeypatch):
    """Point this process's MLflow client at the server as (name, password); returns an MlflowClient."""
    from mlflow import MlflowClient

    def use(user: tuple[str, str]) -> MlflowClient:
        for key, value in client_env(server, user).items():
            if key.startswith("MLFLOW_"):
                monkeypatch.setenv(key, value)
        return MlflowClient(tracking_uri=server["uri"], registry_uri=server["uri"])

    return use


def api(server, path: str, user: tuple[str, str] | None = None) -> int:
    request = urllib.request.Request(f"{server['uri']}{path}")
    if user:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(user).encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def champion_version(client) -> int:
    return int(client.get_model_version_by_alias("facemask", "champion").version)


def predict_json(project: Path, env: dict, model: str, image: Path) -> list[dict]:
    result = run_in(project, env, "-m", "facemask", "predict", str(image), "--model", model, "--json", "--whole-image")
    assert result.returncode == 0, result.stderr[-2000:]
    return [json.loads(line) for line in result.stdout.splitlines()]


def wait_for(url: str, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()[-3000:] if process.stdout else "exited"
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"{url} did not answer within {seconds}s")


def post_json(url: str, payload: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def group_ends(group: int, seconds: float) -> bool:
    """Whether every process of the group has exited within the given seconds."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def serving(args: list[str], project: Path, env: dict, health: str, temporary: Path, seconds: float = 120):
    """Start a server process in its own group, with its own TMPDIR; returns (process, stop).

    stop() ends whatever of the group is still running, also after a test has stopped the server itself.
    """
    process = subprocess.Popen(args, cwd=project, env={**env, "TMPDIR": str(temporary)}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)

    def stop():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL if process.poll() is not None else signal.SIGTERM)
        process.wait(timeout=30)
        group_ends(process.pid, 10)

    try:
        wait_for(health, process, seconds)
    except BaseException:
        stop()
        raise
    return process, stop


def test_the_server_wants_credentials(server):
    assert api(server, "/health") == 200
    assert api(server, "/api/2.0/mlflow/experiments/search?max_results=1") == 401
    assert api(server, "/api/2.0/mlflow/experiments/search?max_results=1", server["admin"]) == 200


def test_runs_datasets_and_artifacts_live_on_the_server(server, project, as_user):
    client = as_user(server["admin"])
    experiment = client.get_experiment_by_name("facemask")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(run.info.run_name for run in runs) == sorted(CANDIDATES)
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    split_md5 = next(out["md5"] for out in lock["stages"]["split"]["outs"] if out["path"] == "data/split")
    for run in runs:
        [dataset] = [d.dataset for d in run.inputs.dataset_inputs]
        assert (dataset.name, dataset.digest) == ("split", split_md5.removesuffix(".dir"))
    stored = sorted(p.relative_to(server["dir"]).parts[0] for p in server["dir"].rglob("model.keras"))
    assert stored == ["artifacts"] * len(CANDIDATES)  # the server's folder holds every logged model
    assert not any((project / name).exists() for name in ("mlruns", "mlartifacts", "mlflow.db"))
    assert champion_version(client) == 1


def test_predict_and_serve_load_the_champion_from_the_registry(server, project, tmp_path):
    env = client_env(server)
    image = next((project / "dataset" / "with_mask_old").iterdir())
    local = predict_json(project, env, "models/best/model.keras", image)
    assert predict_json(project, env, CHAMPION, image) == local and local[0]["status"] == "whole_image"
    port = free_port()
    process, stop = serving([sys.executable, "-m", "facemask", "serve", "--model", CHAMPION, "--port", str(port),
                             "--workers", "1", "--whole-image"], project, env, f"http://127.0.0.1:{port}/health",
                            tmp_path, seconds=300)
    try:
        answer = post_json(f"http://127.0.0.1:{port}/predict",
                           {"image": base64.b64encode(image.read_bytes()).decode(), "filename": str(image)})
        process.send_signal(signal.SIGTERM)  # as a service manager stops it: the server alone, not its group
        assert process.wait(timeout=60) == 0, process.stdout.read()[-3000:]
        assert group_ends(process.pid, 10), "a worker outlived the server"
    finally:
        stop()
    assert ours_left(tmp_path) == []  # the model downloaded from the registry and its TFLite are gone
    assert answer["model_version"].startswith("facemask version ") and answer["model_version"].endswith("(@champion)")
    [served], [expected] = answer["faces"], local  # the server runs the model converted to float TFLite
    assert served["probabilities"] == pytest.approx(expected["probabilities"], abs=1e-4)
    assert {**served, "probabilities": None, "confidence": None} == {**expected, "probabilities": None, "confidence": None}


def test_mlflow_models_serve_answers_an_image_like_predict(server, project, tmp_path):
    env = client_env(server)
    image = next((project / "dataset" / "without_mask_young").iterdir())
    [expected] = predict_json(project, env, CHAMPION, image)
    port = free_port()
    _, stop = serving(["mlflow", "models", "serve", "-m", CHAMPION, "--env-manager", "local", "-h", "127.0.0.1",
                       "-p", str(port)], project, env, f"http://127.0.0.1:{port}/ping", tmp_path)
    try:
        answer = post_json(f"http://127.0.0.1:{port}/invocations", {
            "dataframe_split": {"columns": ["image", "filename"],
                                "data": [[base64.b64encode(image.read_bytes()).decode(), str(image)]]},
            "params": {"whole_image": True}})
    finally:
        stop()
    assert answer["predictions"] == [expected]


def registered(client) -> dict[str, str]:
    """{version: run id} of every version of facemask."""
    return {v.version: v.run_id for v in client.search_model_versions("name = 'facemask'")}


def with_an_earlier_version(client) -> int:
    """The champion's version, after making sure a version below it exists to roll back to (the champion
    registered once more, as a second version, when none does)."""
    current = client.get_model_version_by_alias("facemask", "champion")
    if not any(int(version) < int(current.version) for version in registered(client)):
        model_id = current.source.removeprefix("models:/")  # MLflow 3: a logged model's source names its id
        newer = client.create_model_version("facemask", current.source, current.run_id, model_id=model_id)
        client.set_registered_model_alias("facemask", "champion", newer.version)
    return champion_version(client)


def test_a_database_outage_fails_fast_and_registers_nothing(server, project, as_user):
    """During the outage select fails in seconds and registers nothing; after it, select registers the champion
    once (a second select reuses that version)."""
    client = as_user(server["admin"])
    run_id = json.loads((project / "models" / "best" / "champion.json").read_text())["run_id"]
    for version, run in registered(client).items():
        if run == run_id:  # so that select has to register it again
            client.delete_model_version("facemask", version)
    versions = registered(client)
    assert script("db-stop", server).returncode == 0
    try:
        started = time.perf_counter()
        result = run_in(project, client_env(server), "-m", "stages.select_best")
        seconds = time.perf_counter() - started
    finally:
        assert script("db-start", server).returncode == 0
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "is its database running?" in result.stderr.strip().splitlines()[-1]
    assert seconds < 30
    assert registered(client) == versions
    again = run_in(project, client_env(server), "-m", "stages.select_best")
    assert again.returncode == 0, again.stderr[-3000:]
    new = {version: run for version, run in registered(client).items() if version not in versions}
    assert list(new.values()) == [run_id] and champion_version(client) == int(next(iter(new)))
    third = run_in(project, client_env(server), "-m", "stages.select_best")
    assert third.returncode == 0, third.stderr[-3000:]
    assert registered(client) == versions | new  # the same model: its version is reused, not registered twice


def test_a_reader_compares_runs_but_cannot_move_champion_or_delete_runs(server, project, as_user):
    from mlflow.exceptions import MlflowException
    from mlflow.server import get_app_client

    champion = with_an_earlier_version(as_user(server["admin"]))  # so that only the permission can stop rollback
    reader = ("reader", secrets.token_urlsafe(12))
    get_app_client("basic-auth", tracking_uri=server["uri"]).create_user(*reader)
    client = as_user(reader)
    experiment = client.get_experiment_by_name("facemask")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == len(CANDIDATES) and all("val_macro_f1" in run.data.metrics for run in runs)
    with pytest.raises(MlflowException, match="Permission denied"):
        client.set_registered_model_alias("facemask", "champion", "1")
    with pytest.raises(MlflowException, match="Permission denied"):
        client.delete_run(runs[0].info.run_id)
    result = run_in(project, client_env(server, reader), "-m", "facemask", "rollback")
    assert result.returncode == 1 and "may not move it" in result.stderr.strip().splitlines()[-1], result.stderr
    assert champion_version(as_user(server["admin"])) == champion


def test_rollback_moves_champion_to_the_version_before(server, project, as_user):
    client = as_user(server["admin"])
    before = with_an_earlier_version(client)
    result = run_in(project, client_env(server), "-m", "facemask", "rollback")
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"moved from version {before} to version {before - 1}" in result.stdout
    assert champion_version(client) == before - 1
    first = run_in(project, client_env(server), "-m", "facemask", "rollback", "--to", str(before))
    assert first.returncode == 1 and "not a version of facemask before the champion" in first.stderr
