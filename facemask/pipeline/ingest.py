"""Stage ingest: copy a class-folder dataset into data/raw, validating every file.

The source (params ingest.source) is a folder, a .zip/.tar(.gz) archive, or an http(s) URL to one.
It is only read, never modified. Writes data/raw/images/<class>/*, data/raw/manifest.csv and
data/raw/ingest_report.csv: every skipped file with the reason, and every kept file worth a note
(an image whose extension does not match its content: its bytes decide how it is read).
"""
import http.client
import shutil
import tarfile
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from facemask.core import CLASSES, UserError
from facemask.core.files import is_url, md5sum, read_csv
from facemask.core.images import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_SIDE,
    IMAGE_SUFFIXES,
    SUFFIX_FORMATS,
    ImageError,
    content_format,
    load_rgb,
)
from facemask.core.progress import bar

OUT_DIR = Path("data/raw")
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
OWN_COLUMNS = ("file", "label", "md5", "width", "height")
REPORT_COLUMNS = ("file", "label", "action", "reason")
DOWNLOAD_TIMEOUT_S = 30


class IngestError(UserError):
    """The dataset cannot be ingested as given; the message says what to change."""


def ingest(class_root: Path, out_dir: Path, min_size: int = DEFAULT_MIN_SIDE, max_pixels: int = DEFAULT_MAX_PIXELS,
           metadata: dict | None = None) -> tuple[list[dict], list[dict]]:
    """Validate and copy class_root/<class>/* into out_dir/images; return (manifest rows, report rows).

    Report rows (file, label, action, reason) list every skipped file and every kept file with a note.
    """
    _check_class_folders(class_root)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise IngestError(f"{out_dir}: already holds files; ingest writes only into an empty folder "
                          "(`dvc repro` empties it first; by hand, delete it yourself)")
    metadata = metadata or {}
    kept, report, first_by_md5 = [], [], {}
    files = [(path, label) for label in CLASSES for path in sorted((class_root / label).iterdir())]
    for path, label in bar(files, "ingest", unit="file"):
        row, reason = _inspect(path, label, min_size, max_pixels)
        if reason is None and row["md5"] in first_by_md5:
            earlier = first_by_md5[row["md5"]]
            if earlier["label"] != label:
                raise IngestError(
                    f"{path}: the same picture is also {earlier['source_file']} (class {earlier['label']}); "
                    "one picture cannot have two labels - remove it from one class folder"
                )
            reason = f"duplicate of {earlier['source_file']}"
        if reason is not None:
            report.append({"file": str(path), "label": label, "action": "skipped", "reason": reason})
            continue
        first_by_md5[row["md5"]] = {**row, "source_file": str(path)}
        kept.append(row)
        detected = content_format(path)
        if detected not in SUFFIX_FORMATS[path.suffix.lower()]:
            report.append({"file": str(path), "label": label, "action": "kept",
                           "reason": f"a {detected} image named {path.suffix}; read as {detected}"})
    _check_every_class_kept(kept, report)
    _copy(class_root, out_dir, kept)
    for row in kept:
        extra = metadata.get((row["label"], Path(row["file"]).name), {})
        row.update({k: v for k, v in extra.items() if k not in OWN_COLUMNS})
    return kept, report


def _check_class_folders(class_root: Path) -> None:
    folders = {p.name for p in class_root.iterdir() if p.is_dir()}
    unknown = sorted(folders - set(CLASSES))
    if unknown:
        raise IngestError(f"{class_root}: unknown class folder(s) {unknown}; the classes are {list(CLASSES)}")
    for label in CLASSES:
        folder = class_root / label
        if not folder.is_dir() or not any(folder.iterdir()):
            raise IngestError(f"{folder}: missing or empty; every class needs images")


def _check_every_class_kept(kept: list[dict], report: list[dict]) -> None:
    """Refuse to go on when every file of a class was skipped: training needs images of each class."""
    kept_labels = {row["label"] for row in kept}
    skipped = {label: [r for r in report if r["label"] == label] for label in CLASSES if label not in kept_labels}
    if skipped:
        details = "; ".join(f"{label} (all {len(rows)} file(s) skipped, e.g. {rows[0]['file']}: {rows[0]['reason']})"
                            for label, rows in skipped.items())
        raise IngestError(f"no usable images in {details}. Every class needs at least one readable image of "
                          "at least ingest.min_size pixels a side: add such images or lower ingest.min_size")


