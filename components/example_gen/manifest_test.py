"""Manifest line parsing: every malformed input maps to one reject reason, good lines to records."""

import json

import pytest

from components.example_gen import manifest as M
from components.example_gen import rejects as R
from models.features import MediaConfig

MEDIA = MediaConfig(max_caption_chars=20)


def parse(obj, task="image_text", line_number=3, raw=None):
    line = M.ManifestLine(task, "/data/sets/image_text.jsonl", line_number,
                          raw if raw is not None else json.dumps(obj))
    return M.parse_line(line, MEDIA)


def test_good_line_resolves_paths_and_defaults():
    record = parse({"image": "img/a.png", "text": "a cat", "label": "cat", "split": "eval"})
    assert isinstance(record, M.ManifestRecord)
    assert record.id == "image_text-3" and record.split == "eval"
    assert record.media_paths == {"image": "/data/sets/img/a.png"}
    assert record.split_name == "eval_image_text" and record.label == "cat"
    absolute = parse({"id": 7, "image": "gs://bucket/a.png", "text": "x"})
    assert absolute.id == "7" and absolute.media_paths["image"] == "gs://bucket/a.png"


@pytest.mark.parametrize("raw, reason", [
    ("{oops", R.MALFORMED_JSON),
    ("[1]", R.MALFORMED_JSON),
    ("null", R.MALFORMED_JSON),
    (json.dumps({"image": "a.png", "text": ["a"]}), R.WRONG_TYPE),
    (json.dumps({"image": 3, "text": "a"}), R.WRONG_TYPE),
    (json.dumps({"image": "a.png", "text": "a", "id": True}), R.WRONG_TYPE),
    (json.dumps({"image": "a.png", "text": "a", "id": ""}), R.WRONG_TYPE),
    (json.dumps({"image": "a.png", "text": "a", "split": "validation"}), R.WRONG_TYPE),
    (json.dumps({"image": "a.png"}), R.MISSING_FIELD),
    (json.dumps({"image": "a.png", "text": ""}), R.MISSING_FIELD),
    (json.dumps({"text": "a", "image": None}), R.MISSING_FIELD),
    (json.dumps({"image": "a.png", "text": "x" * 21}), R.CAPTION_TOO_LONG),
])
def test_bad_lines(raw, reason):
    result = parse(None, raw=raw)
    assert isinstance(result, R.Reject) and result.reason == reason, result
    assert result.line == raw and result.line_number == 3 and result.detail


def test_required_fields_from_task_names():
    assert M.required_fields("image_text") == ("image", "text")
    assert M.required_fields("image_cls") == ("image", "label")
    assert M.required_fields("video_audio") == ("video", "audio")
    assert M.required_fields("my_dataset") == ()
    assert isinstance(parse({"label": "x"}, task="my_dataset"), R.Reject)
    assert isinstance(parse({"text": "x"}, task="my_dataset"), M.ManifestRecord)


def test_video_can_stand_in_for_audio():
    record = parse({"video": "v.mp4"}, task="video_audio")
    assert record.audio_from_video
    assert not parse({"video": "v.mp4", "audio": "a.wav"}, task="video_audio").audio_from_video
    assert parse({"image": "a.png"}, task="video_audio").reason == R.MISSING_FIELD


def test_hash_split_is_deterministic_and_about_ten_percent():
    splits = [M.hash_split(f"id-{i}") for i in range(2000)]
    assert splits == [M.hash_split(f"id-{i}") for i in range(2000)]
    assert 0.07 < splits.count("eval") / len(splits) < 0.13


def test_summary_must_add_up():
    assert R.make_summary(3, {"train_a": 2}, {R.EMPTY_FILE: 1, R.WRONG_TYPE: 0}) == {
        "read": 3, "ingested": {"train_a": 2}, "rejected": {R.EMPTY_FILE: 1}}
    with pytest.raises(AssertionError, match="lost lines"):
        R.make_summary(4, {"train_a": 2}, {R.EMPTY_FILE: 1})
