"""Killing `imp-tfx train` with SIGKILL mid-run and restarting it ends at the same weights as an
uninterrupted run (checkpointed task counters + deterministic per-task data streams)."""

import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from models.training import checkpointing, mesh_model, testing
from models.training.tasks import parse_tasks

pytestmark = pytest.mark.slow

TASKS_YAML = """
tasks:
  - {name: image_text, objective: contrastive, inputs: [image, text], batch_size: 4, image_size: 16}
  - {name: audio_cls, objective: classification, inputs: [audio], label_set: sounds, batch_size: 4,
     interval: 2}
  - {name: video_text, objective: contrastive, inputs: [video, text], batch_size: 4, image_size: 16,
     frames: 2, drop_token: 0.5, interval: 3}
"""
STEPS = 12


def _command(data_dir, tasks_file, out):
    return [sys.executable, "-m", "imp_tfx", "train", "--config", "tiny", "--data", str(data_dir),
            "--tasks", str(tasks_file), "--steps", str(STEPS), "--checkpoint-every", "2",
            "--log-every", "2", "--no-progress", "--out", str(out)]


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(pathlib.Path(__file__).resolve().parents[1])
    return env


def test_sigkill_and_restart_matches_uninterrupted_run(tmp_path):
    tasks_file = tmp_path / "tasks.yaml"
    tasks_file.write_text(TASKS_YAML)
    data_dir = testing.write_fixture(tmp_path / "data", parse_tasks(TASKS_YAML), examples_per_split=12)

    subprocess.run(_command(data_dir, tasks_file, tmp_path / "full"), check=True, env=_env(),
                   stdout=subprocess.DEVNULL)

    killed = tmp_path / "killed"
    process = subprocess.Popen(_command(data_dir, tasks_file, killed), env=_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    try:
        while time.time() < deadline:  # wait for a mid-run checkpoint, then kill hard
            if list((killed / "checkpoints").glob("ckpt-6.index")):
                break
            assert process.poll() is None, "training ended before it could be killed"
            time.sleep(0.2)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL
    latest = checkpointing.latest_checkpoint(killed)
    assert latest is not None and int(latest.rsplit("-", 1)[1]) < STEPS

    subprocess.run(_command(data_dir, tasks_file, killed), check=True, env=_env(),
                   stdout=subprocess.DEVNULL)

    reader_full = tf.train.load_checkpoint(checkpointing.latest_checkpoint(tmp_path / "full"))
    reader_killed = tf.train.load_checkpoint(checkpointing.latest_checkpoint(killed))
    a = mesh_model.numpy_weights(checkpointing.restore_unsharded(tmp_path / "full"))
    b = mesh_model.numpy_weights(checkpointing.restore_unsharded(killed))
    for name in a:
        np.testing.assert_allclose(b[name], a[name], rtol=1e-5, atol=1e-6, err_msg=name)
    for key in ("state/task_steps/.ATTRIBUTES/VARIABLE_VALUE", "state/step/.ATTRIBUTES/VARIABLE_VALUE"):
        np.testing.assert_array_equal(reader_killed.get_tensor(key), reader_full.get_tensor(key))
