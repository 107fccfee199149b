"""The code each DVC stage depends on, derived from its imports: dvc.yaml lists it, this checks and writes it.

A stage's code deps are its module in stages/ and every facemask module it imports, directly or through
others (function-level imports too). Modules that only record a run (facemask.store, the MLflow pyfunc) are
left out: they change what MLflow holds, not what the stage writes. A stage whose cmd runs another module
(`python -m X`) is traced from X.

    python -m facemask.ops.dag            # exit 1 and list the differences when dvc.yaml is out of date
    python -m facemask.ops.dag --write    # rewrite the code deps in dvc.yaml (comments and other deps kept)
"""
import argparse
import ast
import re
import sys
from pathlib import Path

from facemask.core.stage import CODE_FOLDERS, DVC_YAML, ROOT, listed_code, stages

RECORDING = ("facemask.store", "facemask.use.pyfunc")


def module_file(name: str, root: Path = ROOT) -> Path | None:
    """The file of module `name` under root (a package's __init__.py), or None when it is not ours."""
    path = root.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path) -> set[str]:
    """The facemask modules `path` imports anywhere in it (`from facemask.x import y` counts y if it is a module)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("facemask"):
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names if alias.name.startswith("facemask")}
    return names


def code_deps(entry: Path, root: Path = ROOT) -> list[str]:
    """`entry` and every non-empty facemask module it reaches, as sorted paths relative to root."""
    seen, todo = {entry}, [entry]
    while todo:
        for name in imported_modules(todo.pop()):
            path = module_file(name, root)
            if path and path not in seen and not name.startswith(RECORDING):
                seen.add(path)
                todo.append(path)
    return sorted(str(path.relative_to(root)) for path in seen if path.stat().st_size)


def entry_module(cmd: str) -> str:
    """The module a stage's cmd runs: `python -m stages.train ${key}` -> stages.train."""
    found = re.search(r"python -m ([\w.]+)", cmd)
    if not found:
        raise ValueError(f"dvc.yaml: cannot tell which module runs {cmd!r}")
    return found.group(1)


def derived_code(stage: dict, root: Path = ROOT) -> list[str]:
    entry = module_file(entry_module(stage["cmd"]), root)
    if entry.name == "__init__.py":  # python -m package runs its __main__
        entry = entry.with_name("__main__.py")
    return code_deps(entry, root)


def differences(dvc_yaml: Path = DVC_YAML) -> dict[str, tuple[list, list]]:
    """{stage: (missing from dvc.yaml, listed but not imported)} for every stage whose code deps are off."""
    out = {}
    for name, stage in stages(dvc_yaml).items():
        listed, derived = set(listed_code(stage)), set(derived_code(stage, dvc_yaml.parent))
        if listed != derived:
            out[name] = (sorted(derived - listed), sorted(listed - derived))
    return out


def write(dvc_yaml: Path = DVC_YAML) -> None:
    """Rewrite each stage's code deps in place: the derived list first, its other deps after (comments kept)."""
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    document = yaml.load(dvc_yaml.read_text())
    for definition in document["stages"].values():
        stage = definition.get("do", definition)
        others = [dep for dep in stage.get("deps", []) if not str(dep).startswith(CODE_FOLDERS)]
        stage["deps"] = derived_code(stage, dvc_yaml.parent) + others
    with dvc_yaml.open("w") as out:
        yaml.dump(document, out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m facemask.ops.dag", description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite dvc.yaml's code deps")
    args = parser.parse_args(argv)
    if args.write:
        write()
        return 0
    for name, (missing, extra) in differences().items():
        print(f"{name}: missing {missing or '-'}; not imported {extra or '-'}")
    if differences():
        print("dvc.yaml's code deps are out of date: python -m facemask.ops.dag --write", file=sys.stderr)
        return 1
    print("dvc.yaml's code deps match the stages' imports")
    return 0


if __name__ == "__main__":
    sys.exit(main())
