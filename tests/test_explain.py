"""explain: Grad-CAM maps of the right shape and range, one figure per class, a summary, the CLI."""
import json

import numpy as np
import pytest
from PIL import Image

from facemask.__main__ import main
from facemask.core import CLASSES
from facemask.core.model import average, load
from facemask.core.resize import load_batch
from facemask.use.explain import gradcam, lower_half_share
from tests.champion_support import IMAGE_SIZE, make_split, tiny_model_file


def test_gradcam_maps_cover_the_input_and_are_normalised(tmp_path):
    model = load(tiny_model_file())
    split = make_split(tmp_path / "split", per_class=2)
    batch = load_batch(sorted((split / "test").rglob("*.*")), IMAGE_SIZE)
    probabilities, mask_maps, age_maps = gradcam(model, batch)
    np.testing.assert_allclose(probabilities, model.predict(batch, verbose=0), atol=1e-4)  # eager vs compiled
    for maps in (mask_maps, age_maps):
        assert maps.shape == (len(batch), IMAGE_SIZE, IMAGE_SIZE) and np.isfinite(maps).all()
        assert maps.min() >= 0 and maps.max() <= 1 + 1e-6


def test_gradcam_of_a_seed_average_is_the_mean_over_its_members(tmp_path):
    first, second = load(tiny_model_file()), load(tiny_model_file())
    second.set_weights([w * 0.5 for w in second.get_weights()])
    split = make_split(tmp_path / "split", per_class=2)
    batch = load_batch(sorted((split / "test").rglob("*.*")), IMAGE_SIZE)
    probabilities, mask_maps, age_maps = gradcam(average({"a": first, "b": second}, name="averaged"), batch)
    parts = [gradcam(model, batch) for model in (first, second)]
    np.testing.assert_allclose(probabilities, (parts[0][0] + parts[1][0]) / 2, atol=1e-5)
    for maps, index in ((mask_maps, 1), (age_maps, 2)):
        mean = (parts[0][index] + parts[1][index]) / 2
        np.testing.assert_allclose(maps, mean / np.maximum(mean.max(axis=(1, 2), keepdims=True), 1e-12), atol=1e-5)
        assert maps.shape == (len(batch), IMAGE_SIZE, IMAGE_SIZE)


def test_lower_half_share():
    maps = np.zeros((2, 4, 4))
    maps[0, 2:] = 1
    maps[1] = 1
    assert lower_half_share(maps).tolist() == [1.0, 0.5]


def test_cli_writes_a_figure_per_class_and_a_summary(tmp_path, capsys):
    split = make_split(tmp_path / "split", per_class=4)
    assert main(["explain", "--model", str(tiny_model_file()), "--split", str(split), "--out", str(tmp_path / "out"),
                 "--per-class", "2"]) == 0
    summary = json.loads((tmp_path / "out" / "gradcam.json").read_text())
    assert list(summary) == list(CLASSES)
    for label, result in summary.items():
        assert result["n"] == 2 and 0 <= result["correct"] <= 2 and len(result["files"]) == 2
        assert 0 <= result["mask_map_lower_half_share"] <= 1 and 0 <= result["age_map_lower_half_share"] <= 1
        with Image.open(tmp_path / "out" / f"gradcam_{label}.jpg") as figure:
            assert figure.width > 300 and figure.height > 300
    out = capsys.readouterr().out
    assert out.count("explain: ") == 5 and "Grad-CAM maps of 8 test images" in out.splitlines()[-1]


def test_missing_split_is_reported(tmp_path):
    with pytest.raises(SystemExit, match="split.csv"):
        from facemask.core.stage import run

        run(lambda: main(["explain", "--model", str(tiny_model_file()), "--split", str(tmp_path)]), "facemask")


def test_maps_are_logged_to_mlflow(tmp_path, monkeypatch):
    import mlflow

    split = make_split(tmp_path / "split", per_class=2)
    monkeypatch.chdir(tmp_path)  # no models/candidates/<candidate>/mlflow.json here: a new "explain" run is made
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    previous_uri = mlflow.get_tracking_uri()
    try:
        assert main(["explain", "--model", str(tiny_model_file()), "--split", str(split), "--out", "out",
                     "--per-class", "1", "--mlflow"]) == 0
        [run] = mlflow.search_runs(experiment_names=["facemask"], output_format="list")
        logged = {item.path for item in mlflow.MlflowClient().list_artifacts(run.info.run_id, "explain")}
    finally:
        mlflow.set_tracking_uri(previous_uri)  # MLflow's URI is process-wide
    assert run.data.tags["stage"] == "explain"
    assert logged == {"explain/gradcam.json", *(f"explain/gradcam_{label}.jpg" for label in CLASSES)}
