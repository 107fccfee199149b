"""Bad input, one test each: a clear message naming the file (or a line in the ingest report), never a
traceback, never a changed source. The real stage runs in a subprocess where the user would see it."""
import io
import socket
import struct
import tarfile
import zipfile
import zlib

import keras
import numpy as np
import pytest
from PIL import Image, ImageFile

from facemask.core.files import read_csv
from facemask.core.images import ImageError, load_rgb
from facemask.core.model import load
from facemask.pipeline.ingest import IngestError, extract, ingest
from tests.conftest import REPO, tree_digest
from tests.pipeline_support import assert_user_error, run_stage, write_params

COLOUR = (200, 100, 50)


def _png(path, side: int, colour_type: int, bit_depth: int, row: bytes) -> None:
    """A real PNG of side x side pixels, every row `row`, streamed so a 20000x20000 one stays ~100 KB."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(b"\0" + row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, bit_depth, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))


def _noise(path, size=(64, 64), **save_args) -> None:
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (*size[::-1], 3), dtype=np.uint8)).save(path, **save_args)


@pytest.mark.unit
def test_truncated_jpeg_names_the_file(tmp_path):
    path = tmp_path / "cut.jpg"
    _noise(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ImageError, match=r"cut\.jpg: not a readable image .*truncated"):
        load_rgb(path)


@pytest.mark.unit
def test_png_named_jpg_is_kept_read_by_content_and_noted(tiny_dataset, tmp_path):
    path = tiny_dataset / "with_mask_old" / "really_a_png.jpg"
    _noise(path, format="PNG")
    rows, report = ingest(tiny_dataset, tmp_path / "raw")
    assert "images/with_mask_old/really_a_png.jpg" in {r["file"] for r in rows}
    assert report == [{"file": str(path), "label": "with_mask_old", "action": "kept",
                       "reason": "a PNG image named .jpg; read as PNG"}]
    np.testing.assert_array_equal(load_rgb(path), np.asarray(Image.open(path).convert("RGB")))


@pytest.mark.parametrize("name, make, expected", [
    ("grey.png", lambda: Image.new("RGB", (8, 8), COLOUR).convert("L"), (124, 124, 124)),
    ("palette.png", lambda: Image.new("RGB", (8, 8), COLOUR).convert("P", palette=Image.Palette.ADAPTIVE), COLOUR),
    ("palette.gif", lambda: Image.new("RGB", (8, 8), COLOUR).convert("P", palette=Image.Palette.ADAPTIVE), COLOUR),
    ("opaque.png", lambda: Image.new("RGBA", (8, 8), (*COLOUR, 255)), COLOUR),
    ("half_clear.png", lambda: Image.new("RGBA", (8, 8), (*COLOUR, 128)), (227, 177, 152)),  # over white
    ("cmyk.jpg", lambda: Image.new("RGB", (8, 8), COLOUR).convert("CMYK"), COLOUR),
    ("cmyk.tif", lambda: Image.new("RGB", (8, 8), COLOUR).convert("CMYK"), COLOUR),
    ("grey16.png", lambda: Image.fromarray(np.full((8, 8), 200 * 257, dtype=np.uint16)), (200, 200, 200)),
])
@pytest.mark.unit
def test_every_image_mode_becomes_the_right_rgb(tmp_path, name, make, expected):
    path = tmp_path / name
    make().save(path)
    pixels = load_rgb(path)
    assert pixels.dtype == np.uint8 and pixels.shape == (8, 8, 3)
    assert np.abs(pixels.astype(int) - expected).max() <= (6 if name.endswith(".jpg") else 1), pixels[0, 0]


@pytest.mark.unit
def test_48_bit_rgb_png_becomes_8_bit_rgb(tmp_path):
    path = tmp_path / "rgb16.png"
    _png(path, 8, colour_type=2, bit_depth=16, row=struct.pack(">3H", *(c * 257 for c in COLOUR)) * 8)
    assert (load_rgb(path) == COLOUR).all()


@pytest.mark.unit
def test_exif_rotation_turns_the_pixels_not_just_the_shape(tmp_path):
    """Stored 30x10 with red left, blue right; orientation 6 (rotate 90 clockwise) puts red on top."""
    stored = np.zeros((10, 30, 3), dtype=np.uint8)
    stored[:, :15] = (255, 0, 0)
    stored[:, 15:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    pixels = load_rgb(path).astype(int)
    assert pixels.shape == (30, 10, 3)
    assert np.abs(pixels[2, 5] - (255, 0, 0)).max() < 30 and np.abs(pixels[-3, 5] - (0, 0, 255)).max() < 30


@pytest.mark.unit
def test_an_image_thin_in_one_direction_is_below_min_size(tiny_dataset, tmp_path):
    Image.new("RGB", (40, 8)).save(tiny_dataset / "without_mask_young" / "strip.png")
    _, report = ingest(tiny_dataset, tmp_path / "raw", min_size=16)
    assert [r["reason"] for r in report] == ["40x8 is smaller than ingest.min_size=16"]


@pytest.mark.unit
@pytest.mark.parametrize("side", [8000, 20000])  # over ingest.max_pixels / over Pillow's own bomb guard too
def test_decompression_bomb_is_refused_without_decoding(tmp_path, monkeypatch, side):
    path = tmp_path / "bomb.png"
    _png(path, side, colour_type=0, bit_depth=8, row=bytes(side))
    assert path.stat().st_size < 1_000_000  # decoded it would be side*side*3 bytes of RGB

    def decode(*args, **kwargs):
        raise AssertionError("the bomb was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", decode)
    with pytest.raises(ImageError, match=r"bomb\.png: .*refused without decoding it"):
        load_rgb(path)


@pytest.mark.unit
def test_a_folder_inside_a_class_folder_is_skipped_with_the_reason(tiny_dataset, tmp_path):
    (tiny_dataset / "with_mask_young" / "more").mkdir()
    _, report = ingest(tiny_dataset, tmp_path / "raw")
    assert [r["reason"] for r in report] == ["a folder; only the files directly inside a class folder are read"]


@pytest.mark.parametrize("kind, member", [("zip", "/tmp/escape.png"), ("tar", "../escape.png"),
                                          ("tar", "/tmp/escape.png"), ("zip", "C:/escape.png")])
@pytest.mark.unit
def test_archive_members_outside_the_target_are_refused(tmp_path, kind, member):
    archive = tmp_path / f"evil.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(archive, "w") as zipped:
            zipped.writestr(member, b"x")
    else:
        info = tarfile.TarInfo(member)  # TarInfo keeps a leading "/" (TarFile.add would strip it)
        info.size = 1
        with tarfile.open(archive, "w") as tarred:
            tarred.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(IngestError, match="would be written outside the target folder; refused"):
        extract(archive, tmp_path / "out")
    assert not list((tmp_path / "out").iterdir())


@pytest.mark.unit
@pytest.mark.parametrize("target", ["/etc/passwd", "../../../etc/passwd"])
def test_a_tar_link_pointing_outside_is_refused(tmp_path, target):
    archive = tmp_path / "links.tar"
    link = tarfile.TarInfo("dataset/with_mask_old/passwd.png")
    link.type, link.linkname = tarfile.SYMTYPE, target
    with tarfile.open(archive, "w") as tarred:
        tarred.addfile(link)
    with pytest.raises(IngestError, match=r"links\.tar: 'dataset/with_mask_old/passwd.png' .*link.*; refused"):
        extract(archive, tmp_path / "out")


@pytest.mark.unit
@pytest.mark.parametrize("name", ["data.zip", "data.tar.gz"])
def test_a_damaged_archive_says_to_download_it_again(tiny_dataset, tmp_path, name):
    archive = tmp_path / name
    if name.endswith(".zip"):
        with zipfile.ZipFile(archive, "w") as zipped:
            for path in tiny_dataset.rglob("*.png"):
                zipped.write(path, path.relative_to(tiny_dataset))
    else:
        with tarfile.open(archive, "w:gz") as tarred:
            tarred.add(tiny_dataset, arcname="dataset")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(IngestError, match=f"{name}: not a readable archive .*download it again"):
        extract(archive, tmp_path / "out")


def test_a_model_file_with_code_in_it_is_refused(tmp_path):
    """facemask.core.model.load uses Keras safe mode: a Lambda layer (pickled Python code) is not run."""
    inputs = keras.Input((2,))
    keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs)).save(tmp_path / "evil.keras")
    with pytest.raises(ValueError, match="safe_mode"):
        load(tmp_path / "evil.keras")


@pytest.mark.unit
def test_nothing_unpickles_or_loads_unsafely():
    sources = [p for folder in ("facemask", "stages") for p in (REPO / folder).glob("*.py")]
    text = "\n".join(p.read_text() for p in sources)
    for unsafe in ("import pickle", "allow_pickle=True", "safe_mode=False", "joblib", "cloudpickle"):
        assert unsafe not in text, unsafe


# --- the real ingest stage, run as the user runs it -------------------------------------------------------------

def _bad_dataset(root):
    """A generated dataset plus one file of each kind ingest must skip (file name -> expected reason)."""
    folder = root / "with_mask_old"
    _noise(folder / "cut.jpg")
    (folder / "cut.jpg").write_bytes((folder / "cut.jpg").read_bytes()[:1500])
    (folder / "notes.jpg").write_text("not a picture")
    (folder / "empty.png").write_bytes(b"")
    Image.new("RGB", (1, 1)).save(folder / "dot.png")
    Image.new("RGB", (40, 8)).save(folder / "strip.png")
    _png(folder / "bomb.png", 8000, colour_type=0, bit_depth=8, row=bytes(8000))
    (folder / "readme.txt").write_text("about this folder")
    (folder / "copy.png").write_bytes((folder / "with_mask_old_001.png").read_bytes())
    return {  # files are read in sorted order: copy.png comes first, so the original is the duplicate
        "bomb.png": "8000x8000 pixels is over the limit of 40000000; refused without decoding it",
        "cut.jpg": "not a readable image (OSError: image file is truncated",
        "dot.png": "1x1 is smaller than ingest.min_size=16",
        "empty.png": "not a readable image (UnidentifiedImageError: cannot identify image file",
        "notes.jpg": "not a readable image (UnidentifiedImageError: cannot identify image file",
        "readme.txt": "not an image file name (extensions: ",
        "strip.png": "40x8 is smaller than ingest.min_size=16",
        "with_mask_old_001.png": f"duplicate of {folder / 'copy.png'}",
    }


def test_ingest_stage_skips_and_reports_every_bad_file_and_never_touches_the_source(tiny_dataset, tmp_path):
    expected = _bad_dataset(tiny_dataset)
    before = tree_digest(tiny_dataset)
    write_params(tmp_path / "project", {"ingest.source": str(tiny_dataset), "ingest.min_size": 16})
    result = run_stage(tmp_path / "project", "ingest")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "kept 24 images" in result.stdout and "skipped 8" in result.stdout, result.stdout
    report = {r["file"].rsplit("/", 1)[-1]: r for r in read_csv(tmp_path / "project/data/raw/ingest_report.csv")}
    assert set(report) == set(expected)
    for name, reason in expected.items():
        assert report[name]["action"] == "skipped" and report[name]["reason"].startswith(reason), report[name]
    assert tree_digest(tiny_dataset) == before


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _zip_slip(tiny_dataset, tmp_path) -> dict:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("/tmp/facemask_escape.jpg", (tiny_dataset / "with_mask_old" / "with_mask_old_000.jpg").read_bytes())
    return {"ingest.source": str(archive)}


def _two_labels(tiny_dataset, tmp_path) -> dict:
    picture = tiny_dataset / "with_mask_old" / "with_mask_old_001.png"
    (tiny_dataset / "without_mask_old" / "also_me.png").write_bytes(picture.read_bytes())
    return {"ingest.source": str(tiny_dataset)}


@pytest.mark.parametrize("setup, fragments", [
    (_two_labels, ["also_me.png: the same picture is also", "one picture cannot have two labels"]),
    (_zip_slip, ["evil.zip: member '/tmp/facemask_escape.jpg' would be written outside the target folder; refused"]),
    (lambda *_: {"ingest.source": f"http://127.0.0.1:{_closed_port()}/facemask.zip"},
     ["cannot be downloaded", "Connection refused", "when offline, download it elsewhere"]),
    (lambda *_: {"ingest.min_size": "big", "candidates.ResNet50": {"backbones": ["ResNet50"], "image_size": 224}},
     ["ingest.min_size must be a whole number >= 1, got 'big'",
      "candidates.ResNet50: unknown backbone 'ResNet50'; choose from: MobileNetV2, Xception, DenseNet169, TinyNet"]),
], ids=["same-picture-two-labels", "zip-slip", "unreachable-url", "bad-params"])
def test_ingest_stage_refuses_with_one_clear_line(tiny_dataset, tmp_path, setup, fragments):
    changes = {"ingest.source": str(tiny_dataset), **setup(tiny_dataset, tmp_path)}
    before = tree_digest(tiny_dataset)
    write_params(tmp_path / "project", changes)
    assert_user_error(run_stage(tmp_path / "project", "ingest"), "ingest", *fragments)
    assert not (tmp_path / "project" / "data" / "raw" / "manifest.csv").exists()
    assert tree_digest(tiny_dataset) == before


@pytest.mark.parametrize("module, args, fragment", [
    ("train", [], "usage: python -m stages.train CANDIDATE"),
    ("train", ["MobileNetV2"], "data/features/MobileNetV2/meta.json: not found; run `dvc repro features@MobileNetV2`"),
    ("evaluate", ["MobileNetV2"],
     "models/candidates/MobileNetV2/model.keras: not found; run `dvc repro train@MobileNetV2`"),
], ids=["no-candidate", "train-before-features", "evaluate-before-train"])
def test_a_stage_run_by_hand_before_its_inputs_exist_says_what_to_run(tmp_path, module, args, fragment):
    write_params(tmp_path, {})
    assert_user_error(run_stage(tmp_path, module, *args), module, fragment)


def test_ingest_names_a_missing_source_and_how_to_get_it(tmp_path):
    write_params(tmp_path, {"ingest.source": str(tmp_path / "nowhere")})
    assert_user_error(run_stage(tmp_path, "ingest"), "ingest", "nowhere does not exist", "facemask.ops.get_data")
    assert not (tmp_path / "data").exists()
