"""Stage results: reports/results.md (and with --readme, README's table) from the metrics files
(facemask.ops.results writes the tables)."""
import sys

from facemask.core.files import read_json
from facemask.core.outputs import SELECTION_REPORT
from facemask.core.stage import run
from facemask.ops.results import OUT, README, table, with_table


def main() -> None:
    text = table()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    if sys.argv[1:] == ["--readme"]:
        README.write_text(with_table(README.read_text(), text))
    print(f"results: {OUT} written ({len(read_json(SELECTION_REPORT)['candidates'])} candidates)")


if __name__ == "__main__":
    run(main, "results")
