"""Checkpoints of a training run: model + optimizer + AGD state, and restoring them without a mesh.

A run directory holds

    OUT/checkpoints/ckpt-<step>.{index,data-*}   tf.train.Checkpoint (CheckpointManager, keeps the last k)
    OUT/config.json                              model config + tasks + media + run settings

The AGD state (`TrainState`) is the global step, every task's own step count (its position in its data
stream) and the sampler state; all int64 variables saved with the model, so a killed run resumes with
the same task sequence and the same batches. Under a DTensor mesh the state variables are replicated
DVariables too (a checkpoint may not mix DVariables and regular variables); the files are ordinary TF
checkpoints either way, so `restore_unsharded` loads a mesh-trained checkpoint into a plain model.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

from models import configs as configs_lib
from models.configs import ImpConfig
from models.features import MediaConfig
from models.training import mesh_model
from models.training.tasks import Task, tasks_from_dicts

CHECKPOINT_SUBDIR = "checkpoints"
RUN_CONFIG_NAME = "config.json"
PathLike = Union[str, pathlib.Path]


class TrainState(tf.Module):
    """AGD progress: `step` int64 [], `task_steps` int64 [num_tasks], `sampler_state` int64 [S]."""

    def __init__(self, num_tasks: int, sampler_state_size: int, mesh=None):
        super().__init__(name="train_state")
        with mesh_model.mesh_variables(mesh):
            self.step = tf.Variable(tf.zeros([], tf.int64), trainable=False, name="step")
            self.task_steps = tf.Variable(tf.zeros([num_tasks], tf.int64), trainable=False,
                                          name="task_steps")
            # At least one entry: a zero-size variable cannot be a DTensor.
            self.sampler_state = tf.Variable(tf.zeros([max(sampler_state_size, 1)], tf.int64),
                                             trainable=False, name="sampler_state")
        self._mesh = mesh
        self._sampler_state_size = sampler_state_size

    def read(self) -> Tuple[int, np.ndarray, np.ndarray]:
        """(step, task_steps int64 [T], sampler_state int64 [S]) as host values."""
        step = int(mesh_model.to_numpy(tf.convert_to_tensor(self.step), self._mesh))
        task_steps = mesh_model.to_numpy(tf.convert_to_tensor(self.task_steps), self._mesh)
        sampler = mesh_model.to_numpy(tf.convert_to_tensor(self.sampler_state), self._mesh)
        return step, np.asarray(task_steps, np.int64), np.asarray(sampler, np.int64)[
            :self._sampler_state_size]

    def write(self, step: int, task_steps: np.ndarray, sampler_state: np.ndarray) -> None:
        sampler = np.zeros([max(self._sampler_state_size, 1)], np.int64)
        sampler[:self._sampler_state_size] = sampler_state
        for variable, value in ((self.step, np.int64(step)), (self.task_steps, task_steps),
                                (self.sampler_state, sampler)):
            value = tf.constant(np.asarray(value, np.int64))
            if self._mesh is not None:
                value = mesh_model.place_replicated(value, self._mesh)
            variable.assign(value)


def make_checkpoint(model, optimizer=None, state: Optional[TrainState] = None) -> tf.train.Checkpoint:
    parts: Dict[str, Any] = {"model": model}
    if optimizer is not None:
        parts["optimizer"] = optimizer
    if state is not None:
        parts["state"] = state
    return tf.train.Checkpoint(**parts)


def make_manager(checkpoint: tf.train.Checkpoint, run_dir: PathLike,
                 max_to_keep: int = 3) -> tf.train.CheckpointManager:
    return tf.train.CheckpointManager(checkpoint, str(pathlib.Path(run_dir) / CHECKPOINT_SUBDIR),
                                      max_to_keep=max_to_keep)


def latest_checkpoint(path: PathLike) -> Optional[str]:
    """Latest checkpoint prefix in a run dir, its `checkpoints/` subdir, or a prefix itself."""
    path = pathlib.Path(path)
    for directory in (path / CHECKPOINT_SUBDIR, path):
        if directory.is_dir():
            found = tf.train.latest_checkpoint(str(directory))
            if found:
                return found
    if pathlib.Path(str(path) + ".index").exists():
        return str(path)
    return None


# -- run config ---------------------------------------------------------------------------------------


def write_run_config(run_dir: PathLike, config: ImpConfig, tasks: Sequence[Task],
                     media: MediaConfig, extra: Optional[Dict[str, Any]] = None) -> pathlib.Path:
    """Writes `config.json`: everything needed to rebuild the model without the training data."""
    run_dir = pathlib.Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    payload = {"model": config.to_dict(), "tasks": [t.to_dict() for t in tasks],
               "media": dataclasses.asdict(media), **(extra or {})}
    path = run_dir / RUN_CONFIG_NAME
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True))
    tmp.replace(path)  # atomic: a kill never leaves a half-written config
    return path


def read_run_config(run_dir: PathLike) -> Tuple[ImpConfig, Tuple[Task, ...], MediaConfig, Dict[str, Any]]:
    """(model config, tasks, media config, the whole JSON payload) of a run directory."""
    payload = json.loads((pathlib.Path(run_dir) / RUN_CONFIG_NAME).read_text())
    config = ImpConfig.from_dict(payload["model"])
    tasks = tasks_from_dicts(payload.get("tasks", []))
    media = configs_lib._from_dict(MediaConfig, payload["media"]) if "media" in payload else MediaConfig()
    return config, tasks, media, payload


def restore_unsharded(checkpoint_dir: PathLike, checkpoint: Optional[str] = None):
    """An unsharded, fully built `ImpModel` with the weights of a (possibly mesh-trained) checkpoint.

    Args:
      checkpoint_dir: a run directory (or `serving_model_dir`) holding `config.json` and checkpoints.
      checkpoint: explicit checkpoint prefix (default: the latest one in `checkpoint_dir`).
    """
    checkpoint_dir = pathlib.Path(checkpoint_dir)
    config, _, _, _ = read_run_config(checkpoint_dir)
    prefix = checkpoint or latest_checkpoint(checkpoint_dir)
    if prefix is None:
        raise FileNotFoundError(f"no checkpoint under {checkpoint_dir}")
    model = mesh_model.build_model(config, mesh=None)
    status = tf.train.Checkpoint(model=model).restore(prefix)
    status.expect_partial()  # optimizer slots and train state are not needed
    status.assert_existing_objects_matched()
    return model
