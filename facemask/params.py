"""Read params.yaml, checking every known setting before any work, with errors that say what to fix.

Every stage reads its section through load_section(), which validates the whole file first: a typo
in `train` stops `ingest`, not a stage an hour later. Sections this module does not know are passed
through unchecked; unknown keys inside known sections are reported as warnings (a likely typo).
"""
import math
import sys
from pathlib import Path

import yaml

from facemask import UserError

PARAMS_FILE = Path("params.yaml")
SELECT_METRICS = ("val_macro_f1", "val_accuracy", "val_reframed_macro_f1")  # stages/select_best.py METRICS (a test keeps them equal)


class ParamsError(UserError):
    """params.yaml is missing, malformed, or holds a value a stage cannot use."""


# A check returns None for a good value, else what the value must be.
def _whole(minimum: int):
    def check(value):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            return f"a whole number >= {minimum}"
    return check


def _number(low: float, high: float = math.inf, low_open: bool = False):
    """A real number in [low, high] (or (low, high]). Numeric text passes: PyYAML reads 1e-5 as text."""
    def check(value):
        try:
            number = float(value) if not isinstance(value, bool) else math.nan
        except (TypeError, ValueError):
            number = math.nan
        if not (low < number <= high if low_open else low <= number <= high):
            return f"a number {'>' if low_open else '>='} {low}" + (f" and <= {high}" if high < math.inf else "")
    return check


def _one_of(*choices):
    def check(value):
        if value not in choices:
            return f"one of: {', '.join(map(str, choices))}"
    return check


def _boolean(value):
    if not isinstance(value, bool):
        return "true or false"


def _text(value):
    if not isinstance(value, str) or not value.strip():
        return "a non-empty text"


def _optional_text(value):
    if value is not None and not isinstance(value, str):
        return "a folder path, or empty"


def _texts(value):
    if not isinstance(value, list) or any(_text(v) for v in value):
        return "a list of non-empty texts, e.g. [utkface_crop_part1]"


def _ratio(value):
    fraction = _number(0, 1, low_open=True)
    if (not isinstance(value, list) or len(value) != 3 or any(fraction(v) for v in value)
            or abs(sum(map(float, value)) - 1) > 1e-6):
        return "three fractions > 0 (train, val, test) that add up to 1, e.g. [0.8, 0.1, 0.1]"


def _weights(value):
    if value is None or str(value).lower() in ("imagenet", "none") or Path(str(value)).is_file():
        return None
    return "imagenet, none, or the path of an existing weights file"


def _fine_tune_layers(value):
    if value != "all" and _whole(0)(value):
        return "all, or a whole number >= 0 (top backbone layers to unfreeze)"


def _seeds(value):
    if not isinstance(value, list) or not value or any(_whole(0)(v) for v in value) or len(set(value)) < len(value):
        return "a list of different whole numbers >= 0 (one model per seed, averaged), e.g. [1337, 7, 42]"


REQUIRED = object()  # marks a key that must be present: SCHEMA values are (check, REQUIRED) pairs
SCHEMA = {
    "ingest": {"source": (_text, REQUIRED), "min_size": _whole(1), "max_pixels": _whole(1)},
    "split": {"ratio": _ratio, "seed": _whole(0)},
    # pool: text only, as it may be absent where the data is (then old_from_pool: 0); synthesize checks it.
    "synthesize": {"pool": _text, "old_from_pool": _whole(0), "young_from_train": _whole(0),
                   "aligned_sources": _texts, "seed": _whole(0)},
    "augment": {"copies": _whole(0), "balance": _boolean, "seed": _whole(0), "flip": _boolean,
                "zoom_in": _number(0, 0.9), "zoom_out": _number(0, 1),
                **{k: _number(0, 1) for k in ("rotation", "shift", "brightness", "contrast")}},
    "features": {"weights_dir": _optional_text, "batch_size": _whole(1), "seed": _whole(0), "backbones": None},
    "train": {"seed": _whole(0), "patience": _whole(1), "backbones": None},
    "evaluate": {"batch_size": _whole(1)},
    "select": {"metric": _one_of(*SELECT_METRICS), "threshold": _number(0, 1), "model_name": _text},
    "export": {"calibration": _whole(1), "seconds": _number(0, low_open=True),
               "int8_min_agreement": _number(0, 1), "int8_max_gap": _number(0, 1)},
    "explain": {"per_class": _whole(1), "seed": _whole(0)},
}
BACKBONE_SCHEMA = {
    "features": {"image_size": (_whole(1), REQUIRED), "weights": _weights, "members": None},  # members: in check()
    "train": {"epochs": _whole(0), "batch_size": _whole(1), "learning_rate": _number(0, low_open=True),
              "dropout": _number(0, 0.99), "class_weight": _one_of("balanced", "none"),
              "fine_tune_layers": _fine_tune_layers, "fine_tune_epochs": _whole(0),
              "fine_tune_learning_rate": _number(0, low_open=True),
              "fine_tune_schedule": _one_of("constant", "cosine"), "seeds": _seeds,
              "label_smoothing": _number(0, 0.5)},
}


