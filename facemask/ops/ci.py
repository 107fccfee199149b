"""Re-run the pipeline on a commit and report what it changed: exactly what the hosted CI does, by hand.

    python -m facemask.ops.ci [--base REV] [--set KEY=VALUE ...] [--no-push] [--commit] [--out reports/ci]

1. Refuses a work tree with uncommitted changes and a base commit that is not in the history.
2. Pulls what the DVC remote holds (the dataset and every cached stage output).
3. Re-runs the pipeline: `dvc repro`, or `dvc exp run -S KEY=VALUE ...` for a dispatched override,
   timing each stage. A pull request's run (no --commit, no override) runs up to select, gates (5.), and
   runs the rest (export, explain, results) only if the gate passed: a failing change is never exported.
4. Pushes the new outputs, so that the next run (or a colleague's `dvc pull`) reuses them;
   `--commit` also commits dvc.lock and the small tracked results.
5. Gates (facemask/ops/gate.py): the new champion against production's (the registry's `champion`, read
   before the run; else the base commit's) on the same validation photos, paired (facemask.pipeline.paired);
   fails only when it is worse at ci.alpha, or a guarded slice (ci.guards) is beyond its bound.
   select registers the new champion but leaves the alias (HOLD_CHAMPION): `champion` moves only after the
   gate passed, and only with --commit (CI on main); a pull request's run never changes what production serves.
6. Writes <out>/report.md (the verdict first; each changed candidate against itself at the base; the champion;
   the guarded slices; stage times, params and metrics diffs folded) and <out>/plots/ (`dvc plots diff`).

Exit status: 0 done and the gate passed, 1 the gate failed (the report's first line says why), 2 refused
(the message says what to do), 3 the remote is unavailable (the report says what could be said).
"""
import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from facemask.core import UserError
from facemask.core.files import read_json
from facemask.core.outputs import CANDIDATE_REPORTS, SELECTION_REPORT, val_predictions, val_slices
from facemask.core.params import Guards, load_params
from facemask.ops.ci_report import report, reruns, stage_seconds

GATE_FAILED, REFUSED, REMOTE_UNAVAILABLE = 1, 2, 3
GATED_AT = "select"  # a pull request's run stops here when the gate fails (export and explain cost minutes)
# What a run changes in git (--commit): the lock, the small results, DVC's .gitignore entries, overrides.
RESULTS = ("dvc.lock", "params.yaml", "metrics", "plots", "reports", ":(glob)**/.gitignore")


class RemoteUnavailable(UserError):
    """The DVC remote cannot be read or written; the message names it and what to check."""


