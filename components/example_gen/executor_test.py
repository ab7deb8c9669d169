"""Executor.Do() on salted and clean fixture folders: exact split/reject counts and example contents."""

import glob
import io
import json
import os
import wave

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs as specs
from tfx.utils import proto_utils

from components.example_gen import component
from components.example_gen import executor
from components.example_gen import rejects
from components.example_gen import testing
from models import features as F

MEDIA = F.MediaConfig(max_file_bytes=200_000, max_caption_chars=64, stored_image_max_side=128,
                      video_frames=4, video_fps=4.0)
TASKS = ["audio_text", "image_text", "video_audio"]


def run_executor(data_dir, out_dir, media=MEDIA, tasks=TASKS):
    examples = standard_artifacts.Examples()
    examples.uri = os.path.join(out_dir, "examples")
    report = component.IngestionReport()
    report.uri = os.path.join(out_dir, "report")
    exec_properties = {
        specs.INPUT_BASE_KEY: data_dir,
        specs.INPUT_CONFIG_KEY: proto_utils.proto_to_json(component.make_input_config(tasks)),
        specs.OUTPUT_CONFIG_KEY: proto_utils.proto_to_json(example_gen_pb2.Output()),
        specs.OUTPUT_DATA_FORMAT_KEY: example_gen_pb2.FORMAT_TF_EXAMPLE,
        specs.OUTPUT_FILE_FORMAT_KEY: example_gen_pb2.FORMAT_TFRECORDS_GZIP,
        executor.MEDIA_CONFIG_KEY: executor.media_config_to_json(media),
    }
    executor.Executor().Do({}, {specs.EXAMPLES_KEY: [examples],
                                executor.INGESTION_REPORT_KEY: [report]}, exec_properties)
    return examples, report


def read_split(examples, split):
    files = glob.glob(os.path.join(artifact_utils.get_split_uri([examples], split), "*.gz"))
    records = tf.data.TFRecordDataset(files, compression_type="GZIP")
    return [tf.train.Example.FromString(r.numpy()) for r in records]


def feature_bytes(example, key):
    return list(example.features.feature[key].bytes_list.value)


@pytest.fixture(scope="module")
def salted(tmp_path_factory):
    root = tmp_path_factory.mktemp("salted")
    expected = testing.write_salted_dataset(str(root / "data"), max_file_bytes=MEDIA.max_file_bytes,
                                            max_caption_chars=MEDIA.max_caption_chars)
    examples, report = run_executor(str(root / "data"), str(root / "out"))
    return examples, report, expected


def test_salted_counts_are_exact(salted):
    examples, report, (ingested, rejected, read) = salted
    summary = rejects.read_summary(report.uri)
    assert summary == {"read": read, "ingested": ingested, "rejected": rejected}
    for split, n in ingested.items():
        assert len(read_split(examples, split)) == n, split
    assert report.get_int_custom_property("read") == read
    assert set(artifact_utils.decode_split_names(examples.split_names)) == set(ingested)


def test_reject_files_hold_the_lines(salted):
    _, report, (_, rejected, _) = salted
    records = rejects.read_rejects(report.uri)
    assert {k: len(v) for k, v in records.items()} == rejected
    for reason, items in records.items():
        for r in items:
            assert r["reason"] == reason and r["detail"] and r["line_number"] >= 1
            assert r["manifest"].endswith(".jsonl")
    ids = {json.loads(r["line"]).get("id") for r in records[rejects.WRONG_MEDIA_KIND]}
    assert ids == {"i15", "a4", "v6"}
    assert records[rejects.DUPLICATE_ID][0]["detail"].startswith("id 'i1' already used by")
    assert "{not json" in [r["line"] for r in records[rejects.MALFORMED_JSON]]


def test_examples_are_canonical(salted):
    examples, _, _ = salted
    by_id = {feature_bytes(e, F.RAW_ID)[0]: e for split in ("train_image_text", "eval_image_text")
             for e in read_split(examples, split)}
    wide = Image.open(io.BytesIO(feature_bytes(by_id[b"i4"], F.RAW_IMAGE)[0]))
    assert wide.format == "JPEG" and wide.mode == "RGB" and wide.size == (128, 64)
    assert feature_bytes(by_id[b"i4"], F.RAW_TEXT) == [b"a wide photo"]
    assert feature_bytes(by_id[b"i4"], F.RAW_TASK) == [b"image_text"]

    (stereo,) = [e for e in read_split(examples, "train_audio_text")]
    with wave.open(io.BytesIO(feature_bytes(stereo, F.RAW_AUDIO)[0])) as w:
        # 0.5 s of 44.1 kHz stereo -> 16 kHz mono PCM16
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        assert abs(w.getnframes() - 8000) < 200
    assert feature_bytes(stereo, F.RAW_LABEL) == [b"tone"]

    videos = {feature_bytes(e, F.RAW_ID)[0]: e for split in ("train_video_audio", "eval_video_audio")
              for e in read_split(examples, split)}
    assert set(videos) == {b"v1", b"v2", b"v3"}
    for example in videos.values():
        frames = feature_bytes(example, F.RAW_VIDEO_FRAMES)
        assert len(frames) == MEDIA.video_frames
        assert Image.open(io.BytesIO(frames[0])).size == (32, 32)
        assert feature_bytes(example, F.RAW_AUDIO)  # own track (v1, v2) or the audio field (v3)
        assert F.RAW_IMAGE in example.features.feature  # present, empty: one schema for all splits
        assert not feature_bytes(example, F.RAW_IMAGE)


def test_sampled_frames_follow_the_video(tmp_path):
    """Frames sampled at video_fps from a real-time-coded video keep their order and content."""
    rng = np.random.default_rng(1)
    os.makedirs(tmp_path / "data")
    clip = testing.video_bytes(rng, frames=8, fps=4, size=(32, 32), with_audio=False)
    media = F.MediaConfig(video_frames=4, video_fps=2.0)
    from components.example_gen import media as media_lib
    frames, audio = media_lib.normalize_video(clip, media)
    assert audio is None and len(frames) == 4
    decoded = [np.asarray(Image.open(io.BytesIO(f)), np.float32) for f in frames]
    # 2 fps from a 4 fps source: every other frame, all distinct (random content per source frame).
    assert all(np.abs(a - b).mean() > 20 for a, b in zip(decoded, decoded[1:]))


def test_webm_with_audio_track(shared_data):
    data = (shared_data / "media_samples" / "big_buck_bunny_0_30.webm").read_bytes()
    from components.example_gen import media as media_lib
    frames, wav = media_lib.normalize_video(data, MEDIA)
    assert len(frames) == MEDIA.video_frames
    assert max(Image.open(io.BytesIO(frames[0])).size) == MEDIA.stored_image_max_side
    with wave.open(io.BytesIO(wav)) as w:
        assert w.getnframes() == MEDIA.audio_samples and w.getframerate() == 16000
