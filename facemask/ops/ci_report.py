"""What a CI re-run changed, as pure functions of dvc.lock, reports/select.json, the paired verdicts and the run's
log: which stages re-ran and why, whether the champion moved, and the report that opens with the gate's verdict
(facemask/ops/ci.py runs them; facemask/ops/gate.py decides)."""
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # scikit-learn and scipy load only where a comparison is made
    from facemask.pipeline.paired import PairedVerdict

MARKER = "<!-- facemask pipeline report -->"  # the workflow finds its PR comment by it, and edits it

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
    removed, added = _whole(old_params, new_params), _whole(new_params, old_params)
    reasons += [f"param {key}: removed" for key in removed] + [f"param {key}: added" for key in added]
    reasons += [f"param {key}: {old_params.get(key)!r} -> {new_params.get(key)!r}"
                for key in sorted(set(old_params) | set(new_params)) if old_params.get(key) != new_params.get(key)
                and not any(_under(key, whole) for whole in removed + added)]
    old_deps = {d["path"]: d.get("md5") for d in before.get("deps", [])}
    reasons += [f"{dep['path']} changed" if dep["path"] in old_deps else f"new dependency {dep['path']}"
                for dep in after.get("deps", []) if old_deps.get(dep["path"]) != dep.get("md5")]
    return reasons or ["its outputs were missing or changed"]


def _under(key: str, prefix: str) -> bool:
    """Whether the dotted name `key` is `prefix` or inside it."""
    return key == prefix or key.startswith(f"{prefix}.")


def _whole(these: dict, others: dict) -> list[str]:
    """The highest dotted names in `these` with nothing under them in `others` (e.g. a candidate removed whole)."""
    found = []
    for key in sorted(these):
        parts = key.split(".")
        prefixes = (".".join(parts[:i]) for i in range(1, len(parts) + 1))
        top = next((prefix for prefix in prefixes if not any(_under(other, prefix) for other in others)), None)
        if top and top not in found:
            found.append(top)
    return found


def reruns(lock_before: dict, lock_after: dict, seconds: dict[str, float]) -> list[dict]:
    """One row per stage that ran (in the order it ran): name, why, seconds."""
    old, new = lock_before.get("stages", {}), lock_after.get("stages", {})
    return [{"stage": stage, "why": why(old.get(stage), new.get(stage, {})), "seconds": took}
            for stage, took in seconds.items()]


def champion(best: dict | None) -> str:
    """The champion in one phrase: candidate, MLflow run and registered version."""
    if not best:
        return "none"
    registered = best.get("registered") or {}
    version = f"version {registered['version']} of {registered['name']}" if registered else "not registered"
    return f"{best['winner']} ({best['metric']} {best['value']:.4f}; run {best.get('run_id', '?')}; {version})"


def measured(value: float | None, missing: str = "not measured") -> str:
    return missing if value is None else f"{value:.3f}"


def verdict_row(label: str, verdict: "PairedVerdict | None") -> str:
    """One row of a paired-comparison table: before -> after, the change with its CI, wins/losses, p, verdict."""
    if verdict is None:
        return f"| {label} | no predictions at the base | | | | |"
    if verdict.verdict == "not comparable":
        return f"| {label} | {verdict.base:.4f} -> {verdict.new:.4f} | | | | not comparable: {verdict.reason} |"
    return (f"| {label} | {verdict.base:.4f} -> {verdict.new:.4f} | {verdict.delta:+.4f} "
            f"[{verdict.ci_low:+.4f}, {verdict.ci_high:+.4f}] | {verdict.wins} / {verdict.losses} | "
            f"{verdict.p_value:.2g} | **{verdict.verdict}** |")


def verdict_table(metric: str, rows: list[tuple[str, "PairedVerdict | None"]]) -> list[str]:
    return [f"| | {metric} before -> after | change (95% CI) | wins / losses | p | verdict |", "|---|---|---|---|---|---|",
            *(verdict_row(label, verdict) for label, verdict in rows), ""]


def folded(summary: str, body: list[str]) -> list[str]:
    """A <details> block (GitHub renders the Markdown inside when blank lines surround it)."""
    return ["<details>", f"<summary>{summary}</summary>", "", *body, "", "</details>", ""]


def report(facts: dict) -> str:
    """reports/ci/report.md from what the runner gathered: the verdict first, then what changed and why, then the
    full diffs folded."""
    gate = facts.get("gate")
    first = f"**{gate.text}**" if gate else f"**NOT GATED: {facts.get('not_gated', 'the pipeline was not re-run')}.**"
    lines = [first, "", f"Pipeline re-run of {facts['head']} against {facts['base']}"
             + (f", with `{' '.join(facts['overrides'])}`" if facts.get("overrides") else "") + ".",
             f"Remote: {facts['remote']}.", ""]
    metric = facts.get("paired_metric", "macro_f1")
    if facts.get("changed"):
        lines += ["## Changed candidates", ""]
        for name, change in facts["changed"].items():
            lines += [f"**{name}**: {'; '.join(change['why'])}", ""]
            lines += verdict_table(metric, [("validation", change["validation"]),
                                            ("test (reported, never gated)", change["test"])])
    lines += ["## Champion", "", f"- production: {facts.get('reference', 'none')}",
              f"- before (base commit): {champion(facts.get('best_before'))}"]
    if facts.get("best_after"):
        best = facts["best_after"]
        lines += [f"- now: {champion(best)}", f"- `champion` moved: {facts.get('champion_moved', 'not known')}",
                  f"- select: {best.get('why', '')}", ""]
        lines += verdict_table(metric, [("now against production (validation)", facts.get("verdict"))])
        lines += [facts.get("detectable", ""), ""]
    if facts.get("checks"):
        lines += ["## Guarded slices (the champion, validation photos; ci.guards)", "",
                  "| slice | value | at the base | bound | holds |", "|---|---|---|---|---|"]
        lines += [f"| {c.name} | {measured(c.value)} | {measured(c.before, '-')} | {c.rule} | "
                  f"{'yes' if c.holds else 'no, as at the base' if c.inherited else '**no**'} |" for c in facts["checks"]]
        lines += [""]
    if facts.get("held_back"):
        lines += [f"Not run: {facts['held_back']}.", ""]
    if facts.get("reruns"):
        total = sum(r["seconds"] for r in facts["reruns"])
        lines += folded(f"Stages re-run: {len(facts['reruns'])}, {total:.0f} s", [
            "| stage | why | seconds |", "|---|---|---|",
            *(f"| {r['stage']} | {'; '.join(r['why'])} | {r['seconds']} |" for r in facts["reruns"])])
    elif "reruns" in facts:
        lines += ["No changes: every stage was up to date, nothing re-ran.", ""]
    else:
        lines += ["The pipeline was not re-run.", ""]
    for title, key in (("Params against the base", "params_diff"),
                       ("Metrics against the base (test is reported, never gated)", "metrics_diff")):
        lines += folded(title, [facts.get(key, "").strip() or "No differences."])
    if facts.get("plots"):
        lines += [f"Plots against the base (confusion matrices, training curves): `{facts['plots']}`", ""]
    return "\n".join(lines) + MARKER + "\n"
