"""params.yaml validation: every wrong type or unknown name is reported, with the valid choices, before any work."""
import copy

import pytest
import yaml

from facemask.backbones import BACKBONES
from facemask.params import SELECT_METRICS, ParamsError, check, load_params, load_section
from stages.select_best import METRICS
from tests.pipeline_support import PARAMS, with_changes

CHOICES = ", ".join(BACKBONES)


def _problems(**changes) -> list[str]:
    """check() on the project's params with {"section.key": value} changes applied."""
    return check(with_changes(PARAMS, changes))[0]


def test_the_projects_params_are_valid():
    assert check(PARAMS) == ([], [])


@pytest.mark.parametrize("dotted, value, expected", [
    ("ingest.min_size", "big", "ingest.min_size must be a whole number >= 1, got 'big'"),
    ("ingest.max_pixels", 2.5, "ingest.max_pixels must be a whole number >= 1"),
    ("split.ratio", [0.8, 0.2], "split.ratio must be three fractions > 0"),
    ("split.ratio", [0.8, 0.3, 0.1], "add up to 1"),
    ("split.seed", True, "split.seed must be a whole number >= 0, got True"),
    ("augment.flip", "yes", "augment.flip must be true or false"),
    ("augment.zoom_in", 0.95, "augment.zoom_in must be a number >= 0 and <= 0.9"),
    ("features.batch_size", 0, "features.batch_size must be a whole number >= 1, got 0"),
    ("features.backbones.Xception.image_size", 64, "image_size must be >= 71 for Xception"),
    ("features.backbones.MobileNetV2.weights", "nowhere.h5", "imagenet, none, or the path of an existing weights file"),
    ("train.patience", "5", "train.patience must be a whole number >= 1, got '5'"),
    ("train.backbones.MobileNetV2.epochs", "ten", "epochs must be a whole number >= 0, got 'ten'"),
    ("train.backbones.MobileNetV2.learning_rate", "fast", "learning_rate must be a number > 0"),
    ("train.backbones.MobileNetV2.class_weight", "auto", "class_weight must be one of: balanced, none"),
    ("train.backbones.MobileNetV2.fine_tune_layers", "most", "fine_tune_layers must be all, or a whole number"),
    ("train.backbones.Xception.seeds", 7, "seeds must be a list of different whole numbers >= 0"),
    ("train.backbones.Xception.seeds", [7, 7], "seeds must be a list of different whole numbers >= 0"),
    ("train.backbones.Xception.seeds", [], "seeds must be a list of different whole numbers >= 0"),
    ("train.backbones.Xception.fine_tune_schedule", "linear", "fine_tune_schedule must be one of: constant, cosine"),
    ("train.backbones.MobileNetV2.label_smoothing", 0.7, "label_smoothing must be a number >= 0 and <= 0.5"),
    ("select.metric", "test_accuracy", "select.metric must be one of: val_macro_f1, val_accuracy"),
    ("select.threshold", 1.5, "select.threshold must be a number >= 0 and <= 1"),
    ("evaluate", [32], "evaluate must be a mapping of settings"),
    ("synthesize.old_from_pool", "many", "synthesize.old_from_pool must be a whole number >= 0, got 'many'"),
    ("synthesize.young_from_train", -1, "synthesize.young_from_train must be a whole number >= 0"),
    ("synthesize.pool", 42, "synthesize.pool must be a non-empty text, got 42"),
    ("synthesize.aligned_sources", "utkface_crop_part1", "synthesize.aligned_sources must be a list of"),
    ("synthesize.aligned_sources", ["utkface_crop_part1", None], "synthesize.aligned_sources must be a list of"),
    ("export.calibration", 0, "export.calibration must be a whole number >= 1, got 0"),
    ("export.seconds", 0, "export.seconds must be a number > 0"),
    ("export.int8_min_agreement", 1.5, "export.int8_min_agreement must be a number >= 0 and <= 1"),
    ("export.int8_max_gap", "small", "export.int8_max_gap must be a number >= 0 and <= 1"),
    ("explain.per_class", 0, "explain.per_class must be a whole number >= 1, got 0"),
    ("explain.seed", "x", "explain.seed must be a whole number >= 0"),
])
def test_a_wrong_value_is_named_with_what_it_must_be(dotted, value, expected):
    problems = _problems(**{dotted: value})
    assert len(problems) == 1 and expected in problems[0], problems


