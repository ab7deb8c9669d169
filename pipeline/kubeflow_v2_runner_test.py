"""Compiles the pipeline for Vertex AI / Kubeflow and validates the spec with kfp 2.5."""

import json

import pytest
from google.protobuf import json_format
from kfp import components as kfp_components
from kfp.pipeline_spec import pipeline_spec_pb2

from pipeline import kubeflow_v2_runner
from pipeline.configs import PipelineConfig, VertexConfig

COMPONENTS = {"MultimodalExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Transform",
              "Trainer", "ImpEvaluator", "Pusher"}
IMAGE = "us-docker.pkg.dev/my-project/imp/imp-tfx:1"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    out = tmp_path_factory.mktemp("spec") / "imp_tfx_pipeline.json"
    config = PipelineConfig(
        pipeline_root="gs://bucket/root", data_root="gs://bucket/data", span_pattern="span-{SPAN}",
        serving_base_path="gs://bucket/serving/imp", train_steps=1000, mesh="batch=1,expert=4",
        vertex=VertexConfig(project="my-project", region="europe-west4", image=IMAGE,
                            machine_type="cloud-tpu", accelerator_type="TPU_V3", accelerator_count=8,
                            tpu_topology="2x2", dataflow_temp_location="gs://bucket/tmp"))
    spec = kubeflow_v2_runner.compile_pipeline(config, str(out), warm_start=True)
    return out, spec


def _parameter(spec, task, name):
    """A constant task parameter (TFX writes them as `runtimeValue.constantValue.stringValue`)."""
    params = spec["pipelineSpec"]["root"]["dag"]["tasks"][task]["inputs"]["parameters"]
    return params[name]["runtimeValue"]["constantValue"]["stringValue"]


def _executors(spec):
    return spec["pipelineSpec"]["deploymentSpec"]["executors"]


def test_spec_parses_as_pipeline_spec_and_loads_in_kfp(compiled, tmp_path):
    out, spec = compiled
    assert json.loads(out.read_text()) == spec
    proto = pipeline_spec_pb2.PipelineSpec()
    json_format.ParseDict(spec["pipelineSpec"], proto)  # strict: unknown fields raise
    assert proto.pipeline_info.name == "imp-tfx"
    inner = tmp_path / "pipeline_spec.json"
    inner.write_text(json.dumps(spec["pipelineSpec"]))
    component = kfp_components.load_component_from_file(str(inner))
    assert COMPONENTS <= set(component.pipeline_spec.root.dag.tasks)
    assert spec["runtimeConfig"]["gcsOutputDirectory"] == "gs://bucket/root"


def test_every_component_runs_in_the_configured_image(compiled):
    _, spec = compiled
    tasks = spec["pipelineSpec"]["root"]["dag"]["tasks"]
    assert COMPONENTS <= set(tasks)
    containers = {name: e["container"] for name, e in _executors(spec).items() if "container" in e}
    assert {n.replace("_executor", "") for n in containers} == COMPONENTS
    assert all(c["image"] == IMAGE for c in containers.values())


def test_beam_components_run_on_dataflow(compiled):
    _, spec = compiled
    args = _executors(spec)["Transform_executor"]["container"]["args"]
    assert "--runner=DataflowRunner" in args
    assert f"--sdk_container_image={IMAGE}" in args
    assert "--project=my-project" in args and "--temp_location=gs://bucket/tmp" in args


def test_trainer_is_a_vertex_job_on_the_configured_tpu(compiled):
    _, spec = compiled
    container = _executors(spec)["Trainer_executor"]["container"]
    assert "tfx.extensions.google_cloud_ai_platform.trainer.executor.GenericExecutor" in container["args"]
    custom = json.loads(_parameter(spec, "Trainer", "custom_config"))
    assert custom["ai_platform_enable_vertex"] is True
    assert custom["ai_platform_vertex_region"] == "europe-west4"
    pool = custom["ai_platform_training_args"]["worker_pool_specs"][0]
    assert pool["machine_spec"] == {"machine_type": "cloud-tpu", "accelerator_type": "TPU_V3",
                                    "accelerator_count": 8, "tpu_topology": "2x2"}
    assert pool["container_spec"]["image_uri"] == IMAGE
    assert custom["model_config"] == "tiny" and custom["mesh"] == "batch=1,expert=4"
    assert {t["name"] for t in custom["tasks"]} >= {"image_text", "audio_cls"}
    assert json.loads(_parameter(spec, "Trainer", "train_args"))["num_steps"] == 1000
    # Warm start: the Trainer consumes the latest blessed model.
    assert "base_model" in spec["pipelineSpec"]["components"]["Trainer"]["inputDefinitions"]["artifacts"]


def test_resolver_queries_blessed_models_and_pusher_targets_the_serving_path(compiled):
    _, spec = compiled
    executors = _executors(spec)
    query = executors["latest_blessed_model_resolver-model-blessing-resolver_executor"]["resolver"]
    assert "metadata.blessed.number_value=1" in json.dumps(query)
    destination = json.loads(_parameter(spec, "Pusher", "push_destination"))
    assert destination == {"filesystem": {"base_directory": "gs://bucket/serving/imp"}}


def test_compile_requires_a_project(tmp_path):
    config = PipelineConfig(pipeline_root="gs://b/root", data_root="gs://b/data")
    with pytest.raises(ValueError, match="project"):
        kubeflow_v2_runner.compile_pipeline(config, str(tmp_path / "spec.json"))
