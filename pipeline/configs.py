"""Pipeline settings as one frozen dataclass, validated on construction.

`PipelineConfig` is everything `pipeline.create_pipeline` needs, for every runner:

* where: `name`, `pipeline_root`, `data_root`, `serving_base_path`, `metadata_path` (local runs);
* what: `model_config` (a `models.configs` preset name), `tasks_file` (AGD tasks YAML; None = the demo
  data's default tasks), `train_steps`, `mesh` (DTensor mesh spec, `batch=2,expert=4`), `seed`;
* data: `span_pattern` (`span-{SPAN}` for scheduled retraining: the latest span is ingested);
* quality gate: `blessing` (a `components.evaluator.BlessingPolicy`) and evaluation options;
* how: `beam_args` (local Beam DirectRunner by default), `enable_cache`, and `vertex` (`VertexConfig`: the
  container image, GCP project/region, Trainer machine / accelerator / TPU topology, Dataflow settings).
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
from typing import Any, Dict, Optional, Tuple

from components.evaluator.blessing import BlessingPolicy
from components.ingestion import SPAN_PATTERN  # noqa: F401  (re-exported: the CLI default)
from components.evaluator.blessing import RECALL_AT_5
from components.evaluator.blessing import ZERO_SHOT_ACCURACY
from models import configs as model_configs
from models.sharding import parse_mesh_spec

DEFAULT_PIPELINE_NAME = "imp-tfx"
DEFAULT_IMAGE = "us-docker.pkg.dev/PROJECT/imp-tfx/imp-tfx:latest"

# Beam DirectRunner settings for local runs. multi_processing (one worker per core) is TFX's suggestion,
# but on this 2-core machine it was 2.9x slower end to end (ingesting 120 demo examples: 625 s vs 216 s;
# Transform 413 s vs 147 s): every Beam stage starts worker processes that each import TensorFlow, which
# costs more than the parallelism gains on 2 cores. So in_memory is the default and multi_processing is
# one flag away (`--beam-multi-processing`) for bigger machines and datasets.
IN_MEMORY_BEAM_ARGS: Tuple[str, ...] = ("--direct_running_mode=in_memory", "--direct_num_workers=1")
MULTI_PROCESSING_BEAM_ARGS: Tuple[str, ...] = (
    "--direct_running_mode=multi_processing",
    "--direct_num_workers=2",
)
LOCAL_BEAM_ARGS = IN_MEMORY_BEAM_ARGS

# Demo data has 10 digit classes (chance 0.1 zero-shot accuracy) and eval splits of tens of
# examples, so the default gate asks for twice chance and a sane recall@5.
DEFAULT_BLESSING = BlessingPolicy(lower_bounds=((ZERO_SHOT_ACCURACY, 0.2), (RECALL_AT_5, 0.0)))

_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")  # what Vertex / KFP accept as pipeline names
_TPU_TOPOLOGY = re.compile(r"^\d+x\d+(x\d+)?$")


@dataclasses.dataclass(frozen=True)
class VertexConfig:
    """Vertex AI Pipelines / Kubeflow settings (used only by `kubeflow_v2_runner`).

    Attributes:
      project / region: GCP project and region of the pipeline job, the Trainer job and Dataflow.
      image: container image with this repository installed (`pip install .`), used by every component.
      machine_type: Vertex custom-job machine for the Trainer (`n1-standard-8`, `cloud-tpu`, ...).
      accelerator_type / accelerator_count: e.g. `NVIDIA_TESLA_T4`, 1; or `TPU_V2`, 8 with a TPU VM.
      tpu_topology: e.g. `2x2` for a TPU VM slice (set with `machine_type="cloud-tpu"` or `ct5lp-*`).
      use_dataflow: run Beam components (ExampleGen, StatisticsGen, Transform, ...) on Dataflow.
      dataflow_temp_location: `gs://...` temp and staging location for Dataflow.
      dataflow_machine_type / dataflow_max_workers: Dataflow worker shape and autoscaling cap.
      service_account: optional service account of the pipeline job.
      schedule_cron: cron of the scheduled retraining (`pipeline.retraining.schedule_on_vertex`).
    """

    project: str = ""
    region: str = "us-central1"
    image: str = DEFAULT_IMAGE
    machine_type: str = "n1-standard-8"
    accelerator_type: str = ""
    accelerator_count: int = 0
    tpu_topology: str = ""
    use_dataflow: bool = True
    dataflow_temp_location: str = ""
    dataflow_machine_type: str = "n1-standard-4"
    dataflow_max_workers: int = 8
    service_account: str = ""
    schedule_cron: str = "0 3 * * 1"  # Mondays 03:00 (in the schedule's time zone, UTC by default)

    def __post_init__(self):
        if not self.image:
            raise ValueError("vertex.image must name the pipeline's container image")
        if self.accelerator_count < 0 or (self.accelerator_count > 0) != bool(self.accelerator_type):
            raise ValueError("vertex.accelerator_type and accelerator_count (> 0) go together")
        if self.tpu_topology and not _TPU_TOPOLOGY.match(self.tpu_topology):
            raise ValueError(f"vertex.tpu_topology must look like 2x2 or 2x2x1, got {self.tpu_topology!r}")
        if self.dataflow_max_workers < 1:
            raise ValueError("vertex.dataflow_max_workers must be >= 1")
        if len(self.schedule_cron.split()) not in (5, 6):  # 6 = with a leading `TZ=...` field
            raise ValueError(f"vertex.schedule_cron must be a cron expression, got {self.schedule_cron!r}")

    def dataflow_beam_args(self) -> Tuple[str, ...]:
        """Beam args that send the pipeline's Beam components to Dataflow with our image."""
        args = ["--runner=DataflowRunner", f"--project={self.project}", f"--region={self.region}",
                f"--sdk_container_image={self.image}", f"--machine_type={self.dataflow_machine_type}",
                f"--max_num_workers={self.dataflow_max_workers}", "--experiments=use_runner_v2"]
        if self.dataflow_temp_location:
            args.append(f"--temp_location={self.dataflow_temp_location}")
        if self.service_account:
            args.append(f"--service_account_email={self.service_account}")
        return tuple(args)

    def trainer_worker_pool_specs(self, image: Optional[str] = None) -> list:
        """Vertex CustomJob `worker_pool_specs` for the Trainer (one replica: DTensor shards within it)."""
        machine_spec: Dict[str, Any] = {"machine_type": self.machine_type}
        if self.accelerator_type:
            machine_spec.update(accelerator_type=self.accelerator_type,
                                accelerator_count=self.accelerator_count)
        if self.tpu_topology:
            machine_spec["tpu_topology"] = self.tpu_topology
        return [{"machine_spec": machine_spec, "replica_count": 1,
                 "container_spec": {"image_uri": image or self.image}}]


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """One pipeline: where it reads and writes, what it trains, and the quality gate before pushing.

    Attributes:
      name: pipeline name (lower-case letters, digits, hyphens: a valid Vertex pipeline name).
      pipeline_root: where component outputs go (local folder or `gs://`).
      data_root: dataset folder of JSONL manifests + media (or of `span-N/` sub-folders).
      serving_base_path: the TF Serving model base path the Pusher writes `<base>/<version>/` into.
      model_config: `models.configs` preset name.
      tasks_file: AGD tasks YAML (None: `models/training/default_tasks.yaml`).
      train_steps / eval_steps: Trainer steps; evaluation steps per task inside the Trainer.
      mesh: DTensor mesh spec for the Trainer (`batch=2,expert=4`; "" = one device).
      seed: training seed.
      span_pattern: `span-{SPAN}` to ingest the latest span only (scheduled retraining), or None.
      blessing: thresholds and baseline comparison of the evaluator.
      eval_options: knobs of the evaluator's metric code (`max_examples`, `batch_size`).
      trainer_options: TrainConfig overrides for the Trainer's run_fn (`sampler`, `batch_size_scale`, ...).
      beam_args: Beam pipeline args of the Beam components for local runs.
      enable_cache: reuse outputs of components whose inputs and settings did not change.
      metadata_path: SQLite ML Metadata file for local runs ("" = `<pipeline_root>/metadata.sqlite`).
      vertex: Vertex AI / Kubeflow settings.
    """

    pipeline_root: str
    data_root: str
    serving_base_path: str = ""
    name: str = DEFAULT_PIPELINE_NAME
    model_config: str = "tiny"
    tasks_file: Optional[str] = None
    train_steps: int = 200
    eval_steps: int = 1
    mesh: str = ""
    seed: int = 0
    span_pattern: Optional[str] = None
    blessing: BlessingPolicy = DEFAULT_BLESSING
    eval_options: Tuple[Tuple[str, Any], ...] = ()
    trainer_options: Tuple[Tuple[str, Any], ...] = ()
    beam_args: Tuple[str, ...] = LOCAL_BEAM_ARGS
    enable_cache: bool = True
    metadata_path: str = ""
    vertex: VertexConfig = VertexConfig()

    def __post_init__(self):
        if not _NAME.match(self.name):
            raise ValueError(f"pipeline name {self.name!r} must be lower-case letters, digits and hyphens "
                             "(start with a letter, at most 63 characters)")
        if not self.pipeline_root or not self.data_root:
            raise ValueError("pipeline_root and data_root are required")
        model_configs.get_config(self.model_config)  # raises on unknown presets
        if self.tasks_file is not None and "://" not in self.tasks_file \
                and not pathlib.Path(self.tasks_file).is_file():
            raise ValueError(f"tasks_file {self.tasks_file} does not exist")
        if self.train_steps < 1 or self.eval_steps < 0:
            raise ValueError("train_steps must be >= 1 and eval_steps >= 0")
        parse_mesh_spec(self.mesh)  # raises on bad specs
        if self.span_pattern is not None and "{SPAN}" not in self.span_pattern:
            raise ValueError(f"span_pattern must contain {{SPAN}}, got {self.span_pattern!r}")
        object.__setattr__(self, "beam_args", tuple(str(a) for a in self.beam_args))
        object.__setattr__(self, "eval_options", tuple(sorted(dict(self.eval_options).items())))
        object.__setattr__(self, "trainer_options", tuple(sorted(dict(self.trainer_options).items())))
        bad = [a for a in self.beam_args if not a.startswith("--")]
        if bad:
            raise ValueError(f"beam_args must be --flags, got {bad}")

    @property
    def serving_path(self) -> str:
        """The Pusher's base directory (default `<pipeline_root>/serving_model/<name>`)."""
        return self.serving_base_path or f"{self.pipeline_root.rstrip('/')}/serving_model/{self.name}"

    @property
    def metadata_file(self) -> str:
        return self.metadata_path or str(pathlib.Path(self.pipeline_root) / "metadata.sqlite")

    def replace(self, **changes: Any) -> "PipelineConfig":
        return dataclasses.replace(self, **changes)
