"""Beam executor of MultimodalExampleGen: manifests -> validated, normalized raw tf.Examples + report.

One Beam pipeline reads every manifest line once and routes it to exactly one place:

    manifest lines ─ parse ─ dedupe ids ─ decode media ─┬─ train_<task> / eval_<task> example splits
          │            │          │              │      │
          └────────────┴──────────┴──────────────┴──────┴─ rejects/<reason>.jsonl + summary.json

Split names come from `input_config`: one input split per (split, task), named `<split>_<task>`, whose
pattern is the task's manifest (`image_text.jsonl`, or `span-{SPAN}/image_text.jsonl`). TFX's driver
resolves spans/versions and fingerprints from those patterns as for any file-based ExampleGen; this
executor reads each manifest once and sends a line to `train_` or `eval_` by its `split` field or id
hash, which is why it overrides `GenerateExamplesByBeam` instead of hash-bucketing.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, Iterable, List, Optional

import apache_beam as beam
import tensorflow as tf
from tfx import types
from tfx.components.example_gen import base_example_gen_executor
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils
from tfx.types import standard_component_specs
from tfx.utils import proto_utils

from components.example_gen import manifest as manifest_lib
from components.example_gen import media as media_lib
from components.example_gen import rejects as rejects_lib
from models import configs
from models import features as F

MEDIA_CONFIG_KEY = "media_config"
INGESTION_REPORT_KEY = "ingestion_report"

_ACCEPTED = "accepted"
_REJECTED = "rejected"


def media_config_to_json(media: F.MediaConfig) -> str:
    return json.dumps(dataclasses.asdict(media), sort_keys=True)


def media_config_from_json(text: Optional[str]) -> F.MediaConfig:
    if not text:
        return F.DEFAULT_MEDIA
    # models.configs' dict -> nested frozen dataclass rebuild (lists back to tuples).
    return configs._from_dict(F.MediaConfig, json.loads(text))  # pylint: disable=protected-access


def task_splits(input_config: example_gen_pb2.Input) -> Dict[str, List[str]]:
    """{manifest pattern: [split names]}; checks the `<split>_<task>` naming."""
    by_pattern: Dict[str, List[str]] = {}
    for split in input_config.splits:
        task = manifest_lib.task_of(split.pattern)
        allowed = {manifest_lib.split_name(s, task) for s in manifest_lib.SPLITS}
        if split.name not in allowed:
            raise ValueError(f"input split {split.name!r} of pattern {split.pattern!r} must be one of "
                             f"{sorted(allowed)}")
        by_pattern.setdefault(split.pattern, []).append(split.name)
    for pattern, names in by_pattern.items():
        # Each line goes to train_ or eval_ by its own `split`: both must exist, or lines would be lost.
        if len(set(names)) != len(manifest_lib.SPLITS):
            task = manifest_lib.task_of(pattern)
            needed = [manifest_lib.split_name(s, task) for s in manifest_lib.SPLITS]
            raise ValueError(f"pattern {pattern!r} needs exactly the splits {needed}, got {names}")
    return by_pattern


_OPTIONAL_FEATURES = (F.RAW_TEXT, F.RAW_LABEL, F.RAW_IMAGE, F.RAW_AUDIO, F.RAW_VIDEO_FRAMES)


def _bytes_feature(values: Iterable[bytes]) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))


def decode_record(record: manifest_lib.ManifestRecord, media: F.MediaConfig) -> tf.train.Example:
    """Reads, validates and normalizes a record's media; raises `RejectedMedia`.

    Every example carries every raw feature; what the line lacks is an empty list. Splits of different
    tasks then share one schema: SchemaGen infers it split by split and would deprecate (drop) any
    feature missing from one split.
    """
    paths = record.media_paths
    feats = {key: _bytes_feature([]) for key in _OPTIONAL_FEATURES}
    feats[F.RAW_ID] = _bytes_feature([record.id.encode()])
    feats[F.RAW_TASK] = _bytes_feature([record.source.task.encode()])
    if record.text is not None:
        feats[F.RAW_TEXT] = _bytes_feature([record.text.encode("utf-8")])
    if record.label is not None:
        feats[F.RAW_LABEL] = _bytes_feature([record.label.encode("utf-8")])
    audio = None
    for field in manifest_lib.MEDIA_FIELDS:
        if field not in paths:
            continue
        try:
            data = media_lib.read_file(paths[field], media)
            if field == "image":
                feats[F.RAW_IMAGE] = _bytes_feature([media_lib.normalize_image(data, media)])
            elif field == "audio":
                audio = media_lib.normalize_audio(data, media)
            else:
                frames, track = media_lib.normalize_video(data, media)
                feats[F.RAW_VIDEO_FRAMES] = _bytes_feature(frames)
                audio = audio or track
        except rejects_lib.RejectedMedia as e:
            raise rejects_lib.RejectedMedia(e.reason, f"{field}: {e.detail}") from None
    if audio is None and record.audio_from_video:
        raise rejects_lib.RejectedMedia(
            rejects_lib.MISSING_FIELD,
            f"task {record.source.task!r} needs audio and the video has no audio track")
    if audio is not None:
        feats[F.RAW_AUDIO] = _bytes_feature([audio])
    return tf.train.Example(features=tf.train.Features(feature=feats))


def _read_lines(path_and_task):
    path, task = path_and_task
    with tf.io.gfile.GFile(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if line.strip():  # blank lines (e.g. a trailing newline) are not examples
                yield manifest_lib.ManifestLine(task, path, number, line)


class _Parse(beam.DoFn):
    def __init__(self, media: F.MediaConfig):
        self._media = media

    def process(self, line: manifest_lib.ManifestLine):
        result = manifest_lib.parse_line(line, self._media)
        if isinstance(result, rejects_lib.Reject):
            yield beam.pvalue.TaggedOutput(_REJECTED, result)
        else:
            yield result


def _first_keeps_id(id_and_records):
    """The earliest line (manifest path, line number) keeps an id; later ones are duplicates."""
    _, records = id_and_records
    records = sorted(records, key=lambda r: (r.source.manifest, r.source.line_number))
    yield records[0]
    for r in records[1:]:
        first = records[0].source
        yield beam.pvalue.TaggedOutput(_REJECTED, r.source.reject(
            rejects_lib.DUPLICATE_ID,
            f"id {r.id!r} already used by {first.manifest}:{first.line_number}"))


class _Decode(beam.DoFn):
    """ManifestRecord -> (split name, serialized tf.Example) or a tagged Reject."""

    def __init__(self, media: F.MediaConfig):
        self._media = media

    def process(self, record: manifest_lib.ManifestRecord):
        try:
            example = decode_record(record, self._media)
        except rejects_lib.RejectedMedia as e:
            beam.metrics.Metrics.counter("multimodal_example_gen", f"rejected_{e.reason}").inc()
            yield beam.pvalue.TaggedOutput(_REJECTED, record.source.reject(e.reason, e.detail))
            return
        beam.metrics.Metrics.counter("multimodal_example_gen", "ingested").inc()
        yield record.split_name, example.SerializeToString(deterministic=True)


def _write_report(_, report_dir: str, split_names: List[str], read: int, ingested: Dict[str, int],
                  rejects: List[rejects_lib.Reject]) -> None:
    counts = rejects_lib.write_rejects(report_dir, rejects)
    summary = rejects_lib.make_summary(
        read, {name: ingested.get(name, 0) for name in split_names}, counts)
    rejects_lib.write_summary(report_dir, summary)


@beam.ptransform_fn
def IngestManifests(pipeline: beam.Pipeline, manifests: List[tuple], split_names: List[str],
                    media: F.MediaConfig, report_dir: str) -> Dict[str, beam.PCollection]:
    """[(manifest path, task)] -> {split name: PCollection[serialized tf.Example]}; writes the report.

    Every split in `split_names` gets a (possibly empty) PCollection.
    """
    lines = (pipeline
             | "Manifests" >> beam.Create(manifests)
             | "ReadLines" >> beam.FlatMap(_read_lines)
             | "Reshuffle" >> beam.Reshuffle())  # spread media decoding over workers
    parsed = lines | "Parse" >> beam.ParDo(_Parse(media)).with_outputs(_REJECTED, main=_ACCEPTED)
    unique = (parsed[_ACCEPTED]
              | "KeyById" >> beam.Map(lambda r: (r.id, r))
              | "GroupById" >> beam.GroupByKey()
              | "FirstKeepsId" >> beam.FlatMap(_first_keeps_id).with_outputs(_REJECTED, main=_ACCEPTED))
    decoded = unique[_ACCEPTED] | "Decode" >> beam.ParDo(_Decode(media)).with_outputs(
        _REJECTED, main=_ACCEPTED)
    examples = decoded[_ACCEPTED]

    all_rejects = ((parsed[_REJECTED], unique[_REJECTED], decoded[_REJECTED])
                   | "AllRejects" >> beam.Flatten())
    read = lines | "CountLines" >> beam.combiners.Count.Globally()
    ingested = (examples
                | "SplitOf" >> beam.Map(lambda kv: kv[0])
                | "CountPerSplit" >> beam.combiners.Count.PerElement())
    _ = (pipeline
         | "ReportTrigger" >> beam.Create([None])
         | "WriteReport" >> beam.Map(
             _write_report, report_dir, split_names,
             read=beam.pvalue.AsSingleton(read),
             ingested=beam.pvalue.AsDict(ingested),
             rejects=beam.pvalue.AsList(all_rejects)))

    index = {name: i for i, name in enumerate(split_names)}
    parts = examples | "PartitionBySplit" >> beam.Partition(
        lambda kv, n: index[kv[0]], len(split_names))
    return {name: parts[i] | f"Payload[{name}]" >> beam.Map(lambda kv: kv[1])
            for name, i in index.items()}


class Executor(base_example_gen_executor.BaseExampleGenExecutor):
    """Manifests under `input_base` -> `<split>_<task>` splits of raw tf.Examples + ingestion report."""

    _report_dir: Optional[str] = None

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        # Not used: a manifest feeds two splits (train_/eval_) plus the rejects report, which a
        # per-input-split PTransform cannot express; `GenerateExamplesByBeam` is overridden instead.
        raise NotImplementedError("MultimodalExampleGen builds all splits in GenerateExamplesByBeam")

    def GenerateExamplesByBeam(self, pipeline: beam.Pipeline,
                               exec_properties: Dict[str, Any]) -> Dict[str, beam.PCollection]:
        input_config = example_gen_pb2.Input()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY],
                                  input_config)
        media = media_config_from_json(exec_properties.get(MEDIA_CONFIG_KEY))
        input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        manifests, split_names = [], []
        for pattern, names in task_splits(input_config).items():
            task = manifest_lib.task_of(pattern)
            files = sorted(tf.io.gfile.glob(os.path.join(input_base, pattern)))
            if not files:
                raise FileNotFoundError(f"no manifest matches {os.path.join(input_base, pattern)}")
            manifests.extend((path, task) for path in files)
            split_names.extend(names)
        if self._report_dir is None:
            raise ValueError("the ingestion report directory is set by Do()")
        return pipeline | "IngestManifests" >> IngestManifests(
            manifests, split_names, media, self._report_dir)

    def Do(self, input_dict: Dict[str, List[types.Artifact]],
           output_dict: Dict[str, List[types.Artifact]], exec_properties: Dict[str, Any]) -> None:
        report = artifact_utils.get_single_instance(output_dict[INGESTION_REPORT_KEY])
        self._report_dir = report.uri
        try:
            super().Do(input_dict, output_dict, exec_properties)
        finally:
            self._report_dir = None
        summary = rejects_lib.read_summary(report.uri)
        report.set_int_custom_property("read", summary["read"])
        report.set_int_custom_property("ingested", sum(summary["ingested"].values()))
        report.set_int_custom_property("rejected", sum(summary["rejected"].values()))
        report.set_string_custom_property("summary", json.dumps(summary, sort_keys=True))
