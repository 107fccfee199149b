"""The results table is generated from the metrics files: the README shows exactly reports/results.md,
and reports/results.md is exactly what the committed metrics give."""
import pytest

from stages import results
from tests.conftest import REPO


def _readme_block() -> str:
    begin, end = results.MARKERS
    return REPO.joinpath("README.md").read_text().split(begin, 1)[1].split(end, 1)[0].lstrip("\n")


def test_the_readme_shows_the_generated_table():
    assert _readme_block() == (REPO / results.OUT).read_text(), \
        "README.md's results differ from reports/results.md: run `python -m stages.results --readme`"


def test_the_table_is_what_the_metrics_files_give(monkeypatch):
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
