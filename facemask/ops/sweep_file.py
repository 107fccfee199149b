"""A sweep file: a grid and/or a list of params.yaml overrides, checked against params.yaml and expanded into
numbered experiments, each one `dvc exp run` with a stable name (facemask/ops/sweep.py runs and gathers them).

    name: dropout-size                   # optional; default: the file's name without .yaml
    targets: [train@MobileNetV2]         # optional; default: train@ each candidate the overrides name
    grid:                                # every combination: 2 x 2 = 4 experiments
      candidates.MobileNetV2.train.dropout: [0.3, 0.5]
      candidates.MobileNetV2.image_size: [160, 224]
    list:                                # and these, one experiment each
      - {candidates.Xception.train.learning_rate: 0.0003}

An override names a setting params.yaml has; each experiment's params are validated as params.yaml is
(facemask/core/params.py), so a typo or a value out of range stops the sweep before any runner starts.
A sweep trains to `train@<candidate>` by default: it compares validation metrics and never runs `select`,
which would move the registry's `champion`.
"""
import copy
import difflib
import hashlib
import itertools
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from facemask.core import UserError
from facemask.core.params import PARAMS_FILE, problems

SWEEP_KEYS = ("name", "targets", "grid", "list")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}")


class SweepError(UserError):
    """A sweep file that cannot be run; the message names the file, the key and the fix."""


@dataclass(frozen=True)
class Sweep:
    file: str
    name: str
    targets: tuple[str, ...]          # what each experiment runs, as `dvc exp run` targets
    experiments: tuple[dict, ...]     # {dotted params key: value}, one mapping per experiment
    baseline: str                     # the git commit the experiments start from

    @property
    def id(self) -> str:
        """`<name>-<8 hex>`: the same file on the same commit gives the same id (so a re-run finds what is done)."""
        spec = json.dumps([self.targets, self.experiments, self.baseline], sort_keys=True, default=str)
        return f"{self.name}-{hashlib.sha256(spec.encode()).hexdigest()[:8]}"

    def experiment_name(self, index: int) -> str:
        return f"{self.id}-{index}"

    def candidates(self) -> list[str]:
        """The candidates each experiment trains (from its train@ targets)."""
        return [target.split("@", 1)[1] for target in self.targets if target.startswith("train@")]

    def run_args(self, index: int) -> list[str]:
        """`dvc exp run` arguments of experiment `index`: pull what the remote has, name it, set its overrides."""
        sets = [arg for key, value in self.experiments[index].items() for arg in ("-S", f"{key}={json.dumps(value)}")]
        return ["exp", "run", "--temp", "--pull", "--allow-missing", "-n", self.experiment_name(index), *sets, *self.targets]

    def matrix(self) -> dict:
        """The GitHub Actions matrix: one entry per experiment (`index` for the job, the rest for its title)."""
        return {"include": [{"index": i, "name": self.experiment_name(i), "overrides": describe(overrides)}
                            for i, overrides in enumerate(self.experiments)]}


def describe(overrides: dict) -> str:
    """`key=value, key=value`: an experiment's overrides on one line."""
    return ", ".join(f"{key}={json.dumps(value)}" for key, value in overrides.items())


def load(path: str | Path, params_path: Path = PARAMS_FILE, baseline: str | None = None) -> Sweep:
    """The sweep file at `path`, checked against `params_path`; SweepError naming the file and key otherwise."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SweepError(f"{path}: no such sweep file (see sweeps/example.yaml)") from None
    except yaml.YAMLError as err:
        raise SweepError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(raw, dict):
        raise SweepError(f"{path}: needs a mapping with grid: and/or list: (see sweeps/example.yaml)")
    unknown = [key for key in raw if key not in SWEEP_KEYS]
    if unknown:
        raise SweepError(f"{path}: {unknown[0]} is not a sweep setting; the settings are: {', '.join(SWEEP_KEYS)}")
    params = yaml.safe_load(Path(params_path).read_text())
    experiments = _expand(path, raw.get("grid") or {}, raw.get("list") or [])
    for key in dict.fromkeys(key for overrides in experiments for key in overrides):
        _check_key(path, key, params, params_path)
    for index, overrides in enumerate(experiments):
        found = problems(with_overrides(params, overrides))
        if found:
            raise SweepError(f"{path}: experiment {index} ({describe(overrides)}): {found[0]}")
    name = raw.get("name", path.name.removesuffix(".yaml").removesuffix(".yml"))
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise SweepError(f"{path}: name {name!r} must be 1-40 letters, digits, - or _ (it names the experiments)")
    targets = _targets(path, raw.get("targets"), experiments, params)
    return Sweep(str(path), name, targets, tuple(experiments), baseline or _head())


def _expand(path: Path, grid, listed) -> list[dict]:
    """The grid's combinations (in the order its keys are written), then the list's entries; no repeats."""
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise SweepError(f"{path}: grid must map each params key to a non-empty list of values, "
                         "e.g. candidates.MobileNetV2.train.dropout: [0.3, 0.5]")
    if not isinstance(listed, list) or not all(isinstance(entry, dict) and entry for entry in listed):
        raise SweepError(f"{path}: list must be a list of mappings of params keys to values, "
                         "e.g. - {candidates.Xception.train.learning_rate: 0.0003}")
    combinations = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())] if grid else []
    experiments = combinations + listed
    if not experiments:
        raise SweepError(f"{path}: no experiments; give a grid: or a list: of overrides")
    for index, overrides in enumerate(experiments):
        if overrides in experiments[:index]:
            raise SweepError(f"{path}: experiment {index} ({describe(overrides)}) repeats an earlier one")
    return experiments


def _leaf_keys(node, prefix: str = "") -> list[str]:
    if not isinstance(node, dict):
        return [prefix]
    return [key for name, child in node.items() for key in _leaf_keys(child, f"{prefix}{name}.")] if node else [prefix]


def _check_key(path: Path, key: str, params: dict, params_path: Path) -> None:
    node = params
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            known = [k.rstrip(".") for k in _leaf_keys(params)]
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else "; name a setting as its dotted path, e.g. train.patience"
            raise SweepError(f"{path}: {key} is not a setting in {params_path}{hint}")
        node = node[part]


def with_overrides(params: dict, overrides: dict) -> dict:
    """A deep copy of `params` with {"section.key.sub": value} overrides applied."""
    params = copy.deepcopy(params)
    for key, value in overrides.items():
        *parents, last = key.split(".")
        node = params
        for part in parents:
            node = node[part]
        node[last] = value
    return params


def _targets(path: Path, given, experiments: list[dict], params: dict) -> tuple[str, ...]:
    """The sweep's `dvc exp run` targets: as given, else train@ each candidate an override names (all candidates
    when the overrides are shared settings, such as augment.*)."""
    if given is not None:
        if not isinstance(given, list) or not all(isinstance(t, str) and t for t in given) or not given:
            raise SweepError(f"{path}: targets must be a list of dvc.yaml stages, e.g. [train@MobileNetV2]")
        return tuple(given)
    named = [key.split(".")[1] for overrides in experiments for key in overrides if key.startswith("candidates.")]
    shared = any(not key.startswith("candidates.") for overrides in experiments for key in overrides)
    candidates = list(params["candidates"]) if shared else list(dict.fromkeys(named))
    return tuple(f"train@{name}" for name in candidates)


def _head() -> str:
    result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    if result.returncode:
        raise SweepError("a sweep runs in a git clone of the project (its experiments start from HEAD); "
                         f"git rev-parse HEAD failed: {result.stderr.strip()}")
    return result.stdout.strip()
