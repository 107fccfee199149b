"""predict: one JSON line per face, no-face and unreadable files reported, same numbers as evaluate."""
import io
import json

import numpy as np
import pytest
from PIL import Image

from facemask.__main__ import main
from facemask.core import CLASSES, UserError
from facemask.core.files import read_csv
from facemask.core.images import load_rgb
from facemask.core.model import load
from facemask.core.resize import load_batch
from facemask.store.loading import load_model
from facemask.use.detect import FaceDetector, crop
from facemask.use.predict import Predictor, collect, run
from tests.champion_support import StubDetector, make_split, plain_image, tiny_model_file, write_image
from tests.conftest import REAL_DATASET, tree_digest

FACE_KEYS = {"file", "status", "box", "detector_score", "label", "mask", "age_group", "confidence", "probabilities"}


@pytest.fixture(scope="module")
def model():
    return load(tiny_model_file())


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_one_json_line_per_face_with_consistent_fields(model, tmp_path):
    photo = write_image(tmp_path / "photo.png", 90, 60)
    predictor = Predictor(model, StubDetector([(5, 5, 30, 40), (50, 10, 30, 40)]))
    out = io.StringIO()
    assert run([photo], predictor, tmp_path / "annotated", as_json=True, stream=out) == 0
    records = lines(out)
    assert len(records) == 2
    for record, box in zip(records, ([5, 5, 30, 40], [50, 10, 30, 40]), strict=True):
        assert set(record) == FACE_KEYS and record["status"] == "face" and record["box"] == box
        probabilities = record["probabilities"]
        assert list(probabilities) == list(CLASSES) and sum(probabilities.values()) == pytest.approx(1, abs=1e-4)
        assert record["label"] == max(probabilities, key=probabilities.get)
        assert record["confidence"] == probabilities[record["label"]]
        assert record["mask"] == record["label"].startswith("with_mask")
        assert record["age_group"] == ("old" if record["label"].endswith("old") else "young")
    annotated = np.asarray(Image.open(tmp_path / "annotated" / "photo.png"))
    assert annotated.shape == (60, 90, 3) and not np.array_equal(annotated, load_rgb(photo))


def test_each_face_is_classified_from_its_own_crop(model, tmp_path):
    photo = write_image(tmp_path / "photo.png", 90, 60)
    box = (50, 10, 30, 40)
    record = Predictor(model, StubDetector([box])).predict_image(load_rgb(photo), "photo.png")[0]
    Image.fromarray(crop(load_rgb(photo), box, 0.2)).save(tmp_path / "crop.png")
    expected = model.predict(load_batch([tmp_path / "crop.png"], 32), verbose=0)[0]
    np.testing.assert_allclose(list(record["probabilities"].values()), expected, atol=1e-4)


def test_whole_image_prediction_equals_the_evaluate_stage(model, tmp_path):
    from facemask.pipeline.evaluate import evaluate

    split = make_split(tmp_path / "split", per_class=2)
    rows = [r for r in read_csv(split / "split.csv") if r["split"] == "test"]
    evaluated = evaluate(model, rows, split, batch_size=32, aligned_sources=())["predictions"]
    predictor = Predictor(model, detect=False)
    for row, expected in zip(rows, evaluated, strict=True):
        path = split / "test" / row["label"] / row["file"].rsplit("/", 1)[1]
        record = predictor.predict_image(load_rgb(path), str(path))[0]
        assert record["status"] == "whole_image" and record["label"] == expected["predicted"]
        for name in CLASSES:
            assert record["probabilities"][name] == pytest.approx(expected[f"p_{name}"], abs=1e-4)


def test_no_face_is_reported_or_classified_whole(model, tmp_path):
    photo = plain_image(tmp_path / "sky.jpg", 80, 64)
    detector = FaceDetector()
    no_face = [{"file": "sky.jpg", "status": "no_face"}]
    assert Predictor(model, detector).predict_image(load_rgb(photo), "sky.jpg") == no_face
    [record] = Predictor(model, detector, whole_image=True).predict_image(load_rgb(photo), "sky.jpg")
    assert record["status"] == "whole_image" and record["box"] == [0, 0, 80, 64] and record["detector_score"] is None


