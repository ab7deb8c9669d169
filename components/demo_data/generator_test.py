"""End-to-end tests of `generate_demo_dataset` and `imp-tfx demo-data` on small datasets."""

import contextlib
import io
import json
import pathlib
import shutil
import wave

import av
import numpy as np
import pytest
from PIL import Image

from components.demo_data import (DIGIT_NAMES, DIRECTIONS, TASKS, generate_demo_dataset, images,
                                  manifest, read_manifest, speech)
from components.demo_data.generator import plan_task
from components.demo_data.units_test import EXPECTED_STEP, ink_centroid

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                reason="espeak-ng is not installed (scripts/bootstrap.sh installs it)")

EXAMPLES = 40


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """Three small datasets: seed 0 twice (determinism) and seed 1."""
    root = tmp_path_factory.mktemp("demo")
    summaries = {name: generate_demo_dataset(root / name, examples=EXAMPLES, seed=seed)
                 for name, seed in (("a", 0), ("b", 0), ("c", 1))}
    return root, summaries


@pytest.fixture(scope="module")
def dataset(datasets):
    root, summaries = datasets
    return root / "a", summaries["a"]


def _records(dataset_dir):
    return {task: read_manifest(dataset_dir / f"{task}.jsonl") for task in TASKS}


def _words(text):
    return set(text.split())


def _decode_video(path):
    """uint8 frames [n, h, w, 3] and the audio track's (samples, rate), or None without one."""
    with av.open(str(path)) as container:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    audio = None
    with av.open(str(path)) as container:
        if container.streams.audio:
            stream = container.streams.audio[0]
            samples = np.concatenate([f.to_ndarray()[0] for f in container.decode(stream)])
            audio = (samples, stream.rate)
    return frames, audio


def test_summary_and_manifests_agree(dataset):
    dataset_dir, summary = dataset
    assert summary["out"] == str(dataset_dir)
    assert set(summary["examples"]) == set(TASKS)
    assert sum(summary["examples"].values()) == EXAMPLES
    assert summary["seconds"] > 0
    for task, records in _records(dataset_dir).items():
        assert len(records) == summary["examples"][task]
        assert sum(r["split"] == "eval" for r in records) == summary["eval_examples"][task]
    readme = (dataset_dir / "README.txt").read_text()
    assert "CC BY 4.0" in readme and "--examples 40 --seed 0" in readme


def test_examples_have_exactly_their_task_fields_and_unique_ids(dataset):
    dataset_dir, _ = dataset
    ids = []
    for task, records in _records(dataset_dir).items():
        for record in records:
            assert set(record) == {"id", "split", *manifest.SPECS[task].fields}
            assert record["split"] in ("train", "eval")
            ids.append(record["id"])
        splits = [r["split"] for r in records]
        assert 0.1 <= splits.count("eval") / len(splits) <= 0.25, task
    assert len(ids) == len(set(ids)) == EXAMPLES


def test_labels_and_captions_name_the_same_digit(dataset):
    dataset_dir, _ = dataset
    for task, records in _records(dataset_dir).items():
        for record in records:
            if "label" in record:
                assert record["label"] in DIGIT_NAMES
            if "text" in record:
                named = _words(record["text"]) & set(DIGIT_NAMES)
                assert len(named) == 1, record
                if "label" in record:
                    assert named == {record["label"]}
            if task.startswith("video"):
                assert len(_words(record["text"]) & set(DIRECTIONS)) == 1, record


def test_images_decode_in_every_format(dataset):
    dataset_dir, _ = dataset
    formats = set()
    for task in ("image_text", "image_cls"):
        for record in read_manifest(dataset_dir / f"{task}.jsonl"):
            with Image.open(dataset_dir / record["image"]) as image:
                assert image.size == (64, 64)
                formats.add(image.format)
                assert np.asarray(image.convert("L")).std() > 10  # a glyph, not a blank
    assert formats == {"PNG", "JPEG", "BMP", "GIF"}


def test_videos_decode_and_move_the_way_their_captions_say(dataset):
    dataset_dir, _ = dataset
    containers = set()
    for task in ("video_text", "video_audio"):
        for record in read_manifest(dataset_dir / f"{task}.jsonl"):
            path = dataset_dir / record["video"]
            containers.add(path.suffix)
            frames, audio = _decode_video(path)
            assert 8 <= len(frames) <= 16 and frames.shape[1:] == (64, 64, 3)
            (direction,) = _words(record["text"]) & set(DIRECTIONS)
            motion = ink_centroid(frames[-1]) - ink_centroid(frames[0])
            assert np.dot(motion, EXPECTED_STEP[direction]) > 15, (record, motion)
            if task == "video_text":
                assert audio is None
            else:  # the track spans the clip and holds speech
                samples, rate = audio
                assert abs(len(samples) / rate - len(frames) / 8) < 0.1
                assert np.abs(samples).max() > 0.1
    assert containers == {".mp4", ".webm", ".avi"}


