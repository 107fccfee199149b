"""What a CI re-run changed, as pure functions of dvc.lock, reports/select.json and the run's log:
which stages re-ran and why, whether the champion moved, and the quality gate (facemask/ops/ci.py runs them)."""
import re
from dataclasses import dataclass

RUNNING = re.compile(r"^Running stage '(?P<stage>[^']+)'")


def stage_seconds(lines: list[tuple[float, str]]) -> dict[str, float]:
    """{stage: seconds} from (timestamp, line) pairs of a `dvc repro` log: each stage from its
    "Running stage" line to the next one (or the end of the log)."""
    starts = [(t, m["stage"]) for t, line in lines if (m := RUNNING.match(line))]
    ends = [t for t, _ in starts[1:]] + [lines[-1][0]] if starts else []
    return {stage: round(end - started, 1) for (started, stage), end in zip(starts, ends, strict=True)}


def _leaves(value, prefix: str = "") -> dict[str, object]:
    """A nested params mapping flattened to {dotted.key: value}."""
    if isinstance(value, dict):
        return {k: v for key, sub in value.items() for k, v in _leaves(sub, f"{prefix}.{key}" if prefix else key).items()}
    return {prefix: value}


def why(before: dict | None, after: dict) -> list[str]:
    """Why a stage re-ran, from its dvc.lock entries before and after: new, its command, changed params
    (`key: old -> new`), changed dependencies (by path)."""
    if before is None:
        return ["new stage"]
    reasons = ["its command changed"] if before.get("cmd") != after.get("cmd") else []
    old_params = _leaves(before.get("params", {}).get("params.yaml", {}))
    new_params = _leaves(after.get("params", {}).get("params.yaml", {}))
    reasons += [f"param {key}: {old_params.get(key)!r} -> {new_params.get(key)!r}"
                for key in sorted(set(old_params) | set(new_params)) if old_params.get(key) != new_params.get(key)]
    old_deps = {d["path"]: d.get("md5") for d in before.get("deps", [])}
    reasons += [f"{dep['path']} changed" if dep["path"] in old_deps else f"new dependency {dep['path']}"
                for dep in after.get("deps", []) if old_deps.get(dep["path"]) != dep.get("md5")]
    return reasons or ["its outputs were missing or changed"]


def reruns(lock_before: dict, lock_after: dict, seconds: dict[str, float]) -> list[dict]:
    """One row per stage that ran (in the order it ran): name, why, seconds."""
    old, new = lock_before.get("stages", {}), lock_after.get("stages", {})
    return [{"stage": stage, "why": why(old.get(stage), new.get(stage, {})), "seconds": took}
            for stage, took in seconds.items()]


@dataclass(frozen=True)
class Gate:
    passed: bool
    text: str


def quality_gate(best_before: dict | None, best_after: dict, max_drop: float) -> Gate:
    """Fail when the champion's selection metric (a validation metric) fell by more than `max_drop`."""
    metric, after = best_after["metric"], best_after["value"]
    if not best_before:
        return Gate(True, f"passed: no champion at the base to compare with ({metric} now {after:.4f})")
    if best_before["metric"] != metric:
        return Gate(True, f"passed: the selection metric changed ({best_before['metric']} -> {metric}); "
                          "not comparable")
    before = best_before["value"]
    change = f"{metric} of the champion {before:.4f} -> {after:.4f} ({after - before:+.4f})"
    if before - after > max_drop:
        return Gate(False, f"FAILED: {change}, a drop of more than ci.max_drop={max_drop}")
    return Gate(True, f"passed: {change}; ci.max_drop={max_drop}")


def champion(best: dict | None) -> str:
    """The champion in one phrase: candidate, MLflow run and registered version."""
    if not best:
        return "none"
    registered = best.get("registered") or {}
    version = f"version {registered['version']} of {registered['name']}" if registered else "not registered"
    return f"{best['winner']} ({best['metric']} {best['value']:.4f}; run {best.get('run_id', '?')}; {version})"


def champion_moved(best_before: dict | None, best_after: dict) -> str:
    """Whether the alias `champion` now points at another model than at the base."""
    before = (best_before or {}).get("registered") or {}
    after = best_after.get("registered") or {}
    if not after:
        return "no: nothing was registered (below select.threshold)"
    same_model = best_before and best_before.get("run_id") == best_after.get("run_id")
    if same_model and before.get("version") == after.get("version"):
        return "no"
    return f"yes: champion -> version {after['version']} ({best_after['winner']}, run {best_after.get('run_id', '?')})"


def report(facts: dict) -> str:
    """reports/ci/report.md from what the runner gathered."""
    lines = [f"# Pipeline re-run: {facts['head']} against {facts['base']}", ""]
    if facts.get("overrides"):
        lines += [f"Overrides: `{' '.join(facts['overrides'])}`", ""]
    lines += [f"Remote: {facts['remote']}", ""]
    if facts.get("gate"):
        lines += [f"**Quality gate: {facts['gate'].text}** (test metrics are reported, never gated)", ""]
    lines += ["## Stages re-run", ""]
    if facts.get("reruns"):
        lines += ["| stage | why | seconds |", "|---|---|---|"]
        lines += [f"| {r['stage']} | {'; '.join(r['why'])} | {r['seconds']} |" for r in facts["reruns"]]
        lines += ["", f"Total: {sum(r['seconds'] for r in facts['reruns']):.0f} s"]
    elif "reruns" in facts:
        lines += ["No changes: every stage was up to date, nothing re-ran."]
    else:
        lines += ["The pipeline was not re-run."]
    lines += ["", "## Champion", "", f"- before: {champion(facts.get('best_before'))}"]
    if facts.get("best_after"):
        lines += [f"- after: {champion(facts['best_after'])}",
                  f"- `champion` moved: {champion_moved(facts.get('best_before'), facts['best_after'])}"]
    for title, key in (("Params against the base", "params_diff"), ("Metrics against the base", "metrics_diff")):
        lines += ["", f"## {title}", "", facts.get(key, "").strip() or "No differences."]
    if facts.get("plots"):
        lines += ["", f"Plots against the base (confusion matrices, training curves): `{facts['plots']}`"]
    return "\n".join(lines) + "\n"
