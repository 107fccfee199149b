"""The CI report's logic: stage times from a dvc log, why a stage re-ran, the gate (paired verdict and guarded
slices), the champion, and a report that opens with the verdict."""
import pytest

from facemask.core import CLASSES
from facemask.core.params import Guards
from facemask.ops.ci_report import MARKER, report, reruns, stage_seconds, why
from facemask.ops.gate import Check, Gate, decide, detectable_sentence, guard_checks, smallest_detectable, with_base
from facemask.pipeline.paired import compare

pytestmark = pytest.mark.unit  # the fast layer: make test-fast

LOCK_ENTRY = {"cmd": "python -m stages.train X",
              "deps": [{"path": "stages/train.py", "md5": "a"}, {"path": "data/split", "md5": "b.dir"}],
              "params": {"params.yaml": {"train": {"seed": 1}, "candidates.X.train": {"dropout": 0.3, "epochs": 2}}}}


def _best(value, run="r1", version="1", winner="X", metric="val_macro_f1"):
    return {"winner": winner, "metric": metric, "value": value, "run_id": run,
            "registered": {"name": "facemask", "version": version, "alias": "champion"}}


def test_stage_seconds_run_from_one_running_line_to_the_next():
    log = [(0.0, "Running stage 'a':\n"), (1.0, "> cmd\n"), (3.5, "Running stage 'b':\n"), (10.0, "done\n")]
    assert stage_seconds(log) == {"a": 3.5, "b": 6.5}
    assert stage_seconds([(0.0, "Stage 'a' didn't change, skipping\n")]) == {}


def test_why_names_changed_params_with_their_values_and_changed_dependencies():
    after = {**LOCK_ENTRY, "deps": [{"path": "stages/train.py", "md5": "a"}, {"path": "data/split", "md5": "c.dir"}],
             "params": {"params.yaml": {"train": {"seed": 1}, "candidates.X.train": {"dropout": 0.5, "epochs": 2}}}}
    assert why(LOCK_ENTRY, after) == ["param candidates.X.train.dropout: 0.3 -> 0.5", "data/split changed"]
    assert why(None, LOCK_ENTRY) == ["new stage"]
    assert why(LOCK_ENTRY, {**LOCK_ENTRY, "cmd": "other"}) == ["its command changed"]
    assert why(LOCK_ENTRY, LOCK_ENTRY) == ["its outputs were missing or changed"]
    both = {**LOCK_ENTRY, "params": {"params.yaml": {"candidates": {"X": {"a": 1}, "Y": {"a": 1, "b": {"c": 2}}}}}}
    one = {**LOCK_ENTRY, "params": {"params.yaml": {"candidates": {"X": {"a": 2}}}}}
    assert why(both, one) == ["param candidates.Y: removed", "param candidates.X.a: 1 -> 2"]
    assert why(one, both) == ["param candidates.Y: added", "param candidates.X.a: 2 -> 1"]


def test_reruns_keep_the_order_stages_ran_in():
    rows = reruns({"stages": {"t": LOCK_ENTRY}}, {"stages": {"t": LOCK_ENTRY, "new": LOCK_ENTRY}},
                  {"new": 1.0, "t": 2.0})
    assert [(r["stage"], r["why"][0], r["seconds"]) for r in rows] == [
        ("new", "new stage", 1.0), ("t", "its outputs were missing or changed", 2.0)]


def _rows(wrong: set[int], n: int = 207) -> list[dict]:
    return [{"file": f"{i}.png", "actual": CLASSES[i % 4], "predicted": CLASSES[(i + (i in wrong)) % 4]} for i in range(n)]


PRODUCTION = _rows(set(range(0, 40, 2)))  # 20 of 207 wrong
SLICES = {"worn_wrong": {"without_mask_rate": 0.95},
          "degraded": {"kinds": {"dark": {"drop": 0.01}, "blur": {"drop": 0.05}}}}
GUARDS = Guards(worn_wrong_without_mask_rate=0.9, degraded_max_drop=0.03, smallest_class_recall=0.5)


