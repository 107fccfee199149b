"""MLflow tracking: an unreachable server fails in seconds, before any training, saying how to fall back."""
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from facemask.core import UserError
from facemask.store import tracking
from facemask.store.tracking import (
    DEFAULT_TRACKING_URI,
    EXPERIMENT_KIND_TAG,
    MODEL_TRAINING_KIND,
    TrackingError,
    check_reachable,
    check_store,
    configure,
    split_digest,
)
from tests.pipeline_support import assert_user_error, run_stage, write_params


@pytest.fixture
def closed_port_uri() -> str:
    """An http URI on 127.0.0.1 whose port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def server_answering():
    """Local HTTP servers answering every GET with (status, body) unless `Authorization` equals `auth`;
    yields a starter returning a server's URI."""
    servers = []

    def start(status: int, body: bytes = b"{}", auth: str | None = None) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                ok = auth is not None and self.headers.get("Authorization") == auth
                self.send_response(200 if ok else status)
                self.end_headers()
                self.wfile.write(b"{}" if ok else body)

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def mlflow_calls(monkeypatch) -> list:
    """Record configure()'s MLflow calls instead of making them (the experiment is already marked as training)."""
    calls, experiment = [], SimpleNamespace(tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND})

    def set_experiment(name):
        calls.append(("experiment", name))
        return experiment

    monkeypatch.setattr(tracking.mlflow, "set_tracking_uri", lambda uri: calls.append(("uri", uri)))
    monkeypatch.setattr(tracking.mlflow, "set_experiment", set_experiment)
    monkeypatch.setattr(tracking.mlflow, "set_experiment_tag", lambda key, value: calls.append(("tag", key, value)))
    return calls


def test_a_closed_port_fails_fast_naming_the_variable_and_the_fallback(closed_port_uri, monkeypatch, mlflow_calls):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", closed_port_uri)
    started = time.perf_counter()
    with pytest.raises(TrackingError) as error:
        configure()
    assert time.perf_counter() - started < 10
    assert f"MLFLOW_TRACKING_URI={closed_port_uri}: no MLflow tracking server answers there" in str(error.value)
    assert f"unset MLFLOW_TRACKING_URI to log into the embedded store ({DEFAULT_TRACKING_URI})" in str(error.value)
    assert mlflow_calls == []


@pytest.mark.parametrize("status", [200, 401, 404])
def test_any_http_answer_counts_as_reachable(server_answering, status):
    check_reachable(server_answering(status))


def test_unset_means_the_embedded_store_with_no_network_check(monkeypatch, tmp_path):
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tracking, "check_reachable", lambda uri: pytest.fail("checked a local store"))
    assert configure() == f"sqlite:///{tmp_path}/mlflow.db"
    assert mlflow.get_experiment_by_name("facemask").artifact_location == (tmp_path / "mlruns").as_uri()


def test_a_queued_experiment_logs_into_the_repo_it_was_queued_from(monkeypatch, tmp_path):
    """`dvc exp run --queue` runs in a temporary copy; DVC_ROOT names the real repo: runs and artifacts go there."""
    import mlflow

    repo, copy = tmp_path / "repo", tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "tmpcopy"
    copy.mkdir(parents=True)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(repo))
    monkeypatch.chdir(copy)
    assert configure() == f"sqlite:///{repo}/mlflow.db"
    assert mlflow.get_experiment_by_name("facemask").artifact_location == (repo / "mlruns").as_uri()
    assert (repo / "mlflow.db").is_file() and not (copy / "mlflow.db").exists()


def test_train_stage_stops_before_any_training_when_the_server_is_unreachable(closed_port_uri, tmp_path):
    """No features exist in this project: the tracking error must come first, as one line."""
    write_params(tmp_path, {})
    result = run_stage(tmp_path, "train", "MobileNetV2", env={"MLFLOW_TRACKING_URI": closed_port_uri})
    assert_user_error(result, "train", f"MLFLOW_TRACKING_URI={closed_port_uri}", "Connection refused",
                      "unset MLFLOW_TRACKING_URI")
    assert not (tmp_path / "models").exists() and not (tmp_path / "mlflow.db").exists()


def test_a_new_experiment_is_marked_as_model_training_for_the_ui(tmp_path, monkeypatch):
    """MLflow's UI opens an unmarked experiment on its GenAI views; configure() marks it once."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    configure()
    assert mlflow.get_experiment_by_name("facemask").tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING_KIND


def test_a_failing_store_behind_the_server_is_a_clear_error(server_answering):
    uri = server_answering(500, b'{"error_code": "INTERNAL_ERROR", "message": "connection refused"}')
    with pytest.raises(TrackingError, match="answers but its store does not .*500.*is its database running"):
        check_store(uri)


def test_missing_credentials_name_the_variables_and_sent_ones_are_used(server_answering, monkeypatch):
    uri = server_answering(401, auth="Basic dTpw")  # u:p
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    with pytest.raises(TrackingError, match="set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"):
        check_store(uri)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "u")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "p")
    check_store(uri)


def test_a_reader_account_passes_the_store_check(server_answering):
    check_store(server_answering(403))


def test_split_digest_is_dvcs_hash_of_the_split(tmp_path):
    lock = tmp_path / "dvc.lock"
    assert split_digest(lock) is None
    lock.write_text("schema: '2.0'\nstages:\n  split:\n    outs:\n    - path: reports/split.json\n      md5: aa\n"
                    "    - path: data/split\n      md5: b6e5f991d70cc0933a52b2acc5f6ef38.dir\n")
    assert split_digest(lock) == "b6e5f991d70cc0933a52b2acc5f6ef38"


@pytest.fixture
def embedded_registry(tmp_path, monkeypatch):
    """An embedded store in an empty folder, with versions 1-3 of `facemask` and champion on version 3."""
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    tracking.connect()
    client = MlflowClient()
    client.create_registered_model("facemask")
    for _ in range(3):
        client.create_model_version("facemask", source=str(tmp_path))
    client.set_registered_model_alias("facemask", "champion", "3")
    return client


def test_rollback_moves_champion_to_the_version_before_or_the_one_named(embedded_registry):
    from facemask.store.registry import rollback

    assert rollback("facemask") == ("3", "2")
    assert embedded_registry.get_model_version_by_alias("facemask", "champion").version == 2
    assert rollback("facemask", 1) == ("2", "1")
    with pytest.raises(UserError, match="facemask@champion is version 1, the first; there is no earlier version"):
        rollback("facemask")
    with pytest.raises(UserError, match="--to 3: not a version of facemask before the champion"):
        rollback("facemask", 3)


def test_promote_points_champion_at_a_version_once(embedded_registry):
    from facemask.store.registry import promote

    assert promote("facemask", "2") is True
    assert embedded_registry.get_model_version_by_alias("facemask", "champion").version == 2
    assert promote("facemask", "2") is False


def test_an_unknown_registry_uri_is_a_user_error(embedded_registry):
    from facemask.store.loading import load_model

    with pytest.raises(UserError, match="--model models:/nothing@champion: not found in MLFLOW_TRACKING_URI=sqlite"):
        load_model("models:/nothing@champion")
    with pytest.raises(UserError, match="no such model.*models:/facemask@champion"):
        load_model(embedded_registry.tracking_uri + "-not-a-file.keras")
