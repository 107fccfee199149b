"""Shared by the server tests: the tiny model as TFLite, a started worker pool, a real uvicorn on 127.0.0.1."""
import atexit
import contextlib
import functools
import shutil
import tempfile
import threading
from pathlib import Path

from facemask.use.server import worker
from facemask.use.server.model import ServedModel
from facemask.use.server.pool import WorkerPool
from tests.champion_support import tiny_model_file


@functools.cache
def tiny_tflite_file() -> Path:
    """tests/champion_support's tiny model, exported to float TFLite once per test session."""
    from facemask.core.model import load
    from facemask.use.export import export

    folder = Path(tempfile.mkdtemp(prefix="facemask-tiny-tflite-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return export(load(tiny_model_file()), folder, calibration=None, formats=("tflite",))["tflite"]


def served_model() -> ServedModel:
    return ServedModel(tiny_tflite_file(), "tiny-test-model", "tflite (as given)")


@contextlib.contextmanager
def started_pool(detector, workers: int = 2, queue: int = 14, whole_image: bool = False, max_pixels: int = 40_000):
    """A WorkerPool running the tiny model with `detector` (a name, or an object such as StubDetector)."""
    pool = WorkerPool(workers, queue, worker.start, (str(tiny_tflite_file()), detector, whole_image, max_pixels))
    try:
        pool.start()
        yield pool
    finally:
        pool.close()


@contextlib.contextmanager
def uvicorn_on_localhost(app):
    """The app served by uvicorn on 127.0.0.1 at a free port, in a thread; yields the base URL."""
    import uvicorn

    from facemask.use.server.run import bind

    listening = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            thread.join(0.05)
            if not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
        yield f"http://127.0.0.1:{listening.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        listening.close()
