"""MLflow tracking: an unreachable server fails in seconds, before any training, saying how to fall back."""
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from facemask import tracking
from facemask.tracking import DEFAULT_TRACKING_URI, TrackingError, check_reachable, configure
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
    """Start a local HTTP server answering every GET with `status`; yields a starter returning its URI."""
    servers = []

    def start(status: int) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"OK")

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
    """Record configure()'s MLflow calls instead of making them."""
    calls = []
    monkeypatch.setattr(tracking.mlflow, "set_tracking_uri", lambda uri: calls.append(("uri", uri)))
    monkeypatch.setattr(tracking.mlflow, "set_experiment", lambda name: calls.append(("experiment", name)))
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


def test_unset_means_the_embedded_store_with_no_network_check(monkeypatch, mlflow_calls):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(tracking, "check_reachable", lambda uri: pytest.fail("checked a local store"))
    assert configure() == DEFAULT_TRACKING_URI
    assert mlflow_calls == [("uri", DEFAULT_TRACKING_URI), ("experiment", "facemask")]


def test_train_stage_stops_before_any_training_when_the_server_is_unreachable(closed_port_uri, tmp_path):
    """No features exist in this project: the tracking error must come first, as one line."""
    write_params(tmp_path, {})
    result = run_stage(tmp_path, "train", "MobileNetV2", env={"MLFLOW_TRACKING_URI": closed_port_uri})
    assert_user_error(result, "train", f"MLFLOW_TRACKING_URI={closed_port_uri}", "Connection refused",
                      "unset MLFLOW_TRACKING_URI")
    assert not (tmp_path / "models").exists() and not (tmp_path / "mlflow.db").exists()