def test_a_candidate_that_would_train_nothing_is_refused():
    assert _problems(**{"train.backbones.Xception.epochs": 0}) == [
        "train.backbones.Xception: epochs and fine_tune_epochs are both 0, so nothing would train; "
        "set one of them above 0"]
    assert _problems(**{"train.backbones.Xception.epochs": 0, "train.backbones.Xception.fine_tune_epochs": 1}) == []


def test_an_unknown_backbone_lists_the_valid_choices():
    params = copy.deepcopy(PARAMS)
    params["features"]["backbones"]["ResNet50"] = {"image_size": 224, "weights": "imagenet"}
    params["train"]["backbones"]["VGG16"] = {"epochs": 3}
    assert check(params)[0] == [f"features.backbones.ResNet50: unknown backbone 'ResNet50'; choose from: {CHOICES}",
                                f"train.backbones.VGG16: unknown backbone 'VGG16'; choose from: {CHOICES}"]


def test_an_ensemble_names_known_members_of_a_fitting_size():
    params = copy.deepcopy(PARAMS)
    params["features"]["backbones"]["Pair"] = {"image_size": 96, "weights": "none", "members": ["MobileNetV2", "Xception"]}
    params["train"]["backbones"]["Pair"] = {"epochs": 3}
    assert check(params)[0] == []
    params["features"]["backbones"]["Pair"]["members"] = ["MobileNetV2", "ResNet50"]
    assert check(params)[0] == [f"features.backbones.Pair: unknown backbone 'ResNet50'; choose from: {CHOICES}"]
    params["features"]["backbones"]["Pair"].update(members=["Xception"], image_size=64)
    assert check(params)[0] == ["features.backbones.Pair.image_size must be >= 71 for Xception, got 64"]


def test_a_trained_backbone_needs_its_features():
    params = copy.deepcopy(PARAMS)
    del params["features"]["backbones"]["Xception"]
    assert check(params)[0] == ["train.backbones.Xception: no features.backbones.Xception to train on; add one"]


def test_missing_required_settings_are_named():
    params = copy.deepcopy(PARAMS)
    del params["ingest"]["source"], params["features"]["backbones"]["MobileNetV2"]["image_size"]
    assert check(params)[0] == ["ingest.source is missing", "features.backbones.MobileNetV2.image_size is missing"]


def test_exponent_text_counts_as_a_number():
    """PyYAML reads 1e-5 (no dot) as text; the stages' float() reads it fine, so it passes."""
    assert _problems(**{"train.backbones.MobileNetV2.fine_tune_learning_rate": "1e-5"}) == []


def test_an_unknown_key_is_a_warning_not_an_error(tmp_path, capsys):
    params = copy.deepcopy(PARAMS)
    params["train"]["backbones"]["MobileNetV2"]["epoch"] = 3
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    assert load_section("train", path)["backbones"]["MobileNetV2"]["epoch"] == 3
    assert "train.backbones.MobileNetV2.epoch is not a setting the pipeline reads (a typo?)" in capsys.readouterr().err


def test_a_pool_that_does_not_exist_is_fine_but_a_missing_one_is_not():
    assert _problems(**{"synthesize.pool": "/nowhere/pool"}) == []
    params = copy.deepcopy(PARAMS)
    del params["synthesize"]["pool"]
    assert check(params)[0] == ["synthesize.pool is missing; set it to a folder of aligned older faces, "
                                "or set synthesize.old_from_pool: 0"]
    params["synthesize"]["old_from_pool"] = 0
    assert check(params)[0] == []


def test_a_misspelt_synthesize_key_is_warned_about():
    params = copy.deepcopy(PARAMS)
    params["synthesize"]["young_from_trian"] = params["synthesize"].pop("young_from_train")
    assert check(params) == ([], ["synthesize.young_from_trian is not a setting the pipeline reads (a typo?); "
                                  "ignored"])


def test_every_problem_is_reported_at_once(tmp_path):
    params = copy.deepcopy(PARAMS)
    params["split"]["seed"], params["select"]["threshold"] = "x", "high"
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError, match=r"split.seed must be .*; select.threshold must be"):
        load_params(path)


def test_not_yaml_and_not_a_mapping_are_clear(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(path)
    path.write_text("- just a list\n")
    with pytest.raises(ParamsError, match="needs one mapping per stage"):
        load_params(path)


def test_select_metrics_match_the_select_stage():
    assert set(SELECT_METRICS) == set(METRICS)
