"""The HTTP endpoint, over real requests to 127.0.0.1: good uploads give predict's JSON, bad ones a 4xx."""
import base64
import contextlib
import http.client
import json
import socket
import threading

import pytest

from facemask.core import UserError
from facemask.core.images import load_rgb
from facemask.core.model import load
from facemask.use.predict import Predictor
from facemask.use.serve import make_server, serve
from tests.champion_support import StubDetector, tiny_model_file, write_image

MAX_BYTES = 64 * 1024


@pytest.fixture(scope="module")
def predictor():
    return Predictor(load(tiny_model_file()), StubDetector([(4, 4, 30, 30)]))


@contextlib.contextmanager
def running(predictor, name: str = ""):
    """A server on 127.0.0.1 at a free port, in a thread; yields its (host, port)."""
    httpd = make_server(predictor, "127.0.0.1", 0, MAX_BYTES, name)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def server(predictor):
    with running(predictor, "tiny") as address:
        yield address


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    return write_image(tmp_path_factory.mktemp("serve") / "photo.png", 64, 48)


def request(address, method, path, body=None, headers=None) -> tuple[int, dict]:
    connection = http.client.HTTPConnection(*address, timeout=20)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_health(server):
    status, body = request(server, "GET", "/health")
    assert status == 200 and body["status"] == "ok" and body["model"] == "tiny" and len(body["classes"]) == 4


def test_image_upload_returns_the_same_records_as_predict(server, predictor, photo):
    status, body = request(server, "POST", "/predict", photo.read_bytes(), {"Content-Type": "image/png"})
    assert status == 200
    assert body == {"faces": predictor.predict_image(load_rgb(photo), "upload")}
    assert body["faces"][0]["status"] == "face" and body["faces"][0]["box"] == [4, 4, 30, 30]


def test_base64_json_and_multipart_uploads(server, predictor, photo):
    expected = predictor.predict_image(load_rgb(photo), "photo.png")
    payload = json.dumps({"image": base64.b64encode(photo.read_bytes()).decode(), "filename": "photo.png"})
    status, body = request(server, "POST", "/predict", payload, {"Content-Type": "application/json"})
    assert status == 200 and body["faces"] == expected
    boundary = "facemask-test-boundary"
    multipart = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"photo.png\"\r\n"
                 f"Content-Type: image/png\r\n\r\n").encode() + photo.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    status, body = request(server, "POST", "/predict", multipart,
                           {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 200 and body["faces"] == expected


def test_whole_image_query_flag(predictor, photo):
    headers = {"Content-Type": "image/png"}
    with running(Predictor(predictor.model, StubDetector([]))) as address:
        status, body = request(address, "POST", "/predict", photo.read_bytes(), headers)
        assert status == 200 and body == {"faces": [{"file": "upload", "status": "no_face"}]}
        status, body = request(address, "POST", "/predict?whole_image=1", photo.read_bytes(), headers)
    [record] = body["faces"]
    assert status == 200 and record["status"] == "whole_image" and record["box"] == [0, 0, 64, 48]


@pytest.mark.parametrize("path, body, content_type, status, message", [
    ("/predict", b"plain text", "text/plain", 415, "not supported"),
    ("/predict", b"\x89PNG broken", "image/png", 400, "not a readable image"),
    ("/predict", b'{"image": "%%% not base64"}', "application/json", 400, "base64"),
    ("/predict", b'{"image": ', "application/json", 400, "not valid JSON"),
    ("/predict", b'{"picture": "abc"}', "application/json", 400, '{"image"'),
    ("/predict", b"--b\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n--b--\r\n",
     "multipart/form-data; boundary=b", 400, "named 'image'"),
    ("/predict", b"x" * (MAX_BYTES + 1), "image/png", 413, "over the limit"),
    ("/nowhere", b"x", "image/png", 404, "no such endpoint"),
])
def test_bad_requests_get_a_4xx_with_a_reason(server, path, body, content_type, status, message):
    got, answer = request(server, "POST", path, body, {"Content-Type": content_type})
    assert got == status and message in answer["error"]


def raw_exchange(address, head: bytes) -> bytes:
    """Send request headers only (no body) and read the reply until the server closes."""
    with socket.create_connection(address, timeout=20) as raw:
        raw.sendall(head)
        reply = b""
        while chunk := raw.recv(4096):
            reply += chunk
    return reply


def test_wrong_method_unknown_path_and_missing_length(server):
    assert request(server, "GET", "/predict")[0] == 405
    assert request(server, "GET", "/metrics")[0] == 404
    reply = raw_exchange(server, b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
                                 b"Connection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 411") and b"Content-Length" in reply


def test_oversized_upload_is_refused_before_it_is_sent(server):
    reply = raw_exchange(server, b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
                                 b"Content-Length: 50000000\r\nExpect: 100-continue\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 413") and b"100 Continue" not in reply


def test_oversized_upload_without_expect_gets_413_not_a_reset(server):
    """A client that sends a large body unasked (no `Expect: 100-continue`) still reads the 413."""
    connection = http.client.HTTPConnection(*server, timeout=20)
    try:
        connection.request("POST", "/predict", body=b"x" * (20 * 1024 * 1024), headers={"Content-Type": "image/png"})
        response = connection.getresponse()
        assert response.status == 413 and "over the limit" in json.loads(response.read())["error"]
    finally:
        connection.close()
    assert request(server, "GET", "/health")[0] == 200


def test_server_still_answers_after_bad_requests(server):
    for _ in range(3):
        request(server, "POST", "/predict", b"junk", {"Content-Type": "image/jpeg"})
    assert request(server, "GET", "/health")[0] == 200


def test_a_failing_model_gives_500_and_the_server_goes_on(photo):
    class Broken:
        def predict_image(self, rgb, file, whole_image=None):
            raise RuntimeError("model exploded")

    with running(Broken()) as address:
        status, body = request(address, "POST", "/predict", photo.read_bytes(), {"Content-Type": "image/png"})
        assert status == 500 and "server log" in body["error"]
        assert request(address, "GET", "/health")[0] == 200


def test_a_taken_port_is_a_user_error_before_the_warm_up():
    class Counting:
        calls = 0

        def predict_image(self, rgb, file, whole_image=None):
            self.calls += 1

    predictor = Counting()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UserError, match=f"port {port} on 127.0.0.1 is in use.*--port"):
            serve(predictor, "127.0.0.1", port, MAX_BYTES, "tiny")
    assert predictor.calls == 0
