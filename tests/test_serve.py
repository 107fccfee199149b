"""The server's API over FastAPI's test client and a real uvicorn on 127.0.0.1: good uploads give predict's
records and the model version, bad ones a 4xx with a reason, a full queue a 503 with Retry-After."""
import base64
import concurrent.futures
import http.client
import io
import json
import os
import re
import signal
import socket
from urllib.parse import urlsplit

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from facemask.core import UserError
from facemask.core.images import load_rgb
from facemask.use.export import runner
from facemask.use.predict import Classifier, Predictor
from facemask.use.server import worker
from facemask.use.server.app import Limits, create_app
from facemask.use.server.model import checked_export, resolve
from facemask.use.server.run import serve
from tests.champion_support import StubDetector, tiny_model_file, write_image
from tests.serve_support import served_model, started_pool, tiny_tflite_file, uvicorn_on_localhost

MAX_BYTES = 64 * 1024
MAX_PIXELS = 40_000
BOX = (4, 4, 30, 30)


@pytest.fixture(scope="module")
def pool():
    with started_pool(StubDetector([BOX]), workers=2, queue=14, max_pixels=MAX_PIXELS) as started:
        yield started


@pytest.fixture(scope="module")
def app(pool):
    return create_app(pool, served_model(), "stub", Limits(max_bytes=MAX_BYTES, max_images=4))


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def server(app):
    with uvicorn_on_localhost(app) as url:
        yield urlsplit(url).hostname, urlsplit(url).port


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    return write_image(tmp_path_factory.mktemp("serve") / "photo.png", 64, 48)


@pytest.fixture(scope="module")
def expected(photo):
    """What predict gives for the photo with the same TFLite model and detector, in this process."""
    tflite = tiny_tflite_file()
    predictor = Predictor(Classifier(runner(tflite, threads=1), 32, str(tflite)), StubDetector([BOX]))
    return lambda name: predictor.predict_image(load_rgb(photo), name)


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (90, 120, 150)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_health_names_model_detector_workers_and_uptime(client):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["model_version"] == "tiny-test-model" and health["detector"] == "stub"
    assert health["workers"] == 2 and health["queue"] == {"images": 0, "capacity": 16}
    assert health["uptime_s"] >= 0 and len(health["classes"]) == 4


def test_image_upload_gives_predicts_records_and_the_model_version(client, photo, expected):
    answer = client.post("/predict", content=photo.read_bytes(), headers={"Content-Type": "image/png"})
    assert answer.status_code == 200
    assert answer.json() == {"model_version": "tiny-test-model", "faces": expected("upload")}
    face = answer.json()["faces"][0]
    assert face["status"] == "face" and face["box"] == list(BOX) and sum(face["probabilities"].values()) == \
        pytest.approx(1, abs=1e-4)


def test_base64_json_multipart_and_several_images_per_request(client, photo, expected):
    encoded = base64.b64encode(photo.read_bytes()).decode()
    answer = client.post("/predict", json={"image": encoded, "filename": "a.png"})
    assert answer.status_code == 200 and answer.json()["faces"] == expected("a.png")
    answer = client.post("/predict", json={"images": [{"image": encoded, "filename": "a.png"},
                                                      {"image": f"data:image/png;base64,{encoded}"}]})
    assert answer.status_code == 200 and answer.json()["faces"] == expected("a.png") + expected("upload_1")
    files = [("image", (name, photo.read_bytes(), "image/png")) for name in ("a.png", "b.png", "c.png")]
    answer = client.post("/predict", files=files)
    assert answer.status_code == 200 and answer.json()["faces"] == expected("a.png") + expected("b.png") + expected("c.png")


