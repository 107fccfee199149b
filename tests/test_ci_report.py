"""The CI report's logic: stage times from a dvc log, why a stage re-ran, the quality gate, the champion."""
import pytest

from facemask.ops.ci_report import champion_moved, quality_gate, report, reruns, stage_seconds, why

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


def test_reruns_keep_the_order_stages_ran_in():
    rows = reruns({"stages": {"t": LOCK_ENTRY}}, {"stages": {"t": LOCK_ENTRY, "new": LOCK_ENTRY}},
                  {"new": 1.0, "t": 2.0})
    assert [(r["stage"], r["why"][0], r["seconds"]) for r in rows] == [
        ("new", "new stage", 1.0), ("t", "its outputs were missing or changed", 2.0)]


def test_the_gate_fails_only_on_a_drop_beyond_the_tolerance():
    assert quality_gate(_best(0.90), _best(0.89), max_drop=0.02).passed
    failed = quality_gate(_best(0.90), _best(0.85), max_drop=0.02)
    assert not failed.passed and "0.9000 -> 0.8500 (-0.0500)" in failed.text and "ci.max_drop=0.02" in failed.text
    assert quality_gate(None, _best(0.5), max_drop=0.0).passed  # nothing to compare with
    assert quality_gate(_best(0.9, metric="val_accuracy"), _best(0.1), max_drop=0.0).passed  # another metric


def test_champion_moved_compares_the_registered_model():
    assert champion_moved(_best(0.9), _best(0.9)) == "no"
    assert champion_moved(_best(0.9), _best(0.92, run="r2", version="2", winner="Y")).startswith("yes: champion -> version 2")
    assert champion_moved(_best(0.9), {**_best(0.5), "registered": None}).startswith("no: nothing was registered")


def test_the_report_says_no_changes_when_nothing_ran():
    text = report({"base": "abc (base)", "head": "def (head)", "remote": "storage (/r)", "reruns": [],
                   "best_before": _best(0.9), "best_after": _best(0.9), "gate": quality_gate(_best(0.9), _best(0.9), 0.02)})
    assert "No changes: every stage was up to date" in text and "`champion` moved: no" in text
    assert "Quality gate: passed" in text and "## Params against the base\n\nNo differences." in text
