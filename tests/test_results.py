"""The results table is generated from the run's reports: the README shows exactly reports/results.md,
and reports/results.md is exactly what the committed reports give."""
import shutil

import pytest

from facemask.core.files import read_json, write_json
from facemask.core.outputs import SELECTION_REPORT, split_report
from facemask.ops import results
from tests.conftest import REPO

pytestmark = pytest.mark.unit  # the fast layer: make test-fast


def _readme_block() -> str:
    begin, end = results.MARKERS
    return REPO.joinpath("README.md").read_text().split(begin, 1)[1].split(end, 1)[0].lstrip("\n")


def test_the_readme_shows_the_generated_table():
    assert _readme_block() == (REPO / results.OUT).read_text(), \
        "README.md's results differ from reports/results.md: run `python -m stages.results --readme`"


def test_the_table_is_what_the_committed_reports_give(monkeypatch):
    committed = (REPO / results.OUT).read_text()
    recorded = committed.split("Run at commit ", 1)[1].split(";", 1)[0]
    monkeypatch.setattr(results, "commit", lambda: recorded)
    monkeypatch.chdir(REPO)
    assert results.table() == committed


def test_with_table_replaces_only_the_marked_part():
    begin, end = results.MARKERS
    readme = f"intro\n{begin}\nold table\n{end}\noutro\n"
    assert results.with_table(readme, "new\n") == f"intro\n{begin}\nnew\n{end}\noutro\n"
    with pytest.raises(ValueError, match="no results markers"):
        results.with_table("no markers", "new\n")


def _slices(rate: float) -> dict:
    """A candidate's `slices` as stages.evaluate writes them (facemask.pipeline.slices), with made-up numbers."""
    kinds = {kind: {"n": 208, "accuracy": 0.9, "macro_f1": 0.88, "drop": 0.05, "unmasked_called_masked": 0.1}
             for kind in ("dark", "noise", "blur", "jpeg20")}
    kinds["blur"]["accuracy"] = 0.8
    return {"worn_wrong": {"placements": {"below_nose": {"n": 118, "without_mask_rate": rate, "accuracy": 0.1},
                                          "under_chin": {"n": 118, "without_mask_rate": 1.0, "accuracy": 0.9}},
                           "without_mask_rate": (rate + 1.0) / 2, "worn_mask_recall": 0.99},
            "degraded": {"clean_accuracy": 0.95, "clean_unmasked_called_masked": 0.0, "kinds": kinds},
            "age": {"with_mask_old_recall": 0.875, "age_confusion": 0.05, "worst_band": "20-39",
                    "bands": {"20-39": {"n": 44, "accuracy": 0.841, "age_confusion": 0.159},
                              "70+": {"n": 44, "accuracy": 1.0, "age_confusion": 0.0}}},
            "camera": {"faces": 298, "found": 0.9, "accuracy": 0.9, "mask_accuracy": 0.97, "clean_mask_accuracy": 0.99,
                       "worn_wrong": {"faces": 236, "found": 0.8, "without_mask_rate": 0.85, "margin_mean": 0.8}}}


def test_the_slices_table_shows_each_candidates_slices_and_a_dash_without_them(tmp_path, monkeypatch):
    shutil.copytree(REPO / "reports", tmp_path / "reports")
    champion = tmp_path / split_report("MobileNetV2", "test")
    write_json(champion, {**read_json(champion), "slices": _slices(0.2)})
    older = tmp_path / split_report("Xception", "test")  # as evaluated before slices existed
    write_json(older, {k: v for k, v in read_json(older).items() if k != "slices"})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(results, "commit", lambda: "abc1234")
    lines = results.table().split("\n")
    header = lines.index("| " + " | ".join(results.SLICE_HEADER) + " |")
    assert lines[header + 2] == ("| **MobileNetV2** (champion) | 0.600 (0.200 / 1.000) | 0.990 | "
                                 "0.900 / 0.900 / 0.800 / 0.900 | 0.875 | 0.050 | 20-39 (0.841, n=44) | "
                                 "0.900 / 0.970 (0.990) / 0.850 |")
    assert lines[header + 3] == "| Xception | - | - | - | - | - | - | - |"
    names = list(read_json(tmp_path / SELECTION_REPORT)["candidates"])
    rows = lines[header + 2:header + 2 + len(names)]
    assert all(row.startswith((f"| {name} |", f"| **{name}**")) for row, name in zip(rows, names, strict=True))
    assert lines[header + 2 + len(names)] == "" and lines[header + 3 + len(names)].startswith("Champion export")