def test_the_gate_fails_only_when_the_champion_is_worse_on_the_same_photos():
    noise = compare(PRODUCTION, _rows(set(range(0, 40, 2)) - {0, 2, 4} | {100, 101, 102, 103, 104}))
    passed = decide(noise, [], 0.05, "X", "production's Y")
    assert passed.passed and passed.text.startswith("PASS: the champion X is within noise of production's Y on the "
                                                    "same 207 validation photos (3 wins, 5 losses, p = 0.73")
    worse = decide(compare(PRODUCTION, _rows(set(range(0, 40)))), [], 0.05, "X", "production's Y")
    assert not worse.passed and worse.text.startswith("FAIL: the champion X is worse than production's Y at "
                                                      "ci.alpha=0.05 (0 wins, 20 losses")
    better = decide(compare(_rows(set(range(0, 40))), PRODUCTION), [], 0.05, "X", "production's Y")
    assert better.passed and "is better than production's Y" in better.text
    other_photos = compare(PRODUCTION, _rows(set(), n=200))
    assert decide(other_photos, [], 0.05, "X", "Y").text.startswith("PASS, not compared: the champion X and Y are not "
                                                                    "comparable (different photos: 7 only in the base's")
    assert decide(None, [], 0.05, "X", "no champion anywhere").text.startswith("PASS: nothing to compare")


def test_a_guarded_slice_beyond_its_bound_fails_the_gate_naming_it():
    checks = guard_checks(SLICES, PRODUCTION, GUARDS)
    assert [(c.name, c.holds) for c in checks] == [
        ("worn-wrong masks called without mask", True), ("accuracy drop when dark", True),
        ("accuracy drop when blur", False), (f"recall of {CLASSES[3]} (smallest class, 51 photos)", True)]
    gate = decide(compare(PRODUCTION, PRODUCTION), checks, 0.05, "X", "Y")
    assert not gate.passed and gate.text == "FAIL: guarded slice 'accuracy drop when blur' is 0.050, beyond its bound (<= 0.03)."
    unmeasured = guard_checks(None, PRODUCTION, Guards(worn_wrong_without_mask_rate=0.9))
    assert unmeasured == [Check("worn-wrong masks called without mask", None, 0.9, True)] and unmeasured[0].holds
    assert guard_checks(SLICES, PRODUCTION, Guards()) == []  # nothing guarded


def test_a_slice_already_beyond_its_bound_at_the_base_is_reported_but_fails_only_if_worse_or_newly_bound():
    checks = guard_checks(SLICES, PRODUCTION, GUARDS)
    inherited = with_base(checks, guard_checks(SLICES, PRODUCTION, GUARDS))  # the champion did not change
    blur = next(c for c in inherited if c.name == "accuracy drop when blur")
    assert (blur.before, blur.broken_at_base, blur.inherited) == (0.05, True, True)
    gate = decide(compare(PRODUCTION, PRODUCTION), inherited, 0.05, "X", "Y")
    assert gate.passed and gate.text.endswith("; guarded slice 'accuracy drop when blur' is 0.050, beyond its bound "
                                              "(<= 0.03) as at the base (0.050): not caused by this change.")
    text = report({"base": "a", "head": "b", "remote": "r", "reruns": [], "best_before": _best(0.9),
                   "best_after": _best(0.9), "checks": inherited, "gate": gate})
    assert text.startswith("**PASS") and "| accuracy drop when blur | 0.050 | 0.050 | <= 0.03 | no, as at the base |" in text
    slightly_better = {**SLICES, "degraded": {"kinds": {"blur": {"drop": 0.04}}}}
    base_worse = with_base(guard_checks(slightly_better, PRODUCTION, GUARDS), checks)
    assert decide(None, base_worse, 0.05, "X", "Y").passed
    worse_now = with_base(checks, guard_checks(slightly_better, PRODUCTION, GUARDS))
    assert decide(None, worse_now, 0.05, "X", "Y").text == (
        "FAIL: guarded slice 'accuracy drop when blur' is 0.050, beyond its bound (<= 0.03).")
    tightened = with_base(checks, guard_checks(SLICES, PRODUCTION, Guards(degraded_max_drop=0.06)))  # held at the base
    assert not decide(None, tightened, 0.05, "X", "Y").passed
    two = guard_checks({**SLICES, "worn_wrong": {"without_mask_rate": 0.5}}, PRODUCTION, GUARDS)
    assert decide(None, two, 0.05, "X", "Y").text == (
        "FAIL: 2 guarded slices beyond their bounds: 'worn-wrong masks called without mask' 0.500 (>= 0.9), "
        "'accuracy drop when blur' 0.050 (<= 0.03).")


