"""Image loading: every mode becomes RGB uint8, EXIF is applied, bad files raise a clear error."""
import numpy as np
import pytest
from PIL import Image

from facemask.core.images import REFRAMINGS, ImageError, load_rgb, reframe
from facemask.core.resize import load_batch, resizer

pytestmark = pytest.mark.unit  # the fast layer: make test-fast


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P", "CMYK", "LA", "I;16"])
def test_any_mode_loads_as_rgb_uint8(tmp_path, mode):
    path = tmp_path / f"img_{mode.replace(';', '')}.png" if mode != "CMYK" else tmp_path / "img.jpg"
    Image.new("RGB", (20, 10), (200, 100, 50)).convert(mode).save(path)
    pixels = load_rgb(path)
    assert pixels.shape == (10, 20, 3) and pixels.dtype == np.uint8


def test_16bit_grey_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "grey16.png"
    Image.fromarray(np.full((8, 8), 32768, dtype=np.uint16)).save(path)
    assert abs(int(load_rgb(path)[0, 0, 0]) - 128) <= 1


def test_transparent_pixels_become_white(tmp_path):
    path = tmp_path / "clear.png"
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(path)
    assert (load_rgb(path) == 255).all()


def test_exif_rotation_is_applied(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    Image.new("RGB", (30, 10), (10, 200, 10)).save(path, exif=exif)
    assert load_rgb(path).shape == (30, 10, 3)


def test_corrupt_file_raises_image_error_naming_it(tmp_path):
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    with pytest.raises(ImageError, match="broken.jpg"):
        load_rgb(path)


def test_oversized_image_is_refused_before_decoding(tmp_path):
    path = tmp_path / "big.png"
    Image.new("L", (300, 300)).save(path)
    with pytest.raises(ImageError, match="over the limit"):
        load_rgb(path, max_pixels=10_000)


def test_batch_matches_the_models_own_resize(tmp_path):
    """load_batch resizes exactly as the model's resize layer does, so batches and raw images agree."""
    path = tmp_path / "face.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 37, 3), dtype=np.uint8)).save(path)
    batch = load_batch([path], 24)
    direct = np.asarray(resizer(24)(load_rgb(path).astype(np.float32)))
    assert batch.shape == (1, 24, 24, 3)
    np.testing.assert_array_equal(batch[0], direct)
    np.testing.assert_array_equal(np.asarray(resizer(24)(batch)), batch)


def test_reframings_crop_tighter_or_add_a_border():
    rgb = np.random.default_rng(0).integers(1, 255, (100, 80, 3), dtype=np.uint8)
    assert np.array_equal(reframe(rgb, "tighter"), rgb[15:85, 12:68])
    edge, black = reframe(rgb, "wider_edge"), reframe(rgb, "wider_black")
    assert edge.shape == black.shape == (150, 120, 3)
    assert np.array_equal(edge[25:125, 20:100], rgb) and np.array_equal(black[25:125, 20:100], rgb)
    assert np.array_equal(edge[0, 20:100], rgb[0]) and not black[:25].any() and not black[:, :20].any()
    with pytest.raises(ValueError, match="unknown re-framing"):
        reframe(rgb, "sideways")


def test_load_batch_reframes_before_the_one_resize(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 255, (60, 60, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    for view in REFRAMINGS:
        expected = np.asarray(resizer(32)(reframe(rgb, view).astype(np.float32)))
        assert np.allclose(load_batch([tmp_path / "a.png"], 32, view)[0], expected)
