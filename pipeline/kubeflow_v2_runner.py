"""Compiles the pipeline to a KFP v2 pipeline spec JSON for Vertex AI Pipelines / Kubeflow Pipelines.

    imp-tfx pipeline compile --runner vertex --out imp_tfx_pipeline.json \
        --root gs://BUCKET/root --data gs://BUCKET/data --project P --region R --image IMAGE

Every component runs in `config.vertex.image` (this repository installed), Beam components on Dataflow,
and the Trainer as a Vertex custom job on the configured machine / accelerator / TPU topology. The JSON
is submitted with `google.cloud.aiplatform.PipelineJob(template_path=...)` (see `pipeline.retraining`
for the scheduled variant) or uploaded to a Kubeflow Pipelines v2 cluster.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any, Dict

from tfx import v1 as tfx

from pipeline import pipeline as pipeline_lib
from pipeline.configs import PipelineConfig


def compile_pipeline(config: PipelineConfig, output_path: str, warm_start: bool = False) -> Dict[str, Any]:
    """Writes the pipeline spec JSON to `output_path` and returns it as a dict.

    Args:
      config: pipeline settings; `config.vertex` supplies the image, Dataflow and Trainer settings.
      output_path: the JSON file to write (its folder is created).
      warm_start: compile the scheduled-retraining variant (Trainer warm-starts from the last blessed
        model).
    """
    if not config.vertex.project:
        raise ValueError("compiling for Vertex needs vertex.project (--project)")
    output = pathlib.Path(output_path)
    output.parent.mkdir(parents=True, exist_ok=True)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
            default_image=config.vertex.image, display_name=config.name),
        output_dir=str(output.parent), output_filename=output.name)
    runner.run(pipeline_lib.create_pipeline(config, runner=pipeline_lib.VERTEX, warm_start=warm_start))
    return json.loads(output.read_text())
