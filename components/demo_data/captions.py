"""The demo world's vocabulary: digit names, motion directions and the captions built from them.

Everything that turns a (digit, direction) into words lives here, so the generator, the tests and
zero-shot prompts (e.g. the pipeline's demo queries) agree on one phrasing.
"""

from __future__ import annotations

import re
from typing import Tuple

DIGIT_NAMES: Tuple[str, ...] = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
"""Class labels, indexed by the digit they name."""

DIRECTIONS: Tuple[str, ...] = ("left", "right", "up", "down")
"""Motion directions of the moving-digit videos (screen directions: "up" is towards row 0)."""

IMAGE_TEMPLATES: Tuple[str, ...] = (
    "a handwritten {digit}",
    "the digit {digit}",
    "a {digit} written by hand",
)
"""Still-image captions; template 0 is also the zero-shot prompt (`class_prompt`)."""

MOTION_TEMPLATES: Tuple[str, ...] = (
    "a {digit} moving {direction}",
    "the digit {digit} moving {direction}",
    "a handwritten {digit} moving {direction}",
)
"""Moving-digit captions; each names the digit and the direction of motion."""


_A_BEFORE_VOWEL = re.compile(r"\ba(?= (?!one\b)[aeiou])")  # "one" starts with a "w" sound


def with_articles(text: str) -> str:
    """Turns "a" into "an" before a vowel sound ("an eight", "a one", "a handwritten eight")."""
    return _A_BEFORE_VOWEL.sub("an", text)


def image_caption(digit: int, template: int = 0) -> str:
    """Caption of a still image of `digit` (0-9), e.g. "a handwritten seven"."""
    return with_articles(IMAGE_TEMPLATES[template].format(digit=DIGIT_NAMES[digit]))


def motion_caption(digit: int, direction: str, template: int = 0) -> str:
    """Caption of a video of `digit` moving towards `direction`, e.g. "a seven moving left"."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    return with_articles(MOTION_TEMPLATES[template].format(digit=DIGIT_NAMES[digit],
                                                           direction=direction))


def class_prompt(label: str) -> str:
    """Zero-shot text prompt for a class label, in the images' caption style ("a handwritten seven")."""
    return image_caption(DIGIT_NAMES.index(label))