def test_no_face_and_whole_image(photo, tmp_path):
    with started_pool(StubDetector([]), workers=1, queue=0) as no_faces, \
            TestClient(create_app(no_faces, served_model(), "stub")) as client:
        answer = client.post("/predict", content=photo.read_bytes(), headers={"Content-Type": "image/png"})
        assert answer.status_code == 200 and answer.json()["faces"] == [{"file": "upload", "status": "no_face"}]
        answer = client.post("/predict?whole_image=1", content=photo.read_bytes(), headers={"Content-Type": "image/png"})
    [record] = answer.json()["faces"]
    assert record["status"] == "whole_image" and record["box"] == [0, 0, 64, 48] and record["label"]


@pytest.mark.parametrize("body, content_type, status, message", [
    (b"plain text", "text/plain", 415, "not supported"),
    (b"\x89PNG broken", "image/png", 400, "upload: not a readable image"),
    (b"junk bytes", "image/jpeg", 400, "not a readable image"),
    (png(300, 200), "image/png", 400, "300x200 pixels is over the limit of 40000; refused without decoding"),
    (b'{"image": "%%% not base64"}', "application/json", 400, "base64"),
    (b'{"image": ', "application/json", 400, "not valid JSON"),
    (b'{"picture": "abc"}', "application/json", 400, '{"image"'),
    (b"--b\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n--b--\r\n",
     "multipart/form-data; boundary=b", 400, "fields named 'image'"),
    (b"x" * (MAX_BYTES + 1), "image/png", 413, f"over the limit of {MAX_BYTES} bytes"),
])
def test_bad_requests_get_a_4xx_with_a_reason(client, body, content_type, status, message):
    answer = client.post("/predict", content=body, headers={"Content-Type": content_type})
    assert answer.status_code == status and message in answer.json()["error"]


def test_too_many_images_wrong_method_unknown_path_and_no_length(client, photo):
    files = [("image", (f"{n}.png", photo.read_bytes(), "image/png")) for n in range(5)]
    answer = client.post("/predict", files=files)
    assert answer.status_code == 400 and "Maximum number of files is 4" in answer.json()["error"]
    answer = client.post("/predict", json={"images": [{"image": base64.b64encode(photo.read_bytes()).decode()}] * 5})
    assert answer.status_code == 400 and "5 images in one request; at most 4" in answer.json()["error"]
    answer = client.get("/predict")
    assert answer.status_code == 405 and answer.json()["error"] == "use POST /predict"
    answer = client.post("/nowhere", content=b"x")
    assert answer.status_code == 404 and "no such endpoint: /nowhere" in answer.json()["error"]
    answer = client.post("/predict", content=iter([b"chunked"]), headers={"Content-Type": "image/png"})
    assert answer.status_code == 411 and "Content-Length" in answer.json()["error"]
    answer = client.post("/predict?whole_image=maybe", content=photo.read_bytes(), headers={"Content-Type": "image/png"})
    assert answer.status_code == 400 and "whole_image" in answer.json()["error"]


def test_many_concurrent_requests_all_answered(server, photo, expected):
    def post(number: int) -> tuple[int, dict]:
        connection = http.client.HTTPConnection(*server, timeout=60)
        try:
            connection.request("POST", "/predict", photo.read_bytes(), {"Content-Type": "image/png"})
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            connection.close()

    with concurrent.futures.ThreadPoolExecutor(12) as clients:
        answers = list(clients.map(post, range(36)))
    assert [status for status, _ in answers] == [200] * 36
    assert all(body["faces"] == expected("upload") for _, body in answers)


def test_a_full_queue_gives_503_with_retry_after(client, pool, photo):
    holds = pool.submit([(worker.hold, 0.3)] * pool.capacity)  # every worker busy, every queue place taken
    answer = client.post("/predict", content=photo.read_bytes(), headers={"Content-Type": "image/png"})
    assert answer.status_code == 503 and "server busy" in answer.json()["error"]
    assert int(answer.headers["Retry-After"]) >= 1
    concurrent.futures.wait(holds)
    assert client.post("/predict", content=photo.read_bytes(), headers={"Content-Type": "image/png"}).status_code == 200


