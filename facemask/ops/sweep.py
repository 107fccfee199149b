"""Sweeps across machines: one experiment per runner, gathered into one ranked table with verdicts.

    python -m facemask.ops.sweep expand FILE             # the experiments as a GitHub Actions matrix (JSON)
    python -m facemask.ops.sweep job FILE --index I      # run experiment I and push it (any runner: CI, SLURM, a laptop)
    python -m facemask.ops.sweep gather FILE [--strict]  # pull every experiment; the ranked table (Markdown)

A job is `dvc exp run --temp --pull --allow-missing -n <sweep id>-<I> -S ...` in a clone of the project (the
work tree stays as it was), logged to the MLflow store that MLFLOW_TRACKING_URI names (one parent run for the
sweep, one child per experiment), then `dvc exp push origin` (git refs, cached outputs and the run cache).
An experiment already on origin is skipped, so re-running a sweep runs only what is missing. Gather never
moves the registry's `champion`: it prints the commands that promote the winner.

Exit status: 0 done; 1 an experiment failed (job), or any did not finish (gather --strict); 2 the sweep file
or the clone is refused (the message says why); 3 the MLflow server, the DVC remote or git's origin does not
answer.
"""
import argparse
import csv
import io
import json
import os
import subprocess
import sys
from functools import reduce
from operator import getitem
from pathlib import Path

import yaml

from facemask.core import UserError
from facemask.core.outputs import SELECTION_REPORT, split_report, val_predictions
from facemask.ops.ci import RemoteUnavailable, check_remote
from facemask.ops.sweep_file import Sweep, describe, load
from facemask.ops.sweep_report import DONE, FAILED, Row, metric_ci, promotion, ranked, table
from facemask.pipeline.paired import compare, read_predictions
from facemask.pipeline.selection import METRICS
from facemask.store import sweep_runs
from facemask.store.tracking import SWEEP_RUN_ENV, TrackingError, connect

OUT = Path("reports/sweeps")
LOG_LINES = 25
FAILED_EXIT, REFUSED, UNAVAILABLE = 1, 2, 3


class Unavailable(UserError):
    """A service the sweep needs (MLflow, the DVC remote, git's origin) does not answer."""


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(list(args), capture_output=True, text=True)
    if check and result.returncode:
        raise UserError(f"{' '.join(args[:4])} failed: {(result.stderr or result.stdout).strip()[-500:]}")
    return result


def dvc(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(sys.executable, "-m", "dvc", *args, check=check)


def check_services() -> None:
    """Fail in seconds, with one message, when MLflow, the DVC remote or git's origin does not answer."""
    try:
        connect()
        check_remote()
    except (TrackingError, RemoteUnavailable) as err:
        raise Unavailable(str(err)) from None
    origin = run("git", "ls-remote", "origin", check=False)
    if origin.returncode:
        raise Unavailable(f"git's origin does not answer ({origin.stderr.strip().splitlines()[-1]}); "
                          "the experiments are pushed there as refs: check `git remote -v`")


def on_origin(sweep: Sweep) -> set[str]:
    """Names of the experiments of `sweep`'s baseline that origin holds."""
    listed = dvc("exp", "list", "origin", "--rev", sweep.baseline, "--name-only").stdout
    return {line.strip() for line in listed.splitlines() if line.strip()}


def local_experiments(sweep: Sweep) -> dict[str, str]:
    """{experiment name: commit} of this clone's experiments on `sweep`'s baseline."""
    shown = json.loads(dvc("exp", "show", "--json", "--rev", sweep.baseline, "--no-fetch").stdout or "[]")
    return {exp["revs"][0]["name"]: exp["revs"][0]["rev"]
            for baseline in shown for exp in baseline.get("experiments") or []}


def git_file(revision: str, path: str) -> str | None:
    shown = run("git", "show", f"{revision}:{path}", check=False)
    return shown.stdout if shown.returncode == 0 else None


def run_logged(args: list[str], log: Path, env: dict) -> int:
    """Run `args`, its output both printed (the runner's log) and written to `log`; its exit status."""
    with log.open("w") as out:
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                                   env={**os.environ, **env})
        for line in process.stdout:
            print(line, end="", flush=True)
            out.write(line)
        return process.wait()


