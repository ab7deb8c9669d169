"""The demo dataset's tasks and how examples are apportioned, split and written as JSONL manifests.

Bring-your-own-data format (what ingestion reads): a folder of media files plus one JSONL manifest
per task source, `<task>.jsonl`, one example per line with any of `id`, `split` ("train"/"eval"),
`image`, `video`, `audio` (paths relative to the manifest), `text` and `label`.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Dict, Iterable, List, Sequence, Tuple


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """One task source of the demo dataset.

    Attributes:
      name: task name; also the manifest's file name (`<name>.jsonl`).
      share: fraction of `--examples` this task gets.
      fields: example fields besides `id` and `split`, in manifest order.
      description: one line for the dataset's README.
    """

    name: str
    share: float
    fields: Tuple[str, ...]
    description: str


TASK_SPECS: Tuple[TaskSpec, ...] = (
    TaskSpec("image_text", 0.20, ("image", "text"),
             "a handwritten digit and its caption (\"a handwritten seven\")"),
    TaskSpec("image_cls", 0.20, ("image", "label"),
             "a handwritten digit and its class label (\"seven\")"),
    TaskSpec("video_text", 0.15, ("video", "text"),
             "a digit moving across the frame and its caption (\"a seven moving left\")"),
    TaskSpec("audio_text", 0.15, ("audio", "text"),
             "a spoken caption and its transcript"),
    TaskSpec("video_audio", 0.15, ("video", "text", "label"),
             "a moving digit whose audio track speaks its name, with caption and label"),
    TaskSpec("audio_cls", 0.15, ("audio", "label"),
             "a spoken digit name and its class label"),
)
TASKS: Tuple[str, ...] = tuple(spec.name for spec in TASK_SPECS)
SPECS: Dict[str, TaskSpec] = {spec.name: spec for spec in TASK_SPECS}

EVAL_FRACTION = 1.0 / 6.0
"""Share of each task's examples held back as `"split": "eval"` (~17%)."""


def allocate(total: int, tasks: Sequence[str]) -> Dict[str, int]:
    """Splits `total` examples across `tasks` by their shares (largest remainder; ties go to the
    task listed first in `TASKS`), so the counts always add up to `total`."""
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown:
        raise ValueError(f"unknown demo tasks {unknown}; choose from {list(TASKS)}")
    ordered = [name for name in TASKS if name in set(tasks)]
    if not ordered:
        raise ValueError("no demo task selected")
    weight = sum(SPECS[name].share for name in ordered)
    exact = {name: total * SPECS[name].share / weight for name in ordered}
    counts = {name: int(exact[name]) for name in ordered}
    by_remainder = sorted(ordered, key=lambda name: (-(exact[name] - counts[name]),
                                                     ordered.index(name)))
    for name in by_remainder[:total - sum(counts.values())]:
        counts[name] += 1
    return counts


def held_back_indices(count: int) -> frozenset:
    """Indices (of `count` examples) held back for evaluation: round(count * EVAL_FRACTION) of them,
    at least one when count >= 2, spread evenly with the last example always held back."""
    if count < 2:
        return frozenset()
    held = max(1, round(count * EVAL_FRACTION))
    return frozenset((k + 1) * count // held - 1 for k in range(held))


def manifest_line(example_id: str, split: str, **fields) -> str:
    """One JSONL line with keys in a fixed order: id, split, media, text, label."""
    record = {"id": example_id, "split": split}
    for key in ("image", "video", "audio", "text", "label"):
        if fields.get(key) is not None:
            record[key] = fields.pop(key)
    if any(value is not None for value in fields.values()):
        raise ValueError(f"unknown manifest fields {sorted(fields)}")
    return json.dumps(record, ensure_ascii=False)


def write_manifest(path: pathlib.Path, lines: Iterable[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def read_manifest(path: pathlib.Path) -> List[dict]:
    """Parsed records of a JSONL manifest (blank lines skipped)."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]
