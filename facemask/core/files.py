"""Small CSV/JSON helpers shared by the stages; every write goes through a temp file and a rename."""
import csv
import hashlib
import json
import os
from pathlib import Path


def md5sum(path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_csv(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def write_csv(path, rows: list[dict], fieldnames=None) -> None:
    fieldnames = fieldnames or (list(rows[0]) if rows else [])
    tmp = _tmp(path)
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fieldnames, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def write_json(path, data) -> None:
    tmp = _tmp(path)
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


def read_json(path) -> dict:
    return json.loads(Path(path).read_text())


def _tmp(path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(path.name + ".tmp")


def is_url(source: str) -> bool:
    """Whether a source setting is an http(s) URL rather than a path."""
    return source.startswith(("http://", "https://"))
