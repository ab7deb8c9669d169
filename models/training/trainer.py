"""The AGD training loop shared by `imp-tfx train` and the TFX Trainer's `run_fn`.

    for step in range(start, steps):
        task = sampler.next_task(step)                 # interval schedule or seeded random draw
        batch = next(stream[task])                     # the task's own deterministic stream
        metrics = agd_steps(task, place(batch))        # the task's cached compiled step
        task_steps[task] += 1; maybe log / checkpoint / evaluate

Resuming: the latest checkpoint in `OUT/checkpoints` restores weights, optimizer moments, the global
step, every task's step count and the sampler state; the task streams restart at their step counts
(`data.train_dataset(start_step=...)`), so a killed and restarted run ends at the same weights as an
uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pathlib
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf
import tf_keras

from models import sharding
from models.configs import ImpConfig, get_config
from models.features import DEFAULT_MEDIA, MediaConfig
from models.training import agd, checkpointing, data, mesh_model, summaries
from models.training.optimization import OptimizerConfig, make_optimizer
from models.training.sampler import make_sampler
from models.training.tasks import Task

logger = logging.getLogger(__name__)

ExportFn = Callable[[pathlib.Path, Any, "TrainResult"], None]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Run settings (the model and the tasks are passed separately).

    Attributes:
      steps: total optimizer steps (over all tasks).
      mesh: DTensor mesh spec ("batch=2,expert=4"); None / "1x1" = single device.
      sampler: "interval" (IMP's schedule) or "random" (weighted draw seeded by the step).
      seed: model init, data shuffle, DropToken and random-sampler seed.
      batch_size_scale: multiplies every task's batch size.
      precision: "float32" or "bfloat16" (bf16 compute, fp32 params and losses).
      log_every / checkpoint_every / eval_every: in global steps (0 = never; checkpoints are also
        written at the end).
      eval_examples: examples per eval split in periodic evaluation.
      optimizer: schedule and AdamW settings (None: `OptimizerConfig.for_steps(steps)`).
      progress: show a tqdm progress bar.
    """

    steps: int = 100
    mesh: Optional[str] = None
    sampler: str = "interval"
    seed: int = 0
    batch_size_scale: float = 1.0
    precision: str = "float32"
    log_every: int = 10
    checkpoint_every: int = 50
    eval_every: int = 0
    eval_examples: int = 256
    keep_checkpoints: int = 3
    optimizer: Optional[OptimizerConfig] = None
    progress: bool = True

    def optimizer_config(self) -> OptimizerConfig:
        return self.optimizer or OptimizerConfig.for_steps(self.steps)


@dataclasses.dataclass
class TrainResult:
    run_dir: pathlib.Path
    checkpoint: Optional[str]
    steps: int
    task_steps: Dict[str, int]
    last_metrics: Dict[str, Dict[str, float]]
    eval_metrics: Dict[str, float]
    steps_per_second: float
    expert_usage_png: Optional[pathlib.Path]
    model: Any = None


def _scalars(metrics: Mapping[str, Any], mesh) -> Dict[str, np.ndarray]:
    return {k: np.asarray(mesh_model.to_numpy(v, mesh)) for k, v in metrics.items()}


def _set_precision(precision: str) -> None:
    if precision not in ("float32", "bfloat16"):
        raise ValueError(f"precision must be float32 or bfloat16, got {precision!r}")
    tf_keras.mixed_precision.set_global_policy(
        "mixed_bfloat16" if precision == "bfloat16" else "float32")


