"""Ingestion wiring: task discovery (flat and span layouts), component graph, stats options, CLI."""

import argparse

import pytest
from tensorflow_metadata.proto.v0 import schema_pb2

from components import cli
from components import ingestion
from models import features as F


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"text": "x"}\n')


def test_discover_tasks_flat_and_spans(tmp_path):
    _touch(tmp_path / "flat" / "image_text.jsonl")
    _touch(tmp_path / "flat" / "audio_cls.jsonl")
    assert ingestion.discover_tasks(str(tmp_path / "flat")) == (["audio_cls", "image_text"], None)
    _touch(tmp_path / "spans" / "span-1" / "image_text.jsonl")
    _touch(tmp_path / "spans" / "span-2" / "video_audio.jsonl")
    assert ingestion.discover_tasks(str(tmp_path / "spans")) == (
        ["image_text", "video_audio"], "span-{SPAN}")
    with pytest.raises(FileNotFoundError):
        ingestion.discover_tasks(str(tmp_path / "nothing"))


def test_components_and_splits(tmp_path):
    _touch(tmp_path / "image_text.jsonl")
    _touch(tmp_path / "audio_text.jsonl")
    parts = ingestion.make_ingestion_components(str(tmp_path), media=F.MediaConfig(image_size=32))
    names = [c.id for c in parts["components"]]
    assert names == ["MultimodalExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator",
                     "Transform"]
    assert parts["train_splits"] == ["train_audio_text", "train_image_text"]
    transform = parts["components"][-1]
    assert transform.exec_properties["preprocessing_fn"] == "models.preprocessing.preprocessing_fn"
    assert '"image_size": 32' in transform.exec_properties["custom_config"]


def test_stats_options_treat_media_as_bytes():
    options = ingestion.stats_options()
    assert not options.enable_semantic_domain_stats
    media = {f.name: f for f in options.schema.feature}
    assert set(media) == {F.RAW_IMAGE, F.RAW_AUDIO, F.RAW_VIDEO_FRAMES}
    assert all(f.type == schema_pb2.BYTES and f.HasField("image_domain") for f in media.values())


def test_cli_arguments():
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(), "ingest")
    args = parser.parse_args(["ingest", "--data", "d", "--out", "o", "--workers", "2"])
    assert (args.data, args.out, args.workers, args.image_size) == ("d", "o", 2, 64)
    assert args.handler is cli._handle
    assert cli.beam_args(2) == ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
