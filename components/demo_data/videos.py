"""Moving-digit clips: one handwritten digit gliding across the frame in a straight line.

The glyph keeps one style (rotation, size, stroke, colours) for the whole clip and travels from one
side of the frame to the other, so any window of a few frames shows both what the digit is and which
way it moves.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from components.demo_data.captions import DIRECTIONS
from components.demo_data.images import IMAGE_SIZE, colorize, random_style, render_ink

FPS = 8
"""Frame rate of every clip; matches `MediaConfig.video_fps`."""
MIN_FRAMES, MAX_FRAMES = 8, 16
"""Clip lengths in frames (1-2 s at `FPS`)."""

_GLYPH = 0.47  # glyph height as a fraction of the frame side
# (row, column) unit steps on screen; rows grow downwards, so "up" decreases the row.
_STEP = {"left": (0.0, -1.0), "right": (0.0, 1.0), "up": (-1.0, 0.0), "down": (1.0, 0.0)}


def clip_frames(rng: np.random.Generator, seconds: Optional[float] = None) -> int:
    """A random clip length in frames, at least `seconds` long when given (capped at `MAX_FRAMES`)."""
    frames = int(rng.integers(MIN_FRAMES, MAX_FRAMES + 1))
    if seconds is not None:
        frames = max(frames, math.ceil(seconds * FPS))
    return min(frames, MAX_FRAMES)


def render_moving_digit(source: np.ndarray, direction: str, frames: int,
                        rng: np.random.Generator, size: int = IMAGE_SIZE) -> np.ndarray:
    """Renders a clip of a source digit moving towards `direction`.

    Args:
      source: float32 [8, 8] source ink in [0, 1].
      direction: one of `captions.DIRECTIONS`.
      frames: clip length.
      rng: randomness for style, path and noise.
      size: frame side in pixels.

    Returns:
      uint8 [frames, size, size, 3] RGB.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    style = random_style(rng, size=_GLYPH * size)
    margin = 0.4 * _GLYPH * size  # glyph centre's distance to the edge at both ends of the path
    start, end = margin, size - margin
    across = rng.uniform(0.4, 0.6) * size  # position on the axis perpendicular to the motion
    step_row, step_col = _STEP[direction]
    clip = np.empty((frames, size, size, 3), np.uint8)
    for t in range(frames):
        along = start + (end - start) * t / max(frames - 1, 1)
        # A path that starts at `start` along +axis; negative steps run it from the far side.
        row = across if step_row == 0 else (along if step_row > 0 else size - along)
        col = across if step_col == 0 else (along if step_col > 0 else size - along)
        clip[t] = colorize(render_ink(source, style, (row, col), size), style, rng)
    return clip
