"""MultimodalExampleGen: a file-based ExampleGen for folders of media + JSONL manifests.

Outputs:
* `examples` (Examples): GZIP TFRecords of raw tf.Examples (`models.features.RAW_*`), one split per task
  and phase: `train_<task>`, `eval_<task>`.
* `ingestion_report` (IngestionReport): `summary.json` (`{"read", "ingested": {split: n},
  "rejected": {reason: n}}`) and one `<reason>.jsonl` per reject reason; the artifact also carries the
  totals as custom properties (`read`, `ingested`, `rejected`, `summary`) so they show in MLMD.

Spans work as in every file-based ExampleGen: give `span_pattern="span-{SPAN}"` (or a full
`input_config`) and optionally a `range_config`.
"""

from __future__ import annotations

from typing import Optional, Sequence

from tfx import types
from tfx.components.example_gen import driver
from tfx.dsl.components.base import base_beam_component
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2
from tfx.proto import range_config_pb2
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs
from tfx.types.component_spec import ChannelParameter
from tfx.types.component_spec import ComponentSpec
from tfx.types.component_spec import ExecutionParameter

from components.example_gen import executor
from components.example_gen import manifest as manifest_lib
from models import features as F


class IngestionReport(types.Artifact):
    """Folder with `summary.json` and `<reason>.jsonl` reject files of one ingestion run."""

    TYPE_NAME = "imp_tfx.IngestionReport"  # KFP v2 wants namespace.Name


class MultimodalExampleGenSpec(ComponentSpec):
    """FileBasedExampleGen's spec plus the media config and the ingestion report output."""

    PARAMETERS = {
        **standard_component_specs.FileBasedExampleGenSpec.PARAMETERS,
        executor.MEDIA_CONFIG_KEY: ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {}
    OUTPUTS = {
        standard_component_specs.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        executor.INGESTION_REPORT_KEY: ChannelParameter(type=IngestionReport),
    }


def make_input_config(tasks: Sequence[str], span_pattern: Optional[str] = None) -> example_gen_pb2.Input:
    """Two input splits per task, `train_<task>` and `eval_<task>`, both reading `<task>.jsonl`.

    Args:
      tasks: task names (manifest file names without `.jsonl`).
      span_pattern: folder pattern of spans, e.g. `span-{SPAN}` (None: manifests at the root).
    """
    splits = []
    for task in sorted(tasks):
        pattern = f"{task}{manifest_lib.MANIFEST_SUFFIX}"
        if span_pattern:
            pattern = f"{span_pattern.rstrip('/')}/{pattern}"
        splits.extend(example_gen_pb2.Input.Split(name=manifest_lib.split_name(s, task), pattern=pattern)
                      for s in manifest_lib.SPLITS)
    return example_gen_pb2.Input(splits=splits)


class MultimodalExampleGen(base_beam_component.BaseBeamComponent):
    """Reads manifests + media, validates and normalizes them, writes per-task splits and a report.

    Example:
      example_gen = MultimodalExampleGen(input_base="/data/digits", tasks=["image_text", "audio_text"])
    """

    SPEC_CLASS = MultimodalExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)
    DRIVER_CLASS = driver.FileBasedDriver

    def __init__(self,
                 input_base: str,
                 tasks: Optional[Sequence[str]] = None,
                 span_pattern: Optional[str] = None,
                 input_config: Optional[example_gen_pb2.Input] = None,
                 range_config: Optional[range_config_pb2.RangeConfig] = None,
                 media: F.MediaConfig = F.DEFAULT_MEDIA):
        """Args:
          input_base: dataset folder (local path or `tf.io.gfile` URI).
          tasks: task names to ingest; builds `input_config` (see `make_input_config`).
          span_pattern: e.g. `span-{SPAN}` when the folder holds spans.
          input_config: explicit input splits instead of `tasks` (names `<split>_<task>`).
          range_config: TFX span range (default: latest span).
          media: canonical media forms and ingestion limits.
        """
        if (tasks is None) == (input_config is None):
            raise ValueError("give exactly one of `tasks` and `input_config`")
        if input_config is None:
            input_config = make_input_config(tasks, span_pattern)
        executor.task_splits(input_config)  # fail at pipeline build time on bad split names
        spec = MultimodalExampleGenSpec(
            input_base=input_base,
            input_config=input_config,
            output_config=example_gen_pb2.Output(),  # output splits = input splits
            range_config=range_config,
            output_data_format=example_gen_pb2.FORMAT_TF_EXAMPLE,
            output_file_format=example_gen_pb2.FORMAT_TFRECORDS_GZIP,
            media_config=executor.media_config_to_json(media),
            examples=types.Channel(type=standard_artifacts.Examples),
            ingestion_report=types.Channel(type=IngestionReport))
        super().__init__(spec=spec)
