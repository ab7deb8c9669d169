"""MultimodalExampleGen construction: spec, outputs, split naming."""

import json

import pytest
from google.protobuf import json_format
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts

from components.example_gen import IngestionReport, MultimodalExampleGen, make_input_config
from components.example_gen import executor
from components.example_gen import media as media_lib
from models import features as F


def test_outputs_and_splits():
    media = F.MediaConfig(image_size=32)
    gen = MultimodalExampleGen(input_base="/data", tasks=["video_audio", "image_text"],
                               span_pattern="span-{SPAN}", media=media)
    assert gen.outputs["examples"].type == standard_artifacts.Examples
    assert gen.outputs["ingestion_report"].type == IngestionReport
    config = example_gen_pb2.Input()
    json_format.Parse(gen.exec_properties["input_config"], config)
    assert [(s.name, s.pattern) for s in config.splits] == [
        ("train_image_text", "span-{SPAN}/image_text.jsonl"),
        ("eval_image_text", "span-{SPAN}/image_text.jsonl"),
        ("train_video_audio", "span-{SPAN}/video_audio.jsonl"),
        ("eval_video_audio", "span-{SPAN}/video_audio.jsonl")]
    assert executor.media_config_from_json(gen.exec_properties["media_config"]) == media
    assert json.loads(gen.exec_properties["media_config"])["image_size"] == 32


def test_rejects_bad_split_names_and_arguments():
    bad = example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="train",
                                                                    pattern="image_text.jsonl")])
    with pytest.raises(ValueError, match="must be one of"):
        MultimodalExampleGen(input_base="/data", input_config=bad)
    with pytest.raises(ValueError, match="exactly one"):
        MultimodalExampleGen(input_base="/data")
    assert len(make_input_config(["a"]).splits) == 2


@pytest.mark.parametrize("head, kind", [
    (b"\x89PNG\r\n\x1a\n\0\0\0\0", "image"), (b"\xff\xd8\xff\xe0", "image"), (b"GIF89a", "image"),
    (b"RIFF\0\0\0\0WAVE", "audio"), (b"RIFF\0\0\0\0AVI ", "video"), (b"fLaC", "audio"),
    (b"ID3\x04", "audio"), (b"\0\0\0\x18ftypmp42", "video"), (b"\0\0\0\x18ftypM4A ", "audio"),
    (b"\x1a\x45\xdf\xa3", "video"), (b"OggS\0", None), (b"hello world!", None),
])
def test_sniff_kind(head, kind):
    assert media_lib.sniff_kind(head) == kind
