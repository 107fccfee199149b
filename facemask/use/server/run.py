"""Start the server: bind first (a taken port fails at once), find the model, start the workers, serve."""
import contextlib
import os
import signal
import socket
from concurrent.futures.process import BrokenProcessPool

from facemask.core import UserError
from facemask.core.images import DEFAULT_MAX_PIXELS
from facemask.use.detect import DEFAULT_DETECTOR
from facemask.use.server import worker
from facemask.use.server.app import Limits, create_app
from facemask.use.server.model import resolve
from facemask.use.server.pool import WorkerPool

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8000
DEFAULT_WORKERS = os.cpu_count() or 1
DEFAULT_QUEUE = 32  # images waiting beyond those running; more are refused with 503


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (0 = any free port); a UserError that says what to pass instead."""
    try:
        return socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    except OSError as err:  # address in use, a privileged port, an unknown or foreign host
        raise UserError(f"port {port} on {host} is in use or not allowed ({err.strerror or err}); "
                        "pass another --port (0 picks a free one) or --host") from None


@contextlib.contextmanager
def exit_on_sigterm():
    """SIGTERM raises SystemExit(0) in the main thread, so `finally` blocks and atexit run.

    uvicorn stops gracefully on SIGTERM and then re-raises it under the handler that was there before; with
    Python's default handler that kills the process before the workers stop and temporary models are removed.
    """
    def exit_cleanly(signum, frame):
        raise SystemExit(0)

    previous = signal.signal(signal.SIGTERM, exit_cleanly)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def serve(model_spec, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, detector: str = DEFAULT_DETECTOR,
          workers: int = DEFAULT_WORKERS, queue: int = DEFAULT_QUEUE, whole_image: bool = False,
          max_pixels: int = DEFAULT_MAX_PIXELS, limits: Limits | None = None, access_log: bool = False) -> None:
    """Serve until Ctrl-C (or SIGTERM), then let the requests in flight finish and stop the workers."""
    import uvicorn

    if workers < 1 or queue < 0:
        raise UserError(f"--workers {workers} --queue {queue}: need at least 1 worker and a queue of 0 or more")
    with exit_on_sigterm():
        listening = bind(host, port)
        model = resolve(model_spec)
        pool = WorkerPool(workers, queue, worker.start, (str(model.tflite), detector, whole_image, max_pixels))
        try:
            try:
                pool.start()
            except BrokenProcessPool:
                raise UserError(f"the workers could not load {model.tflite} or the {detector} detector; "
                                "the error is printed above") from None
            app = create_app(pool, model, detector, limits or Limits())
            address = listening.getsockname()
            print(f"serving {model.version} ({model.format}) with {workers} workers on "
                  f"http://{host}:{address[1]}: the page at /, POST /predict, GET /health, /metrics, /docs",
                  flush=True)
            config = uvicorn.Config(app, log_level="info" if access_log else "warning", access_log=access_log,
                                    timeout_keep_alive=30)
            uvicorn.Server(config).run(sockets=[listening])
        finally:
            pool.close()
            listening.close()