def train(tasks: Sequence[Task], files_by_split: Mapping[str, Sequence[str]], transform_assets,
          run_dir, model_config: ImpConfig | str = "tiny", train_config: TrainConfig = TrainConfig(),
          media: MediaConfig = DEFAULT_MEDIA, eval_files_by_split: Optional[Mapping[str, Sequence[str]]] = None,
          export_dir=None, export_fn: Optional[ExportFn] = None,
          warm_start_from=None) -> TrainResult:
    """Trains (or resumes training of) an IMP model with AGD; returns the run's summary.

    Args:
      tasks: the AGD tasks (batch sizes before `batch_size_scale`).
      files_by_split: TFRecord files per split name (`train_<task split>` keys are used).
      transform_assets: folder with `text_wordpiece_vocab` and `labels` (sizes the model).
      run_dir: checkpoints, `config.json`, TensorBoard and `expert_usage.png` go here.
      model_config: preset name or config (vocab size and classifiers are set from the assets).
      train_config: run settings.
      eval_files_by_split: `eval_<task split>` files for `eval_every` (optional).
      export_dir: if set, the final checkpoint + `config.json` are written there, then `export_fn`
        (the serving exporter's hook, e.g. a SavedModel export) is called with
        (export_dir, model, result).
      warm_start_from: a previous run dir / export dir / checkpoint prefix whose MODEL weights start a
        fresh run (scheduled retraining from the last blessed model); ignored when `run_dir` already
        holds a checkpoint (then the run resumes).
    """
    run_dir = pathlib.Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tc = train_config
    tasks = tuple(t.scaled(tc.batch_size_scale) for t in tasks)
    if isinstance(model_config, str):
        model_config = get_config(model_config)
    config = data.config_for_data(model_config, transform_assets, tasks)
    mesh = sharding.mesh_from_spec(tc.mesh)
    if mesh is not None:
        batch_shards = int(mesh.dim_size(sharding.BATCH_AXIS))
        bad = [t.name for t in tasks if t.batch_size % batch_shards]
        if bad:
            raise ValueError(f"batch sizes of {bad} do not divide over mesh batch={batch_shards}")
    _set_precision(tc.precision)

    model = mesh_model.build_model(config, mesh=mesh, seed=tc.seed)
    optimizer = make_optimizer(tc.optimizer_config(), model.trainable_variables, mesh=mesh)
    sampler = make_sampler(tc.sampler, tasks, seed=tc.seed)
    state = checkpointing.TrainState(len(tasks), sampler.state_size, mesh=mesh)
    checkpoint = checkpointing.make_checkpoint(model, optimizer, state)
    manager = checkpointing.make_manager(checkpoint, run_dir, tc.keep_checkpoints)
    run_extra = {"train": {**dataclasses.asdict(tc), "optimizer": tc.optimizer_config().to_dict()}}
    checkpointing.write_run_config(run_dir, config, tasks, media, run_extra)

    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        logger.info("resumed from %s", manager.latest_checkpoint)
    elif warm_start_from is not None:
        _warm_start(model, warm_start_from)
    start, task_steps, sampler_state = state.read()
    sampler.set_state(sampler_state)

    streams = []
    for index, task in enumerate(tasks):
        files = files_by_split.get(task.train_split)
        if not files:
            raise FileNotFoundError(f"task {task.name}: no files for split {task.train_split}")
        streams.append(data.train_dataset(task, files, config, media, seed=tc.seed, task_index=index,
                                          start_step=int(task_steps[index])))
    iterators = [iter(ds) for ds in streams]
    signatures = [mesh_model.batch_signature(ds) for ds in streams]
    steps = agd.AgdSteps(model, optimizer, clip_norm=tc.optimizer_config().clip_norm)
    writer = summaries.TaskSummaries(run_dir / "tensorboard", [t.name for t in tasks])

    progress = None
    if tc.progress:
        from tqdm import tqdm
        progress = tqdm(total=tc.steps, initial=start, unit="step", dynamic_ncols=True)
    last_metrics: Dict[str, Dict[str, float]] = {}
    eval_metrics: Dict[str, float] = {}
    timed_steps, timed_seconds = 0, 0.0
    compiled = set()  # tasks whose first (compiling) step in this process is done
    for step in range(start, tc.steps):
        index = sampler.next_task(step)
        task = tasks[index]
        began = time.perf_counter()
        batch = mesh_model.place_batch(next(iterators[index]), mesh)
        metrics = steps(task, batch, signatures[index], step=step)
        task_steps[index] += 1
        host = _scalars(metrics, mesh)  # also waits for the step to finish
        if task.name in compiled:  # steps/s excludes each task's compile step
            timed_steps += 1
            timed_seconds += time.perf_counter() - began
        compiled.add(task.name)
        last_metrics[task.name] = {k: float(v) for k, v in host.items() if np.ndim(v) == 0}
        writer.accumulate_usage(host)
        done = step + 1
        if tc.log_every and (done % tc.log_every == 0 or done == tc.steps):
            writer.write(task.name, done, host)
        if progress is not None:
            progress.set_postfix(task=task.name, loss=f"{float(host['loss']):.3f}")
            progress.update(1)
        if tc.checkpoint_every and done % tc.checkpoint_every == 0 and done < tc.steps:
            state.write(done, task_steps, sampler.get_state())
            manager.save(checkpoint_number=done)
        if tc.eval_every and eval_files_by_split and done % tc.eval_every == 0:
            from models.training import evaluation
            eval_metrics = evaluation.evaluate_files(model, tasks, eval_files_by_split, config, media,
                                                     transform_assets, max_examples=tc.eval_examples,
                                                     mesh=mesh)
            for t in tasks:  # "<task>/<metric>" -> the task's run, tag "eval/<metric>"
                writer.write(t.name, done, {"eval/" + k.split("/", 1)[1]: v
                                            for k, v in eval_metrics.items() if k.startswith(t.name + "/")})
    if progress is not None:
        progress.close()

    final_step = max(start, tc.steps)
    state.write(final_step, task_steps, sampler.get_state())
    saved = manager.save(checkpoint_number=final_step) if final_step > 0 else manager.latest_checkpoint
    writer.flush()
    png = summaries.plot_expert_usage(writer.mean_usage(), run_dir / "expert_usage.png")
    writer.close()
    result = TrainResult(
        run_dir=run_dir, checkpoint=saved, steps=final_step,
        task_steps={t.name: int(n) for t, n in zip(tasks, task_steps)}, last_metrics=last_metrics,
        eval_metrics=eval_metrics,
        steps_per_second=timed_steps / timed_seconds if timed_seconds else float("nan"),
        expert_usage_png=png, model=model)
    (run_dir / "train_summary.json").write_text(json.dumps({
        "steps": result.steps, "task_steps": result.task_steps, "checkpoint": result.checkpoint,
        "steps_per_second": result.steps_per_second, "last_metrics": result.last_metrics,
        "trace_counts": dict(steps.trace_counts)}, indent=2, default=str))
    if export_dir is not None:
        export_checkpoint(run_dir, result, pathlib.Path(export_dir), model, export_fn)
    return result


