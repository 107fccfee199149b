"""A gathered sweep as Markdown: the experiments ranked by the selection metric (with its 95% CI), each one's
paired verdict against the registry's champion and its train time, the failures with their last log lines,
and the exact commands that promote the winner (pure functions; facemask/ops/sweep.py gathers the rows)."""
from dataclasses import dataclass, field

from facemask.pipeline.paired import METRICS, metric_interval

DONE, FAILED, MISSING = "done", "FAILED", "not run"


@dataclass
class Row:
    index: int
    name: str
    overrides: str
    candidate: str
    status: str = MISSING
    metric: float | None = None
    ci: tuple[float, float] | None = None
    verdict: str = ""
    train_seconds: float | None = None
    log_tail: str = ""
    notes: list[str] = field(default_factory=list)


def metric_ci(actual: list[str], predicted: list[str], metric: str) -> tuple[float, float] | None:
    """95% percentile-bootstrap interval of `metric` (macro_f1 or accuracy) over the photos; None for others."""
    return metric_interval(actual, predicted, metric) if metric in METRICS and actual else None


def ranked(rows: list[Row]) -> list[Row]:
    """Done experiments by the metric, best first; then failed ones, then those not run, each by index."""
    order = {DONE: 0, FAILED: 1, MISSING: 2}
    return sorted(rows, key=lambda r: (order[r.status], -(r.metric if r.metric is not None else -1), r.index))


def _number(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def table(sweep_id: str, metric: str, rows: list[Row], header: list[str], promote: list[str]) -> str:
    """The whole report: a header of facts, the ranked table, failures in <details>, how to promote the winner."""
    lines = [f"# Sweep {sweep_id}", "", *[f"- {fact}" for fact in header], "",
             f"| rank | experiment | overrides | candidate | status | {metric} | 95% CI | verdict vs champion | train s |",
             "|---:|---|---|---|---|---:|---|---|---:|"]
    for rank, row in enumerate(ranked(rows), start=1):
        ci = f"[{row.ci[0]:.3f}, {row.ci[1]:.3f}]" if row.ci else ""
        lines.append(f"| {rank} | {row.name} | `{row.overrides}` | {row.candidate} | {row.status} | "
                     f"{_number(row.metric)} | {ci} | {row.verdict} | {_number(row.train_seconds, 1)} |")
    failed = [row for row in rows if row.status == FAILED]
    for row in failed:
        lines += ["", f"<details><summary>{row.name} FAILED: its last log lines</summary>", "", "```",
                  row.log_tail.rstrip() or "(no log recorded)", "```", "</details>"]
    lines += ["", "## Promote the winner", "", *promote]
    return "\n".join(lines) + "\n"


def promotion(winner: Row | None, overrides: dict, baseline_params: dict) -> list[str]:
    """What a person runs to make the winner's params the project's (the sweep never moves `champion`)."""
    if winner is None:
        return ["No experiment finished: nothing to promote."]
    changes = []
    for key, value in overrides.items():
        node = baseline_params
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        changes.append(f"- `{key}`: {node!r} -> {value!r}")
    caveat = [] if winner.verdict.startswith("better") else [
        "", f"No experiment is better than the champion: promoting {winner.name} changes {winner.candidate}'s settings, "
        "not the model that serves."]
    return [f"Best: **{winner.name}** ({winner.candidate}, {winner.verdict or 'no verdict'}). Its params.yaml change:",
            "", *changes, *caveat, "", "On a branch, in a clone of this commit:", "", "```bash",
            f"dvc exp pull origin {winner.name}", f"dvc exp apply {winner.name}",
            "dvc repro            # evaluate on test, select and register as always",
            f"git commit -am 'Promote sweep experiment {winner.name}'   # then open a pull request", "```",
            "", "This sweep did not move the registry's `champion`; merging that pull request and its pipeline run do."]