def test_what_the_split_can_detect_is_stated():
    assert smallest_detectable(6, 0.05) == 6 and smallest_detectable(5, 0.05) is None  # 2 / 2**6 = 0.031
    assert smallest_detectable(20, 0.05) == 15  # 15 against 5: p = 0.041; 14 against 6: p = 0.115
    sentence = detectable_sentence(207, compare(PRODUCTION, _rows(set(range(1, 41, 2)))), 0.05)
    assert sentence.startswith("At ci.alpha=0.05 these 207 validation photos detect no change smaller than 6 photos all "
                               "going one way (0.029 of accuracy); with the 40 photos these two models disagree on, "
                               "it takes 27 against 13")
    assert "benchmarks/crossval.py" in sentence


def test_champion_moves_only_after_a_passing_gate_on_main():
    from facemask.ops.ci import move_champion

    passed, failed = Gate(True, "PASS: ..."), Gate(False, "FAIL: ...")
    assert move_champion({**_best(0.5), "registered": None}, passed, True, "3").startswith("no: nothing was registered")
    assert move_champion(_best(0.9, version="4"), failed, True, "3") == (
        "no: the gate failed; version 4 is registered, production's stays champion")
    assert move_champion(_best(0.9, version="4"), passed, False, "3").startswith(
        "no: version 4 is registered; a pull request's run leaves `champion` to the run on main")
    assert move_champion(_best(0.9, version="3"), passed, False, "3") == "no: it is production's version 3 already"

def test_the_report_opens_with_the_verdict_and_folds_the_diffs():
    noise = compare(PRODUCTION, _rows(set(range(0, 40, 2)) - {0} | {100}))
    checks = guard_checks(SLICES, PRODUCTION, GUARDS)
    text = report({"base": "abc (base)", "head": "def (head)", "remote": "storage (/r)", "overrides": [],
                   "reruns": [{"stage": "train@X", "why": ["param candidates.X.train.dropout: 0.3 -> 0.5"], "seconds": 12.0}],
                   "best_before": _best(0.9), "best_after": {**_best(0.9), "why": "X wins against Y"},
                   "changed": {"X": {"why": ["param candidates.X.train.dropout: 0.3 -> 0.5"], "validation": noise,
                                     "test": None}},
                   "reference": "the registry's facemask version 1", "verdict": noise, "checks": checks,
                   "detectable": "At ci.alpha=0.05 ...", "gate": decide(noise, checks, 0.05, "X", "production's")})
    first = text.splitlines()[0]
    assert first.startswith("**FAIL: guarded slice 'accuracy drop when blur'")
    assert "**X**: param candidates.X.train.dropout: 0.3 -> 0.5" in text
    assert "| validation | 0.9026 -> 0.9026 | +0.0000 [" in text and "| 1 / 1 | 1 | **within noise** |" in text
    assert "| test (reported, never gated) | no predictions at the base |" in text
    assert "| accuracy drop when blur | 0.050 | - | <= 0.03 | **no** |" in text and "- select: X wins against Y" in text
    assert "<summary>Stages re-run: 1, 12 s</summary>" in text and "<summary>Params against the base</summary>" in text
    assert text.index("## Guarded slices") < text.index("<details>") and text.rstrip().endswith(MARKER)


def test_the_report_says_no_changes_when_nothing_ran():
    same = compare(PRODUCTION, PRODUCTION)
    text = report({"base": "abc (base)", "head": "def (head)", "remote": "storage (/r)", "reruns": [],
                   "best_before": _best(0.9), "best_after": _best(0.9), "verdict": same,
                   "champion_moved": "no: it is production's version 1 already", "gate": decide(same, [], 0.05, "X", "Y")})
    assert text.startswith("**PASS: the champion X is within noise of Y")
    assert "No changes: every stage was up to date" in text
    assert "`champion` moved: no: it is production's version 1 already" in text
    assert "<summary>Params against the base</summary>\n\nNo differences." in text
    unavailable = report({"base": "abc (base)", "head": "def (head)", "remote": "**remote unavailable: x**",
                          "not_gated": "remote unavailable: x"})
    assert unavailable.startswith("**NOT GATED: remote unavailable: x.**") and "The pipeline was not re-run." in unavailable
