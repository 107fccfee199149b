"""Stage synthesize: a mask covers the lower face only, files are labelled and reproducible."""
import numpy as np
from PIL import Image

from stages.synthesize import draw_mask, pick, synthesize
from tests.conftest import tree_digest


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