def check(params: dict) -> tuple[list[str], list[str]]:
    """Return (problems, warnings) for every section of `params` this module knows.

    A features candidate is a backbone name, or any name with `members: [backbone, ...]` (an ensemble);
    every train candidate needs its features candidate; synthesize.old_from_pool > 0 needs a pool.
    """
    from facemask.backbones import BACKBONES  # imports Keras: only when needed (split, select don't)

    problems, warnings = [], []
    for name, schema in SCHEMA.items():
        if name in params:
            _check_mapping(params[name], name, schema, problems, warnings)
    synthesize = params.get("synthesize")
    if isinstance(synthesize, dict) and "pool" not in synthesize and not _whole(1)(synthesize.get("old_from_pool", 0)):
        problems.append("synthesize.pool is missing; set it to a folder of aligned older faces, "
                        "or set synthesize.old_from_pool: 0")
    features, train = (_candidates(params, name, problems) for name in ("features", "train"))
    choices = f"choose from: {', '.join(BACKBONES)}"
    for candidate, spec in features.items():
        where = f"features.backbones.{candidate}"
        if not _check_mapping(spec, where, BACKBONE_SCHEMA["features"], problems, warnings):
            continue
        members = spec.get("members", [candidate])
        if not isinstance(members, list) or not members:
            problems.append(f"{where}.members must be a list of backbone names; {choices}")
            continue
        for member in members:
            if member not in BACKBONES:
                problems.append(f"{where}: unknown backbone {member!r}; {choices}")
            elif spec["image_size"] < BACKBONES[member].min_size:
                problems.append(f"{where}.image_size must be >= {BACKBONES[member].min_size} for {member}, "
                                f"got {spec['image_size']!r}")
    for candidate, spec in train.items():
        where = f"train.backbones.{candidate}"
        if candidate not in (features or BACKBONES):
            problems.append(f"{where}: no features.backbones.{candidate} to train on; add one" if candidate in BACKBONES
                            else f"{where}: unknown backbone {candidate!r}; {choices}")
        if _check_mapping(spec, where, BACKBONE_SCHEMA["train"], problems, warnings) and \
                spec.get("epochs", 30) == 0 and spec.get("fine_tune_epochs", 0) == 0:
            problems.append(f"{where}: epochs and fine_tune_epochs are both 0, so nothing would train; "
                            "set one of them above 0")
    return problems, warnings


def _candidates(params: dict, section: str, problems: list) -> dict:
    """`params[section]['backbones']`: {} when absent, or with a problem when it is not a mapping."""
    candidates = params[section].get("backbones", {}) if isinstance(params.get(section), dict) else {}
    if isinstance(candidates, dict):
        return candidates
    problems.append(f"{section}.backbones must map backbone names to their settings, got {candidates!r}")
    return {}


def _check_mapping(section, where: str, schema: dict, problems: list, warnings: list) -> bool:
    """Check one mapping against its schema; return whether all its values were valid."""
    if not isinstance(section, dict):
        problems.append(f"{where} must be a mapping of settings, got {section!r}")
        return False
    before = len(problems)
    for key, rule in schema.items():
        test, required = rule if isinstance(rule, tuple) else (rule, None)
        if key not in section:
            if required is REQUIRED:
                problems.append(f"{where}.{key} is missing")
            continue
        expected = test(section[key]) if test else None
        if expected:
            problems.append(f"{where}.{key} must be {expected}, got {section[key]!r}")
    warnings += [f"{where}.{key} is not a setting the pipeline reads (a typo?); ignored"
                 for key in section if key not in schema]
    return len(problems) == before


def load_params(path: Path = PARAMS_FILE) -> dict:
    """The whole params file, validated; raises ParamsError listing every problem."""
    try:
        params = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: not found; run from the project root, where params.yaml lives") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(params, dict):
        raise ParamsError(f"{path}: needs one mapping per stage (see the README's params section)")
    problems, warnings = check(params)
    if problems:
        raise ParamsError(f"{path}: " + "; ".join(problems))
    for warning in warnings:
        print(f"warning: {path}: {warning}", file=sys.stderr)
    return params


def load_section(name: str, path: Path = PARAMS_FILE) -> dict:
    """Return section `name` of `path` as a dict, after validating the whole file."""
    params = load_params(path)
    if not isinstance(params.get(name), dict):
        raise ParamsError(f"{path}: needs a mapping named '{name}:' (see the README's params section)")
    return params[name]


def backbone_section(section: dict, backbone: str, section_name: str) -> dict:
    """Return `section['backbones'][backbone]`, naming the valid choices if it is absent."""
    backbones = section.get("backbones") or {}
    if backbone not in backbones:
        raise ParamsError(
            f"params.yaml: {section_name}.backbones has no '{backbone}'; "
            f"choose one of: {', '.join(sorted(backbones))}"
        )
    return backbones[backbone]