def _inspect(path: Path, label: str, min_size: int, max_pixels: int) -> tuple[dict, str | None]:
    """Return (manifest row, None) for a usable image, or (partial row, reason to skip it)."""
    if path.is_dir():
        return {}, "a folder; only the files directly inside a class folder are read"
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return {}, f"not an image file name (extensions: {', '.join(sorted(IMAGE_SUFFIXES))})"
    try:
        pixels = load_rgb(path, max_pixels=max_pixels)
    except ImageError as err:
        return {}, str(err).removeprefix(f"{path}: ")
    height, width = pixels.shape[:2]
    if min(width, height) < min_size:
        return {}, f"{width}x{height} is smaller than ingest.min_size={min_size}"
    file = f"images/{label}/{path.name}"
    return {"file": file, "label": label, "md5": md5sum(path), "width": width, "height": height}, None


def _copy(class_root: Path, out_dir: Path, rows: list[dict]) -> None:
    for row in rows:
        target = out_dir / row["file"]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(class_root / row["label"] / target.name, target)


def find_class_root(folder: Path) -> Path:
    """The folder holding the class folders: the folder itself, or one or two levels below it."""
    candidates = [folder, *sorted(folder.glob("*/")), *sorted(folder.glob("*/*/"))]
    for candidate in candidates:
        if candidate.is_dir() and any((candidate / label).is_dir() for label in CLASSES):
            return candidate
    raise IngestError(f"{folder}: no class folders found; expected {list(CLASSES)} in it or one or two levels below")


def load_metadata(folder: Path, class_root: Path) -> dict:
    """metadata.csv beside or above the class folders, keyed by (label, file name)."""
    for candidate in (class_root / "metadata.csv", folder / "metadata.csv"):
        if candidate.is_file():
            return {(row.get("label", ""), PurePosixPath(row.get("file", "")).name): row for row in read_csv(candidate)}
    return {}


def check_local_source(source: str) -> Path:
    """The path of a local `source`; an IngestError that says how to provide it when it is missing."""
    path = Path(source)
    if not path.exists():
        raise IngestError(
            f"ingest.source={source} does not exist. `python -m facemask.ops.get_data` (the first step of `make run`) "
            "gets it from the DVC remote or the data.folder setting; or set ingest.source in params.yaml to a folder "
            f"of class folders {list(CLASSES)}, a .zip/.tar.gz archive or an http(s) URL"
        )
    return path


def materialise(source: str, workdir: Path) -> Path:
    """Return a local folder for `source`: the folder itself, an extracted archive, or a downloaded one."""
    if is_url(source):
        archive = workdir / PurePosixPath(source.split("?")[0]).name
        try:
            with urllib.request.urlopen(source, timeout=DOWNLOAD_TIMEOUT_S) as response, open(archive, "wb") as out:
                shutil.copyfileobj(response, out)
        except (OSError, ValueError, http.client.HTTPException) as err:
            raise IngestError(
                f"ingest.source={source} cannot be downloaded ({err}); when offline, download it elsewhere "
                "and set ingest.source in params.yaml to the local folder or archive"
            ) from None
        return extract(archive, workdir / "extracted")
    path = check_local_source(source)
    if path.is_file():
        return extract(path, workdir / "extracted")
    return path


def extract(archive: Path, target: Path) -> Path:
    """Extract a zip or tar archive, refusing members with absolute paths or '..' (zip-slip) and links out."""
    name = archive.name.lower()
    if not name.endswith(ARCHIVE_SUFFIXES):
        raise IngestError(f"{archive}: not a folder or a supported archive ({', '.join(ARCHIVE_SUFFIXES)})")
    target.mkdir(parents=True)
    try:
        if name.endswith(".zip"):
            with zipfile.ZipFile(archive) as zipped:
                for member in zipped.namelist():
                    _refuse_unsafe(archive, member)
                zipped.extractall(target)
        else:
            with tarfile.open(archive) as tarred:
                for member in tarred.getnames():
                    _refuse_unsafe(archive, member)
                tarred.extractall(target, filter="data")  # also refuses links that point outside
    except tarfile.FilterError as err:
        raise IngestError(f"{archive}: {err}; refused") from None
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as err:
        raise IngestError(f"{archive}: not a readable archive ({type(err).__name__}: {err}); "
                          "download it again or point ingest.source at the extracted folder") from None
    return target


def _refuse_unsafe(archive: Path, member: str) -> None:
    parts = PurePosixPath(member.replace("\\", "/")).parts
    if member.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
        raise IngestError(f"{archive}: member '{member}' would be written outside the target folder; refused")
