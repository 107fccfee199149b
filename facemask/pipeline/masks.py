"""Fabric masks drawn on aligned face crops (UTKFace's: eyes near 30% of the height, nose tip near 57%,
mouth near 70%, chin at the bottom edge): worn properly, or worn wrong as people do in photos.

stages.synthesize draws `worn` masks for training; the evaluation slices (facemask.pipeline.slices) draw the
wrong placements on test-split faces, whose label stays *without mask* (the original project's rule).
"""
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# Mask outline on an aligned face, as (x, y) fractions of width and height: nose bridge to chin.
MASK_OUTLINE = ((0.17, 0.53), (0.35, 0.47), (0.50, 0.44), (0.65, 0.47), (0.83, 0.53), (0.86, 0.70),
                (0.76, 0.86), (0.62, 0.95), (0.50, 0.97), (0.38, 0.95), (0.24, 0.86), (0.15, 0.70))
COLOURS = ((168, 200, 232), (236, 236, 240), (32, 32, 38), (122, 124, 134), (42, 52, 92), (222, 172, 184),
           (110, 170, 150))
# Where the mask sits: every y fraction of the outline (and its pleats) becomes y * scale + shift.
# worn: nose bridge to chin. below_nose: the top edge under the nose tip, the mouth (half) covered.
# under_chin: pulled down onto the chin and neck, squashed into a band; nose and mouth uncovered.
PLACEMENTS = {"worn": (1.0, 0.0), "below_nose": (1.0, 0.21), "under_chin": (0.5, 0.64)}
WORN_WRONG = ("below_nose", "under_chin")


def draw_mask(pixels: np.ndarray, rng: np.random.Generator, placement: str = "worn") -> np.ndarray:
    """Draw a fabric mask (random colour, jittered outline, pleats, ear loops) where `placement` puts it."""
    scale, shift = PLACEMENTS[placement]
    height, width = pixels.shape[:2]
    jitter = rng.uniform(-0.025, 0.025, (len(MASK_OUTLINE), 2)) + rng.uniform(-0.02, 0.02, 2)
    outline = [((x + dx) * width, ((y + dy) * scale + shift) * height)
               for (x, y), (dx, dy) in zip(MASK_OUTLINE, jitter, strict=True)]
    colour = np.array(COLOURS[rng.integers(len(COLOURS))]) * rng.uniform(0.85, 1.1)
    layer = Image.new("RGB", (width, height), tuple(int(c) for c in np.clip(colour, 0, 255)))
    alpha = Image.new("L", (width, height), 0)
    ImageDraw.Draw(alpha).polygon(outline, fill=255)
    draw = ImageDraw.Draw(layer)
    shade = tuple(int(c) for c in np.clip(colour * 0.8, 0, 255))
    for fraction in (0.60, 0.71, 0.82):  # pleats
        y = (fraction * scale + shift) * height + rng.uniform(-2, 2)
        draw.line([(0.2 * width, y), (0.8 * width, y)], fill=shade, width=max(1, width // 100))
    face = Image.fromarray(pixels)
    loops = ImageDraw.Draw(face)
    for side, edge in ((outline[0], 0.0), (outline[4], 1.0)):
        loops.line([side, (edge * width, 0.45 * height)], fill=tuple(int(c) for c in colour), width=max(1, width // 80))
    # A vertical light gradient and soft edges make the fabric look less like a flat sticker.
    light = np.linspace(1.08, 0.85, height)[:, None, None]
    layer = Image.fromarray(np.clip(np.asarray(layer) * light, 0, 255).astype(np.uint8))
    face.paste(layer, (0, 0), alpha.filter(ImageFilter.GaussianBlur(max(1, width // 150))))
    return np.asarray(face)
