"""The HTTP API and the page, on FastAPI: requests are read and checked here, images run in the WorkerPool.

GET  /          the page: upload or drop photos, or the webcam; boxes, labels, probabilities on hover
POST /predict   one or more images -> {"model_version": ..., "faces": [records as `facemask predict --json`]}
  body: an image (Content-Type: image/*); JSON {"image": "<base64 or data: URL>", "filename": ...} or
  {"images": [{"image": ..., "filename": ...}, ...]}; or multipart/form-data with one or more files in
  fields named `image`. `?whole_image=1` classifies the whole image when no face is found.
GET  /health    model version and format, detector, workers, queue, uptime
GET  /metrics   Prometheus text: requests and latency by endpoint, images, faces per class, errors by kind
GET  /docs      the OpenAPI page
Errors are JSON {"error": ...}: 400 bad image, base64, JSON or multipart; 404; 405; 411 no Content-Length;
413 over --max-bytes; 415 other content types; 503 the queue is full (with Retry-After); 500 a server fault.
"""
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from pydantic import BaseModel
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from facemask.core import CLASSES
from facemask.core.images import ImageError, base64_upload
from facemask.use.server import worker
from facemask.use.server.model import ServedModel
from facemask.use.server.pool import Busy, WorkerPool

PAGE = Path(__file__).parent / "page"
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_IMAGES = 16
ENDPOINTS = ("/", "/predict", "/health", "/metrics", "/docs", "/openapi.json")
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
log = logging.getLogger("facemask.serve")


@dataclass(frozen=True)
class Limits:
    max_bytes: int = DEFAULT_MAX_BYTES  # request body
    max_images: int = DEFAULT_MAX_IMAGES  # per request


class ApiError(Exception):
    def __init__(self, status: int, kind: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.kind, self.headers = status, kind, headers


class PredictAnswer(BaseModel):
    model_version: str
    faces: list[dict]


PREDICT_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["image"], "properties": {
        "image": {"type": "array", "items": {"type": "string", "format": "binary"}}}}},
    "application/json": {"schema": {"type": "object", "properties": {
        "image": {"type": "string", "description": "base64 or a data: URL"}, "filename": {"type": "string"},
        "images": {"type": "array", "items": {"type": "object", "properties": {
            "image": {"type": "string"}, "filename": {"type": "string"}}}}}}},
    "image/*": {"schema": {"type": "string", "format": "binary"}}}}}


class Metrics:
    """The server's Prometheus metrics, in a registry of their own (one per app)."""

    def __init__(self, pool: WorkerPool):
        disable_created_metrics()  # no *_created series beside every counter
        self.registry = registry = CollectorRegistry()
        self.requests = Counter("facemask_requests", "HTTP requests by endpoint and status code",
                                ["endpoint", "status"], registry=registry)
        self.latency = Histogram("facemask_request_seconds", "time to answer, by endpoint", ["endpoint"],
                                 buckets=LATENCY_BUCKETS, registry=registry)
        self.images = Counter("facemask_images", "images predicted, by outcome (face, no_face, whole_image)",
                              ["status"], registry=registry)
        self.faces = Counter("facemask_faces", "faces classified, by label", ["label"], registry=registry)
        self.errors = Counter("facemask_errors", "requests refused or failed, by kind", ["kind"], registry=registry)
        Gauge("facemask_queue_images", "images queued or running in the workers",
              registry=registry).set_function(lambda: pool.pending)
        Gauge("facemask_workers", "worker processes", registry=registry).set(pool.workers)

    def count(self, images: list[list[dict]]) -> None:
        """Count each image's outcome and faces, from its records."""
        for records in images:
            self.images.labels(records[0]["status"]).inc()
            for record in records:
                if "label" in record:
                    self.faces.labels(record["label"]).inc()


