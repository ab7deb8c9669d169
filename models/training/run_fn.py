"""TFX Trainer entry point (GenericExecutor): `run_fn(fn_args)` runs the same AGD loop as the CLI.

Pipeline wiring (ENGINEERING_NOTES B.3): ExampleGen names one split per task (`train_<task>`,
`eval_<task>`); `fn_args.train_files` / `eval_files` are file patterns under `.../Split-<name>/`, which
are regrouped per split here. `fn_args.custom_config` carries:

    tasks:            list of task dicts (as in a task YAML) or a path to a task YAML (default: demo tasks)
    model_config:     preset name ("tiny", "MoE-B", ...) or an `ImpConfig.to_dict()` (default "tiny")
    mesh:             "batch=2,expert=4" or None
    media:            MediaConfig as a dict (the same key Transform reads; default MediaConfig())
    train:            TrainConfig fields to override (sampler, seed, batch_size_scale, precision, ...)

`fn_args.base_model` (the latest blessed model, wired by the retraining pipeline) warm-starts the model
weights. Checkpoints and TensorBoard go to `fn_args.model_run_dir`; the final checkpoint and `config.json` are
written to `fn_args.serving_model_dir`, then exported there as a TF Serving SavedModel (an unsharded
rebuild, `serving.export.trainer_export_fn`) so that Pusher can push it. `custom_config["export"] =
"checkpoint"` skips the SavedModel; `run_fn(..., export_fn=...)` or `EXPORT_FN` replace the exporter.
"""

from __future__ import annotations

import collections
import dataclasses
import glob
import os
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence

from models import configs as configs_lib
from models.configs import ImpConfig
from models.features import DEFAULT_MEDIA, MediaConfig
from models.training import tasks as tasks_lib
from models.training.trainer import ExportFn, TrainConfig, train

# Export hook: `fn(serving_model_dir, model, train_result)`; None = the serving package's SavedModel export.
EXPORT_FN: Optional[ExportFn] = None

_SPLIT_DIR = re.compile(r"Split-([^/\\]+)")


def group_files_by_split(patterns: Sequence[str]) -> Dict[str, List[str]]:
    """File patterns/paths under `.../Split-<name>/...` -> `{name: sorted files}`."""
    grouped: Dict[str, List[str]] = collections.defaultdict(list)
    for pattern in patterns:
        match = _SPLIT_DIR.search(pattern)
        if not match:
            raise ValueError(f"{pattern!r} is not under a Split-<name> directory")
        paths = sorted(glob.glob(pattern)) if any(c in pattern for c in "*?[") else [pattern]
        if not paths and os.path.isdir(pattern):
            paths = sorted(glob.glob(os.path.join(pattern, "*")))
        grouped[match.group(1)].extend(paths)
    return {split: sorted(set(files)) for split, files in grouped.items()}


def _tasks(custom: Mapping[str, Any]) -> Sequence[tasks_lib.Task]:
    spec = custom.get("tasks")
    if spec is None or isinstance(spec, str):
        return tasks_lib.load_tasks(spec)
    return tasks_lib.tasks_from_dicts(spec)


def _model_config(custom: Mapping[str, Any]) -> ImpConfig:
    spec = custom.get("model_config", "tiny")
    return configs_lib.get_config(spec) if isinstance(spec, str) else ImpConfig.from_dict(dict(spec))


def _media(custom: Mapping[str, Any]) -> MediaConfig:
    media = custom.get("media")
    return DEFAULT_MEDIA if media is None else configs_lib._from_dict(MediaConfig, dict(media))


def _transform_graph_dir(fn_args) -> str:
    return getattr(fn_args, "transform_graph_path", None) or getattr(fn_args, "transform_output")


def _assets_dir(fn_args) -> str:
    return os.path.join(_transform_graph_dir(fn_args), "transform_fn", "assets")


def _default_export_fn(fn_args, custom: Mapping[str, Any]) -> Optional[ExportFn]:
    mode = custom.get("export", "saved_model")
    if mode == "checkpoint":
        return None
    if mode != "saved_model":
        raise ValueError(f"custom_config export must be 'saved_model' or 'checkpoint', got {mode!r}")
    from serving import export  # imported lazily: the exporter pulls in the serving signatures

    return export.trainer_export_fn(_transform_graph_dir(fn_args))


def run_fn(fn_args, export_fn: Optional[ExportFn] = None):
    """TFX Trainer `run_fn`: trains on the per-task splits and writes checkpoint + config for export."""
    custom = dict(fn_args.custom_config or {})
    tasks = _tasks(custom)
    overrides = dict(custom.get("train") or {})
    if "mesh" in custom:
        overrides.setdefault("mesh", custom["mesh"])
    if getattr(fn_args, "train_steps", None):
        overrides.setdefault("steps", int(fn_args.train_steps))
    overrides.setdefault("progress", False)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"unknown train settings in custom_config: {sorted(unknown)}")
    train_config = TrainConfig(**overrides)
    eval_files = group_files_by_split(fn_args.eval_files) if getattr(fn_args, "eval_files", None) else None
    return train(tasks, group_files_by_split(fn_args.train_files), _assets_dir(fn_args),
                 fn_args.model_run_dir, _model_config(custom), train_config, _media(custom),
                 eval_files_by_split=eval_files, export_dir=fn_args.serving_model_dir,
                 export_fn=export_fn or EXPORT_FN or _default_export_fn(fn_args, custom),
                 warm_start_from=getattr(fn_args, "base_model", None) or None)
