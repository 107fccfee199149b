"""The test suite against its targets (issue 28), as a new user meets it: a `git clone` of this checkout's HEAD
(../shared linked beside it when this checkout has one), `make install`, `make test-fast`, `make test`.

    python benchmarks/bench_tests.py [--label "2 cores, ../shared present"]

For each command: wall seconds and CPU seconds (its own and its children's); for `make test` also the 25 slowest
tests it prints, and every Python process the tests start - how much CPU it took, whether it imported TensorFlow
and which suite it ran for (its working folder) - logged by a start-up hook put in the clone's venv only (a `.pth`
file; processes that end by SIGKILL or os._exit, such as multiprocessing workers, write nothing). Writes
benchmarks/results/tests.json; exits 1 when a target is missed: `make test-fast` <= 60 s, `make test` (its install
included) <= 600 s.
"""
import argparse
import json
import os
import re
import resource
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "tests.json"
TARGETS_S = {"make test-fast": 60, "make test": 600}
LOG_ENV = "BENCH_TESTS_PROCESS_LOG"
# Imported by every Python process of the clone's venv (site-packages/bench_tests_hook.pth); a no-op unless LOG_ENV
# names a file, where each process appends one line when it exits.
HOOK = f'''import atexit, json, os, resource, sys
if os.environ.get("{LOG_ENV}"):
    def _log():
        usage = resource.getrusage(resource.RUSAGE_SELF)
        line = json.dumps({{"argv": " ".join(sys.argv)[:300], "cpu": usage.ru_utime + usage.ru_stime,
                           "tensorflow": "tensorflow" in sys.modules, "cwd": os.getcwd()}})
        with open(os.environ["{LOG_ENV}"], "a") as log:
            log.write(line + "\\n")

    atexit.register(_log)
'''


def timed(command: list[str], cwd: Path, env: dict | None = None) -> dict:
    """Run `command`; its wall and CPU seconds (children included), exit status and output."""
    print(f"{' '.join(command)} ...", flush=True)
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    seconds, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(f"{' '.join(command)}: {seconds:.0f} s, exit {result.returncode}", flush=True)
    return {"seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1), "exit": result.returncode,
            "output": result.stdout + result.stderr}


def summary_line(output: str) -> str:
    """pytest's last line (`N passed ... in S s`)."""
    lines = [line.strip("= ") for line in output.splitlines() if re.search(r"\d+ (passed|failed)", line)]
    return lines[-1] if lines else ""


def slowest(output: str) -> list[dict]:
    """The durations pytest printed: [{seconds, phase, test}], slowest first."""
    found = re.findall(r"^([\d.]+)s (setup|call|teardown)\s+(\S+)", output, re.MULTILINE)
    return [{"seconds": float(seconds), "phase": phase, "test": test} for seconds, phase, test in found]


def kind(argv: str) -> str:
    """A process's kind: `stage train`, `dvc exp run`, `dvc status`, `facemask serve`, `mlflow server`, or its
    program (`pytest` for `python -m pytest`, `sweep.py` for a runner in a test's project)."""
    words = argv.split()
    if stage := re.search(r"stages[./](\w+)", argv):
        return f"stage {stage.group(1)}"
    for tool in ("dvc", "mlflow", "facemask"):
        if words and (words[0].endswith(f"/{tool}/__main__.py") or words[0].endswith(f"/bin/{tool}") or words[0] == tool):
            sub = words[1:3] if words[1:2] in (["exp"], ["queue"]) else words[1:2]  # dvc exp run, dvc exp show
            return " ".join([tool, *sub])
    if argv.startswith("-c"):
        return "python -c (pytest-xdist workers, multiprocessing children)"
    if not words:
        return "?"
    program = Path(words[0])
    return program.parent.name if program.name == "__main__.py" else program.name


def suite(cwd: str) -> str:
    """What a process ran for, by its working folder: the pytest temporary folder it is in (a test's own, named
    after the test, or a shared build's: `smoke`, `origin`, a module's `team`, `ci`, `sweep`), else `elsewhere`
    (the checkout: pytest's workers and what they start there)."""
    found = re.search(r"/pytest-\d+/(?:popen-gw\d+/)?([^/]+)", cwd)
    return re.sub(r"\d+$", "", found.group(1)) if found else "elsewhere"