def tail(log: Path, lines: int = LOG_LINES) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def job(sweep: Sweep, index: int) -> int:
    """Run experiment `index` of the sweep unless origin has it; push it; record it under the sweep's parent run."""
    if not 0 <= index < len(sweep.experiments):
        raise UserError(f"--index {index}: {sweep.file} has experiments 0 to {len(sweep.experiments) - 1}")
    check_services()
    name, overrides = sweep.experiment_name(index), sweep.experiments[index]
    if name in on_origin(sweep):
        print(f"sweep: {name} is on origin already; skipped")
        return 0
    parent = sweep_runs.parent_run(sweep.id, sweep.file, sweep.baseline)
    child = sweep_runs.child_run(parent, sweep.id, index, name, overrides)
    log = OUT / sweep.id / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.touch()
    print(f"sweep: {name}: {describe(overrides)}", flush=True)
    status = 0 if name in local_experiments(sweep) else \
        run_logged([sys.executable, "-m", "dvc", *sweep.run_args(index)], log, {SWEEP_RUN_ENV: child})
    if status == 0:
        pushed = dvc("exp", "push", "--run-cache", "origin", name, check=False)
        if pushed.returncode:
            with log.open("a") as out:
                out.write(pushed.stdout + pushed.stderr)
            status = pushed.returncode
    if status:
        sweep_runs.finish_child(child, {}, log, tail(log))
        print(f"sweep: {name} FAILED (exit status {status}); last lines in {log}", file=sys.stderr)
        return FAILED_EXIT
    revision = local_experiments(sweep)[name]
    metrics = {f"{candidate}.{key}": value for candidate in sweep.candidates()
               for key, value in experiment_numbers(revision, candidate).items()}
    sweep_runs.finish_child(child, metrics, log, None)
    print(f"sweep: {name} done and pushed to origin")
    return 0


def experiment_numbers(revision: str, candidate: str) -> dict[str, float]:
    """Validation numbers and train time of `candidate` at `revision` (its validation.json, which git tracks)."""
    text = git_file(revision, split_report(candidate, "validation").as_posix())
    if text is None:
        return {}
    report = json.loads(text)
    return {"val_macro_f1": report["val"]["macro_f1"], "val_accuracy": report["val"]["accuracy"],
            "train_seconds": report["train_seconds"]}


def predictions(revision: str, candidate: str) -> list[dict] | None:
    """`candidate`'s per-photo validation predictions at `revision` (train writes them; git tracks them)."""
    text = git_file(revision, val_predictions(candidate).as_posix())
    return list(csv.DictReader(io.StringIO(text))) if text else None


def champion_rows(sweep: Sweep, model_name: str) -> tuple[list[dict] | None, str]:
    """The registry champion's per-photo validation predictions, and a line that says where they come from: its
    MLflow run's artifact, else (an older run) what the baseline commit holds for its candidate."""
    found = sweep_runs.champion(model_name)
    if found is None or not found["candidate"]:
        return None, f"champion: none in the registry ({model_name}@champion); no verdicts"
    candidate = found["candidate"]
    line = f"champion: {model_name} version {found['version']} ({candidate}, run {found['run_id'][:8]})"
    logged = sweep_runs.run_file(found["run_id"], f"validation/{val_predictions(candidate).name}")
    if logged is not None:
        return read_predictions(logged), line + ": its validation predictions as its run logged them"
    selected = json.loads(git_file(sweep.baseline, SELECTION_REPORT.as_posix()) or "{}")
    rows = predictions(sweep.baseline, candidate)
    if rows is None:
        return None, line + f"; neither its run nor the baseline has {val_predictions(candidate)}: no verdicts"
    same = selected.get("run_id") == found["run_id"]
    return rows, line + (f": its validation predictions from the baseline's {val_predictions(candidate)}" if same else
                         f"; its run logged no predictions, so the verdicts compare with the baseline's {candidate} "
                         f"(run {str(selected.get('run_id'))[:8]}), not with the registry's champion")