def create_app(pool: WorkerPool, model: ServedModel, detector: str, limits: Limits = Limits()) -> FastAPI:
    """The app; the pool is started and closed by the caller (serve(), or a test's fixture)."""
    app = FastAPI(title="facemask", summary="mask and age group of every face in a photo",
                  version=model.version, description=__doc__.split("\n\n")[0])
    metrics, started = Metrics(pool), time.monotonic()
    app.mount("/static", StaticFiles(directory=PAGE), name="static")

    @app.middleware("http")
    async def measure(request: Request, call_next):
        begun = time.perf_counter()
        response = await call_next(request)
        path = request.url.path
        endpoint = path if path in ENDPOINTS else "/static" if path.startswith("/static/") else "other"
        metrics.requests.labels(endpoint, str(response.status_code)).inc()
        metrics.latency.labels(endpoint).observe(time.perf_counter() - begun)
        return response

    @app.exception_handler(ApiError)
    async def api_error(request: Request, err: ApiError):
        metrics.errors.labels(err.kind).inc()
        return JSONResponse({"error": str(err)}, err.status, err.headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException):
        path = request.url.path
        if err.status_code == 404:
            return await api_error(request, ApiError(404, "not_found", f"no such endpoint: {path}"))
        if err.status_code == 405:
            allowed = (err.headers or {}).get("Allow", "")
            return await api_error(request, ApiError(405, "method_not_allowed", f"use {allowed} {path}", err.headers))
        return await api_error(request, ApiError(err.status_code, "bad_request", str(err.detail), err.headers))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError):
        problems = "; ".join(f"{' '.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        return await api_error(request, ApiError(400, "bad_request", problems))

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(PAGE / "index.html")

    @app.get("/health")
    async def health() -> dict:
        """Which model answers, with what, and how busy the workers are."""
        return {"status": "ok", "model_version": model.version, "model_format": model.format, "detector": detector,
                "classes": list(CLASSES), "workers": pool.workers,
                "queue": {"images": pool.pending, "capacity": pool.capacity},
                "uptime_s": round(time.monotonic() - started, 1)}

    @app.get("/metrics", response_class=Response)
    async def prometheus():
        """Prometheus text format."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/predict", response_model=PredictAnswer, openapi_extra=PREDICT_BODY)
    async def predict(request: Request, whole_image: bool | None = None):
        """Every face in each image: box, label, mask, age group, confidence, probabilities."""
        images = await read_images(request, limits)
        try:
            results = await pool.run([(worker.predict, data, name, whole_image) for data, name in images])
        except Busy as err:
            raise ApiError(503, "busy", str(err), {"Retry-After": str(err.retry_after)}) from None
        for result in results:
            if isinstance(result, ImageError):
                raise ApiError(400, "bad_image", str(result))
        for result in results:
            if isinstance(result, BaseException):
                log.error("prediction failed", exc_info=result)
                raise ApiError(500, "worker_failed", "prediction failed; see the server log")
        metrics.count(results)
        records = [record for result in results for record in result]
        return JSONResponse({"model_version": model.version, "faces": records})

    return app


async def read_images(request: Request, limits: Limits) -> list[tuple[bytes, str]]:
    """(bytes, name) of each image in the body, after its size and type are checked."""
    length = request.headers.get("content-length", "")
    if not length.isdigit():
        raise ApiError(411, "length_required", "a Content-Length header is required")
    if int(length) > limits.max_bytes:
        raise ApiError(413, "too_large", f"body over the limit of {limits.max_bytes} bytes")
    content_type = request.headers.get("content-type", "")
    kind = content_type.split(";")[0].strip().lower()
    if kind.startswith("image/"):
        images = [(await request.body(), "upload")]
    elif kind == "application/json":
        images = from_json(await request.body())
    elif kind == "multipart/form-data":
        images = await from_multipart(request, limits)
    else:
        raise ApiError(415, "unsupported_type", f"Content-Type '{kind}' is not supported; "
                       "send image/*, application/json or multipart/form-data")
    if len(images) > limits.max_images:
        raise ApiError(400, "too_many_images", f"{len(images)} images in one request; at most {limits.max_images}")
    return images


def from_json(body: bytes) -> list[tuple[bytes, str]]:
    how = 'JSON body needs {"image": "<base64>"} or {"images": [{"image": "<base64>"}, ...]}'
    try:
        request = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ApiError(400, "bad_request", f"body is not valid JSON ({err})") from None
    if isinstance(request, dict) and isinstance(request.get("images"), list) and request["images"]:
        items = request["images"]
    elif isinstance(request, dict) and "image" in request:
        items = [request]
    else:
        raise ApiError(400, "bad_request", how)
    images = []
    for number, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("image"), str):
            raise ApiError(400, "bad_request", how)
        name = str(item.get("filename") or ("upload" if len(items) == 1 else f"upload_{number}"))
        try:
            images.append((base64_upload(item["image"], name).getvalue(), name))
        except ImageError as err:
            raise ApiError(400, "bad_image", str(err)) from None
    return images


async def from_multipart(request: Request, limits: Limits) -> list[tuple[bytes, str]]:
    async with request.form(max_files=limits.max_images, max_fields=limits.max_images + 16) as form:
        parts = form.getlist("image")
        if not parts or not all(isinstance(part, UploadFile) for part in parts):
            raise ApiError(400, "bad_request", "multipart body needs one or more files in fields named 'image'")
        return [(await part.read(), part.filename or "upload") for part in parts]
