"""Stage split: split-folders' 80/10/10, then no picture or group in two splits."""
import pytest

from facemask.core import CLASSES, UserError
from facemask.core.files import write_csv
from facemask.ops.datasets import generate
from facemask.pipeline.ingest import ingest
from facemask.pipeline.splits import split_images, training_images
from facemask.pipeline.splitting import SPLITS, LeakageError, clusters, fix_leakage, leaking_clusters, split

pytestmark = pytest.mark.unit  # the fast layer: make test-fast


def test_groups_and_identical_pictures_form_one_cluster():
    rows = [{"file": "a", "md5": "1", "group": "g"}, {"file": "b", "md5": "2", "group": "g"},
            {"file": "c", "md5": "2", "group": ""}, {"file": "d", "md5": "3", "group": ""}]
    ids = clusters(rows)
    assert ids["a"] == ids["b"] == ids["c"] != ids["d"]


def test_fix_leakage_moves_a_cluster_to_its_majority_split():
    rows = [{"file": f, "md5": f, "group": "g"} for f in "abc"] + [{"file": "z", "md5": "z", "group": ""}]
    assignment = {"a": "train", "b": "train", "c": "test", "z": "val"}
    assert leaking_clusters(rows, assignment)
    fixed, moved = fix_leakage(rows, assignment)
    assert fixed == {"a": "train", "b": "train", "c": "train", "z": "val"} and moved == 1
    assert not leaking_clusters(rows, fixed)


def _raw(tiny_dataset, tmp_path, groups):
    raw = tmp_path / "raw"
    rows, _ = ingest(tiny_dataset, raw)
    for row in rows:
        row["group"] = groups(row)
    write_csv(raw / "manifest.csv", rows, list(rows[0]))
    return raw


def test_split_has_no_leakage_and_keeps_every_file_once(tmp_path):
    # Pairs of images share a group: split-folders alone would put some pairs in two splits.
    dataset = tmp_path / "dataset12"
    generate(dataset, per_class=12, size=40)
    raw = _raw(dataset, tmp_path, lambda row: f"{row['label']}-{int(row['file'][-6:-4]) // 2}")
    rows, report = split(raw, tmp_path / "split", ratio=(0.5, 0.25, 0.25), seed=1337)
    assert not leaking_clusters(rows, {r["file"]: r["split"] for r in rows})
    assert report["clusters_spanning_splits_before"] > 0 and report["files_moved"] > 0
    assert report["clusters_spanning_splits_after"] == 0
    on_disk = sorted(p.name for p in (tmp_path / "split").rglob("*.*"))
    assert on_disk == sorted(r["file"].rsplit("/", 1)[-1] for r in rows)
    assert {r["split"] for r in rows} == set(SPLITS)


def test_leakage_left_by_the_fix_stops_the_stage_before_writing(tmp_path, monkeypatch):
    dataset = tmp_path / "dataset12"
    generate(dataset, per_class=12, size=40)
    raw = _raw(dataset, tmp_path, lambda row: row["label"])  # one group per class: it must span splits
    monkeypatch.setattr("facemask.pipeline.splitting.fix_leakage", lambda rows, assignment: (dict(assignment), 0))
    with pytest.raises(LeakageError, match=r"4 clusters still span splits after fix_leakage"):
        split(raw, tmp_path / "split", ratio=(0.5, 0.25, 0.25), seed=1337)
    assert not (tmp_path / "split").exists()


def test_same_seed_same_split(tiny_dataset, tmp_path):
    raw = _raw(tiny_dataset, tmp_path, lambda row: "")
    first, _ = split(raw, tmp_path / "a", ratio=(0.5, 0.25, 0.25), seed=7)
    second, _ = split(raw, tmp_path / "b", ratio=(0.5, 0.25, 0.25), seed=7)
    assert [r["split"] for r in first] == [r["split"] for r in second]


def test_ratio_must_add_up(tiny_dataset, tmp_path):
    raw = _raw(tiny_dataset, tmp_path, lambda row: "")
    with pytest.raises(UserError, match="add up to 1"):
        split(raw, tmp_path / "split", ratio=(0.8, 0.3, 0.1), seed=1337)


def test_an_empty_split_is_refused(tiny_dataset, tmp_path):
    raw = _raw(tiny_dataset, tmp_path, lambda row: "")
    with pytest.raises(UserError, match="would be empty"):
        split(raw, tmp_path / "split", ratio=(0.8, 0.1, 0.1), seed=1337)


def test_missing_split_or_training_tables_name_the_stage_to_run(tmp_path):
    with pytest.raises(UserError, match=r"split\.csv: not found; run `dvc repro split`"):
        split_images("test", tmp_path)
    with pytest.raises(UserError, match=r"augment\.csv: not found; run `dvc repro augment`"):
        training_images(tmp_path)


def test_training_images_lists_augment_csv_in_class_order(tmp_path):
    write_csv(tmp_path / "augment.csv", [{"file": "train/without_mask_old/a.png", "label": "without_mask_old"},
                                         {"file": "train/with_mask_old/b__aug1.png", "label": "with_mask_old"}],
              ["file", "label"])
    paths, labels = training_images(tmp_path)
    assert paths == [tmp_path / "train/without_mask_old/a.png", tmp_path / "train/with_mask_old/b__aug1.png"]
    assert labels.tolist() == [CLASSES.index("without_mask_old"), CLASSES.index("with_mask_old")]