def grouped(rows: list[dict], key) -> list[dict]:
    """Rows summed by key(row): count, CPU seconds, how many imported TensorFlow; most CPU first, 20 at most."""
    groups = defaultdict(lambda: {"count": 0, "cpu_seconds": 0.0, "tensorflow": 0})
    for row in rows:
        entry = groups[key(row)]
        entry["count"] += 1
        entry["cpu_seconds"] += row["cpu"]
        entry["tensorflow"] += row["tensorflow"]
    return [{"name": name, **entry, "cpu_seconds": round(entry["cpu_seconds"], 1)}
            for name, entry in sorted(groups.items(), key=lambda item: -item[1]["cpu_seconds"])][:20]


def processes(log: Path) -> dict:
    """The logged processes: how many, their CPU, those that imported TensorFlow, by kind and by suite."""
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    tensorflow = [row for row in rows if row["tensorflow"]]
    return {"count": len(rows), "cpu_seconds": round(sum(row["cpu"] for row in rows), 1),
            "tensorflow": {"count": len(tensorflow), "cpu_seconds": round(sum(row["cpu"] for row in tensorflow), 1)},
            "by_kind": grouped(rows, lambda row: kind(row["argv"])),
            "by_suite": grouped(rows, lambda row: suite(row["cwd"]))}


def install_hook(checkout: Path) -> None:
    """The start-up hook, in the clone's venv only."""
    purelib = subprocess.run([str(checkout / ".venv" / "bin" / "python"), "-c",
                              "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "bench_tests_hook.py").write_text(HOOK)
    (Path(purelib) / "bench_tests_hook.pth").write_text("import bench_tests_hook\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--label", default="", help="what machine this is, for the results file")
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="bench-tests-") as folder:
        checkout, shared = Path(folder) / "main", REPO.parent / "shared"
        subprocess.run(["git", "clone", "-q", str(REPO), str(checkout)], check=True)
        if shared.is_dir():
            (Path(folder) / "shared").symlink_to(shared.resolve())
        install = timed(["make", "install"], checkout)
        if install["exit"]:
            print(install["output"][-3000:], file=sys.stderr)
            return 2
        install_hook(checkout)
        fast = timed(["make", "test-fast"], checkout)
        log = Path(folder) / "processes.jsonl"
        full = timed(["make", "test"], checkout, env=os.environ | {LOG_ENV: str(log)})
        spent = processes(log)
    measured = {"make test-fast": fast["seconds"], "make test": round(install["seconds"] + full["seconds"], 1)}
    result = {
        "label": args.label, "commit": commit, "cores": os.cpu_count(), "python": sysconfig.get_python_version(),
        "shared": shared.is_dir(), "date": time.strftime("%Y-%m-%d"),
        "install": {k: install[k] for k in ("seconds", "cpu_seconds")},
        "test_fast": {**{k: fast[k] for k in ("seconds", "cpu_seconds", "exit")}, "summary": summary_line(fast["output"])},
        "test": {**{k: full[k] for k in ("seconds", "cpu_seconds", "exit")}, "summary": summary_line(full["output"])},
        "targets": {name: {"seconds": measured[name], "target": target, "met": measured[name] <= target}
                    for name, target in TARGETS_S.items()},
        "slowest": slowest(full["output"])[:25],
        "processes": spent,
    }
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    for name, target in result["targets"].items():
        print(f"{name}: {target['seconds']:.0f} s (target {target['target']} s) {'met' if target['met'] else 'MISSED'}")
    print(f"test processes: {spent['count']}, {spent['cpu_seconds']:.0f} s of CPU; importing TensorFlow: "
          f"{spent['tensorflow']['count']}, {spent['tensorflow']['cpu_seconds']:.0f} s")
    print("their CPU by suite: " + ", ".join(f"{entry['name']} {entry['cpu_seconds']:.0f} s" for entry in spent["by_suite"]))
    if fast["exit"] or full["exit"]:
        print((fast["output"] if fast["exit"] else full["output"])[-3000:], file=sys.stderr)
        return 2
    return 0 if all(target["met"] for target in result["targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
