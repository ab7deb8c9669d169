import numpy as np
import pytest
import tensorflow as tf

from models.configs import get_config
from models.features import MediaConfig
from models.training import data, testing
from models.training.tasks import Task

MEDIA = MediaConfig(image_size=16, video_frames=4, spectrogram_frames=32, text_max_length=8)
TASKS = (
    Task(name="vt", objective="contrastive", inputs=("video", "text"), batch_size=4, frames=2,
         image_size=8, drop_token=0.5),
    Task(name="acls", objective="classification", inputs=("audio",), label_set="sounds", batch_size=3),
)


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory):
    return testing.write_fixture(tmp_path_factory.mktemp("ingest"), TASKS, examples_per_split=10,
                                 num_classes=3, vocab_size=20, media=MEDIA)


def test_config_for_data_sizes_vocab_and_heads(fixture_dir):
    config = data.config_for_data(get_config("tiny"), data.assets_dir(fixture_dir), TASKS)
    assert config.text.vocab_size == 20
    assert config.heads.classifiers == (("sounds", 3),)


def test_train_batches_have_task_resolution_and_drop_tokens(fixture_dir):
    config = get_config("tiny")
    files = data.split_files(fixture_dir, "train_vt")
    batch = next(iter(data.train_dataset(TASKS[0], files, config, MEDIA)))
    # 2 frames of 8x8 with patch (2, 8, 8): 1 tubelet ... per frame pair -> N=1, DropToken keeps >= 1.
    assert batch["video"]["tokens"].shape == (4, 1, 2 * 8 * 8 * 3)
    assert batch["video"]["coords"].shape == (4, 1, 3)
    assert batch["text"]["ids"].shape == (4, 8) and batch["text"]["ids"].dtype == tf.int64
    audio = next(iter(data.train_dataset(TASKS[1], data.split_files(fixture_dir, "train_acls"),
                                         config, MEDIA)))
    assert audio["audio"]["tokens"].shape == (3, 2 * 4, 16 * 16)  # 32x64 spectrogram, 16x16 patches
    assert audio["label"].dtype == tf.int64


def test_train_stream_resumes_exactly(fixture_dir):
    config = get_config("tiny")
    task = TASKS[0].scaled(1.0)
    files = data.split_files(fixture_dir, "train_vt")
    full = [b for _, b in zip(range(7), data.train_dataset(task, files, config, MEDIA, seed=5))]
    tail = [b for _, b in zip(range(3), data.train_dataset(task, files, config, MEDIA, seed=5,
                                                             start_step=4))]
    for a, b in zip(full[4:], tail):
        np.testing.assert_array_equal(a["text"]["ids"], b["text"]["ids"])
        np.testing.assert_array_equal(a["video"]["tokens"], b["video"]["tokens"])
        np.testing.assert_array_equal(a["video"]["coords"], b["video"]["coords"])


def test_drop_token_keeps_coordinates(fixture_dir):
    task = Task(name="vt", objective="contrastive", inputs=("video", "text"), batch_size=4,
                frames=4, image_size=16, drop_token=0.75)
    config = get_config("tiny")
    batch = next(iter(data.train_dataset(task, data.split_files(fixture_dir, "train_vt"), config, MEDIA)))
    # 4 frames x 16^2 with (2, 8, 8) tubelets -> 2*2*2 = 8 tokens; keep int(0.25 * 8) = 2.
    assert batch["video"]["tokens"].shape[1] == 2
    coords = batch["video"]["coords"].numpy()
    assert np.all((coords >= 0) & (coords < 1))


def test_eval_dataset_is_ordered_and_complete(fixture_dir):
    files = data.split_files(fixture_dir, "eval_acls")
    labels = np.concatenate([b["label"].numpy() for b in
                             data.eval_dataset(TASKS[1], files, get_config("tiny"), MEDIA)])
    np.testing.assert_array_equal(labels, np.arange(10) % 3)
