"""Stage augment: only the training split grows, balancing works, the output is reproducible."""
from collections import Counter

from facemask.files import write_csv
from facemask.params import Augment
from stages.augment import augment, copies_per_image
from stages.ingest import ingest
from stages.split import split
from tests.conftest import tree_digest

PARAMS = Augment(copies=1, balance=True, seed=3, flip=True, rotation=0.05, zoom_in=0.1, zoom_out=0.1, shift=0.05,
                 brightness=0.1, contrast=0.1)


def test_balancing_fills_every_class_to_the_same_total():
    plan = copies_per_image({"big": 10, "small": 3}, copies=1, balance=True)
    assert {label: len(c) + sum(c) for label, c in plan.items()} == {"big": 20, "small": 20}
    assert plan["small"] == [6, 6, 5]


def test_without_balancing_each_image_gets_the_same_copies():
    plan = copies_per_image({"big": 10, "small": 3}, copies=2, balance=False)
    assert plan == {"big": [2] * 10, "small": [2] * 3}


def _split(tiny_dataset, tmp_path):
    raw = tmp_path / "raw"
    rows, _ = ingest(tiny_dataset, raw)
    write_csv(raw / "manifest.csv", rows, list(rows[0]))
    rows, _ = split(raw, tmp_path / "split", ratio=(0.5, 0.25, 0.25), seed=1337)
    split_dir = tmp_path / "split"
    return [{**r, "path": split_dir / "train" / r["label"] / r["file"].rsplit("/", 1)[-1]}
            for r in rows if r["split"] == "train"], split_dir


def test_augment_writes_train_only_and_leaves_val_test_untouched(tiny_dataset, tmp_path):
    train_rows, split_dir = _split(tiny_dataset, tmp_path)
    before = tree_digest(split_dir)
    rows = augment(train_rows, tmp_path / "aug", PARAMS)
    assert tree_digest(split_dir) == before
    assert {r["file"].split("/")[0] for r in rows} == {"train"}
    assert {r["origin"] for r in rows} == {r["file"] for r in train_rows}
    totals = Counter(r["label"] for r in rows)
    assert len(set(totals.values())) == 1 and sum(totals.values()) == 2 * 4 * max(
        Counter(r["label"] for r in train_rows).values())
    assert all((tmp_path / "aug" / r["file"]).is_file() for r in rows)


def test_same_seed_gives_identical_files(tiny_dataset, tmp_path):
    train_rows, _ = _split(tiny_dataset, tmp_path)
    augment(train_rows, tmp_path / "a", PARAMS)
    augment(train_rows, tmp_path / "b", PARAMS)
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")
