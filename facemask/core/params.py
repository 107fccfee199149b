"""params.yaml as typed settings (pydantic): each default lives here, once, and every value is checked
before any work, with one line per problem that says what the value must be.

Stages read attributes (`load_params().train.patience`). A typo in `train` stops `ingest`, not a stage an
hour later; an unknown key is refused (with the closest known name), never silently ignored.
"""
import difflib
from functools import reduce
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    model_validator,
)

from facemask.core import UserError
from facemask.core.backbones import BACKBONES
from facemask.core.images import DEFAULT_MAX_PIXELS, DEFAULT_MIN_SIDE

PARAMS_FILE = Path("params.yaml")
# The metrics select may rank by (stages/select_best.py METRICS; a test keeps them equal).
SELECT_METRICS = ("val_macro_f1", "val_accuracy", "val_reframed_macro_f1")


class ParamsError(UserError):
    """params.yaml is missing, malformed, or holds a value a stage cannot use."""


def Whole(minimum: int):  # noqa: N802 - a type
    return Annotated[int, Strict(), Field(ge=minimum, description=f"a whole number >= {minimum}")]


def _no_bool(value):
    if isinstance(value, bool):
        raise ValueError("a boolean")
    return value


def Number(low: float, high: float | None = None, low_open: bool = False):  # noqa: N802 - a type
    """A real number in [low, high] (or (low, high]). Numeric text passes: PyYAML reads 1e-5 as text."""
    bounds = {"gt" if low_open else "ge": low, **({"le": high} if high is not None else {})}
    text = f"a number {'>' if low_open else '>='} {low}" + (f" and <= {high}" if high is not None else "")
    return Annotated[float, BeforeValidator(_no_bool), Field(description=text, **bounds)]


def Share(what: str):  # noqa: N802 - a type
    """A probability in [0, 1]: the share of augmented copies that get one treatment (`what`)."""
    return Annotated[float, BeforeValidator(_no_bool), Field(
        ge=0, le=1, description=f"a number >= 0 and <= 1 (the share of augmented copies {what})")]


Text = Annotated[str, Strict(), Field(min_length=1, description="a non-empty text")]
Flag = Annotated[bool, Strict(), Field(description="true or false")]
Seed = Whole(0)


def _adds_up(ratio: tuple) -> tuple:
    if abs(sum(ratio) - 1) > 1e-6:
        raise ValueError("does not add up to 1")
    return ratio


def _distinct(values: list) -> list:
    if len(set(values)) < len(values):
        raise ValueError("repeats a value")
    return values


def _weights(value: str) -> str:
    if value.lower() in ("imagenet", "none") or Path(value).is_file():
        return value
    raise ValueError("no such file")


Fraction = Number(0, 1, low_open=True)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Ingest(Section):
    source: Text
    min_size: Whole(1) = DEFAULT_MIN_SIDE
    max_pixels: Whole(1) = DEFAULT_MAX_PIXELS


class Data(Section):
    folder: Text | None = None  # the dataset folder beside the checkout, linked to ingest.source by `make run`


class Split(Section):
    ratio: Annotated[tuple[Fraction, Fraction, Fraction], AfterValidator(_adds_up), Field(
        description="three fractions > 0 (train, val, test) that add up to 1, e.g. [0.8, 0.1, 0.1]")] = (0.8, 0.1, 0.1)
    seed: Seed = 1337


class Synthesize(Section):
    POOL_COUNTS: ClassVar[tuple[str, ...]] = ("old_from_pool", "worn_wrong_from_pool")  # faces drawn from `pool`
    # Text only: the pool may be absent where the data is (then old_from_pool: 0); synthesize checks the folder.
    pool: Annotated[Text | None, Field(description="a non-empty text")] = None
    old_from_pool: Whole(0) = 0
    young_from_train: Whole(0) = 0
    worn_wrong_from_train: Annotated[int, Strict(), Field(ge=0, description=(
        "a whole number >= 0 (training-split unmasked aligned faces given a mask worn wrong, "
        "labelled without_mask of their age)"))] = 0
    worn_wrong_from_pool: Annotated[int, Strict(), Field(ge=0, description=(
        "a whole number >= 0 (pool faces given a mask worn wrong, labelled without_mask_old)"))] = 0
    aligned_sources: Annotated[list[Text], Field(
        description="a list of non-empty texts, e.g. [utkface_crop_part1]")] = []
    seed: Seed = 1337

    @model_validator(mode="after")
    def _pool_when_used(self):
        using = [name for name in self.POOL_COUNTS if getattr(self, name) > 0]
        if using and self.pool is None:
            zeros = " and ".join(f"{name}: 0" for name in using)
            raise ValueError(f"pool is missing; set it to a folder of aligned older faces, or set {zeros}")
        return self

    @property
    def uses_pool(self) -> bool:
        return any(getattr(self, name) > 0 for name in self.POOL_COUNTS)


