"""Wall time of a sweep's jobs on this machine: one after another against two at once, and the projection to one
runner per experiment (the slowest job, since the runners work side by side).

    MLFLOW_TRACKING_URI=http://127.0.0.1:5000 python benchmarks/bench_sweep.py --origin URL --candidate Xception \\
        [--grid candidates.Xception.train.dropout=0.3,0.5 --grid candidates.Xception.train.learning_rate=0.001,0.0003]

--origin is the project's git origin (its DVC remote holds the pipeline's outputs, so each job trains only);
each mode clones it into a temporary folder and runs `python -m facemask.ops.sweep job` for every experiment of a
sweep written for that mode (its own name, so neither mode finds the other's experiments done), pushing to
origin as the workflow does. The second mode's float values are nudged by one part in a million: the same work,
but params DVC's run cache (pushed by the first mode) has not seen, so nothing is restored instead of trained; a
job that was restored anyway is marked `cached`. Writes benchmarks/results/sweep.json.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

RESULTS = Path(__file__).resolve().parent / "results" / "sweep.json"


def clone(origin: str, target: Path) -> Path:
    subprocess.run(["git", "clone", "-q", origin, str(target)], check=True)
    return target


def run_jobs(checkout: Path, sweep_file: Path, indexes: list[int]) -> list[dict]:
    """The jobs one after another in `checkout`: {index, seconds, status} each."""
    done = []
    for index in indexes:
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "facemask.ops.sweep", "job", str(sweep_file), "--index", str(index)],
                                cwd=checkout, capture_output=True, text=True)
        done.append({"index": index, "seconds": round(time.perf_counter() - started, 1), "status": result.returncode,
                     "cached": "is cached" in result.stdout + result.stderr})
        if result.returncode:
            print(result.stdout[-2000:] + result.stderr[-2000:], file=sys.stderr)
    return done


def mode(origin: str, grid: dict, name: str, lanes: int, folder: Path) -> dict:
    """Every experiment of a sweep named `name`, spread over `lanes` clones that work at the same time."""
    sweep_file = folder / f"{name}.yaml"
    sweep_file.write_text(yaml.safe_dump({"name": name, "grid": grid}))
    clones = [clone(origin, folder / f"{name}-{lane}") for lane in range(lanes)]
    count = math.prod(len(values) for values in grid.values())
    shares = [list(range(count))[lane::lanes] for lane in range(lanes)]
    started = time.perf_counter()
    with ThreadPoolExecutor(lanes) as pool:  # each lane's jobs run as subprocesses: the lanes work side by side
        jobs = [job for lane in pool.map(run_jobs, clones, [sweep_file] * lanes, shares) for job in lane]
    return {"lanes": lanes, "wall_seconds": round(time.perf_counter() - started, 1), "jobs": jobs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--origin", required=True, help="the project's git origin (a URL or a bare repo's path)")
    parser.add_argument("--candidate", default="Xception", help="the candidate whose head the sweep trains")
    parser.add_argument("--grid", action="append", metavar="KEY=V1,V2", help="a grid axis (default: dropout x learning rate)")
    parser.add_argument("--label", default="", help="what data and machine this is, for the results file")
    args = parser.parse_args()
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        parser.error("set MLFLOW_TRACKING_URI to the MLflow server every job logs to")
    axes = args.grid or [f"candidates.{args.candidate}.train.dropout=0.3,0.5",
                         f"candidates.{args.candidate}.train.learning_rate=0.001,0.0003"]
    grid = {key: [yaml.safe_load(v) for v in values.split(",")] for key, values in (a.split("=", 1) for a in axes)}
    stamp = time.strftime("%H%M%S")
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as folder:
        sequential = mode(args.origin, grid, f"bench-seq-{stamp}", 1, Path(folder))
        nudged = {key: [v * (1 + 1e-6) if isinstance(v, float) else v for v in values] for key, values in grid.items()}
        parallel = mode(args.origin, nudged, f"bench-par-{stamp}", 2, Path(folder))
    per_job = [job["seconds"] for job in sequential["jobs"]]
    result = {"label": args.label, "cores": os.cpu_count(), "grid": grid, "one_after_another": sequential,
              "two_at_once": parallel, "projected_one_runner_each_seconds": max(per_job),
              "date": time.strftime("%Y-%m-%d")}
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"one after another: {sequential['wall_seconds']} s; two at once: {parallel['wall_seconds']} s; "
          f"one runner per experiment (the slowest job alone): {max(per_job)} s; per job {per_job}")


if __name__ == "__main__":
    main()