def _warm_start(model, source) -> None:
    """Restores only the model weights of the latest checkpoint under `source` (optimizer, step and
    sampler start fresh, as a new training round should)."""
    prefix = checkpointing.latest_checkpoint(source)
    if prefix is None:
        raise FileNotFoundError(f"warm start: no checkpoint under {source}")
    status = tf.train.Checkpoint(model=model).restore(prefix)
    status.expect_partial()
    status.assert_existing_objects_matched()
    logger.info("warm-started the model from %s", prefix)


def export_checkpoint(run_dir: pathlib.Path, result: TrainResult, export_dir: pathlib.Path, model,
                      export_fn: Optional[ExportFn] = None) -> None:
    """Copies the final checkpoint + `config.json` to `export_dir`, then calls `export_fn` (the serving
    engineer's SavedModel export hook; default: checkpoint only)."""
    export_dir.mkdir(parents=True, exist_ok=True)
    target = export_dir / checkpointing.CHECKPOINT_SUBDIR
    target.mkdir(parents=True, exist_ok=True)
    prefix = pathlib.Path(result.checkpoint)
    for path in prefix.parent.glob(prefix.name + ".*"):
        tf.io.gfile.copy(str(path), str(target / path.name), overwrite=True)
    tf.io.gfile.copy(str(prefix.parent / "checkpoint"), str(target / "checkpoint"), overwrite=True)
    tf.io.gfile.copy(str(run_dir / checkpointing.RUN_CONFIG_NAME),
                     str(export_dir / checkpointing.RUN_CONFIG_NAME), overwrite=True)
    if export_fn is not None:
        export_fn(export_dir, model, result)


def files_from_data_dir(data_dir, tasks: Sequence[Task], prefix: str = "train") -> Dict[str, List[str]]:
    """`{split: files}` of an ingest output folder for the tasks' train (or eval) splits."""
    out = {}
    for task in tasks:
        split = task.train_split if prefix == "train" else task.eval_split
        out[split] = data.split_files(data_dir, split)
    return out


def train_from_data_dir(data_dir, tasks: Sequence[Task], run_dir, model_config="tiny",
                        train_config: TrainConfig = TrainConfig(), media: MediaConfig = DEFAULT_MEDIA,
                        **kwargs) -> TrainResult:
    """`train` on an ingest output folder (`transformed_examples/`, `transform_graph/`)."""
    eval_files = None
    if train_config.eval_every:
        try:
            eval_files = files_from_data_dir(data_dir, tasks, prefix="eval")
        except FileNotFoundError:
            eval_files = None
    return train(tasks, files_from_data_dir(data_dir, tasks), data.assets_dir(data_dir), run_dir,
                 model_config, train_config, media, eval_files_by_split=eval_files, **kwargs)