class Augment(Section):
    copies: Whole(0) = 1
    balance: Flag = True
    seed: Seed = 1337
    flip: Flag = True
    rotation: Number(0, 1) = 0.0
    zoom_in: Number(0, 0.9) = 0.0
    zoom_out: Number(0, 1) = 0.0
    shift: Number(0, 1) = 0.0
    brightness: Number(0, 1) = 0.0
    contrast: Number(0, 1) = 0.0
    # Light and camera robustness; each level is drawn from facemask.pipeline.degrade.AUGMENT_LEVELS.
    dark: Share("made dark, as a night photo") = 0.0
    blur: Share("blurred") = 0.0
    noise: Share("given Gaussian sensor noise") = 0.0
    jpeg: Share("re-encoded as low-quality JPEG") = 0.0


class Features(Section):
    weights_dir: Annotated[str | None, Field(description="a folder path, or empty")] = None
    batch_size: Whole(1) = 32
    seed: Seed = 1337


DISTRIBUTE = Annotated[Literal["none", "mirrored"], Field(
    description="one of: none, mirrored (tf.distribute.MirroredStrategy over the visible GPUs)")]


class Train(Section):
    seed: Seed = 1337
    patience: Whole(1) = 5
    distribute: DISTRIBUTE = "none"


class Recipe(Section):
    """How one candidate trains: a head on cached features (`epochs`), then fine-tuning (`fine_tune_*`)."""
    epochs: Whole(0) = 30
    batch_size: Whole(1) = 32
    learning_rate: Number(0, low_open=True) = 1e-3
    dropout: Number(0, 0.99) = 0.2
    class_weight: Annotated[Literal["balanced", "none"], Field(description="one of: balanced, none")] = "balanced"
    fine_tune_layers: Annotated[Literal["all"] | Whole(0), Field(
        description="all, or a whole number >= 0 (top backbone layers to unfreeze)")] = 0
    fine_tune_epochs: Whole(0) = 0
    fine_tune_learning_rate: Number(0, low_open=True) = 1e-5
    fine_tune_schedule: Annotated[Literal["constant", "cosine"], Field(
        description="one of: constant, cosine")] = "constant"
    label_smoothing: Number(0, 0.5) = 0.0
    consistency: Number(0) = 0.0  # fine-tuning: weight of the image/degraded-copy agreement (facemask/consistency.py)
    seeds: Annotated[Annotated[list[Seed], Field(min_length=1), AfterValidator(_distinct)] | None, Field(
        description="a list of different whole numbers >= 0 (one model per seed, averaged), e.g. [1337, 7, 42]")] = None

    @model_validator(mode="after")
    def _trains_something(self):
        if self.epochs == 0 and self.fine_tune_epochs == 0:
            raise ValueError("epochs and fine_tune_epochs are both 0, so nothing would train; set one of them above 0")
        return self


class Candidate(Section):
    """One model the pipeline trains, evaluates and may select: one backbone, or several feeding one head."""
    backbones: Annotated[list[Text], Field(min_length=1, description="a list of backbone names")]
    image_size: Whole(1)
    weights: Annotated[Text, AfterValidator(_weights), Field(
        description="imagenet, none, or the path of an existing weights file")] = "imagenet"
    train: Recipe = Recipe()

    @model_validator(mode="after")
    def _known_backbones(self):
        unknown = [name for name in self.backbones if name not in BACKBONES]
        if unknown:
            raise ValueError(f"unknown backbone {unknown[0]!r}; choose from: {', '.join(BACKBONES)}")
        for name in self.backbones:
            if self.image_size < BACKBONES[name].min_size:
                raise ValueError(f"image_size must be >= {BACKBONES[name].min_size} for {name}, got {self.image_size}")
        return self


class Evaluate(Section):
    batch_size: Whole(1) = 32


class Select(Section):
    metric: Annotated[Literal[SELECT_METRICS], Field(
        description=f"one of: {', '.join(SELECT_METRICS)} (the test split never chooses)")] = "val_macro_f1"
    threshold: Number(0, 1) = 0.0
    model_name: Text = "facemask"


class Export(Section):
    calibration: Whole(1) = 200
    seconds: Number(0, low_open=True) = 3.0
    int8_min_agreement: Number(0, 1) = 0.9
    int8_max_gap: Number(0, 1) = 0.05


class Explain(Section):
    per_class: Whole(1) = 4
    seed: Seed = 1337


Guard = Annotated[Number(0, 1) | None, Field(description="a number >= 0 and <= 1, or null (not guarded)")]


