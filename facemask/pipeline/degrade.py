"""Light and camera degradations of a photo: dark (a night photo), sensor noise, blur, heavy JPEG.

One implementation for two users: the evaluation slices (facemask.pipeline.slices) apply each at one fixed level
(the constants below); stage augment applies them to training copies at a level drawn from AUGMENT_LEVELS,
a range that holds the slice's level.
"""
import io

import numpy as np
from PIL import Image, ImageFilter

DEGRADATIONS = ("dark", "noise", "blur", "jpeg20")
DARK_GAMMA, DARK_GAIN, DARK_NOISE = 1.5, 0.3, 5.0  # a night photo: shadows crushed, 30% light, some grain
NOISE_SIGMA = 20.0  # Gaussian sensor noise, in 0-255 pixel levels
BLUR_RADIUS = 0.015  # Gaussian blur radius, as a fraction of the image's shorter side
JPEG_QUALITY = 20
# Augment's range per degradation (low, high), drawn uniformly: dark's light gain, noise's sigma, blur's
# radius fraction, JPEG's quality (whole numbers). The dark gamma is drawn from DARK_GAMMA_RANGE.
AUGMENT_LEVELS = {"dark": (0.2, 0.6), "noise": (10.0, 30.0), "blur": (0.008, 0.025), "jpeg": (10, 40)}
DARK_GAMMA_RANGE = (1.0, 2.0)


def darken(rgb: np.ndarray, rng: np.random.Generator, gain: float = DARK_GAIN, gamma: float = DARK_GAMMA) -> np.ndarray:
    """A night photo: `gain` of the light, shadows crushed by `gamma`, DARK_NOISE grain drawn from `rng`."""
    pixels = 255.0 * gain * (rgb.astype(np.float64) / 255.0) ** gamma + rng.normal(0.0, DARK_NOISE, rgb.shape)
    return _to_uint8(pixels)


def add_noise(rgb: np.ndarray, rng: np.random.Generator, sigma: float = NOISE_SIGMA) -> np.ndarray:
    """Gaussian sensor noise of `sigma` pixel levels, drawn from `rng`."""
    return _to_uint8(rgb.astype(np.float64) + rng.normal(0.0, sigma, rgb.shape))


def blur(rgb: np.ndarray, radius: float = BLUR_RADIUS) -> np.ndarray:
    """Gaussian blur of `radius` times the image's shorter side."""
    return np.asarray(Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(radius * min(rgb.shape[:2]))))


def jpeg(rgb: np.ndarray, quality: int = JPEG_QUALITY) -> np.ndarray:
    """The image encoded as JPEG at `quality` and decoded again."""
    encoded = io.BytesIO()
    Image.fromarray(rgb).save(encoded, format="JPEG", quality=quality)
    return np.asarray(Image.open(encoded).convert("RGB"))


def degrade(rgb: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """`rgb` (uint8) degraded as DEGRADATIONS names it, at the slices' level; the random ones draw from `rng`."""
    if kind == "dark":
        return darken(rgb, rng)
    if kind == "noise":
        return add_noise(rgb, rng)
    if kind == "blur":
        return blur(rgb)
    if kind == "jpeg20":
        return jpeg(rgb)
    raise ValueError(f"unknown degradation {kind!r}; one of {DEGRADATIONS}")


def random_degrade(rgb: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """`rgb` degraded by `kind` (a key of AUGMENT_LEVELS) at a level drawn from its range with `rng`."""
    low, high = AUGMENT_LEVELS[kind]
    if kind == "dark":
        return darken(rgb, rng, gain=rng.uniform(low, high), gamma=rng.uniform(*DARK_GAMMA_RANGE))
    if kind == "noise":
        return add_noise(rgb, rng, sigma=rng.uniform(low, high))
    if kind == "blur":
        return blur(rgb, radius=rng.uniform(low, high))
    return jpeg(rgb, quality=int(rng.integers(low, high + 1)))


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
