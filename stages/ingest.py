"""Stage ingest: params ingest -> data/raw (facemask.pipeline.ingest does the work)."""
import tempfile
from collections import defaultdict
from pathlib import Path

from facemask.core.files import write_csv
from facemask.core.params import load_params
from facemask.core.stage import run
from facemask.pipeline.ingest import (
    OUT_DIR,
    OWN_COLUMNS,
    REPORT_COLUMNS,
    find_class_root,
    ingest,
    load_metadata,
    materialise,
)


def main() -> None:
    params = load_params().ingest
    with tempfile.TemporaryDirectory() as workdir:
        folder = materialise(params.source, Path(workdir))
        class_root = find_class_root(folder)
        rows, report = ingest(class_root, OUT_DIR, params.min_size, params.max_pixels, load_metadata(folder, class_root))
    columns = list(OWN_COLUMNS) + sorted({k for row in rows for k in row} - set(OWN_COLUMNS))
    write_csv(OUT_DIR / "manifest.csv", rows, columns)
    write_csv(OUT_DIR / "ingest_report.csv", report, REPORT_COLUMNS)
    counts = defaultdict(int)
    for row in rows:
        counts[row["label"]] += 1
    skipped = sum(r["action"] == "skipped" for r in report)
    print(f"ingest: kept {len(rows)} images {dict(counts)}, skipped {skipped}, noted {len(report) - skipped} "
          f"(see {OUT_DIR}/ingest_report.csv)")


if __name__ == "__main__":
    run(main, "ingest")
