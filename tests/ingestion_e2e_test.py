"""End to end: MultimodalExampleGen -> StatisticsGen -> SchemaGen -> ExampleValidator -> Transform with
LocalDagRunner (as `imp-tfx ingest` runs it), then the transformed examples are read back."""

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from components import cli
from components.example_gen import rejects
from components.example_gen import testing
from models import features as F

pytestmark = pytest.mark.slow

MEDIA = F.MediaConfig(image_size=32, video_frames=4, video_fps=4.0, audio_seconds=1.0,
                      spectrogram_frames=96, text_max_length=8)
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def read_transformed(out):
    """{split: [tf.train.Example]} from OUT/transformed_examples/Split-*/*.gz."""
    splits = {}
    for folder in sorted(glob.glob(os.path.join(out, cli.TRANSFORMED_EXAMPLES_DIR, "Split-*"))):
        files = sorted(glob.glob(os.path.join(folder, "*.gz")))
        records = tf.data.TFRecordDataset(files, compression_type="GZIP")
        splits[os.path.basename(folder)[len("Split-"):]] = [
            tf.train.Example.FromString(r.numpy()) for r in records]
    return splits


def values(example, key):
    feature = example.features.feature[key]
    kind = feature.WhichOneof("kind")
    return list(getattr(feature, kind).value) if kind else []


def vocab(out, name):
    path = os.path.join(out, cli.TRANSFORM_GRAPH_DIR, "transform_fn", "assets", name)
    with open(path) as f:
        return [line.rstrip("\n") for line in f]


def check_common(out, summary):
    assert json.loads(open(os.path.join(out, cli.SUMMARY_FILE)).read()) == summary
    assert rejects.read_summary(os.path.join(out, cli.REJECTS_DIR)) == summary
    splits = read_transformed(out)
    assert {s: len(v) for s, v in splits.items()} == summary["ingested"]
    words = vocab(out, F.TEXT_VOCAB_NAME)
    assert words[:4] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    image_len = MEDIA.image_size ** 2 * 3
    for split, examples in splits.items():
        for e in examples:
            ids = values(e, F.TEXT_IDS_KEY)
            assert len(ids) == MEDIA.text_max_length and all(0 <= i < len(words) for i in ids)
            assert len(values(e, F.IMAGE_KEY)) in (0, image_len)
            assert len(values(e, F.VIDEO_KEY)) in (0, MEDIA.video_frames * image_len)
            assert len(values(e, F.AUDIO_KEY)) in (0, MEDIA.spectrogram_frames * 64)
            pixels = np.array(values(e, F.IMAGE_KEY) + values(e, F.VIDEO_KEY))
            assert pixels.size == 0 or (pixels.min() >= -1.0 and pixels.max() <= 1.0)
    return splits, words


def test_demo_dataset(tmp_path):
    demo = pytest.importorskip("components.demo_data")
    data, out = str(tmp_path / "data"), str(tmp_path / "out")
    # Three tasks (one per medium) keep the run short: Transform's cost grows with the split count.
    demo.generate_demo_dataset(data, examples=36, seed=3,
                               tasks=["image_cls", "audio_text", "video_audio"])
    summary = cli.run_ingestion(data, out, media=MEDIA, text_vocab_size=256)
    lines = sum(1 for p in glob.glob(os.path.join(data, "*.jsonl")) for line in open(p) if line.strip())
    assert summary["read"] == lines and not summary["rejected"], summary
    splits, words = check_common(out, summary)
    labels = vocab(out, F.LABEL_VOCAB_NAME)
    assert set(labels) <= set(DIGITS) and len(labels) >= 3

    for e in splits["train_image_cls"]:
        assert len(values(e, F.IMAGE_KEY)) == MEDIA.image_size ** 2 * 3
        assert labels[values(e, F.LABEL_ID_KEY)[0]] == values(e, F.LABEL_KEY)[0].decode()
    for e in splits["train_video_audio"]:  # frames + the video's own sound track
        assert values(e, F.VIDEO_KEY) and values(e, F.AUDIO_KEY)
    # Captions are all digit words plus a few connecting words, so none needs [UNK] or splitting.
    text_ids = [i for e in splits["train_audio_text"] for i in values(e, F.TEXT_IDS_KEY) if i]
    assert text_ids and words.index("[UNK]") not in text_ids
    assert {words[i] for i in text_ids} & set(DIGITS)


def test_fsdd_subset(tmp_path, shared_data):
    recordings = sorted((shared_data / "fsdd" / "recordings").glob("*.wav"))
    subset = [p for p in recordings if p.name.split("_")[1] in ("george", "theo")][::16][:60]
    data, out = tmp_path / "data", str(tmp_path / "out")
    # Two spans: ExampleGen must read only the latest (TFX span semantics through `span-{SPAN}`).
    (data / "span-1").mkdir(parents=True)
    (data / "span-1" / "audio_text.jsonl").write_text(
        json.dumps({"id": "old", "audio": str(subset[0]), "text": "old"}) + "\n")
    (data / "span-2").mkdir()
    with open(data / "span-2" / "audio_text.jsonl", "w") as f:
        for p in subset:
            digit, speaker, take = p.stem.split("_")
            word = DIGITS[int(digit)]
            f.write(json.dumps({"id": p.stem, "audio": str(p), "text": word, "label": word,
                                "split": "eval" if int(take) < 5 else "train"}) + "\n")
    summary = cli.run_ingestion(str(data), out, media=MEDIA, text_vocab_size=128)
    assert summary["read"] == len(subset) and not summary["rejected"], summary
    splits, words = check_common(out, summary)
    labels = vocab(out, F.LABEL_VOCAB_NAME)
    for split, examples in splits.items():
        for e in examples:
            label = values(e, F.LABEL_KEY)[0].decode()
            ids = values(e, F.TEXT_IDS_KEY)
            assert words[ids[0]] == label and not any(ids[1:])  # one known word per caption
            label_id = values(e, F.LABEL_ID_KEY)[0]
            assert label_id == (labels.index(label) if label in labels else -1)
            spectrogram = np.array(values(e, F.AUDIO_KEY)).reshape(MEDIA.spectrogram_frames, 64)
            # Speech (8 kHz resampled to 16 kHz) has energy in the first frames, log floor at the end.
            assert spectrogram[:20].max() > spectrogram[-1].max() + 5


def test_cli_on_salted_folder(tmp_path):
    """`imp-tfx ingest` on a folder salted with every kind of bad input: exact counts, exit code 0."""
    data, out = str(tmp_path / "data"), str(tmp_path / "out")
    ingested, rejected, read = testing.write_salted_dataset(data, max_file_bytes=200_000,
                                                            max_caption_chars=64)
    proc = subprocess.run(
        [sys.executable, "-m", "imp_tfx", "ingest", "--data", data, "--out", out, "--quiet",
         "--max-file-bytes", "200000", "--max-caption-chars", "64", "--image-size", "32",
         "--video-frames", "4", "--text-max-length", "8"],
        capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary == {"read": read, "ingested": ingested, "rejected": rejected}
    records = rejects.read_rejects(os.path.join(out, cli.REJECTS_DIR))
    assert {k: len(v) for k, v in records.items()} == rejected
    splits = read_transformed(out)
    assert {s: len(v) for s, v in splits.items()} == ingested
