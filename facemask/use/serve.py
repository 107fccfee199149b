"""Serve the champion over HTTP with the standard library (ThreadingHTTPServer), one model behind a lock.

GET  /health   -> 200 {"status": "ok", "model": ..., "classes": [...]}
POST /predict  -> 200 {"faces": [records exactly as `python -m facemask predict --json` prints them]}
  body: an image (Content-Type: image/*), JSON {"image": "<base64 or data: URL>", "filename": ...},
  or multipart/form-data with the file in a field named `image`. `?whole_image=1` classifies the
  whole image when no face is found. Errors are JSON {"error": ...}: 400 bad image/base64/JSON,
  404, 405, 411 no Content-Length, 413 over --max-bytes, 415 other content types, 500 a server fault.
"""
import json
import socket
import threading
import time
from email import policy
from email.parser import BytesParser
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import numpy as np

from facemask.core import CLASSES, UserError
from facemask.core.images import ImageError, Upload, base64_upload, load_rgb
from facemask.use.predict import Predictor

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8000
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DRAIN_SECONDS = 10  # after a 413, how long the rest of the refused body is read and dropped
TRUE = ("1", "true", "yes")


class BadRequest(Exception):
    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


def make_server(predictor: Predictor, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                max_bytes: int = DEFAULT_MAX_BYTES, model_name: str = "") -> ThreadingHTTPServer:
    """A server bound to host:port (0 = any free port); call serve_forever() and shutdown()."""
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, and `Expect: 100-continue` (curl, large uploads) answered
        timeout = 30  # seconds a client may stay idle before its connection is closed
        server_version = "facemask"

        def handle_expect_100(self):
            """Refuse an over-limit upload before the client sends it (curl asks first for large bodies)."""
            length = self.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > max_bytes:
                self.close_connection = True
                self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"body over the limit of {max_bytes} bytes"})
                return False
            return super().handle_expect_100()

        def do_GET(self):
            path = urlsplit(self.path).path
            if path == "/health":
                self._send(HTTPStatus.OK, {"status": "ok", "model": model_name, "classes": list(CLASSES)})
            elif path == "/predict":
                self._send(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "use POST /predict"}, {"Allow": "POST"})
            else:
                self._send(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: {path}"})

        def do_POST(self):
            url = urlsplit(self.path)
            if url.path != "/predict":
                self.close_connection = True  # its body is left unread
                self._send(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: {url.path}"})
                return
            try:
                upload = self._read_image()
                rgb = load_rgb(upload)
                flag = parse_qs(url.query).get("whole_image")
                whole = None if flag is None else flag[0].lower() in TRUE
                with lock:
                    records = predictor.predict_image(rgb, upload.name, whole_image=whole)
            except BadRequest as err:
                self._send(err.status, {"error": str(err)})
            except ImageError as err:
                self._send(HTTPStatus.BAD_REQUEST, {"error": str(err)})
            except Exception as err:  # a bug, not the client's fault: say so, log it, keep serving
                self.log_error("prediction failed: %r", err)
                self._send(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "prediction failed; see the server log"})
            else:
                self._send(HTTPStatus.OK, {"faces": records})

        def _read_image(self) -> Upload:
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                self.close_connection = True
                raise BadRequest(HTTPStatus.LENGTH_REQUIRED, "a Content-Length header is required")
            if int(length) > max_bytes:
                self.close_connection = self.drain_after_answer = True
                raise BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over the limit of {max_bytes} bytes")
            body = self.rfile.read(int(length))
            content_type = self.headers.get("Content-Type", "")
            kind = content_type.split(";")[0].strip().lower()
            if not (kind.startswith("image/") or kind in ("application/json", "multipart/form-data")):
                raise BadRequest(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"Content-Type '{kind}' is not supported; "
                                 "send image/*, application/json or multipart/form-data")
            if kind.startswith("image/"):
                return Upload(body, "upload")
            if kind == "application/json":
                return _from_json(body)
            return _from_multipart(content_type, body)

        drain_after_answer = False

        def finish(self):
            """After a 413 to a client that sends its body unasked (no `Expect: 100-continue`): stop writing, then
            read and drop what it still sends (for DRAIN_SECONDS at most) so that it gets to read the answer
            instead of a connection reset."""
            super().finish()
            if not self.drain_after_answer:
                return
            self.connection.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + DRAIN_SECONDS
            self.connection.settimeout(1)
            while time.monotonic() < deadline:
                try:
                    if not self.connection.recv(65536):
                        break
                except TimeoutError:
                    continue
                except OSError:
                    break

        def _send(self, status: HTTPStatus, payload: dict, headers: dict | None = None):
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

    try:
        server = ThreadingHTTPServer((host, port), Handler)
    except OSError as err:  # address in use, a privileged port, an unknown or foreign host
        raise UserError(f"port {port} on {host} is in use or not allowed ({err.strerror or err}); "
                        "pass another --port (0 picks a free one) or --host") from None
    server.daemon_threads = True
    return server


def _from_json(body: bytes) -> Upload:
    try:
        request = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BadRequest(HTTPStatus.BAD_REQUEST, f"body is not valid JSON ({err})") from None
    if not isinstance(request, dict) or not isinstance(request.get("image"), str):
        raise BadRequest(HTTPStatus.BAD_REQUEST, 'JSON body needs {"image": "<base64>"}')
    return base64_upload(request["image"], str(request.get("filename") or "upload"))


def _from_multipart(content_type: str, body: bytes) -> Upload:
    message = BytesParser(policy=policy.HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    if message.is_multipart():
        for part in message.iter_parts():
            if part.get_param("name", header="content-disposition") == "image":
                return Upload(part.get_payload(decode=True) or b"", part.get_filename() or "upload")
    raise BadRequest(HTTPStatus.BAD_REQUEST, "multipart body needs a file field named 'image'")


def serve(predictor: Predictor, host: str, port: int, max_bytes: int, model_name: str) -> None:
    """Serve until Ctrl-C: bind first, so a taken port fails fast, then warm up (a first prediction builds
    the detector and the model's graph); requests that arrive meanwhile wait."""
    server = make_server(predictor, host, port, max_bytes, model_name)
    try:
        predictor.predict_image(np.zeros((64, 64, 3), np.uint8), "warm-up")
        print(f"serving {model_name} on http://{host}:{server.server_address[1]} (POST /predict, GET /health)",
              flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