def gather(sweep: Sweep, strict: bool, out: Path) -> int:
    """Pull the sweep's experiments from origin and write the ranked table; exit status per --strict."""
    check_services()
    params = yaml.safe_load(git_file(sweep.baseline, "params.yaml") or "{}")
    select = params.get("select", {})
    metric_name = select.get("metric", "val_macro_f1")
    paired_metric = METRICS[metric_name][-1] if METRICS[metric_name][-1] in ("macro_f1", "accuracy") else "macro_f1"
    pushed = sorted(on_origin(sweep) & {sweep.experiment_name(i) for i in range(len(sweep.experiments))})
    if pushed:
        dvc("exp", "pull", "--no-cache", "origin", *pushed)
    revisions = local_experiments(sweep)
    runs = sweep_runs.children(sweep.id)
    base, champion_line = champion_rows(sweep, select.get("model_name", "facemask"))
    rows = []
    for index, overrides in enumerate(sweep.experiments):
        name = sweep.experiment_name(index)
        for candidate in sweep.candidates():
            row = Row(index, name, describe(overrides), candidate)
            if name in revisions:
                score(row, revisions[name], metric_name, paired_metric, base)
            elif runs.get(index, {}).get("status") == "FAILED":
                row.status, row.log_tail = FAILED, runs[index]["log_tail"]
            rows.append(row)
    done = [row for row in ranked(rows) if row.status == DONE]
    header = [f"file: `{sweep.file}`; baseline commit {sweep.baseline[:10]}; {len(sweep.experiments)} experiments, "
              f"{sum(r.status == DONE for r in rows)} rows done, {sum(r.status == FAILED for r in rows)} FAILED",
              champion_line,
              f"ranked by {metric_name} on the validation split (95% CI: bootstrap over its photos); the verdict is "
              f"the paired comparison of {paired_metric} with the champion on the same photos"]
    winner = done[0] if done else None
    text = table(sweep.id, metric_name, rows, header,
                 promotion(winner, sweep.experiments[winner.index] if winner else {}, params))
    out.mkdir(parents=True, exist_ok=True)
    report = out / f"{sweep.id}.md"
    report.write_text(text)
    print(text)
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a") as summary:
            summary.write(text)
    sweep_runs.close_parent(sweep_runs.parent_run(sweep.id, sweep.file, sweep.baseline), report)
    unfinished = [row for row in rows if row.status != DONE]
    if unfinished:
        print(f"sweep: {len(unfinished)} of {len(rows)} rows did not finish: "
              f"{', '.join(sorted({r.name for r in unfinished}))}", file=sys.stderr)
    return FAILED_EXIT if strict and unfinished else 0


def score(row: Row, revision: str, metric_name: str, paired_metric: str, base: list[dict] | None) -> None:
    """Fill a done row: its metric, the metric's CI, its train time, its verdict against the champion."""
    text = git_file(revision, split_report(row.candidate, "validation").as_posix())
    if text is None:
        row.status, row.log_tail = FAILED, f"{split_report(row.candidate, 'validation')} is not in the experiment"
        return
    report = json.loads(text)
    row.status, row.train_seconds = DONE, report.get("train_seconds")
    row.metric = reduce(getitem, METRICS[metric_name], report)
    mine = predictions(revision, row.candidate)
    if mine is None:
        row.verdict = f"not comparable: no {val_predictions(row.candidate)} in the experiment"
        return
    if METRICS[metric_name][-1] in ("macro_f1", "accuracy"):
        row.ci = metric_ci([r["actual"] for r in mine], [r["predicted"] for r in mine], paired_metric)
    if base is None:
        row.verdict = "no champion predictions"
        return
    verdict = compare(base, mine, metric=paired_metric)
    row.verdict = f"{verdict.verdict}: {verdict.reason}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m facemask.ops.sweep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("expand", help="print the sweep's experiments as a GitHub Actions matrix (JSON)") \
        .add_argument("file", help="the sweep file, e.g. sweeps/example.yaml")
    one = commands.add_parser("job", help="run one experiment and push it to origin")
    one.add_argument("file")
    one.add_argument("--index", type=int, required=True, help="which experiment (0-based; as `expand` numbers them)")
    last = commands.add_parser("gather", help="pull the experiments and write the ranked table")
    last.add_argument("file")
    last.add_argument("--strict", action="store_true", help="exit 1 when any experiment failed or did not run")
    last.add_argument("--out", type=Path, default=OUT, help=f"where <sweep id>.md goes (default {OUT})")
    args = parser.parse_args(argv)
    try:
        sweep = load(args.file)
        if args.command == "expand":
            print(json.dumps(sweep.matrix()))
            return 0
        return job(sweep, args.index) if args.command == "job" else gather(sweep, args.strict, args.out)
    except Unavailable as err:
        print(f"sweep: {err}", file=sys.stderr)
        return UNAVAILABLE
    except UserError as err:
        print(f"sweep: error: {err}", file=sys.stderr)
        return REFUSED


if __name__ == "__main__":
    sys.exit(main())
