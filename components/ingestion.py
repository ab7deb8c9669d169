"""The ingestion half of the pipeline for one dataset folder:

    MultimodalExampleGen -> StatisticsGen -> SchemaGen -> ExampleValidator -> Transform

`make_ingestion_components` is shared by `imp-tfx ingest` and the full pipeline. Media stay encoded
bytes up to Transform; statistics on them are cheap because TFDV's semantic-domain detectors (which
would try to decode images and parse natural language on every value) are disabled, and every media
feature is declared BYTES in the stats schema, so TFDV computes only byte-length statistics for them
instead of top-k / unique counts over megabytes of JPEG and WAV data.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Dict, List, Optional, Sequence, Tuple

import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx import v1 as tfx

from components.example_gen import MultimodalExampleGen
from components.example_gen import manifest as manifest_lib
from models import features as F
from models import preprocessing

PREPROCESSING_FN = "models.preprocessing.preprocessing_fn"
SPAN_DIR_PREFIX = "span-"
SPAN_PATTERN = SPAN_DIR_PREFIX + "{SPAN}"

MEDIA_FEATURES = (F.RAW_IMAGE, F.RAW_AUDIO, F.RAW_VIDEO_FRAMES)


def discover_tasks(data_root: str) -> Tuple[List[str], Optional[str]]:
    """Tasks (manifest names) under `data_root` and the span pattern, if the folder holds spans.

    A folder with `span-<N>/` subfolders is read as spans (tasks = the union over spans); otherwise
    the manifests at its top level are the tasks.
    """
    manifest_glob = "*" + manifest_lib.MANIFEST_SUFFIX
    spans = tf.io.gfile.glob(os.path.join(data_root, SPAN_DIR_PREFIX + "*", manifest_glob))
    if spans:
        return sorted({manifest_lib.task_of(p) for p in spans}), SPAN_PATTERN
    manifests = tf.io.gfile.glob(os.path.join(data_root, manifest_glob))
    if not manifests:
        raise FileNotFoundError(f"no *{manifest_lib.MANIFEST_SUFFIX} manifest in {data_root} "
                                f"(nor in {SPAN_DIR_PREFIX}*/ subfolders)")
    return sorted(manifest_lib.task_of(p) for p in manifests), None


def stats_options() -> tfdv.StatsOptions:
    """StatisticsGen options for media-heavy examples (see the module docstring)."""
    schema = schema_pb2.Schema()
    for name in MEDIA_FEATURES:
        feature = schema.feature.add(name=name, type=schema_pb2.BYTES)
        # `image_domain` is TFDV's one marker for opaque bytes (schema_util.get_bytes_features): those
        # get byte-length stats only, whatever the medium (audio and video frames included).
        feature.image_domain.SetInParent()
    return tfdv.StatsOptions(schema=schema, enable_semantic_domain_stats=False,
                             num_top_values=10, num_rank_histogram_buckets=10)


def split_names(tasks: Sequence[str]) -> Tuple[List[str], List[str]]:
    """(train splits, eval splits) of ExampleGen's output for `tasks`."""
    return ([manifest_lib.split_name("train", t) for t in sorted(tasks)],
            [manifest_lib.split_name("eval", t) for t in sorted(tasks)])


def make_ingestion_components(data_root: str,
                              tasks: Optional[Sequence[str]] = None,
                              span_pattern: Optional[str] = None,
                              media: F.MediaConfig = F.DEFAULT_MEDIA,
                              text_vocab_size: int = preprocessing.DEFAULT_TEXT_VOCAB_SIZE,
                              range_config: Optional[tfx.proto.RangeConfig] = None
                              ) -> Dict[str, object]:
    """Builds the five ingestion components for a dataset folder.

    Args:
      data_root: dataset folder (local path or `tf.io.gfile` URI).
      tasks / span_pattern: default from `discover_tasks(data_root)`.
      media: canonical media forms (ExampleGen) and transformed shapes (Transform).
      text_vocab_size: target WordPiece vocabulary size.
      range_config: which span(s) to read (default: the latest).

    Returns:
      {"components": [example_gen, statistics_gen, schema_gen, example_validator, transform],
       "examples", "ingestion_report", "statistics", "schema", "anomalies", "transformed_examples",
       "transform_graph": output channels, "train_splits", "eval_splits": split name lists}.
    """
    if tasks is None:
        tasks, discovered_pattern = discover_tasks(data_root)
        span_pattern = span_pattern or discovered_pattern
    train_splits, eval_splits = split_names(tasks)
    example_gen = MultimodalExampleGen(input_base=data_root, tasks=tasks, span_pattern=span_pattern,
                                       range_config=range_config, media=media)
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"],
                                                  stats_options=stats_options())
    # Shapes stay var-length: media and text are optional per example (absent in other tasks' splits).
    schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"],
                                          infer_feature_shape=False)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"])
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN,
        splits_config=tfx.proto.SplitsConfig(analyze=train_splits,
                                             transform=train_splits + eval_splits),
        custom_config=preprocessing.make_custom_config(media, text_vocab_size),
        # Stats over decoded pixels and spectrogram values would cost more than Transform itself.
        disable_statistics=True)
    return {
        "components": [example_gen, statistics_gen, schema_gen, example_validator, transform],
        "examples": example_gen.outputs["examples"],
        "ingestion_report": example_gen.outputs["ingestion_report"],
        "statistics": statistics_gen.outputs["statistics"],
        "schema": schema_gen.outputs["schema"],
        "anomalies": example_validator.outputs["anomalies"],
        "transformed_examples": transform.outputs["transformed_examples"],
        "transform_graph": transform.outputs["transform_graph"],
        "train_splits": train_splits,
        "eval_splits": eval_splits,
    }


def media_config_with(media: F.MediaConfig = F.DEFAULT_MEDIA, **changes) -> F.MediaConfig:
    """`MediaConfig` with some fields replaced (CLI flags); unknown names raise TypeError."""
    return dataclasses.replace(media, **changes)
