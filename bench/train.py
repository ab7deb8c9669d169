"""Training benchmarks (JSON lines on stdout; every case runs in its own subprocess).

    python bench/train.py                 # all cases, small step counts
    python bench/train.py --steps 20      # more timed steps per measurement

Cases:
  throughput  steps/s and examples/s per task for tiny, tiny-dense, small, small-dense
  agd_vs_sum  one task per step (AGD) vs the sum of all task losses in every step: time per step and
              peak RSS (resource.getrusage max RSS of the subprocess)
  mesh        step time of one task on a 1x1 mesh vs a batch=2,expert=4 mesh of 8 logical CPUs
Ratios are computed from measurements of the same invocation.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

TASKS_YAML = """
tasks:
  - {name: image_text, objective: contrastive, inputs: [image, text], batch_size: 16, image_size: 32}
  - {name: image_cls, objective: classification, inputs: [image], label_set: image_cls, batch_size: 16,
     image_size: 32}
  - {name: video_text, objective: contrastive, inputs: [video, text], batch_size: 8, image_size: 32,
     frames: 4, drop_token: 0.5}
  - {name: audio_cls, objective: classification, inputs: [audio], label_set: audio_cls, batch_size: 16}
"""


def _setup(config_name: str, data_dir: str, mesh=None):
    from models.configs import get_config
    from models.training import data, mesh_model
    from models.training.optimization import OptimizerConfig, make_optimizer
    from models.training.tasks import parse_tasks
    from models.training import testing

    tasks = parse_tasks(TASKS_YAML)
    if not os.path.isdir(os.path.join(data_dir, "transformed_examples")):
        testing.write_fixture(data_dir, tasks, examples_per_split=64)
    config = data.config_for_data(get_config(config_name), data.assets_dir(data_dir), tasks)
    model = mesh_model.build_model(config, mesh=mesh, seed=0)
    optimizer = make_optimizer(OptimizerConfig.for_steps(1000), model.trainable_variables, mesh=mesh)
    streams = [data.train_dataset(t, data.split_files(data_dir, t.train_split), config, task_index=i)
               for i, t in enumerate(tasks)]
    return tasks, model, optimizer, streams


def _timed(fn, steps: int) -> float:
    fn()  # compile
    began = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - began) / steps


def case_throughput(config_name: str, data_dir: str, steps: int) -> dict:
    from models.training import agd

    tasks, model, optimizer, streams = _setup(config_name, data_dir)
    runner = agd.AgdSteps(model, optimizer)
    out = {"case": "throughput", "config": config_name, "tasks": {}}
    for task, ds in zip(tasks, streams):
        it = iter(ds)
        batches = [next(it) for _ in range(2)]
        step = lambda: runner(task, batches[0], ds.element_spec, step=0)["loss"].numpy()
        seconds = _timed(step, steps)
        out["tasks"][task.name] = {"steps_per_s": round(1 / seconds, 2),
                                   "examples_per_s": round(task.batch_size / seconds, 1)}
    return out


def case_agd_vs_sum(mode: str, data_dir: str, steps: int) -> dict:
    import tensorflow as tf
    from models.training import agd
    from models.training.optimization import apply_schedule, clip_gradients

    tasks, model, optimizer, streams = _setup("tiny", data_dir)
    batches = [next(iter(ds)) for ds in streams]
    if mode == "agd":
        runner = agd.AgdSteps(model, optimizer)
        index = [0]

        def step():
            i = index[0] % len(tasks)
            index[0] += 1
            return runner(tasks[i], batches[i], streams[i].element_spec, step=0)["loss"].numpy()
    else:
        variables = model.trainable_variables

        @tf.function
        def summed(all_batches):
            with tf.GradientTape() as tape:
                loss = tf.add_n([agd.task_loss(model, t, b)[0] for t, b in zip(tasks, all_batches)])
            grads = tape.gradient(loss, variables)
            pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
            clipped, _ = clip_gradients([g for g, _ in pairs], 1.0)
            apply_schedule(optimizer, tf.constant(0, tf.int64))
            optimizer.apply_gradients(zip(clipped, [v for _, v in pairs]))
            return loss

        step = lambda: summed(batches).numpy()
    # AGD: average over a full round of tasks so both modes see every task once per "round".
    for _ in range(len(tasks) if mode == "agd" else 1):
        step()
    seconds = _timed(step, steps * (len(tasks) if mode == "agd" else 1))
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"case": "agd_vs_sum", "mode": mode, "seconds_per_step": round(seconds, 4),
            "seconds_per_round_of_all_tasks": round(seconds * (len(tasks) if mode == "agd" else 1), 4),
            "peak_rss_mb": round(rss_mb, 1)}


def case_mesh(spec: str, data_dir: str, steps: int) -> dict:
    import tensorflow as tf
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 8)
    from models import sharding
    from models.training import agd, mesh_model

    mesh = sharding.mesh_from_spec(spec)
    tasks, model, optimizer, streams = _setup("tiny", data_dir, mesh=mesh)
    runner = agd.AgdSteps(model, optimizer)
    task, ds = tasks[0], streams[0]
    batch = mesh_model.place_batch(next(iter(ds)), mesh)
    step = lambda: mesh_model.to_numpy(runner(task, batch, ds.element_spec, step=0)["loss"], mesh)
    seconds = _timed(step, steps)
    return {"case": "mesh", "mesh": spec, "task": task.name, "seconds_per_step": round(seconds, 4)}


def _child(args) -> None:
    if args.case == "throughput":
        result = case_throughput(args.arg, args.data, args.steps)
    elif args.case == "agd_vs_sum":
        result = case_agd_vs_sum(args.arg, args.data, args.steps)
    else:
        result = case_mesh(args.arg, args.data, args.steps)
    print(json.dumps(result), flush=True)


def _run_child(case: str, arg: str, data_dir: str, steps: int) -> dict:
    cmd = [sys.executable, __file__, "--child", case, "--arg", arg, "--data", data_dir,
           "--steps", str(steps)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--cases", default="throughput,agd_vs_sum,mesh")
    parser.add_argument("--configs", default="tiny,tiny-dense,small,small-dense")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--arg", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if args.child:
        args.case = args.child
        _child(args)
        return
    cases = args.cases.split(",")
    with tempfile.TemporaryDirectory() as data_dir:
        if "throughput" in cases:
            for name in args.configs.split(","):
                _run_child("throughput", name, data_dir, args.steps)
        if "agd_vs_sum" in cases:
            agd_r = _run_child("agd_vs_sum", "agd", data_dir, args.steps)
            sum_r = _run_child("agd_vs_sum", "sum", data_dir, args.steps)
            print(json.dumps({"case": "agd_vs_sum_ratio",
                              "sum_step_over_agd_step": round(
                                  sum_r["seconds_per_step"] / agd_r["seconds_per_step"], 2),
                              "sum_round_over_agd_round": round(
                                  sum_r["seconds_per_round_of_all_tasks"]
                                  / agd_r["seconds_per_round_of_all_tasks"], 2),
                              "sum_rss_over_agd_rss": round(
                                  sum_r["peak_rss_mb"] / agd_r["peak_rss_mb"], 2)}), flush=True)
        if "mesh" in cases:
            one = _run_child("mesh", "1x1", data_dir, args.steps)
            two = _run_child("mesh", "batch=2,expert=4", data_dir, args.steps)
            print(json.dumps({"case": "mesh_ratio", "mesh_2x4_over_1x1": round(
                two["seconds_per_step"] / one["seconds_per_step"], 2)}), flush=True)


if __name__ == "__main__":
    main()
