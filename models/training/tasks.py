"""AGD tasks: one dataset split + objective + input resolution + batch size + share of steps.

A task file is YAML (or JSON) with a `tasks` list, e.g.

    tasks:
      - {name: image_text, objective: contrastive, inputs: [image, text], batch_size: 32, weight: 2}
      - {name: video_text, objective: contrastive, inputs: [video, text], batch_size: 16,
         frames: 8, image_size: 32, drop_token: 0.5, interval: 4}
      - {name: audio_cls, objective: classification, inputs: [audio], label_set: digits, batch_size: 32}

Each task reads the ExampleGen splits `train_<split>` / `eval_<split>` (`split` defaults to `name`).
`weight` is the task's share under the weighted random sampler, `interval` its period under IMP's
interval schedule (trained once every `interval` rounds).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import pathlib
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from models.configs import INPUT_KINDS
from models.features import DEFAULT_MEDIA, MediaConfig

OBJECTIVES = ("contrastive", "classification")
DEFAULT_TASKS_FILE = pathlib.Path(__file__).with_name("default_tasks.yaml")


@dataclasses.dataclass(frozen=True)
class Task:
    """One AGD task.

    Attributes:
      name: unique task name (TensorBoard run name, sampler key, compiled-step key).
      objective: "contrastive" (NCE over every pair of `inputs`) or "classification" (of `inputs[0]`
        into `label_set`).
      inputs: input kinds (`image`, `video`, `audio`, `text`).
      split: ExampleGen split stem; the task reads `train_<split>` and `eval_<split>`.
      label_set: classifier head name (classification only).
      batch_size: examples per step (global, before `--batch-size-scale`).
      weight: share of steps under the weighted random sampler.
      interval: period (in rounds) under the IMP interval schedule.
      image_size: side of images / video frames fed to the tokenizer (resized from the stored size).
      frames: video frames kept (uniformly strided from the stored clip).
      drop_token: fraction of vision/audio tokens dropped at train time (DropToken).
    """

    name: str
    objective: str
    inputs: Tuple[str, ...]
    split: str = ""
    label_set: Optional[str] = None
    batch_size: int = 8
    weight: float = 1.0
    interval: int = 1
    image_size: Optional[int] = None
    frames: Optional[int] = None
    drop_token: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "inputs", tuple(self.inputs))
        if not self.split:
            object.__setattr__(self, "split", self.name)
        if self.objective not in OBJECTIVES:
            raise ValueError(f"task {self.name}: objective must be one of {OBJECTIVES}, "
                             f"got {self.objective!r}")
        unknown = [k for k in self.inputs if k not in INPUT_KINDS]
        if unknown:
            raise ValueError(f"task {self.name}: unknown input kinds {unknown}; "
                             f"choose from {sorted(INPUT_KINDS)}")
        if len(set(self.inputs)) != len(self.inputs):
            raise ValueError(f"task {self.name}: repeated input kinds {self.inputs}")
        if self.objective == "contrastive":
            if len(self.inputs) < 2:
                raise ValueError(f"task {self.name}: contrastive needs >= 2 inputs")
            if len({INPUT_KINDS[k] for k in self.inputs}) != len(self.inputs):
                raise ValueError(f"task {self.name}: contrastive inputs must use distinct encoder "
                                 f"modalities (image and video are both vision)")
        else:
            if len(self.inputs) != 1 or not self.label_set:
                raise ValueError(f"task {self.name}: classification needs one input and a label_set")
            if self.inputs[0] == "text":
                raise ValueError(f"task {self.name}: text classification is not supported")
        if self.batch_size < 1 or self.interval < 1 or self.weight <= 0:
            raise ValueError(f"task {self.name}: batch_size, interval >= 1 and weight > 0 required")
        if not 0.0 <= self.drop_token < 1.0:
            raise ValueError(f"task {self.name}: drop_token must be in [0, 1)")

    @property
    def train_split(self) -> str:
        return f"train_{self.split}"

    @property
    def eval_split(self) -> str:
        return f"eval_{self.split}"

    @property
    def pairs(self) -> Tuple[Tuple[str, str], ...]:
        """Contrastive input-kind pairs, in `inputs` order (empty for classification)."""
        if self.objective != "contrastive":
            return ()
        return tuple(itertools.combinations(self.inputs, 2))

    def resolved_image_size(self, media: MediaConfig = DEFAULT_MEDIA) -> int:
        return int(self.image_size or media.image_size)

    def resolved_frames(self, media: MediaConfig = DEFAULT_MEDIA) -> int:
        return int(self.frames or media.video_frames)

    def scaled(self, batch_size_scale: float) -> "Task":
        """The same task with its batch size multiplied (at least 2 so that NCE has a negative)."""
        return dataclasses.replace(self, batch_size=max(2, int(round(self.batch_size * batch_size_scale))))

    def to_dict(self) -> Dict[str, Any]:
        out = dataclasses.asdict(self)
        out["inputs"] = list(self.inputs)
        return out


def tasks_from_dicts(entries: Iterable[Dict[str, Any]]) -> Tuple[Task, ...]:
    fields = {f.name for f in dataclasses.fields(Task)}
    tasks = []
    for entry in entries:
        unknown = set(entry) - fields
        if unknown:
            raise ValueError(f"task {entry.get('name')!r}: unknown fields {sorted(unknown)}")
        tasks.append(Task(**entry))
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate task names in {names}")
    if not tasks:
        raise ValueError("no tasks given")
    return tuple(tasks)


def parse_tasks(text: str) -> Tuple[Task, ...]:
    """Parses YAML (a JSON document is YAML too) with a top-level `tasks` list (or a bare list)."""
    import yaml

    data = yaml.safe_load(text)
    if isinstance(data, dict):
        data = data.get("tasks")
    if not isinstance(data, list):
        raise ValueError("a task file holds a `tasks:` list")
    return tasks_from_dicts(data)


def load_tasks(path: Union[str, pathlib.Path, None] = None) -> Tuple[Task, ...]:
    """Reads a task file; `None` gives the demo data's default tasks."""
    path = pathlib.Path(path) if path else DEFAULT_TASKS_FILE
    return parse_tasks(path.read_text())


def tasks_to_json(tasks: Sequence[Task]) -> str:
    return json.dumps({"tasks": [t.to_dict() for t in tasks]}, indent=2)


def label_sets(tasks: Sequence[Task]) -> List[str]:
    """Classifier head names used by the tasks (sorted, unique)."""
    return sorted({t.label_set for t in tasks if t.objective == "classification"})


def select(tasks: Sequence[Task], names: Optional[Sequence[str]]) -> Tuple[Task, ...]:
    """Keeps the named tasks (all when `names` is empty), in file order."""
    if not names:
        return tuple(tasks)
    missing = set(names) - {t.name for t in tasks}
    if missing:
        raise ValueError(f"unknown tasks {sorted(missing)}")
    return tuple(t for t in tasks if t.name in set(names))