def git(*args: str, check: bool = True) -> str:
    result = subprocess.run(["git", *args], capture_output=True, text=True)
    if check and result.returncode:
        raise UserError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def dvc(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dvc", *args], capture_output=True, text=True)


def check_work_tree(base: str) -> str:
    """The base's full hash, after refusing uncommitted changes and a base outside the history."""
    changed = git("status", "--porcelain", "--untracked-files=no")
    if changed:
        files = ", ".join(line.split(maxsplit=1)[1] for line in changed.splitlines()[:5])
        raise UserError(f"the work tree has uncommitted changes ({files}); commit them first: "
                        "the report compares committed states")
    found = git("rev-parse", "--verify", "--quiet", f"{base}^{{commit}}", check=False)
    if not found:
        raise UserError(f"base commit {base!r} is not in this clone's history; fetch it (git fetch --unshallow, "
                        "or actions/checkout with fetch-depth: 0) or pass --base with a commit that is")
    return found


def default_remote() -> tuple[str, str]:
    """(name, url) of the default DVC remote, read with one `dvc config --list` (every level merged, a line
    `key=value` each); RemoteUnavailable when there is none."""
    config = dict(line.partition("=")[::2] for line in dvc("config", "--list").stdout.splitlines())
    name = config.get("core.remote", "")
    url = config.get(f"remote.{name}.url", "") if name else ""
    if not url:
        raise RemoteUnavailable("no default DVC remote is configured; add one: "
                                "dvc remote add -d storage <url> (README: CI)")
    return name, url


def check_remote() -> str:
    """A line naming the default remote; RemoteUnavailable when it cannot be read."""
    name, url = default_remote()
    if "://" not in url:
        folder = Path(url).expanduser()  # `dvc config` gives a local remote's path already resolved
        if not folder.is_dir():
            raise RemoteUnavailable(f"remote unavailable: {name} ({url}) is not a folder here; create it "
                                    f"(mkdir -p {folder}) or point it elsewhere: dvc remote modify --local {name} url ...")
    status = dvc("status", "--cloud", "--quiet")
    if status.returncode not in (0, 1) or "ERROR" in status.stderr:
        raise RemoteUnavailable(f"remote unavailable: {name} ({url}) does not answer ({_last_error(status)}); "
                                "check its address and credentials (dvc remote modify --local)")
    return f"{name} ({url})"


def _last_error(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
    return lines[-1].strip() if lines else f"exit status {result.returncode}"


def run_pipeline(overrides: list[str], target: str | None = None) -> dict[str, float]:
    """`dvc repro [TARGET]` (or `dvc exp run -S ...`), its output passed through; returns {stage: seconds}."""
    command = ["exp", "run", *(arg for o in overrides for arg in ("-S", o))] if overrides else ["repro"]
    command += [target] if target else []
    process = subprocess.Popen([sys.executable, "-m", "dvc", *command, "--allow-missing"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines = []
    for line in process.stdout:
        print(line, end="", flush=True)
        lines.append((time.monotonic(), line))
    lines.append((time.monotonic(), ""))
    if process.wait():
        raise UserError(f"dvc {' '.join(command)} failed (exit status {process.returncode}); see its output above")
    return stage_seconds(lines)


def outdated() -> list[str]:
    """The stages a `dvc repro` would run now (none known if `dvc status` fails)."""
    status = dvc("status", "--json")
    return list(json.loads(status.stdout or "{}")) if status.returncode == 0 else []


def push() -> str:
    """Push every output to the remote; a line saying so (RemoteUnavailable if it fails or leaves any out)."""
    pushed = dvc("push")
    if pushed.returncode:
        raise RemoteUnavailable(f"remote unavailable: dvc push failed ({_last_error(pushed)})")
    left = json.loads(dvc("data", "status", "--not-in-remote", "--json").stdout or "{}").get("not_in_remote", [])
    if left:
        raise RemoteUnavailable(f"dvc push left {len(left)} output(s) out of the remote, e.g. {left[0]}")
    return "every output is in the remote"


def read_lock(revision: str | None = None) -> dict:
    text = git("show", f"{revision}:dvc.lock", check=False) if revision else \
        (Path("dvc.lock").read_text() if Path("dvc.lock").is_file() else "")
    return yaml.safe_load(text) or {}


def read_best(revision: str | None = None) -> dict | None:
    """What select wrote at `revision` (default: the work tree): the winner, its metric, run and registration."""
    text = git("show", f"{revision}:{SELECTION_REPORT}", check=False) if revision else \
        (SELECTION_REPORT.read_text() if SELECTION_REPORT.is_file() else "")
    return json.loads(text) if text else None


def describe(revision: str) -> str:
    """A commit as its short hash and the start of its subject."""
    short, subject = git("log", "-1", "--format=%h%n%s", revision).split("\n", 1)
    return f"{short} ({subject[:60]}{'...' if len(subject) > 60 else ''})"


def base_checks(base: str, winner: str, guards: Guards) -> list:
    """The guarded slices of the base commit's champion `winner`, from its committed reports, under the bounds
    the base set (`guards` where its params.yaml does not read)."""
    from facemask.ops.gate import guard_checks
    from facemask.ops.reference import committed_rows

    raw = yaml.safe_load(git("show", f"{base}:params.yaml", check=False) or "{}") or {}
    with contextlib.suppress(ValueError):  # pydantic's ValidationError: an older params.yaml keeps `guards`
        guards = Guards.model_validate((raw.get("ci") or {}).get("guards") or {})
    slices = git("show", f"{base}:{val_slices(winner).as_posix()}", check=False)
    return guard_checks(json.loads(slices) if slices else None, committed_rows(base, val_predictions(winner)) or [], guards)


def judge(base: str, reference, best_before: dict | None, best_after: dict, rerun_rows: list[dict], params) -> dict:
    """The paired verdicts and the gate: the champion against production's (a reference.Reference), each changed
    candidate against itself at the base (validation and test), and the champion's guarded slices (with the base
    champion's values: a slice already beyond its bound there does not fail this change)."""
    from facemask.ops.gate import decide, detectable_sentence, guard_checks, with_base  # scipy, scikit-learn: only here, so
    from facemask.ops.reference import committed_rows, rescored  # that --help and a refusal answer at once
    from facemask.pipeline.paired import NOT_COMPARABLE, compare, read_predictions
    from facemask.pipeline.selection import PAIRED_METRIC

    metric, alpha, winner = PAIRED_METRIC[best_after["metric"]], params.ci.alpha, best_after["winner"]
    rows = read_predictions(val_predictions(winner))
    name, verdict = reference.name, None
    if reference.rows is not None:
        verdict = compare(reference.rows, rows, metric=metric, alpha=alpha)
    if (verdict is None or verdict.verdict == NOT_COMPARABLE) and reference.model_uri:
        why_rescored = verdict.reason if verdict else "its run logged no validation predictions"
        try:
            verdict = compare(rescored(reference.model_uri), rows, metric=metric, alpha=alpha)
            name += f", scored on today's photos ({why_rescored})"
        except UserError as err:  # the model cannot be had: say so, compare nothing
            name += f" ({why_rescored}; its model could not be scored on today's photos: {err})"
    slices_file = val_slices(winner)
    checks = guard_checks(read_json(slices_file) if slices_file.is_file() else None, rows, params.ci.guards)
    if best_before:
        checks = with_base(checks, base_checks(base, best_before["winner"], params.ci.guards))
    changed = {}
    for row in rerun_rows:
        if row["stage"].startswith("train@"):
            candidate = row["stage"].split("@", 1)[1]
            splits = {"validation": val_predictions(candidate), "test": CANDIDATE_REPORTS / candidate / "predictions.csv"}
            before = {split: committed_rows(base, path) for split, path in splits.items()}
            changed[candidate] = {"why": row["why"], **{
                split: compare(before[split], read_predictions(path), metric=metric, alpha=alpha)
                if before[split] is not None and path.is_file() else None for split, path in splits.items()}}
    return {"reference": name, "verdict": verdict, "checks": checks, "changed": changed, "paired_metric": metric,
            "detectable": detectable_sentence(len(rows), verdict, alpha),
            "gate": decide(verdict, checks, alpha, winner, name)}


def move_champion(best: dict, gate, commit: bool, production_version: str | None) -> str:
    """After the gate: point `champion` at the new champion's version when the gate passed on main (--commit);
    what happened, in a phrase for the report."""
    registered = best.get("registered")
    if not registered:
        return "no: nothing was registered (below select.threshold)"
    version = registered["version"]
    if version == production_version:
        return f"no: it is production's version {version} already"
    if not gate.passed:
        return f"no: the gate failed; version {version} is registered, production's stays champion"
    if not commit:
        return (f"no: version {version} is registered; a pull request's run leaves `champion` to the run on main "
                "after merging")
    from facemask.store.registry import promote

    moved = promote(registered["name"], version)
    return f"yes: champion -> version {version} ({best['winner']})" if moved else f"no: it is version {version} already"


def rerun(base: str, overrides: list[str], out: Path, push_outputs: bool, commit: bool) -> int:
    """The whole loop; returns the exit status (see the module's docstring)."""
    base = check_work_tree(base)
    out.mkdir(parents=True, exist_ok=True)
    facts = {"base": describe(base), "head": describe("HEAD"), "overrides": overrides,
             "best_before": read_best(base)}
    try:
        facts["remote"] = check_remote()
        pulled = dvc("pull", "--allow-missing")
        if pulled.returncode:
            raise RemoteUnavailable(f"remote unavailable: dvc pull failed ({_last_error(pulled)})")
    except RemoteUnavailable as err:
        facts["remote"] = f"**{err}**; the pipeline was not re-run"
        facts["not_gated"] = str(err)
        facts["params_diff"] = dvc("params", "diff", base, "--md").stdout
        (out / "report.md").write_text(report(facts))
        print(f"ci: {err}", file=sys.stderr)
        return REMOTE_UNAVAILABLE
    from facemask.ops.reference import production
    from facemask.store.registry import HOLD_CHAMPION

    params = load_params()
    reference = production(params.select.model_name, base, facts["best_before"], out / "production")
    lock_before = read_lock()
    os.environ[HOLD_CHAMPION] = "1"  # select registers; move_champion() decides after the gate
    gate_first = not commit and not overrides  # a pull request's run: gated at select, before export and explain
    seconds = run_pipeline(overrides, GATED_AT if gate_first else None)
    facts["best_after"] = read_best()
    params = load_params()  # as the run left them (an override of ci.* applies)
    if facts["best_after"]:
        facts |= judge(base, reference, facts["best_before"], facts["best_after"],
                       reruns(lock_before, read_lock(), seconds), params)
    else:
        facts["not_gated"] = "select wrote no champion"
    if gate_first and facts.get("gate") and not facts["gate"].passed:
        if held_back := outdated():
            facts["held_back"] = f"{', '.join(held_back)}: the gate failed, and a failing change is not shipped"
    elif gate_first:
        seconds |= run_pipeline([])
    facts["reruns"] = reruns(lock_before, read_lock(), seconds)
    if push_outputs:
        facts["remote"] += f": pulled, re-ran, pushed; {push()}"
    if facts["best_after"]:
        facts["champion_moved"] = move_champion(facts["best_after"], facts["gate"], commit, reference.version)
    facts["params_diff"] = dvc("params", "diff", base, "--md").stdout
    facts["metrics_diff"] = dvc("metrics", "diff", base, "--all", "--md", "--precision", "4").stdout
    plots = dvc("plots", "diff", base, "-o", str(out / "plots"))
    facts["plots"] = str(out / "plots" / "index.html") if plots.returncode == 0 else ""
    (out / "report.md").write_text(report(facts))
    if commit:
        git("add", "-A", "--", *RESULTS)
        if git("status", "--porcelain", "--untracked-files=no"):
            git("commit", "-q", "-m", f"ci: pipeline results for {facts['head']}")
    ran = ", ".join(r["stage"] for r in facts["reruns"]) or "nothing (no changes)"
    print(f"ci: re-ran {ran}; report in {out / 'report.md'}")
    gate = facts.get("gate")
    if gate and not gate.passed:
        print(f"ci: {gate.text}", file=sys.stderr)
        return GATE_FAILED
    print(f"ci: {gate.text if gate else 'not gated: ' + facts['not_gated']}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m facemask.ops.ci", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="HEAD~1", help="the commit to compare with (default: HEAD~1)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a params.yaml override, as `dvc exp run -S` takes it (repeatable)")
    parser.add_argument("--no-push", dest="push", action="store_false", help="do not push outputs to the remote")
    parser.add_argument("--commit", action="store_true", help="commit dvc.lock and the tracked results afterwards")
    parser.add_argument("--out", type=Path, default=Path("reports/ci"), help="where report.md and plots/ go")
    args = parser.parse_args(argv)
    try:
        return rerun(args.base, args.overrides, args.out, args.push, args.commit)
    except RemoteUnavailable as err:
        print(f"ci: {err}", file=sys.stderr)
        return REMOTE_UNAVAILABLE
    except UserError as err:
        print(f"ci: error: {err}", file=sys.stderr)
        return REFUSED


if __name__ == "__main__":
    sys.exit(main())
