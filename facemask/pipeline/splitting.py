"""Stage split: train/val/test with split-folders (seed 1337 as the seed did), then made honest.

split-folders splits each class folder by file. Files that show the same picture (md5) or share a
metadata `group` (same photo or person) are then joined into one cluster, and a cluster that landed
in several splits moves wholly to the split holding most of it. The stage fails if any leakage remains.
Writes data/split/{train,val,test}/<class>/*, data/split/split.csv and reports/split.json.
"""
import os
import shutil
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import splitfolders

from facemask.core import CLASSES, UserError
from facemask.core.files import read_csv

RAW_DIR = Path("data/raw")
OUT_DIR = Path("data/split")
REPORT = Path("reports/split.json")
SPLITS = ("train", "val", "test")


class LeakageError(UserError):
    """A cluster of identical pictures or one group still spans two splits."""


def clusters(rows: list[dict]) -> dict[str, str]:
    """Map each file to a cluster id: files sharing a `group` or an md5 are one cluster (union-find)."""
    parent = {}

    def find(key):
        parent.setdefault(key, key)
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for row in rows:
        group = row.get("group") or f"file:{row['file']}"
        parent[find(f"md5:{row['md5']}")] = find(f"group:{group}")
    return {row["file"]: find(f"md5:{row['md5']}") for row in rows}


def leaking_clusters(rows: list[dict], assignment: dict[str, str]) -> dict[str, set]:
    """Clusters whose files sit in more than one split, with those splits."""
    spans = defaultdict(set)
    for file, cluster in clusters(rows).items():
        spans[cluster].add(assignment[file])
    return {cluster: splits for cluster, splits in spans.items() if len(splits) > 1}


def fix_leakage(rows: list[dict], assignment: dict[str, str]) -> tuple[dict[str, str], int]:
    """Move every spanning cluster wholly into the split holding most of its files (ties: train, val, test).

    Returns the new assignment and how many files moved.
    """
    members = defaultdict(list)
    for file, cluster in clusters(rows).items():
        members[cluster].append(file)
    fixed, moved = dict(assignment), 0
    for files in members.values():
        votes = Counter(assignment[f] for f in files)
        if len(votes) > 1:
            target = max(SPLITS, key=lambda s: (votes[s], -SPLITS.index(s)))
            moved += sum(assignment[f] != target for f in files)
            fixed.update({f: target for f in files})
    return fixed, moved


def split_folders_assignment(image_root: Path, workdir: Path, ratio, seed: int) -> dict[str, str]:
    """Run split-folders on image_root/<class>/ into workdir and read back which split each file got."""
    splitfolders.ratio(str(image_root), output=str(workdir), seed=seed, ratio=tuple(ratio), move=False)
    assignment = {}
    for split in SPLITS:
        for path in (workdir / split).glob("*/*"):
            assignment[f"images/{path.parent.name}/{path.name}"] = split
    return assignment


def split(raw_dir: Path, out_dir: Path, ratio, seed: int) -> tuple[list[dict], dict]:
    """Split raw_dir (ingest's output) into out_dir; return (rows with a `split` column, report)."""
    if len(ratio) != 3 or abs(sum(ratio) - 1) > 1e-6:
        raise UserError(f"split.ratio={list(ratio)}: needs three fractions (train, val, test) that add up to 1")
    rows = read_csv(raw_dir / "manifest.csv")
    with tempfile.TemporaryDirectory(dir=out_dir.parent if out_dir.parent.exists() else None) as workdir:
        first = split_folders_assignment(raw_dir / "images", Path(workdir), ratio, seed)
        missing = sorted({row["file"] for row in rows} - set(first))
        if missing:
            raise UserError(f"{raw_dir}/manifest.csv lists files that are not in {raw_dir}/images: {missing[:5]}")
        before = leaking_clusters(rows, first)
        final, moved = fix_leakage(rows, first)
        for row in rows:
            row["split"] = final[row["file"]]
        after = leaking_clusters(rows, {row["file"]: row["split"] for row in rows})
        if after:  # a guard against a fix_leakage bug: nothing is written then
            cluster, spans = next(iter(after.items()))
            raise LeakageError(f"{len(after)} clusters still span splits after fix_leakage, e.g. {cluster} in "
                               f"{sorted(spans)}; this is a bug in stages/split.py, not in the data: report it")
        for row in rows:
            src = Path(workdir) / first[row["file"]] / row["label"] / Path(row["file"]).name
            dst = out_dir / row["split"] / row["label"] / Path(row["file"]).name
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst) if src.exists() else shutil.copyfile(raw_dir / row["file"], dst)
    counts = {s: {c: sum(r["split"] == s and r["label"] == c for r in rows) for c in CLASSES} for s in SPLITS}
    empty = [s for s in SPLITS if not sum(counts[s].values())]
    if empty:
        raise UserError(f"split {empty} would be empty ({len(rows)} images, ratio {list(ratio)}); "
                        "add images or change split.ratio")
    report = {
        "seed": seed,
        "ratio": list(ratio),
        "clusters_spanning_splits_before": len(before),
        "files_moved": moved,
        "clusters_spanning_splits_after": len(after),
        "counts": counts,
    }
    return rows, report
