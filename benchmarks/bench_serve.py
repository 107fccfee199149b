"""Serving under load: concurrent clients posting a 640x480 JPEG with one face, to each server in turn.

    python benchmarks/bench_serve.py [--requests 10000] [--clients 16] [--workers 1,2] [--servers new,old,mlflow]
                                     [--model FILE.keras] [--dataset ../shared/datasets/facemask-age] [--json FILE]

Servers, each started as a process of its own on 127.0.0.1 and stopped after its run:
- `new`: `facemask serve` (FastAPI + uvicorn, a pool of TFLite workers), once per --workers count, given the
  model converted to float TFLite once here (so its start-up does not convert it again each run);
- `old`: the standard-library server `facemask serve` was until commit c8d9686 (one Keras model behind a lock),
  taken from git (`git show c8d9686:facemask/use/serve.py`);
- `mlflow`: `mlflow models serve --env-manager local` on the project's pyfunc (facemask.use.pyfunc).
The frame: a dataset photo without a mask, 160 px high, in a drawn indoor scene (facemask.core.scenes), saved as
a JPEG (quality 90); the first answer must find exactly one face. Each client keeps one connection and posts
one request after another; after 20 unmeasured warm-up requests the server's memory (RSS of its process and
children) is read, then again after --requests. The default model is an untrained MobileNetV2 at 224 px
(weights none: the real architecture's cost, not its accuracy); --model measures a trained one.
Also timed, in this process on one thread: a worker's steps for the frame (decode, detect, classify one
face, and per face in a batch of 16), which says what micro-batching faces across requests could save.
Prints a markdown table; --json writes every number.
"""
import argparse
import base64
import collections
import contextlib
import csv
import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
OLD_SERVER_COMMIT = "c8d9686"
WARM_UP = 20
START_TIMEOUT_S = 600


def frame_jpeg(dataset: Path) -> bytes:
    """A 640x480 JPEG of a drawn room with one unmasked dataset face in which the detector finds one face."""
    from facemask.core.images import load_rgb
    from facemask.core.scenes import place, room
    from facemask.use.detect import make_detector

    with open(dataset / "metadata.csv", newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if row["label"].startswith("without_mask")]
    detector, rng = make_detector(), np.random.default_rng(0)
    for row in rows[:50]:
        pixels = place(room(rng), load_rgb(dataset / row["file"]), (240, 160, 160, 160))
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
        if len(detector.detect(load_rgb(io.BytesIO(buffer.getvalue())))) == 1:
            return buffer.getvalue()
    raise SystemExit("bench_serve: the detector found no single face in 50 frames made from dataset photos")


def untrained_model(folder: Path) -> Path:
    from facemask.core.tensorflow_logs import quiet_tensorflow

    quiet_tensorflow()
    from facemask.core.model import build_classifier

    path = folder / "mobilenetv2_224_untrained.keras"
    build_classifier("MobileNetV2", 224, None).save(path)
    return path


def to_tflite(model: Path, folder: Path) -> Path:
    """The model as float TFLite, converted once here (what `facemask serve` would convert at each start)."""
    from facemask.core.tensorflow_logs import quiet_tensorflow

    quiet_tensorflow()
    from facemask.core.model import load
    from facemask.use.export import export

    return export(load(model), folder, calibration=None, formats=("tflite",))["tflite"]


