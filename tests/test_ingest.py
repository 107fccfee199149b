"""Stage ingest: validates every file, reports what it skips, never touches the source."""
import zipfile

import pytest
from PIL import Image

from facemask.core import CLASSES
from facemask.pipeline.ingest import IngestError, extract, find_class_root, ingest, load_metadata, materialise
from tests.conftest import tree_digest

pytestmark = pytest.mark.unit  # the fast layer: make test-fast


def test_reports_corrupt_and_non_image_files_and_leaves_source_untouched(tiny_dataset, tmp_path):
    (tiny_dataset / "with_mask_old" / "truncated.jpg").write_bytes(
        (tiny_dataset / "with_mask_old" / "with_mask_old_000.jpg").read_bytes()[:100])
    (tiny_dataset / "without_mask_old" / "notes.txt").write_text("not an image")
    (tiny_dataset / "without_mask_old" / "fake.png").write_text("text with an image extension")
    before = tree_digest(tiny_dataset)
    rows, skipped = ingest(tiny_dataset, tmp_path / "raw")
    assert tree_digest(tiny_dataset) == before
    reasons = {s["file"].rsplit("/", 1)[-1]: s["reason"] for s in skipped}
    assert set(reasons) == {"truncated.jpg", "notes.txt", "fake.png"}
    assert "not a readable image" in reasons["fake.png"]
    assert len(rows) == 4 * 6
    assert {r["label"] for r in rows} == set(CLASSES)
    assert all((tmp_path / "raw" / r["file"]).is_file() for r in rows)


def test_duplicate_in_one_class_is_skipped_across_classes_is_an_error(tiny_dataset, tmp_path):
    original = tiny_dataset / "with_mask_old" / "with_mask_old_001.png"
    (tiny_dataset / "with_mask_old" / "copy.png").write_bytes(original.read_bytes())
    copy = tiny_dataset / "with_mask_old" / "copy.png"
    rows, skipped = ingest(tiny_dataset, tmp_path / "raw1")
    assert len(skipped) == 1 and len(rows) == 4 * 6
    # Files are read in sorted order, so copy.png is kept and the original is the skipped duplicate.
    assert skipped[0]["file"] == str(original) and skipped[0]["reason"] == f"duplicate of {copy}"
    (tiny_dataset / "without_mask_young" / "same_picture.png").write_bytes(original.read_bytes())
    with pytest.raises(IngestError, match="two labels"):
        ingest(tiny_dataset, tmp_path / "raw2")


def test_tiny_images_are_skipped_below_min_size(tiny_dataset, tmp_path):
    Image.new("RGB", (1, 1)).save(tiny_dataset / "with_mask_young" / "dot.png")
    _, skipped = ingest(tiny_dataset, tmp_path / "raw", min_size=16)
    assert len(skipped) == 1 and "smaller than ingest.min_size=16" in skipped[0]["reason"]


def test_unknown_and_empty_class_folders_are_errors(tiny_dataset, tmp_path):
    (tiny_dataset / "cats").mkdir()
    with pytest.raises(IngestError, match="unknown class folder"):
        ingest(tiny_dataset, tmp_path / "raw")
    (tiny_dataset / "cats").rmdir()
    for path in (tiny_dataset / "with_mask_old").iterdir():
        path.unlink()
    with pytest.raises(IngestError, match="missing or empty"):
        ingest(tiny_dataset, tmp_path / "raw")


def test_a_class_with_no_usable_image_is_an_error_naming_why(tiny_dataset, tmp_path):
    for label in ("with_mask_old", "without_mask_young"):
        for path in (tiny_dataset / label).iterdir():
            Image.new("RGB", (8, 8)).save(path)
    with pytest.raises(IngestError) as caught:
        ingest(tiny_dataset, tmp_path / "raw", min_size=16)
    message = str(caught.value)
    assert "no usable images in with_mask_old (all 6 file(s) skipped" in message
    assert "; without_mask_young (all 6 file(s) skipped" in message
    assert "8x8 is smaller than ingest.min_size=16" in message and "lower ingest.min_size" in message
    assert "with_mask_young" not in message and not (tmp_path / "raw").exists()


def test_metadata_columns_are_joined(tiny_dataset, tmp_path):
    (tiny_dataset / "metadata.csv").write_text(
        "file,label,source,group,md5\nimages/with_mask_old/with_mask_old_000.jpg,with_mask_old,web,g1,ignored\n")
    rows, _ = ingest(tiny_dataset, tmp_path / "raw", metadata=load_metadata(tiny_dataset, tiny_dataset))
    row = next(r for r in rows if r["file"].endswith("with_mask_old_000.jpg"))
    assert row["source"] == "web" and row["group"] == "g1" and row["md5"] != "ignored"


def test_class_root_is_found_one_or_two_levels_down(tmp_path):
    (tmp_path / "a" / "b" / "c" / "with_mask_old").mkdir(parents=True)
    assert find_class_root(tmp_path / "a" / "b") == tmp_path / "a" / "b" / "c"
    assert find_class_root(tmp_path / "a") == tmp_path / "a" / "b" / "c"
    with pytest.raises(IngestError, match="in it or one or two levels below"):
        find_class_root(tmp_path)


def test_missing_source_names_the_param(tmp_path):
    with pytest.raises(IngestError, match="ingest.source"):
        materialise(str(tmp_path / "nowhere"), tmp_path)


def test_zip_archive_is_extracted_and_zip_slip_refused(tiny_dataset, tmp_path):
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in tiny_dataset.rglob("*.png"):
            zipped.write(path, f"dataset/{path.relative_to(tiny_dataset)}")
    folder = extract(archive, tmp_path / "out")
    assert find_class_root(folder).name == "dataset"
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zipped:
        zipped.writestr("../escape.png", b"x")
    with pytest.raises(IngestError, match="outside the target folder"):
        extract(evil, tmp_path / "evil_out")
    assert not (tmp_path / "escape.png").exists()


def test_refuses_to_write_into_a_non_empty_folder(tiny_dataset, tmp_path):
    target = tmp_path / "raw"
    target.mkdir()
    (target / "keep.txt").write_text("user file")
    with pytest.raises(IngestError, match="empty folder"):
        ingest(tiny_dataset, target)
    assert (target / "keep.txt").read_text() == "user file"


def test_manifest_rows_have_the_documented_columns(tiny_dataset, tmp_path):
    rows, _ = ingest(tiny_dataset, tmp_path / "raw")
    assert {"file", "label", "md5", "width", "height"} <= set(rows[0])
    assert rows[0]["width"] == 40 and rows[0]["height"] == 40 and len(rows[0]["md5"]) == 32
