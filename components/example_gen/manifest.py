"""Reading and validating manifest lines (the bring-your-own-data format).

A dataset folder holds media files and one JSONL manifest per task, named after the task
(`image_text.jsonl`, `video_audio.jsonl`, ...). Each line is one example:

    {"id": "cat-1", "image": "img/cat1.png", "text": "a cat on a mat", "label": "cat", "split": "train"}

Fields: `image`, `video`, `audio` (paths relative to the manifest, or absolute / URIs), `text`, `label`,
`id` (default `<task>-<line number>`), `split` (`train`/`eval`; default: a hash of the id sends ~10% to
eval). Other keys are allowed and ignored. The task name says what each line must carry: every
`_`-separated word of it that is a field name (`image`, `video`, `audio`, `text`, `label`; `cls` means
`label`) is required; a video's audio track satisfies `audio`. A task name without such words needs at
least one medium or text.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import posixpath
from typing import Dict, Optional, Tuple, Union

from components.example_gen import rejects
from models.features import MediaConfig

MEDIA_FIELDS = ("image", "video", "audio")
CONTENT_FIELDS = MEDIA_FIELDS + ("text",)
REQUIREMENT_WORDS = CONTENT_FIELDS + ("label",)
STRING_FIELDS = ("text", "label", "split") + MEDIA_FIELDS
SPLITS = ("train", "eval")
EVAL_PERCENT = 10
MANIFEST_SUFFIX = ".jsonl"


@dataclasses.dataclass(frozen=True)
class ManifestLine:
    """A raw line with where it came from."""

    task: str
    manifest: str
    line_number: int
    line: str

    def reject(self, reason: str, detail: str) -> rejects.Reject:
        return rejects.Reject(self.manifest, self.line_number, self.line, reason, detail)


@dataclasses.dataclass(frozen=True)
class ManifestRecord:
    """A line that passed the cheap checks. `media` maps a media field to its resolved path."""

    source: ManifestLine
    id: str
    split: str
    text: Optional[str]
    label: Optional[str]
    media: Tuple[Tuple[str, str], ...]
    audio_from_video: bool  # the task needs audio and only the video's track can provide it

    @property
    def media_paths(self) -> Dict[str, str]:
        return dict(self.media)

    @property
    def split_name(self) -> str:
        """The ExampleGen output split, `<split>_<task>`."""
        return split_name(self.split, self.source.task)


def task_of(manifest_path: str) -> str:
    """`.../image_text.jsonl` -> `image_text`."""
    name = posixpath.basename(manifest_path.replace("\\", "/"))
    if not name.endswith(MANIFEST_SUFFIX):
        raise ValueError(f"manifest {manifest_path!r} must end with {MANIFEST_SUFFIX}")
    return name[: -len(MANIFEST_SUFFIX)]


def split_name(split: str, task: str) -> str:
    return f"{split}_{task}"


# Task-name words that stand for a field (`image_cls` needs a label).
_WORD_ALIASES = {"cls": "label", "classification": "label"}


def required_fields(task: str) -> Tuple[str, ...]:
    """Fields every line of `task` must carry, from the words of its name."""
    words = [_WORD_ALIASES.get(w, w) for w in task.split("_")]
    return tuple(dict.fromkeys(w for w in words if w in REQUIREMENT_WORDS))


def hash_split(example_id: str) -> str:
    """Deterministic ~`EVAL_PERCENT`% eval assignment from the id (stable across runs and spans)."""
    bucket = int(hashlib.sha256(example_id.encode("utf-8")).hexdigest(), 16) % 100
    return "eval" if bucket < EVAL_PERCENT else "train"


def resolve_path(manifest_path: str, path: str) -> str:
    """Media paths are relative to the manifest's folder unless absolute or a URI."""
    if "://" in path or os.path.isabs(path):
        return path
    return os.path.join(os.path.dirname(manifest_path), path)


def parse_line(source: ManifestLine, media: MediaConfig) -> Union[ManifestRecord, rejects.Reject]:
    """Checks one line without touching media files; returns a record or a `Reject`."""
    try:
        obj = json.loads(source.line)
    except ValueError as e:
        return source.reject(rejects.MALFORMED_JSON, f"invalid JSON: {e}")
    if not isinstance(obj, dict):
        return source.reject(rejects.MALFORMED_JSON, f"expected a JSON object, got {type(obj).__name__}")

    for key in STRING_FIELDS:
        if key in obj and obj[key] is not None and not isinstance(obj[key], str):
            return source.reject(rejects.WRONG_TYPE,
                                 f"field {key!r} must be a string, got {type(obj[key]).__name__}")
    raw_id = obj.get("id")
    if raw_id is not None and (isinstance(raw_id, bool) or not isinstance(raw_id, (str, int))):
        return source.reject(rejects.WRONG_TYPE,
                             f"field 'id' must be a string or integer, got {type(raw_id).__name__}")
    if raw_id is not None and str(raw_id) == "":
        return source.reject(rejects.WRONG_TYPE, "field 'id' is empty")
    split = obj.get("split")
    if split is not None and split not in SPLITS:
        return source.reject(rejects.WRONG_TYPE, f"field 'split' must be one of {SPLITS}, got {split!r}")

    present = {k for k in REQUIREMENT_WORDS if obj.get(k)}  # None and "" count as absent
    needed = required_fields(source.task)
    audio_from_video = False
    missing = [k for k in needed if k not in present]
    if "audio" in missing and "video" in present:
        missing.remove("audio")
        audio_from_video = True
    if missing:
        return source.reject(rejects.MISSING_FIELD,
                             f"task {source.task!r} needs {', '.join(missing)}")
    if not needed and not present & set(CONTENT_FIELDS):
        return source.reject(rejects.MISSING_FIELD, f"no {', '.join(CONTENT_FIELDS)} field")

    text = obj.get("text") or None
    if text is not None and len(text) > media.max_caption_chars:
        return source.reject(rejects.CAPTION_TOO_LONG,
                             f"text has {len(text)} characters > {media.max_caption_chars}")

    example_id = str(raw_id) if raw_id is not None else f"{source.task}-{source.line_number}"
    paths = tuple((k, resolve_path(source.manifest, obj[k])) for k in MEDIA_FIELDS if obj.get(k))
    return ManifestRecord(
        source=source, id=example_id, split=split or hash_split(example_id), text=text,
        label=obj.get("label") or None, media=paths, audio_from_video=audio_from_video)
