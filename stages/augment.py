"""Stage augment: data/split + data/synthetic -> data/augmented (facemask.pipeline.augment does the work)."""
from collections import Counter

from facemask.core.files import read_csv, write_csv
from facemask.core.params import load_params
from facemask.core.stage import run
from facemask.pipeline.augment import OUT_DIR, SYNTHETIC_DIR, augment
from facemask.pipeline.splits import image_path, split_rows


def main() -> None:
    params = load_params().augment
    train_rows = [{**row, "path": image_path(row)} for row in split_rows("train")]
    train_rows += [{**row, "file": f"synthetic/{row['file']}", "path": SYNTHETIC_DIR / row["file"]}
                   for row in read_csv(SYNTHETIC_DIR / "synthetic.csv")]
    rows = augment(train_rows, OUT_DIR, params)
    write_csv(OUT_DIR / "augment.csv", rows, ["file", "label", "origin", "copy"])
    print(f"augment: {len(train_rows)} training images -> {len(rows)} ({dict(Counter(r['label'] for r in rows))})")


if __name__ == "__main__":
    run(main, "augment")
