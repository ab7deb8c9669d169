"""`imp-tfx train`: AGD training of an IMP model from an ingest output folder.

    imp-tfx train --config tiny --data DIR --tasks TASKS.yaml --steps 200 \\
        --mesh batch=2,expert=4 --out runs/tiny

Re-running the same command resumes from the latest checkpoint in `--out`.
"""

from __future__ import annotations

import argparse
import json
import logging


def register(subparsers, name: str = "train") -> None:
    p = subparsers.add_parser(name, help="AGD training of an IMP model from TFRecords",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="tiny", help="model preset (tiny, small, tiny-dense, B, MoE-B, ...)")
    p.add_argument("--data", required=True, help="ingest output: transformed_examples/ + transform_graph/")
    p.add_argument("--tasks", default=None, help="task YAML (default: the demo data's tasks)")
    p.add_argument("--only", default="", help="comma-separated task names to keep")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--mesh", default=None, help="DTensor mesh, e.g. batch=2,expert=4 (default: 1 device)")
    p.add_argument("--sampler", choices=("interval", "random"), default="interval")
    p.add_argument("--batch-size-scale", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--precision", choices=("float32", "bfloat16"), default="float32")
    p.add_argument("--peak-lr", type=float, default=1e-3)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--checkpoint-every", type=int, default=50)
    p.add_argument("--eval-every", type=int, default=0)
    p.add_argument("--eval-examples", type=int, default=256)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--out", required=True, help="run directory (checkpoints, TensorBoard, config.json)")
    p.set_defaults(handler=run)


def run(args) -> int:
    import tensorflow as tf

    from models import sharding
    from models.training import tasks as tasks_lib
    from models.training.optimization import OptimizerConfig
    from models.training.trainer import TrainConfig, train_from_data_dir

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sizes = sharding.parse_mesh_spec(args.mesh)
    if sizes is not None and not tf.config.list_physical_devices("GPU") + tf.config.list_physical_devices("TPU"):
        # First thing, before any TF op: a CPU mesh needs the CPU split into logical devices.
        sharding.ensure_logical_cpus(sizes[0] * sizes[1])
    tasks = tasks_lib.select(tasks_lib.load_tasks(args.tasks),
                             [n for n in args.only.split(",") if n])
    config = TrainConfig(
        steps=args.steps, mesh=args.mesh, sampler=args.sampler, seed=args.seed,
        batch_size_scale=args.batch_size_scale, precision=args.precision, log_every=args.log_every,
        checkpoint_every=args.checkpoint_every, eval_every=args.eval_every,
        eval_examples=args.eval_examples, progress=not args.no_progress,
        optimizer=OptimizerConfig.for_steps(args.steps, peak_lr=args.peak_lr))
    result = train_from_data_dir(args.data, tasks, args.out, args.config, config)
    print(json.dumps({"steps": result.steps, "task_steps": result.task_steps,
                      "checkpoint": result.checkpoint, "steps_per_second": result.steps_per_second,
                      "eval": result.eval_metrics,
                      "loss": {k: v.get("loss") for k, v in result.last_metrics.items()}}, indent=2))
    return 0
