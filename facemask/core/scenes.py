"""Camera frames made from photos: faces placed in a 640x480 indoor scene at a chosen size, then the
camera's light, blur, sensor noise and JPEG compression. The detection benchmark (benchmarks/bench_detect.py)
measures detectors on them; each placed photo's box is the truth.
"""
import io

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

FRAME_SIZE = (640, 480)  # width, height
# Skin tones for drawn hands (non-face material a detector must not box).
SKIN = ((241, 194, 167), (224, 172, 138), (198, 134, 102), (141, 85, 54), (92, 58, 40))


def room(rng: np.random.Generator, size=FRAME_SIZE) -> np.ndarray:
    """An indoor background: a lit wall, a floor, a door or window and shelves with textured surfaces."""
    width, height = size
    wall = rng.uniform(90, 230, 3)
    light = np.linspace(rng.uniform(0.7, 1.1), rng.uniform(0.7, 1.1), width)[None, :, None]
    pixels = np.broadcast_to(wall, (height, width, 3)) * light
    pixels = pixels + rng.normal(0, 4, (height, width, 1))  # plaster texture
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    floor = int(height * rng.uniform(0.7, 0.9))
    draw.rectangle((0, floor, width, height), fill=tuple(int(c) for c in rng.uniform(40, 160, 3)))
    for _ in range(int(rng.integers(2, 6))):  # doors, windows, shelves, pictures
        left, top = rng.uniform(0, width - 40), rng.uniform(0, floor - 40)
        right, bottom = left + rng.uniform(30, 220), top + rng.uniform(20, 260)
        colour = tuple(int(c) for c in rng.uniform(20, 250, 3))
        draw.rectangle((left, top, right, bottom), fill=colour, outline=tuple(c // 2 for c in colour),
                       width=int(rng.integers(1, 6)))
        for line in range(int(rng.integers(0, 5))):  # slats, panes, book spines
            y = top + (bottom - top) * (line + 1) / 6
            draw.line((left, y, right, y), fill=tuple(c // 2 for c in colour), width=2)
    return np.asarray(image.filter(ImageFilter.GaussianBlur(0.6)))


def hand(rng: np.random.Generator, side: int) -> Image.Image:
    """A drawn open hand (palm, fingers and thumb in one skin tone), turned, on a transparent `side` x `side` square."""
    image = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    tone = np.array(SKIN[rng.integers(len(SKIN))]) * rng.uniform(0.8, 1.1)
    fill = (*(int(c) for c in np.clip(tone, 0, 255)), 255)
    s = side / 100
    draw.ellipse((25 * s, 45 * s, 75 * s, 98 * s), fill=fill)
    for i, length in enumerate((38, 46, 44, 36)):
        x = 27 * s + i * 12 * s
        draw.rounded_rectangle((x, (58 - length) * s, x + 10 * s, 62 * s), radius=5 * s, fill=fill)
    draw.rounded_rectangle((8 * s, 50 * s, 30 * s, 62 * s), radius=5 * s, fill=fill)  # thumb
    return image.rotate(float(rng.uniform(-40, 40)), resample=Image.Resampling.BILINEAR)


def place(frame: np.ndarray, patch, box: tuple) -> np.ndarray:
    """`frame` with `patch` (an RGB array, or a PIL image with alpha) resized into box (x, y, w, h)."""
    x, y, w, h = box
    image = Image.fromarray(frame)
    picture = patch if isinstance(patch, Image.Image) else Image.fromarray(patch)
    picture = picture.resize((w, h), Image.Resampling.BILINEAR)
    image.paste(picture, (x, y), picture if picture.mode == "RGBA" else None)
    return np.asarray(image)


def free_boxes(rng: np.random.Generator, shapes: list[tuple], size=FRAME_SIZE, tries: int = 200) -> list[tuple] | None:
    """A non-overlapping (x, y, w, h) box inside the frame for each (w, h) in `shapes`; None if they do not fit."""
    width, height = size
    boxes = []
    for w, h in shapes:
        for _ in range(tries):
            box = (int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h)
            if all(_apart(box, other) for other in boxes):
                boxes.append(box)
                break
        else:
            return None
    return boxes


def camera(frame: np.ndarray, rng: np.random.Generator, light: float = 1.0, blur: float = 0.0,
           noise: float = 0.0, jpeg_quality: int = 90) -> np.ndarray:
    """The frame as a camera delivers it: exposure `light`, lens `blur` (Gaussian radius), sensor `noise`
    (Gaussian, in grey levels) and JPEG compression at `jpeg_quality`."""
    image = Image.fromarray(frame)
    if blur > 0:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    pixels = np.asarray(image, np.float32) * light + rng.normal(0, noise, frame.shape)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=int(jpeg_quality))
    return np.asarray(Image.open(buffer).convert("RGB"))


def centre_in(box, placed: tuple) -> bool:
    """Whether the centre of `box` (x, y, w, h, anything after is ignored) lies in the `placed` (x, y, w, h) box:
    how the benchmark and the camera slice tell that a detector found a placed face."""
    x, y, w, h = placed
    return x <= box[0] + box[2] / 2 <= x + w and y <= box[1] + box[3] / 2 <= y + h


def _apart(a: tuple, b: tuple, gap: int = 8) -> bool:
    return (a[0] + a[2] + gap <= b[0] or b[0] + b[2] + gap <= a[0]
            or a[1] + a[3] + gap <= b[1] or b[1] + b[3] + gap <= a[1])
