"""`create_pipeline(config)`: the IMP TFX pipeline, the same graph for every orchestrator.

    MultimodalExampleGen -> StatisticsGen -> SchemaGen -> ExampleValidator -> Transform
        -> Trainer (AGD run_fn) -> ImpEvaluator (zero-shot + retrieval, vs. the last blessed model)
        -> Pusher (TF Serving base path, `<base>/<version>/`)
    latest_blessed_model_resolver (LatestBlessedModelStrategy) -> ImpEvaluator.baseline_model
                                                                 (-> Trainer.base_model when warm-starting)

Code is referenced by dotted path (`models.preprocessing.preprocessing_fn`,
`models.training.run_fn.run_fn`) as in the TFX templates: it ships inside the pipeline image, so the
same pipeline object runs locally and on Vertex. Runner-specific parts (Beam args, the Vertex Trainer)
come from `PipelineConfig` and `runner`.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from tfx import v1 as tfx

from components import ingestion
from components.evaluator import ImpEvaluator
from models.training import tasks as tasks_lib
from pipeline.configs import PipelineConfig

RUN_FN = "models.training.run_fn.run_fn"
LOCAL = "local"
VERTEX = "vertex"
RUNNERS = (LOCAL, VERTEX)

# Trainer custom_config keys (read by models.training.run_fn; steps come from TrainArgs).
MODEL_CONFIG_KEY = "model_config"
TASKS_KEY = "tasks"
MESH_KEY = "mesh"
TRAIN_KEY = "train"  # TrainConfig overrides

RESOLVER_ID = "latest_blessed_model_resolver"


def load_tasks(config: PipelineConfig) -> Sequence[tasks_lib.Task]:
    return tasks_lib.load_tasks(config.tasks_file)


def trainer_custom_config(config: PipelineConfig, tasks: Sequence[tasks_lib.Task]) -> Dict[str, Any]:
    """What run_fn needs besides FnArgs: the model preset, the tasks (inline dicts, so no file has to
    exist where the Trainer runs), the mesh, and TrainConfig overrides (the seed and `trainer_options`)."""
    return {MODEL_CONFIG_KEY: config.model_config, TASKS_KEY: [t.to_dict() for t in tasks],
            MESH_KEY: config.mesh or None, TRAIN_KEY: {"seed": config.seed, **dict(config.trainer_options)}}


def _trainer(config: PipelineConfig, runner: str, tasks: Sequence[tasks_lib.Task], ingest: Dict[str, Any],
             base_model: Optional[tfx.types.BaseChannel]):
    custom_config = trainer_custom_config(config, tasks)
    kwargs = dict(
        examples=ingest["transformed_examples"],
        transform_graph=ingest["transform_graph"],
        schema=ingest["schema"],
        base_model=base_model,
        run_fn=RUN_FN,
        train_args=tfx.proto.TrainArgs(splits=sorted({t.train_split for t in tasks}),
                                       num_steps=config.train_steps),
        eval_args=tfx.proto.EvalArgs(splits=sorted({t.eval_split for t in tasks}),
                                     num_steps=config.eval_steps))
    if runner == VERTEX:
        # The Trainer runs as a Vertex custom job on the configured machine / accelerator / TPU.
        vertex = config.vertex
        custom_config.update({
            tfx.extensions.google_cloud_ai_platform.ENABLE_VERTEX_KEY: True,
            tfx.extensions.google_cloud_ai_platform.VERTEX_REGION_KEY: vertex.region,
            tfx.extensions.google_cloud_ai_platform.TRAINING_ARGS_KEY: {
                "project": vertex.project,
                "worker_pool_specs": vertex.trainer_worker_pool_specs(),
            },
        })
        return tfx.extensions.google_cloud_ai_platform.Trainer(custom_config=custom_config, **kwargs)
    return tfx.components.Trainer(custom_config=custom_config, **kwargs)


def create_pipeline(config: PipelineConfig, runner: str = LOCAL, warm_start: bool = False
                    ) -> tfx.dsl.Pipeline:
    """The pipeline for `runner` ("local" or "vertex").

    Args:
      config: pipeline settings.
      runner: "local" (Beam DirectRunner, SQLite MLMD) or "vertex" (Dataflow Beam args, the Trainer as
        a Vertex custom job).
      warm_start: feed the latest blessed model to the Trainer as `base_model` (scheduled retraining).
    """
    if runner not in RUNNERS:
        raise ValueError(f"runner must be one of {RUNNERS}, got {runner!r}")
    tasks = load_tasks(config)
    ingest = ingestion.make_ingestion_components(
        config.data_root, tasks=sorted({t.split for t in tasks}), span_pattern=config.span_pattern)

    latest_blessed = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id(RESOLVER_ID)

    trainer = _trainer(config, runner, tasks, ingest,
                       latest_blessed.outputs["model"] if warm_start else None)
    evaluator = ImpEvaluator(
        examples=ingest["transformed_examples"],
        transform_graph=ingest["transform_graph"],
        model=trainer.outputs["model"],
        baseline_model=latest_blessed.outputs["model"],
        tasks_json=tasks_lib.tasks_to_json(tasks),
        policy=config.blessing,
        options=dict(config.eval_options))
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=config.serving_path)))

    components: List[Any] = [*ingest["components"], latest_blessed, trainer, evaluator, pusher]
    beam_args = config.vertex.dataflow_beam_args() if runner == VERTEX and config.vertex.use_dataflow \
        else config.beam_args
    metadata = (tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_file)
                if runner == LOCAL else None)
    return tfx.dsl.Pipeline(
        pipeline_name=config.name,
        pipeline_root=config.pipeline_root,
        components=components,
        enable_cache=config.enable_cache,
        metadata_connection_config=metadata,
        beam_pipeline_args=list(beam_args))


def describe(pipeline: tfx.dsl.Pipeline) -> str:
    """One line per component: id and the ids it depends on (for `imp-tfx pipeline run --dry-run`)."""
    lines = []
    for component in pipeline.components:
        upstream = sorted(node.id for node in component.upstream_nodes)
        lines.append(f"{component.id}" + (f"  <- {', '.join(upstream)}" if upstream else ""))
    return "\n".join(lines)

