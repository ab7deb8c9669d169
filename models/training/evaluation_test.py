import numpy as np
import pytest
import tensorflow as tf

from models.features import MediaConfig
from models.training import data, evaluation, mesh_model, testing
from models.training.tasks import Task
from models.configs import get_config


def test_retrieval_metrics_by_hand():
    sim = np.array([[0.9, 0.1, 0.0],    # rank 0
                    [0.8, 0.5, 0.1],    # rank 1
                    [0.7, 0.6, 0.2]])   # rank 2
    m = evaluation.retrieval_metrics(sim, at=(1, 2, 3))
    assert m == {"recall@1": pytest.approx(1 / 3), "recall@2": pytest.approx(2 / 3),
                 "recall@3": 1.0, "median_rank": 2.0}


def test_zero_shot_accuracy_by_hand():
    keys = np.eye(3)
    queries = np.array([[1.0, 0, 0], [0, 0.2, 0.9], [0.6, 0.5, 0]])
    out = evaluation.zero_shot_accuracy(queries, keys, np.array([0, 1, 1]), top=(1, 2))
    assert out == {"top1": pytest.approx(1 / 3), "top2": pytest.approx(1.0)}


def test_evaluate_reports_retrieval_both_ways_and_zero_shot(tmp_path):
    media = MediaConfig(image_size=16, video_frames=2, spectrogram_frames=16, text_max_length=8)
    tasks = (Task(name="it", objective="contrastive", inputs=("image", "text"), batch_size=4),
             Task(name="ic", objective="classification", inputs=("image",), label_set="digits",
                  batch_size=4))
    root = testing.write_fixture(tmp_path, tasks, examples_per_split=12, num_classes=3, vocab_size=24,
                                 media=media)
    config = data.config_for_data(get_config("tiny"), data.assets_dir(root), tasks)
    model = mesh_model.build_model(config, seed=0)
    fake_tokenize = lambda texts: tf.constant([[5 + len(t) % 7, 6, 0, 0, 0, 0, 0, 0] for t in texts],
                                              tf.int64)
    metrics = evaluation.evaluate(model, tasks, root, media=media, tokenize=fake_tokenize)
    for direction in ("image_to_text", "text_to_image"):
        for k in (1, 5, 10):
            assert 0.0 <= metrics[f"it/{direction}/recall@{k}"] <= 1.0
        assert metrics[f"it/{direction}/recall@10"] >= metrics[f"it/{direction}/recall@1"]
    assert 0.0 <= metrics["ic/accuracy"] <= 1.0
    assert 0.0 <= metrics["ic/zero_shot_top1"] <= metrics["ic/zero_shot_top5"] == 1.0  # 3 classes
