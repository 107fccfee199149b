"""Stage synthesize: a mask covers the lower face only, files are labelled and reproducible; masks worn wrong
go on training-split and pool faces only, labelled without mask of the face's age."""
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from facemask.core import CLASSES
from facemask.core.files import read_csv, write_csv
from facemask.pipeline.splits import image_path
from facemask.pipeline.synthesize import draw_mask, pick, synthesize, unmasked_training_faces
from stages.synthesize import main
from tests.conftest import REPO, tree_digest

pytestmark = pytest.mark.unit  # the fast layer: make test-fast


def test_mask_covers_the_lower_face_and_leaves_the_eyes():
    face = np.full((200, 200, 3), 128, dtype=np.uint8)
    masked = draw_mask(face, np.random.default_rng(0))
    changed = (masked != face).any(axis=2)
    assert not changed[:80].any()                      # forehead and eyes untouched
    assert changed[130:170, 70:130].mean() > 0.95      # mouth and chin covered
    assert 0.15 < changed.mean() < 0.45


def test_synthesize_labels_and_reproduces(tmp_path):
    faces = []
    for i in range(3):
        path = tmp_path / f"face{i}.png"
        Image.new("RGB", (64, 64), (150 + i, 120, 100)).save(path)
        faces.append(path)
    rows = synthesize(faces[:2], faces[2:], tmp_path / "a", seed=5)
    synthesize(faces[:2], faces[2:], tmp_path / "b", seed=5)
    assert [r["label"] for r in rows] == ["with_mask_old", "with_mask_old", "with_mask_young"]
    assert all((tmp_path / "a" / r["file"]).is_file() for r in rows)
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")


def test_pick_is_a_seeded_sample_in_original_order():
    items = list(range(20))
    chosen = pick(items, 5, seed=1)
    assert len(chosen) == 5 and chosen == sorted(chosen) and chosen == pick(items, 5, seed=1)
    assert pick(items, 50, seed=1) == items


def _faces(folder, n: int, size: int = 64) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        paths.append(folder / f"face{i}.png")
        Image.new("RGB", (size, size), (150 + i, 120, 100)).save(paths[-1])
    return paths


def test_worn_wrong_faces_keep_their_label_and_alternate_placements(tmp_path):
    faces = _faces(tmp_path / "faces", 3, size=200)
    worn_wrong = [("without_mask_young", faces[0]), ("without_mask_old", faces[1]), ("without_mask_old", faces[2])]
    rows = synthesize([], [], tmp_path / "out", seed=5, worn_wrong=worn_wrong)
    assert [(r["file"], r["label"]) for r in rows] == [
        ("without_mask_young/face0__below_nose.jpg", "without_mask_young"),
        ("without_mask_old/face1__under_chin.jpg", "without_mask_old"),
        ("without_mask_old/face2__below_nose.jpg", "without_mask_old")]
    for row, face in zip(rows, faces, strict=True):
        drawn = np.asarray(Image.open(tmp_path / "out" / row["file"])).astype(int)
        changed = (np.abs(drawn - np.asarray(Image.open(face))) > 12).any(axis=2)
        assert not changed[100:116, 88:112].any() and changed[190:, 80:120].mean() > 0.9  # nose free, chin covered


def test_worn_wrong_faces_leave_the_properly_masked_ones_byte_identical(tmp_path):
    """The worn-wrong faces come after the others and draw from the generator after them (defaults: none)."""
    faces = _faces(tmp_path / "faces", 4)
    plain = synthesize(faces[:2], faces[2:3], tmp_path / "a", seed=5)
    more = synthesize(faces[:2], faces[2:3], tmp_path / "b", seed=5, worn_wrong=[("without_mask_old", faces[3])])
    assert more[:3] == plain and more[3]["label"] == "without_mask_old"
    assert tree_digest(tmp_path / "b").items() > tree_digest(tmp_path / "a").items()


def _rows(splits=("train", "val", "test")) -> list[dict]:
    return [{"file": f"{split}_{label}_{source}.jpg", "split": split, "label": label, "source": source}
            for split in splits for label in CLASSES for source in ("utkface_crop_part1", "web")]


def test_only_unmasked_aligned_faces_of_the_training_split_are_drawn_on():
    chosen = unmasked_training_faces(_rows(), {"utkface_crop_part1"})
    assert [(label, path.name) for label, path in chosen] == [
        ("without_mask_old", "train_without_mask_old_utkface_crop_part1.jpg"),
        ("without_mask_young", "train_without_mask_young_utkface_crop_part1.jpg")]


def test_the_stage_draws_worn_wrong_on_training_and_pool_faces_only(tmp_path, monkeypatch):
    """main() in a tiny project: every unmasked aligned training face and one pool face get a mask worn wrong,
    labelled without mask of their age; no val or test face is read."""
    rows = _rows()
    for row in rows:
        _faces(tmp_path / "scratch", 1)[0].rename(_placed(image_path(row, tmp_path / "data/split")))
    write_csv(tmp_path / "data/split/split.csv", rows, ["file", "split", "label", "source"])
    pool = _faces(tmp_path / "pool", 2)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["synthesize"].update(pool="pool", old_from_pool=0, young_from_train=0, worn_wrong_from_train=99,
                                worn_wrong_from_pool=1)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    main()
    written = read_csv(tmp_path / "data/synthetic/synthetic.csv")
    assert [(r["label"], Path(r["origin"]).name) for r in written] == [
        ("without_mask_old", "train_without_mask_old_utkface_crop_part1.jpg"),
        ("without_mask_young", "train_without_mask_young_utkface_crop_part1.jpg"),
        ("without_mask_old", pick(pool, 1, params["synthesize"]["seed"] + 3)[0].name)]
    assert not any({"val", "test"} & set(Path(r["origin"]).parts) for r in written)
    assert [r["file"].split("__")[1] for r in written] == ["below_nose.jpg", "under_chin.jpg", "below_nose.jpg"]


def _placed(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
