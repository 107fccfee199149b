"""Stage split: data/raw -> data/split and reports/split.json (facemask.pipeline.splitting does the work)."""


from facemask.core.files import write_csv, write_json
from facemask.core.params import load_params
from facemask.core.stage import run
from facemask.pipeline.splitting import OUT_DIR, RAW_DIR, REPORT, split


def main() -> None:
    params = load_params().split
    rows, report = split(RAW_DIR, OUT_DIR, list(params.ratio), params.seed)
    write_csv(OUT_DIR / "split.csv", rows, list(rows[0]))
    write_json(REPORT, report)
    print(f"split: {report['counts']}; moved {report['files_moved']} files of "
          f"{report['clusters_spanning_splits_before']} clusters that spanned splits; no leakage remains")


if __name__ == "__main__":
    run(main, "split")
