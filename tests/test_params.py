"""params.yaml validation: every wrong type, range or unknown name is reported, with what it must be, before any work."""
import copy
from pathlib import Path

import pytest
import yaml

from facemask.core.backbones import BACKBONES
from facemask.core.params import SELECT_METRICS, Params, ParamsError, load_params, problems
from facemask.ops.sweep_file import with_overrides
from facemask.pipeline.selection import METRICS
from tests.pipeline_support import PARAMS

pytestmark = pytest.mark.unit  # the fast layer: make test-fast

CHOICES = ", ".join(BACKBONES)


def _problems(**changes) -> list[str]:
    """problems() of the project's params with {"section.key": value} changes applied."""
    return problems(with_overrides(PARAMS, changes))


def test_the_projects_params_are_valid():
    assert problems(PARAMS) == []


@pytest.mark.parametrize("dotted, value, expected", [
    ("ingest.min_size", "big", "ingest.min_size must be a whole number >= 1, got 'big'"),
    ("ingest.max_pixels", 2.5, "ingest.max_pixels must be a whole number >= 1"),
    ("split.ratio", [0.8, 0.2], "split.ratio must be three fractions > 0"),
    ("split.ratio", [0.8, 0.3, 0.1], "add up to 1"),
    ("split.seed", True, "split.seed must be a whole number >= 0, got True"),
    ("augment.flip", "yes", "augment.flip must be true or false"),
    ("augment.zoom_in", 0.95, "augment.zoom_in must be a number >= 0 and <= 0.9"),
    ("augment.brightness", True, "augment.brightness must be a number >= 0 and <= 1, got True"),
    ("features.batch_size", 0, "features.batch_size must be a whole number >= 1, got 0"),
    ("candidates.Xception.image_size", 64, "candidates.Xception: image_size must be >= 71 for Xception, got 64"),
    ("candidates.MobileNetV2.weights", "nowhere.h5", "imagenet, none, or the path of an existing weights file"),
    ("candidates.Ensemble.backbones", "MobileNetV2", "candidates.Ensemble.backbones must be a list of backbone names"),
    ("train.patience", "5", "train.patience must be a whole number >= 1, got '5'"),
    ("candidates.MobileNetV2.train.epochs", "ten", "candidates.MobileNetV2.train.epochs must be a whole number >= 0"),
    ("candidates.MobileNetV2.train.learning_rate", "fast", "learning_rate must be a number > 0"),
    ("candidates.MobileNetV2.train.class_weight", "auto", "class_weight must be one of: balanced, none"),
    ("candidates.MobileNetV2.train.fine_tune_layers", "most", "fine_tune_layers must be all, or a whole number"),
    ("candidates.Xception.train.seeds", 7, "seeds must be a list of different whole numbers >= 0"),
    ("candidates.Xception.train.seeds", [7, 7], "seeds must be a list of different whole numbers >= 0"),
    ("candidates.Xception.train.seeds", [], "seeds must be a list of different whole numbers >= 0"),
    ("candidates.Xception.train.fine_tune_schedule", "linear", "fine_tune_schedule must be one of: constant, cosine"),
    ("candidates.MobileNetV2.train.label_smoothing", 0.7, "label_smoothing must be a number >= 0 and <= 0.5"),
    ("candidates.MobileNetV2.train.consistency", -1, "candidates.MobileNetV2.train.consistency must be a number >= 0"),
    ("select.metric", "test_accuracy", "select.metric must be one of: val_macro_f1, val_accuracy"),
    ("select.threshold", 1.5, "select.threshold must be a number >= 0 and <= 1"),
    ("evaluate", [32], "evaluate must be a mapping of settings, got [32]"),
    ("candidates", [], "candidates must be a mapping of settings, got []"),
    ("candidates", {}, "candidates is empty; name at least one"),
    ("synthesize.old_from_pool", "many", "synthesize.old_from_pool must be a whole number >= 0, got 'many'"),
    ("synthesize.young_from_train", -1, "synthesize.young_from_train must be a whole number >= 0"),
    ("synthesize.pool", 42, "synthesize.pool must be a non-empty text, got 42"),
    ("synthesize.worn_wrong_from_train", -1, "synthesize.worn_wrong_from_train must be a whole number >= 0 "
     "(training-split unmasked aligned faces given a mask worn wrong, labelled without_mask of their age), got -1"),
    ("synthesize.worn_wrong_from_pool", 2.5, "synthesize.worn_wrong_from_pool must be a whole number >= 0"),
    ("augment.dark", 1.5, "augment.dark must be a number >= 0 and <= 1 (the share of augmented copies made dark, "
     "as a night photo), got 1.5"),
    ("augment.noise", True, "augment.noise must be a number >= 0 and <= 1 (the share of augmented copies given"),
    ("augment.blur", -0.1, "augment.blur must be a number >= 0 and <= 1 (the share of augmented copies blurred)"),
    ("augment.jpeg", "often", "augment.jpeg must be a number >= 0 and <= 1 (the share of augmented copies re-encoded"),
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
    found = _problems(**{dotted: value})
    assert len(found) == 1 and expected in found[0], found


def test_a_candidate_that_would_train_nothing_is_refused():
    assert _problems(**{"candidates.Xception.train.epochs": 0}) == [
        "candidates.Xception.train: epochs and fine_tune_epochs are both 0, so nothing would train; "
        "set one of them above 0"]
    assert _problems(**{"candidates.Xception.train.epochs": 0, "candidates.Xception.train.fine_tune_epochs": 1}) == []


def test_an_unknown_backbone_lists_the_valid_choices():
    params = copy.deepcopy(PARAMS)
    params["candidates"]["ResNet50"] = {"backbones": ["ResNet50"], "image_size": 224}
    assert problems(params) == [f"candidates.ResNet50: unknown backbone 'ResNet50'; choose from: {CHOICES}"]


def test_an_ensemble_names_known_backbones_of_a_fitting_size():
    params = copy.deepcopy(PARAMS)
    params["candidates"]["Pair"] = {"backbones": ["MobileNetV2", "Xception"], "image_size": 96, "weights": "none"}
    assert problems(params) == []
    params["candidates"]["Pair"]["backbones"] = ["MobileNetV2", "ResNet50"]
    assert problems(params) == [f"candidates.Pair: unknown backbone 'ResNet50'; choose from: {CHOICES}"]
    params["candidates"]["Pair"].update(backbones=["Xception"], image_size=64)
    assert problems(params) == ["candidates.Pair: image_size must be >= 71 for Xception, got 64"]


def test_missing_required_settings_are_named():
    params = copy.deepcopy(PARAMS)
    del params["ingest"]["source"], params["candidates"]["MobileNetV2"]["image_size"]
    assert problems(params) == ["ingest.source is missing", "candidates.MobileNetV2.image_size is missing"]


def test_a_default_fills_what_params_yaml_leaves_out(tmp_path):
    params = copy.deepcopy(PARAMS)
    del params["train"]["patience"], params["candidates"]["Xception"]["train"]["dropout"]
    loaded = load_params(_written(params, tmp_path))
    assert loaded.train.patience == 5 and loaded.candidates["Xception"].train.dropout == 0.2


def test_exponent_text_counts_as_a_number():
    """PyYAML reads 1e-5 (no dot) as text: it is read as the number it spells."""
    assert _problems(**{"candidates.MobileNetV2.train.fine_tune_learning_rate": "1e-5"}) == []


def test_an_unknown_key_is_refused_with_the_closest_name():
    params = copy.deepcopy(PARAMS)
    params["candidates"]["MobileNetV2"]["train"]["epoch"] = 3
    params["synthesize"]["young_from_trian"] = params["synthesize"].pop("young_from_train")
    params["evaluate"]["workers"] = 2
    assert problems(params) == [
        "synthesize.young_from_trian is not a setting the pipeline reads (did you mean young_from_train?)",
        "candidates.MobileNetV2.train.epoch is not a setting the pipeline reads (did you mean epochs?)",
        "evaluate.workers is not a setting the pipeline reads; the settings there are: batch_size"]


def test_a_pool_that_does_not_exist_is_fine_but_a_missing_one_is_not():
    assert _problems(**{"synthesize.pool": "/nowhere/pool"}) == []
    params = copy.deepcopy(PARAMS)
    del params["synthesize"]["pool"]
    params["synthesize"]["worn_wrong_from_pool"] = 0
    assert problems(params) == ["synthesize: pool is missing; set it to a folder of aligned older faces, "
                                "or set old_from_pool: 0"]
    params["synthesize"]["old_from_pool"] = 0
    assert problems(params) == []
    params["synthesize"]["worn_wrong_from_pool"] = 5
    assert problems(params) == ["synthesize: pool is missing; set it to a folder of aligned older faces, "
                                "or set worn_wrong_from_pool: 0"]


def test_worn_wrong_masks_and_camera_degradations_are_off_by_default_and_named_in_params_yaml():
    """Off for a project that leaves them out (other data may have no aligned faces); params.yaml sets each."""
    material = {"synthesize": ("worn_wrong_from_train", "worn_wrong_from_pool"), "augment": ("dark", "blur", "noise", "jpeg")}
    defaults = Params.model_validate({**PARAMS, "synthesize": {}, "augment": {}})
    for section, names in material.items():
        for name in names:
            assert getattr(getattr(defaults, section), name) == 0 and name in PARAMS[section], (section, name)


def _written(params: dict, folder: Path) -> Path:
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def test_every_problem_is_reported_at_once(tmp_path):
    params = copy.deepcopy(PARAMS)
    params["split"]["seed"], params["select"]["threshold"] = "x", "high"
    with pytest.raises(ParamsError, match=r"split.seed must be .*; select.threshold must be"):
        load_params(_written(params, tmp_path))


def test_not_yaml_and_not_a_mapping_are_clear(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(path)
    path.write_text("- just a list\n")
    with pytest.raises(ParamsError, match="needs one mapping per stage"):
        load_params(path)


def test_a_candidate_is_named_once_and_looked_up_by_name(tmp_path):
    params = load_params(_written(PARAMS, tmp_path))
    assert list(params.candidates) == ["MobileNetV2", "Xception", "Ensemble"]
    with pytest.raises(ParamsError, match="no candidate 'VGG16'; choose one of: MobileNetV2, Xception"):
        params.candidate("VGG16")
    recipe = params.recipe("MobileNetV2")
    assert (recipe.seed, recipe.patience, recipe.seeds) == (PARAMS["train"]["seed"], PARAMS["train"]["patience"],
                                                            PARAMS["candidates"]["MobileNetV2"]["train"].get("seeds"))


def test_select_metrics_match_the_select_stage():
    assert set(SELECT_METRICS) == set(METRICS)
