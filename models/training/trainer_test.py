import json

import numpy as np
import pytest

from models.features import MediaConfig
from models.training import checkpointing, mesh_model, testing, trainer
from models.training.optimization import OptimizerConfig
from models.training.tasks import Task

MEDIA = MediaConfig(image_size=16, video_frames=2, spectrogram_frames=32, text_max_length=8)
TASKS = (
    Task(name="image_text", objective="contrastive", inputs=("image", "text"), batch_size=4),
    Task(name="audio_cls", objective="classification", inputs=("audio",), label_set="sounds",
         batch_size=4, interval=2),
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return testing.write_fixture(tmp_path_factory.mktemp("ingest"), TASKS, examples_per_split=16,
                                 num_classes=3, vocab_size=24, media=MEDIA)


def _config(steps, **kw):
    # One schedule (sized for 6 steps) for every run, so a 4-step run is a prefix of the 6-step one.
    return trainer.TrainConfig(steps=steps, log_every=2, checkpoint_every=3, progress=False,
                               optimizer=OptimizerConfig.for_steps(6, peak_lr=3e-3), **kw)


def test_train_resume_and_restore_unsharded(data_dir, tmp_path):
    # Uninterrupted: 6 steps.
    full = trainer.train_from_data_dir(data_dir, TASKS, tmp_path / "full", "tiny", _config(6),
                                       media=MEDIA)
    assert full.steps == 6
    assert full.task_steps == {"image_text": 4, "audio_cls": 2}  # intervals 1 and 2
    summary = json.loads((tmp_path / "full" / "train_summary.json").read_text())
    assert summary["trace_counts"] == {"image_text": 1, "audio_cls": 1}  # never retraced
    assert (tmp_path / "full" / "expert_usage.png").stat().st_size > 0
    assert list((tmp_path / "full" / "tensorboard" / "image_text").glob("events.out.*"))
    lr = full.last_metrics["image_text"]["learning_rate"]
    assert 0 < lr < 3e-3

    # Interrupted after 4 steps (a checkpoint at 3 and one at the end), then resumed to 6.
    run = tmp_path / "resumed"
    trainer.train_from_data_dir(data_dir, TASKS, run, "tiny", _config(4), media=MEDIA)
    cfg = _config(6)
    resumed = trainer.train_from_data_dir(data_dir, TASKS, run, "tiny", cfg, media=MEDIA)
    assert resumed.task_steps == full.task_steps
    a, b = mesh_model.numpy_weights(full.model), mesh_model.numpy_weights(resumed.model)
    for name in a:
        np.testing.assert_allclose(b[name], a[name], rtol=1e-5, atol=1e-6, err_msg=name)

    # The export path: a fresh unsharded model from config.json + the checkpoint.
    restored = checkpointing.restore_unsharded(tmp_path / "full")
    c = mesh_model.numpy_weights(restored)
    for name in a:
        np.testing.assert_array_equal(c[name], a[name])


def test_warm_start_takes_the_model_weights_and_starts_a_fresh_round(data_dir, tmp_path):
    base = trainer.train_from_data_dir(data_dir, TASKS, tmp_path / "base", "tiny", _config(2),
                                       media=MEDIA)
    fresh = trainer.train_from_data_dir(data_dir, TASKS, tmp_path / "fresh", "tiny", _config(1),
                                        media=MEDIA)
    warm = trainer.train_from_data_dir(data_dir, TASKS, tmp_path / "warm", "tiny", _config(1),
                                       media=MEDIA, warm_start_from=tmp_path / "base")
    assert warm.steps == 1  # the step counter restarts: a new round, not a resume
    b, f, w = (mesh_model.numpy_weights(r.model) for r in (base, fresh, warm))
    # One more small step moves weights by ~lr; they stay near the base model, far from a fresh init.
    name = next(n for n in b if "text_embedder" in n)
    assert np.abs(w[name] - b[name]).max() < np.abs(f[name] - b[name]).max() / 5
    with pytest.raises(FileNotFoundError, match="warm start"):
        trainer.train_from_data_dir(data_dir, TASKS, tmp_path / "none", "tiny", _config(1),
                                    media=MEDIA, warm_start_from=tmp_path / "missing")
