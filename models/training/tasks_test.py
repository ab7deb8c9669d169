import pytest

from models.training import tasks as tasks_lib


def test_default_tasks_load():
    tasks = tasks_lib.load_tasks()
    names = [t.name for t in tasks]
    assert names == ["image_text", "image_cls", "video_text", "audio_text", "video_audio", "audio_cls"]
    by_name = {t.name: t for t in tasks}
    assert by_name["video_audio"].pairs == (("video", "audio"),)
    assert by_name["audio_cls"].train_split == "train_audio_cls"
    assert tasks_lib.label_sets(tasks) == ["audio_cls", "image_cls"]


def test_parse_and_round_trip():
    text = """
tasks:
  - {name: vat, split: videos, objective: contrastive, inputs: [video, audio, text], batch_size: 4,
     frames: 4, image_size: 32, drop_token: 0.25, interval: 3}
"""
    (task,) = tasks_lib.parse_tasks(text)
    assert task.eval_split == "eval_videos"
    assert task.pairs == (("video", "audio"), ("video", "text"), ("audio", "text"))
    assert tasks_lib.parse_tasks(tasks_lib.tasks_to_json([task])) == (task,)
    assert task.scaled(0.25).batch_size == 2


@pytest.mark.parametrize("entry, message", [
    ({"name": "a", "objective": "contrastive", "inputs": ["image"]}, ">= 2 inputs"),
    ({"name": "a", "objective": "contrastive", "inputs": ["image", "video"]}, "distinct"),
    ({"name": "a", "objective": "classification", "inputs": ["image"]}, "label_set"),
    ({"name": "a", "objective": "regression", "inputs": ["image"]}, "objective"),
    ({"name": "a", "objective": "contrastive", "inputs": ["image", "text"], "colour": 1}, "unknown"),
])
def test_invalid_tasks_are_rejected(entry, message):
    with pytest.raises(ValueError, match=message):
        tasks_lib.tasks_from_dicts([entry])