def test_audio_files_decode(dataset):
    dataset_dir, _ = dataset
    extensions = set()
    for task in ("audio_text", "audio_cls"):
        for record in read_manifest(dataset_dir / f"{task}.jsonl"):
            path = dataset_dir / record["audio"]
            extensions.add(path.suffix)
            if path.suffix == ".wav":
                with wave.open(str(path)) as stored:
                    assert (stored.getnchannels(), stored.getsampwidth()) == (1, 2)
                    assert stored.getframerate() == speech.SPEECH_RATE
                    samples = np.frombuffer(stored.readframes(stored.getnframes()), "<i2") / 32768
                    rate = stored.getframerate()
            else:
                with av.open(str(path)) as container:
                    stream = container.streams.audio[0]
                    samples = np.concatenate([f.to_ndarray()[0] for f in container.decode(stream)])
                    rate = stream.rate
            assert 0.3 < len(samples) / rate < 4.0
            assert np.abs(samples).max() > 0.1
    assert extensions == {".wav", ".flac", ".mp3", ".ogg"}


def test_held_back_examples_use_unseen_writers_and_voices():
    for task in ("image_cls", "audio_cls"):
        examples = plan_task(task, 60, seed=0, span=None)
        assert {e.split for e in examples} == {"train", "eval"}
        for example in examples:
            pool = images.source_pool(example.digit, held_back=example.held_back)
            voice = example.voice()
            if example.held_back:
                assert pool.min() >= images.EVAL_POOL_START and voice.name in speech.EVAL_VOICES
            else:
                assert pool.max() < images.EVAL_POOL_START and voice.name in speech.TRAIN_VOICES
    assert not set(speech.TRAIN_VOICES) & set(speech.EVAL_VOICES)


def _tree(dataset_dir: pathlib.Path):
    return {str(p.relative_to(dataset_dir)): p.read_bytes()
            for p in sorted(dataset_dir.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_bytes_and_another_seed_differs(datasets):
    root, _ = datasets
    a, b, c = _tree(root / "a"), _tree(root / "b"), _tree(root / "c")
    assert a.keys() == b.keys()
    assert [name for name in a if a[name] != b[name]] == []
    changed = [name for name in a if name in c and a[name] != c[name]]
    assert "image_text.jsonl" in changed and "video_audio.jsonl" in changed
    assert sum(name.startswith(("images/", "videos/", "audio/")) for name in changed) > EXAMPLES * 0.9


def test_spans_live_in_their_own_folder_with_their_own_data(tmp_path):
    base = generate_demo_dataset(tmp_path, examples=6, tasks=["image_cls"])
    span = generate_demo_dataset(tmp_path, examples=6, tasks=["image_cls"], span=3)
    assert span["out"] == str(tmp_path / "span-3")
    base_records = read_manifest(tmp_path / "image_cls.jsonl")
    span_records = read_manifest(tmp_path / "span-3" / "image_cls.jsonl")
    assert all("span3" in r["id"] for r in span_records)
    assert not {r["id"] for r in base_records} & {r["id"] for r in span_records}
    assert (tmp_path / "images" / "image_cls-00000.png").read_bytes() != \
        (tmp_path / "span-3" / "images" / "image_cls-span3-00000.png").read_bytes()
    assert base["examples"] == span["examples"] == {"image_cls": 6}
    # Regenerating the base dataset keeps the span and leaves no stale files behind.
    generate_demo_dataset(tmp_path, examples=3, tasks=["image_text"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.txt", "image_text.jsonl", "images",
                                                          "span-3"]
    assert len(list((tmp_path / "images").iterdir())) == 3


def test_refuses_to_overwrite_a_folder_that_is_not_a_demo_dataset(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        generate_demo_dataset(tmp_path, examples=3, tasks=["image_text"])
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_cli_prints_a_json_summary(tmp_path, capsys):
    from imp_tfx import cli

    out = tmp_path / "cli"
    code = cli.main(["demo-data", "--out", str(out), "--examples", "8", "--seed", "5",
                     "--tasks", "image_text,audio_cls"])
    captured = capsys.readouterr()
    assert code == 0
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["out"] == str(out) and summary["examples"] == {"image_text": 5, "audio_cls": 3}
    assert "[demo-data]" in captured.err
    assert sorted(p.name for p in out.glob("*.jsonl")) == ["audio_cls.jsonl", "image_text.jsonl"]
    with contextlib.redirect_stderr(io.StringIO()), pytest.raises(SystemExit):
        cli.main(["demo-data", "--out", str(out), "--tasks", "smell_text"])