def test_cli_reports_corrupt_files_and_exits_nonzero(tmp_path, capsys):
    good = plain_image(tmp_path / "in" / "good.png")
    (tmp_path / "in" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff not really a JPEG")
    code = main(["predict", str(good), str(tmp_path / "in" / "corrupt.jpg"), str(tmp_path / "missing.png"),
                 "--model", str(tiny_model_file()), "--json", "--whole-image"])
    captured = capsys.readouterr()
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert code == 1 and "2 file(s) could not be read" in captured.err
    assert [r["status"] for r in records] == ["whole_image", "error", "error"]
    assert "corrupt.jpg: not a readable image" in records[1]["error"] and "missing.png" in records[2]["error"]
    assert main(["predict", str(good), "--model", str(tiny_model_file())]) == 0
    assert "good.png: no face found" in capsys.readouterr().out
    assert main(["predict", str(good), "--model", str(tiny_model_file()), "--no-detect"]) == 0
    assert "(whole image)" in capsys.readouterr().out


def test_folders_are_searched_recursively_and_mirrored_in_out(model, tmp_path):
    write_image(tmp_path / "photos" / "a.jpg")
    write_image(tmp_path / "photos" / "trip" / "b.png", seed=1)
    write_image(tmp_path / "photos" / "trip" / "c.gif", seed=2)
    (tmp_path / "photos" / "notes.txt").write_text("not an image")
    found = collect([tmp_path / "photos"])
    assert [p.relative_to(tmp_path / "photos").as_posix() for p, _ in found] == ["a.jpg", "trip/b.png", "trip/c.gif"]
    out = io.StringIO()
    predictor = Predictor(model, StubDetector([(2, 2, 20, 20)]))
    assert run([tmp_path / "photos"], predictor, tmp_path / "out", stream=out) == 0
    assert len(out.getvalue().splitlines()) == 3 and "box=[2, 2, 20, 20]" in out.getvalue()
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.*"))
    assert written == ["photos/a.jpg", "photos/trip/b.png", "photos/trip/c.gif.png"]
    assert run([tmp_path / "photos"], predictor, tmp_path / "out", stream=io.StringIO()) == 0  # reruns overwrite


def test_out_that_would_overwrite_an_input_is_refused_before_any_work(model, tmp_path, monkeypatch):
    write_image(tmp_path / "photos" / "a.jpg")
    write_image(tmp_path / "photos" / "trip" / "b.png", seed=1)
    before, out = tree_digest(tmp_path), io.StringIO()
    monkeypatch.chdir(tmp_path)
    predictor = Predictor(model, StubDetector([(2, 2, 20, 20)]))
    with pytest.raises(UserError, match=r"--out \.: .*photos/a.jpg would overwrite the input.*another --out"):
        run(["photos"], predictor, ".", stream=out)
    with pytest.raises(UserError, match="b.png would overwrite the input"):
        run(["photos/trip/b.png"], predictor, "photos/trip/../trip", stream=out)
    with pytest.raises(UserError, match="--out photos/annotated is inside the input folder photos"):
        run(["photos"], predictor, "photos/annotated", stream=out)
    assert tree_digest(tmp_path) == before and out.getvalue() == ""


def test_two_inputs_with_one_target_are_refused(model, tmp_path):
    first, second = write_image(tmp_path / "a" / "x.jpg"), write_image(tmp_path / "b" / "x.jpg", seed=1)
    out = io.StringIO()
    with pytest.raises(UserError, match=r"a/x.jpg and .*b/x.jpg would both be .*out/x.jpg"):
        run([first, second], Predictor(model, StubDetector([])), tmp_path / "out", stream=out)
    assert not (tmp_path / "out").exists() and out.getvalue() == ""


def test_missing_model_and_empty_folder_are_user_errors(model, tmp_path):
    with pytest.raises(UserError, match="dvc repro"):
        load_model(tmp_path / "nope.keras")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no image files"):
        run([tmp_path / "empty"], Predictor(model, StubDetector([])))


def test_detector_finds_the_face_in_a_real_masked_photo():
    photo = REAL_DATASET / "images" / "with_mask_old" / "hack_10.png"
    if not photo.is_file():
        pytest.skip(f"real dataset not present at {REAL_DATASET}")
    rgb = load_rgb(photo)
    faces = FaceDetector().detect(rgb)
    assert len(faces) == 1 and faces[0].score > 0.9
    x, y, w, h = faces[0].box
    assert x >= 0 and y >= 0 and x + w <= rgb.shape[1] and y + h <= rgb.shape[0] and w * h > 0.2 * rgb.size / 3