def stage_ms(tflite: Path, jpeg: bytes, repeats: int = 50) -> dict:
    """One worker's time per request, by step (one thread, as in the server's workers): is the classifier,
    the only step micro-batching could speed up, a large share of it?"""
    from facemask.core.images import load_rgb
    from facemask.use.detect import crop, make_detector
    from facemask.use.export import runner, tflite_input_size
    from facemask.use.predict import Classifier

    classify = Classifier(runner(tflite, threads=1), tflite_input_size(tflite), str(tflite))
    detector = make_detector()
    rgb = load_rgb(io.BytesIO(jpeg))
    face = crop(rgb, detector.detect(rgb)[0].box)

    def median_ms(step, count: int = repeats) -> float:
        step()
        times = []
        for _ in range(count):
            begun = time.perf_counter()
            step()
            times.append(time.perf_counter() - begun)
        return round(1000 * float(np.median(times)), 2)

    return {"decode_ms": median_ms(lambda: load_rgb(io.BytesIO(jpeg))), "detect_ms": median_ms(lambda: detector.detect(rgb)),
            "classify_1_face_ms": median_ms(lambda: classify([face])),
            "classify_per_face_in_16_ms": round(median_ms(lambda: classify([face] * 16), repeats // 5) / 16, 2)}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


OLD_RUNNER = """
import sys
sys.path.insert(0, sys.argv[1])
from facemask.core.tensorflow_logs import quiet_tensorflow
quiet_tensorflow()
from facemask.core.model import load
from facemask.use.detect import make_detector
from facemask.use.predict import Predictor
from old_serve import serve
serve(Predictor(load(sys.argv[2]), make_detector()), "127.0.0.1", int(sys.argv[3]), 10 * 1024 * 1024, "old")
"""


def mlflow_model(model: Path, folder: Path) -> Path:
    """The project's pyfunc around `model`, saved as `mlflow models serve -m` reads it."""
    import mlflow

    from facemask.use.pyfunc import KERAS_ARTIFACT, SIGNATURE, FaceClassifier, pip_requirements

    target = folder / "pyfunc"
    mlflow.pyfunc.save_model(str(target), python_model=FaceClassifier(), artifacts={KERAS_ARTIFACT: str(model)},
                             signature=SIGNATURE, pip_requirements=pip_requirements())
    return target


def server_command(kind: str, model: Path, port: int, workers: int, folder: Path) -> tuple[list[str], str]:
    """(command, health path) that starts one server on 127.0.0.1:port."""
    if kind == "new":
        return [sys.executable, "-m", "facemask", "serve", "--model", str(model), "--port", str(port),
                "--workers", str(workers), "--queue", "64"], "/health"
    if kind == "old":
        old = subprocess.run(["git", "show", f"{OLD_SERVER_COMMIT}:facemask/use/serve.py"], cwd=REPO, check=True,
                             capture_output=True, text=True).stdout
        (folder / "old_serve.py").write_text(old)
        return [sys.executable, "-c", OLD_RUNNER, str(folder), str(model), str(port)], "/health"
    return ["mlflow", "models", "serve", "-m", str(mlflow_model(model, folder)), "--env-manager", "local",
            "-h", "127.0.0.1", "-p", str(port)], "/ping"


def request_for(kind: str, jpeg: bytes) -> tuple[str, bytes, dict]:
    if kind == "mlflow":
        body = json.dumps({"dataframe_split": {"columns": ["image", "filename"],
                                               "data": [[base64.b64encode(jpeg).decode(), "frame.jpg"]]}})
        return "/invocations", body.encode(), {"Content-Type": "application/json"}
    return "/predict", jpeg, {"Content-Type": "image/jpeg"}


def tree_rss_mb(pid: int) -> float:
    import psutil

    process = psutil.Process(pid)
    members = [process, *process.children(recursive=True)]
    total = 0
    for member in members:
        with contextlib.suppress(psutil.NoSuchProcess):  # a child that just exited
            total += member.memory_info().rss
    return round(total / 2**20, 1)


def wait_until_up(port: int, path: str, process: subprocess.Popen) -> float:
    started = time.monotonic()
    while time.monotonic() - started < START_TIMEOUT_S:
        if process.poll() is not None:
            raise SystemExit(f"bench_serve: the server exited ({process.returncode}); its output:\n"
                             f"{process.stdout.read()[-3000:]}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", path)
            if connection.getresponse().status == 200:
                return time.monotonic() - started
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"bench_serve: no answer on port {port} within {START_TIMEOUT_S} s")


def load(port: int, path: str, body: bytes, headers: dict, requests: int, clients: int) -> dict:
    """`requests` posts from `clients` threads, each on its own keep-alive connection."""
    latencies, statuses, lock = [], collections.Counter(), threading.Lock()
    left = [requests]

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                if left[0] == 0:
                    break
                left[0] -= 1
            begun = time.perf_counter()
            try:
                connection.request("POST", path, body, headers)
                response = connection.getresponse()
                response.read()
                status = str(response.status)
            except (OSError, http.client.HTTPException) as err:
                status = f"error {type(err).__name__}"
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            with lock:
                latencies.append(time.perf_counter() - begun)
                statuses[status] += 1
        connection.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    milliseconds = np.asarray(latencies) * 1000
    return {"requests": requests, "seconds": round(seconds, 1), "requests_per_s": round(requests / seconds, 1),
            "ok_per_s": round(statuses["200"] / seconds, 1),
            "p50_ms": round(float(np.percentile(milliseconds, 50)), 1),
            "p99_ms": round(float(np.percentile(milliseconds, 99)), 1), "statuses": dict(statuses),
            "server_errors_5xx": sum(n for status, n in statuses.items() if status.startswith("5")),
            "client_errors": sum(n for status, n in statuses.items() if status.startswith("error"))}  # timeouts (60 s), resets


def measure(kind: str, workers: int, model: Path, jpeg: bytes, requests: int, clients: int) -> dict:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as folder:
        command, health = server_command(kind, model, port, workers, Path(folder))
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   start_new_session=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        try:
            start_s = wait_until_up(port, health, process)
            path, body, headers = request_for(kind, jpeg)
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            for _ in range(WARM_UP):
                connection.request("POST", path, body, headers)
                answer = json.loads(connection.getresponse().read())
            connection.close()
            records = answer["faces"] if kind != "mlflow" else answer["predictions"]
            if [record["status"] for record in records] != ["face"]:
                raise SystemExit(f"bench_serve: {kind} did not find exactly one face: {records}")
            rss_before = tree_rss_mb(process.pid)
            result = load(port, path, body, headers, requests, clients)
            rss_after = tree_rss_mb(process.pid)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
    return {"server": kind, "workers": workers if kind == "new" else 1, "clients": clients, "start_s": round(start_s, 1),
            **result, "rss_before_mb": rss_before, "rss_after_mb": rss_after,
            "rss_growth_mb": round(rss_after - rss_before, 1)}


def table(rows: list[dict]) -> str:
    lines = ["| server | workers | requests | requests/s | p50 ms | p99 ms | 5xx | no answer | RSS before -> after (MB) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for row in rows:
        lines.append(f"| {row['server']} | {row['workers']} | {row['requests']} | {row['requests_per_s']} | "
                     f"{row['p50_ms']} | {row['p99_ms']} | {row['server_errors_5xx']} | {row['client_errors']} | "
                     f"{row['rss_before_mb']:.0f} -> {row['rss_after_mb']:.0f} ({row['rss_growth_mb']:+.0f}) |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000, help="measured requests per server")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts for the new server")
    parser.add_argument("--servers", default="new,old,mlflow", help="comma-separated, of: new, old, mlflow")
    parser.add_argument("--model", type=Path, help="a saved .keras model (default: MobileNetV2 224 px, weights none)")
    parser.add_argument("--dataset", type=Path, default=REPO.parent / "shared" / "datasets" / "facemask-age")
    parser.add_argument("--json", type=Path, help="also write every number here")
    args = parser.parse_args()
    servers = [name.strip() for name in args.servers.split(",")]
    if unknown := set(servers) - {"new", "old", "mlflow"}:
        parser.error(f"--servers: unknown {', '.join(sorted(unknown))}; choose from new, old, mlflow")
    if not (args.dataset / "metadata.csv").is_file():
        parser.error(f"--dataset {args.dataset}: no metadata.csv; the frame is made from the dataset's photos")
    with tempfile.TemporaryDirectory(prefix="bench-serve-model-") as folder:
        model = args.model or untrained_model(Path(folder))
        tflite = to_tflite(model, Path(folder))
        jpeg = frame_jpeg(args.dataset)
        stages = stage_ms(tflite, jpeg)
        print(f"bench_serve: one worker's steps per request: {stages}", file=sys.stderr)
        runs = [(kind, int(workers)) for kind in servers
                for workers in (args.workers.split(",") if kind == "new" else ["1"])]
        rows = []
        for kind, workers in runs:
            print(f"bench_serve: {kind} server, {workers} worker(s), {args.requests} requests ...", file=sys.stderr)
            rows.append(measure(kind, workers, tflite if kind == "new" else model, jpeg, args.requests, args.clients))
            print(json.dumps(rows[-1]), file=sys.stderr)
    report = {"model": str(args.model) if args.model else "MobileNetV2, 224 px, weights none (untrained)",
              "frame": "640x480 JPEG, one face", "cpus": os.cpu_count(), "load_average_before": os.getloadavg()[0],
              "worker_steps": stages, "runs": rows}
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
