"""Read one section of params.yaml, with errors that say what to fix."""
from pathlib import Path

import yaml

from facemask import UserError

PARAMS_FILE = Path("params.yaml")


class ParamsError(UserError):
    """params.yaml is missing, malformed, or lacks a section a stage needs."""


def load_section(name: str, path: Path = PARAMS_FILE) -> dict:
    """Return section `name` of `path` as a dict."""
    try:
        params = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: not found; run from the project root, where params.yaml lives") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(params, dict) or not isinstance(params.get(name), dict):
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