def test_metrics_count_requests_latency_faces_and_errors(client, photo):
    client.post("/predict", content=photo.read_bytes(), headers={"Content-Type": "image/png"})
    client.post("/predict", content=b"junk", headers={"Content-Type": "image/png"})
    text = client.get("/metrics").text
    assert 'facemask_requests_total{endpoint="/predict",status="200"}' in text
    assert 'facemask_request_seconds_bucket{endpoint="/predict",le="0.5"}' in text
    assert 'facemask_images_total{status="face"}' in text and "facemask_faces_total{label=" in text
    assert 'facemask_errors_total{kind="bad_image"}' in text and "facemask_workers 2.0" in text


def test_openapi_docs_and_the_page_are_served(client):
    assert client.get("/docs").status_code == 200
    body = client.get("/openapi.json").json()["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json", "image/*"} <= set(body)
    page = client.get("/")
    assert page.status_code == 200 and "/static/page.js" in page.text
    assert "getUserMedia" in client.get("/static/page.js").text


def raw_exchange(address, head: bytes) -> bytes:
    """Send request headers only (no body) and read one whole reply (headers and Content-Length bytes)."""
    with socket.create_connection(address, timeout=20) as raw:
        raw.sendall(head)
        reply = b""
        while chunk := raw.recv(4096):
            reply += chunk
            headers, _, body = reply.partition(b"\r\n\r\n")
            length = re.search(rb"content-length: *(\d+)", headers, re.IGNORECASE)
            if length and len(body) >= int(length[1]):
                break
    return reply


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


def test_a_dead_worker_fails_its_request_and_the_pool_recovers(photo):
    with started_pool(StubDetector([BOX]), workers=1, queue=2) as alone, \
            TestClient(create_app(alone, served_model(), "stub")) as client:
        pid = alone.submit([(worker.hold, 0)])[0].result()
        os.kill(pid, signal.SIGKILL)
        statuses = [client.post("/predict", content=photo.read_bytes(), headers={"Content-Type": "image/png"}).status_code
                    for _ in range(3)]
    assert statuses[-1] == 200 and set(statuses) <= {200, 500}


def test_a_taken_port_is_a_user_error_before_the_model_is_looked_at():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UserError, match=f"port {port} on 127.0.0.1 is in use.*--port"):
            serve("no/such/model.keras", "127.0.0.1", port)


def test_the_model_is_a_tflite_file_as_given_or_an_export_the_parity_report_passed(tmp_path):
    given = resolve(tiny_tflite_file())
    assert given.tflite == tiny_tflite_file() and given.format == "tflite (as given)" and "sha256:" in given.version
    with pytest.raises(UserError, match="no such model"):
        resolve(tmp_path / "missing.keras")
    float_file, int8_file = tmp_path / "model.tflite", tmp_path / "model_int8.tflite"
    float_file.write_bytes(b"float"), int8_file.write_bytes(b"int8")
    report = tmp_path / "export.json"

    def write_report(source, float_ok=True, int8_ok=True):
        report.write_text(json.dumps({"formats": {
            "keras": {"file": str(source)},
            "tflite": {"file": str(float_file), "ok": float_ok, "latency_ms_p50": 3.8},
            "tflite_int8": {"file": str(int8_file), "ok": int8_ok, "latency_ms_p50": 2.1}}}))

    write_report(tiny_model_file())
    assert checked_export(tiny_model_file(), report) == ("tflite_int8", int8_file)
    write_report(tiny_model_file(), int8_ok=False)
    assert checked_export(tiny_model_file(), report) == ("tflite", float_file)
    write_report(tiny_tflite_file())  # an export of another model
    assert checked_export(tiny_model_file(), report) is None


def test_a_keras_model_without_a_checked_export_is_converted_at_start(tmp_path):
    from facemask.core.model import load

    served = resolve(tiny_model_file(), report_path=tmp_path / "no-report.json")
    assert served.format == "tflite (converted at start)" and served.tflite.suffix == ".tflite"
    batch = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    expected = np.asarray(load(tiny_model_file()).predict_on_batch(batch))
    assert np.allclose(runner(served.tflite, threads=1)(batch), expected, atol=1e-4)
