"""The Vertex schedule request of scheduled retraining (no cloud calls: print-only mode)."""

import json

from pipeline import retraining
from pipeline.configs import PipelineConfig, VertexConfig


def test_schedule_request_and_command(tmp_path):
    config = PipelineConfig(pipeline_root="gs://b/root", data_root="gs://b/data",
                            vertex=VertexConfig(project="proj", region="europe-west4", image="img",
                                                schedule_cron="TZ=Europe/Paris 0 4 * * *",
                                                service_account="sa@proj.iam.gserviceaccount.com"))
    spec_path = str(tmp_path / "retrain.json")
    message = retraining.schedule_on_vertex(config, spec_path, print_only=True)
    request = json.loads(open(spec_path + ".schedule_request.json").read())
    assert request["cron"] == "TZ=Europe/Paris 0 4 * * *"
    create = request["createPipelineJobRequest"]
    assert create["parent"] == "projects/proj/locations/europe-west4"
    assert create["pipelineJob"]["serviceAccount"] == "sa@proj.iam.gserviceaccount.com"
    tasks = create["pipelineJob"]["pipelineSpec"]["root"]["dag"]["tasks"]
    assert "Trainer" in tasks and "latest_blessed_model_resolver-model-resolver" in tasks
    # The scheduled pipeline ingests the latest span and warm-starts the Trainer.
    trainer_inputs = create["pipelineJob"]["pipelineSpec"]["components"]["Trainer"]["inputDefinitions"]
    assert "base_model" in trainer_inputs["artifacts"]
    example_gen = tasks["MultimodalExampleGen"]["inputs"]["parameters"]["input_config"]
    assert "span-{SPAN}" in json.dumps(example_gen)
    assert ("https://europe-west4-aiplatform.googleapis.com/v1/projects/proj/locations/europe-west4/schedules"
            in message)
