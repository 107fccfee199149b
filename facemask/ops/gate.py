"""The CI gate, as pure functions: the new champion against production's on the same validation photos, and
the champion's guarded slices (ci.guards) on the validation photos. The test split is reported, never gated.

It fails only when the champion is *worse* (facemask.pipeline.paired: exact McNemar p < ci.alpha and the
bootstrap CI of the change below 0) or a guarded slice is beyond its bound. A change within noise passes:
this split cannot tell it from a re-run on another machine (smallest_detectable says what it can tell).
A slice that was already beyond its bound at the base (as the base set it), and is no worse now, is reported
but does not fail the change: it was not caused by it (else every change fails until the champion is fixed).
A bound tightened by the change itself is judged as any other.
"""
from collections import Counter
from dataclasses import dataclass, replace

from scipy.stats import binomtest

from facemask.core.params import Guards
from facemask.pipeline.paired import BETTER, NOT_COMPARABLE, WORSE, PairedVerdict


@dataclass(frozen=True)
class Gate:
    passed: bool
    text: str  # one sentence, starting PASS or FAIL


@dataclass(frozen=True)
class Check:
    """One guarded slice of the champion: its value on the validation photos against its bound."""
    name: str
    value: float | None  # None: not measured (no such photos in the split)
    bound: float
    at_least: bool  # a floor (value >= bound) or a ceiling (value <= bound)
    before: float | None = None  # the base commit's champion on the same slice; None: not known
    broken_at_base: bool = False  # `before` was beyond the bound the base commit set

    def _within(self, value: float, limit: float) -> bool:
        return value >= limit if self.at_least else value <= limit

    @property
    def holds(self) -> bool:
        return self.value is None or self._within(self.value, self.bound)

    @property
    def inherited(self) -> bool:
        """Beyond its bound, but already so at the base and no worse now: not caused by this change."""
        return not self.holds and self.broken_at_base and self._within(self.value, self.before)

    def described(self) -> str:
        return f"guarded slice '{self.name}' is {self.value:.3f}, beyond its bound ({self.rule})"

    @property
    def rule(self) -> str:
        return f"{'>=' if self.at_least else '<='} {self.bound:g}"


def with_base(checks: list[Check], at_base: list[Check]) -> list[Check]:
    """`checks` with each slice at the base (guard_checks of the base's champion, under the base's bounds)."""
    base = {c.name: c for c in at_base if c.value is not None}
    return [replace(c, before=base[c.name].value, broken_at_base=not base[c.name].holds) if c.name in base else c
            for c in checks]


def guard_checks(val_slices: dict | None, rows: list[dict], guards: Guards) -> list[Check]:
    """The guarded slices of the champion (evaluate's val_slices.json, its validation predictions `rows`)."""
    checks = []
    if guards.worn_wrong_without_mask_rate is not None:
        rate = (val_slices or {}).get("worn_wrong", {}).get("without_mask_rate")
        checks.append(Check("worn-wrong masks called without mask", rate, guards.worn_wrong_without_mask_rate, True))
    if guards.degraded_max_drop is not None:
        kinds = (val_slices or {}).get("degraded", {}).get("kinds", {})
        checks += [Check(f"accuracy drop when {kind}", v["drop"], guards.degraded_max_drop, False) for kind, v in kinds.items()]
        if not kinds:
            checks.append(Check("accuracy drop on degraded photos", None, guards.degraded_max_drop, False))
    if guards.smallest_class_recall is not None and rows:
        counts = Counter(r["actual"] for r in rows)
        smallest = min(counts, key=lambda label: counts[label])
        right = sum(r["predicted"] == r["actual"] for r in rows if r["actual"] == smallest)
        checks.append(Check(f"recall of {smallest} (smallest class, {counts[smallest]} photos)", right / counts[smallest],
                            guards.smallest_class_recall, True))
    return checks


def smallest_detectable(discordant: int, alpha: float) -> int | None:
    """The fewest wins (of `discordant` photos on which two models disagree) that exact McNemar calls a change
    at `alpha`; None when even all of them would not be enough."""
    return next((wins for wins in range(discordant // 2, discordant + 1)
                 if binomtest(wins, discordant).pvalue < alpha), None)


def detectable_sentence(n: int, verdict: PairedVerdict | None, alpha: float) -> str:
    """What this split can detect at `alpha`, in a sentence: the least with every changed photo going one way,
    and with as many disagreements as this comparison had."""
    least = next(k for k in range(1, 100) if binomtest(k, k).pvalue < alpha)
    text = (f"At ci.alpha={alpha:g} these {n} validation photos detect no change smaller than {least} photos "
            f"all going one way ({least / n:.3f} of accuracy)")
    disagreements = verdict.wins + verdict.losses if verdict and verdict.verdict != NOT_COMPARABLE else 0
    if disagreements > least:
        wins = smallest_detectable(disagreements, alpha)
        text += (f"; with the {disagreements} photos these two models disagree on, it takes {wins} against "
                 f"{disagreements - wins} (a net {(2 * wins - disagreements) / n:.3f})")
    return text + ". Finer questions: benchmarks/crossval.py (5 folds)."


def decide(verdict: PairedVerdict | None, checks: list[Check], alpha: float, champion: str, reference: str) -> Gate:
    """PASS or FAIL, and why, in one sentence (see the module's docstring)."""
    failures = [f"the champion {champion} is worse than {reference} at ci.alpha={alpha:g} ({verdict.reason})"] \
        if verdict and verdict.verdict == WORSE else []
    broken = [c for c in checks if not c.holds and not c.inherited]
    if len(broken) == 1:
        failures.append(broken[0].described())
    elif broken:
        failures.append(f"{len(broken)} guarded slices beyond their bounds: "
                        + ", ".join(f"'{c.name}' {c.value:.3f} ({c.rule})" for c in broken))
    if failures:
        return Gate(False, "FAIL: " + "; ".join(failures) + ".")
    inherited = [f"{c.described()} as at the base ({c.before:.3f}): not caused by this change" for c in checks if c.inherited]
    slices = (f"; {'; '.join(inherited)}" if inherited else " and every guarded slice holds") if checks \
        else " (no slice is guarded)"
    if verdict is None:
        return Gate(True, f"PASS: nothing to compare the champion {champion} with ({reference}){slices}.")
    if verdict.verdict == NOT_COMPARABLE:
        return Gate(True, f"PASS, not compared: the champion {champion} and {reference} are not comparable "
                          f"({verdict.reason}){slices}.")
    how = "better than" if verdict.verdict == BETTER else "within noise of"
    return Gate(True, f"PASS: the champion {champion} is {how} {reference} on the same {verdict.n} validation photos "
                      f"({verdict.reason}){slices}.")
