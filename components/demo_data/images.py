"""Handwritten digit pictures rendered from scikit-learn's bundled 8x8 digits.

A glyph is drawn straight onto the output canvas: every canvas pixel is mapped back through a random
similarity transform (rotation, scale, shift) into the 8x8 source grid and sampled with a cubic spline,
so upsampling and geometric augmentation are one smooth interpolation. A soft threshold on the
interpolated ink then sets the stroke thickness, and `colorize` paints ink and paper with a little
sensor noise.

Writers: the first `EVAL_POOL_START` source images feed training examples and the rest feed held-back
evaluation examples, so evaluation digits come from handwriting samples never seen in training.
"""

from __future__ import annotations

import dataclasses
import functools
import io
from typing import Dict, Tuple

import numpy as np
from PIL import Image
from scipy import ndimage

IMAGE_SIZE = 64
"""Side of every generated image and video frame (pixels); matches `MediaConfig.image_size`."""

EVAL_POOL_START = 1437
"""Source images with index >= this (the last 20% of the 1,797) are reserved for eval examples."""

IMAGE_FORMATS: Dict[str, Tuple[str, dict]] = {
    # extension -> (PIL format, save options); all decodable by PIL and tf.io.decode_image.
    "png": ("PNG", {"optimize": False}),
    "jpg": ("JPEG", {"quality": 92}),
    "bmp": ("BMP", {}),
    "gif": ("GIF", {}),
}


@functools.lru_cache(maxsize=1)
def _digits() -> Tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # deferred: importing sklearn costs ~1 s

    bunch = load_digits()
    # float32 [1797, 8, 8] ink in [0, 1] (source values are 0..16), int64 [1797] digit
    return (bunch.images / 16.0).astype(np.float32), bunch.target.astype(np.int64)


def source_pool(digit: int, held_back: bool) -> np.ndarray:
    """Indices (int64 [n]) of the source images of `digit` in the training or held-back pool."""
    _, targets = _digits()
    index = np.flatnonzero(targets == digit)
    return index[index >= EVAL_POOL_START] if held_back else index[index < EVAL_POOL_START]


def source_image(index: int) -> np.ndarray:
    """The 8x8 source digit `index` as float32 [8, 8] ink in [0, 1]."""
    return _digits()[0][index]


@dataclasses.dataclass(frozen=True)
class GlyphStyle:
    """How one handwritten digit is drawn (shared by all frames of a video).

    Attributes:
      angle: rotation in radians (positive = counter-clockwise on screen).
      cell: canvas pixels per source cell (8 cells span `8 * cell` pixels).
      threshold: ink level where strokes begin; lower draws thicker strokes.
      softness: width of the ink ramp above `threshold` (anti-aliasing).
      ink / paper: RGB colours in [0, 255].
      noise: standard deviation of per-pixel Gaussian noise (0-255 units).
    """

    angle: float
    cell: float
    threshold: float
    softness: float
    ink: Tuple[float, float, float]
    paper: Tuple[float, float, float]
    noise: float


def random_style(rng: np.random.Generator, size: float) -> GlyphStyle:
    """A random style whose glyph is about `size` pixels tall (before the +-15% scale jitter)."""
    paper = 255.0 - rng.uniform(0, 45) + rng.uniform(-10, 10, size=3)
    ink = rng.uniform(0, 70) + rng.uniform(0, 50, size=3) * np.array([0.3, 0.3, 1.0])
    if rng.random() < 0.2:  # light ink on dark paper, like scanned negatives and MNIST
        paper, ink = 255.0 - paper, 255.0 - ink
    return GlyphStyle(
        angle=float(np.deg2rad(rng.uniform(-12, 12))),
        cell=float(size / 8.0 * rng.uniform(0.85, 1.15)),
        threshold=float(rng.uniform(0.25, 0.45)),
        softness=float(rng.uniform(0.08, 0.2)),
        ink=tuple(float(v) for v in np.clip(ink, 0, 255)),
        paper=tuple(float(v) for v in np.clip(paper, 0, 255)),
        noise=float(rng.uniform(0, 8)),
    )


def render_ink(source: np.ndarray, style: GlyphStyle, center: Tuple[float, float],
               size: int = IMAGE_SIZE) -> np.ndarray:
    """Draws a source digit as an ink map.

    Args:
      source: float32 [8, 8] source ink in [0, 1].
      style: rotation, scale and stroke shaping.
      center: (row, column) of the glyph centre on the canvas, in pixels.
      size: canvas side in pixels.

    Returns:
      float32 [size, size] ink coverage in [0, 1].
    """
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    dy, dx = rows + 0.5 - center[0], cols + 0.5 - center[1]
    cos, sin = np.cos(style.angle), np.sin(style.angle)
    # Inverse rotation of canvas offsets, in source cells; (3.5, 3.5) is the source grid's centre.
    # The 2-cell zero border keeps the spline from smearing edge strokes outwards.
    src_y = (cos * dy - sin * dx) / style.cell + 3.5 + 2
    src_x = (sin * dy + cos * dx) / style.cell + 3.5 + 2
    padded = np.pad(source.astype(np.float64), 2)
    ink = ndimage.map_coordinates(padded, [src_y, src_x], order=3, mode="nearest")
    return np.clip((ink - style.threshold) / style.softness, 0.0, 1.0).astype(np.float32)


def colorize(ink: np.ndarray, style: GlyphStyle, rng: np.random.Generator) -> np.ndarray:
    """Paints an ink map (float32 [H, W] in [0, 1]) as uint8 RGB [H, W, 3] with sensor noise."""
    ink = ink[..., None]
    rgb = np.asarray(style.paper) * (1.0 - ink) + np.asarray(style.ink) * ink
    rgb = rgb + rng.normal(0.0, style.noise, size=rgb.shape)
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def render_digit_image(source: np.ndarray, rng: np.random.Generator,
                       size: int = IMAGE_SIZE) -> np.ndarray:
    """A still picture of a handwritten digit: uint8 RGB [size, size, 3], glyph ~70% of the side,
    shifted by up to +-6% of the side."""
    style = random_style(rng, size=0.7 * size)
    center = size / 2.0 + rng.uniform(-0.06, 0.06, size=2) * size
    return colorize(render_ink(source, style, (center[0], center[1]), size), style, rng)


def encode_image(rgb: np.ndarray, extension: str) -> bytes:
    """Encodes uint8 RGB [H, W, 3] as one of `IMAGE_FORMATS` (deterministic bytes)."""
    pil_format, options = IMAGE_FORMATS[extension]
    image = Image.fromarray(rgb, mode="RGB")
    if pil_format == "GIF":
        image = image.quantize(colors=64, dither=Image.Dither.NONE)
    buffer = io.BytesIO()
    image.save(buffer, format=pil_format, **options)
    return buffer.getvalue()