class Guards(Section):
    """The champion's slices of the validation photos the CI gate holds (evaluate's val_slices.json); null: not held."""
    worn_wrong_without_mask_rate: Guard = None  # at least: masks worn wrong called without mask
    degraded_max_drop: Guard = None  # at most: each degraded copy's accuracy below the clean photos'
    smallest_class_recall: Guard = None  # at least: recall of the class with the fewest validation photos


class Ci(Section):
    # CI fails when the champion is worse than the registry's at this significance (paired, on the same
    # validation photos: facemask.pipeline.paired); select separates candidates at the same level.
    alpha: Annotated[float, BeforeValidator(_no_bool), Field(gt=0, lt=1, description="a number > 0 and < 1")] = 0.05
    guards: Guards = Guards()


class Params(Section):
    ingest: Ingest
    data: Data = Data()
    split: Split = Split()
    synthesize: Synthesize = Synthesize()
    augment: Augment = Augment()
    features: Features = Features()
    train: Train = Train()
    candidates: dict[str, Candidate]
    evaluate: Evaluate = Evaluate()
    select: Select = Select()
    export: Export = Export()
    explain: Explain = Explain()
    ci: Ci = Ci()

    @model_validator(mode="after")
    def _some_candidate(self):
        if not self.candidates:
            raise ValueError("candidates is empty; name at least one (see the README)")
        return self

    def candidate(self, name: str) -> Candidate:
        """The candidate `name`, or a ParamsError naming the candidates there are."""
        if name not in self.candidates:
            raise ParamsError(f"params.yaml: no candidate '{name}'; choose one of: {', '.join(self.candidates)}")
        return self.candidates[name]

    def recipe(self, name: str) -> "TrainingRecipe":
        """Candidate `name`'s training recipe, with the shared train settings (seed, patience, distribute) beside it."""
        return TrainingRecipe(**self.candidate(name).train.model_dump(), seed=self.train.seed,
                              patience=self.train.patience, distribute=self.train.distribute)


class TrainingRecipe(Recipe):
    """A candidate's Recipe plus the shared train settings: all that one training run reads."""
    seed: Seed
    patience: Whole(1)
    distribute: DISTRIBUTE = "none"


def problems(raw: dict) -> list[str]:
    """One line per problem in a params mapping (empty when it is valid)."""
    try:
        Params.model_validate(raw)
    except ValidationError as err:
        return list(dict.fromkeys(_describe(error, raw) for error in err.errors()))
    return []


def _describe(error: dict, raw: dict) -> str:
    """A pydantic error as `where must be <what>, got <value>` (or is missing / is unknown / a rule's text)."""
    loc = [str(part) for part in error["loc"]]
    depth, description = _described_depth(loc)
    where = ".".join(loc[:depth])
    if error["type"] == "extra_forbidden":
        known = _field_names(loc[:-1])
        close = difflib.get_close_matches(loc[-1], known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else f"; the settings there are: {', '.join(known)}"
        return f"{where} is not a setting the pipeline reads{hint}"
    if error["type"] == "missing" and depth == len(loc):
        return f"{where} is missing"
    if error["type"] == "value_error" and description is None:
        return f"{where}: {error['ctx']['error']}" if where else str(error["ctx"]["error"])
    if error["type"] in ("model_type", "dict_type") and description is None:
        return f"{where} must be a mapping of settings, got {_value_at(raw, loc[:depth])!r}"
    return f"{where} must be {description or error['msg']}, got {_value_at(raw, loc[:depth])!r}"


def _described_depth(loc: list[str]) -> tuple[int, str | None]:
    """How many parts of `loc` lead to the first field with a description, and that description
    (all of `loc` and None when no field on the way has one)."""
    node: Any = Params
    for depth, part in enumerate(loc, start=1):
        if isinstance(node, type) and issubclass(node, BaseModel):
            field = node.model_fields.get(part)
            if field is None:
                break
            if field.description:
                return depth, field.description
            node = field.annotation
        elif getattr(node, "__origin__", None) is dict:
            node = node.__args__[1]
        else:
            break
    return len(loc), None


def _field_names(loc: list[str]) -> list[str]:
    node: Any = Params
    for part in loc:
        node = node.model_fields[part].annotation if issubclass(node, BaseModel) else node.__args__[1]
    return list(node.model_fields)


def _value_at(raw: dict, loc: list[str]):
    try:
        return reduce(lambda node, key: node[key], loc, raw)
    except (KeyError, TypeError, IndexError):
        return None


def load_params(path: Path = PARAMS_FILE) -> Params:
    """The whole params file, validated; raises ParamsError listing every problem."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: not found; run from the project root, where params.yaml lives") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: needs one mapping per stage (see the README's params section)")
    found = problems(raw)
    if found:
        raise ParamsError(f"{path}: " + "; ".join(found))
    return Params.model_validate(raw)
