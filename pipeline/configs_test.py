"""PipelineConfig / VertexConfig validation and derived settings."""

import pytest

from pipeline.configs import (IN_MEMORY_BEAM_ARGS, LOCAL_BEAM_ARGS, MULTI_PROCESSING_BEAM_ARGS, PipelineConfig,
                              VertexConfig)


def _config(**changes):
    return PipelineConfig(**{"pipeline_root": "/tmp/root", "data_root": "/tmp/data", **changes})


def test_defaults_derive_paths_and_use_in_memory_beam():
    config = _config()
    assert config.serving_path == "/tmp/root/serving_model/imp-tfx"
    assert config.metadata_file == "/tmp/root/metadata.sqlite"
    assert config.beam_args == LOCAL_BEAM_ARGS == IN_MEMORY_BEAM_ARGS
    assert "--direct_running_mode=in_memory" in IN_MEMORY_BEAM_ARGS
    assert "--direct_running_mode=multi_processing" in MULTI_PROCESSING_BEAM_ARGS
    assert _config(serving_base_path="/srv/imp").serving_path == "/srv/imp"


@pytest.mark.parametrize("changes, message", [
    ({"name": "Bad_Name"}, "lower-case"),
    ({"model_config": "huge"}, "unknown model config"),
    ({"train_steps": 0}, "train_steps"),
    ({"mesh": "batch=2,experts=4"}, "mesh"),
    ({"span_pattern": "span-*"}, "SPAN"),
    ({"tasks_file": "/nonexistent/tasks.yaml"}, "does not exist"),
    ({"beam_args": ("direct_num_workers=2",)}, "--flags"),
    ({"data_root": ""}, "required"),
])
def test_invalid_configs_are_rejected(changes, message):
    with pytest.raises(ValueError, match=message):
        _config(**changes)


def test_options_are_normalized_to_sorted_tuples():
    config = _config(eval_options={"max_examples": 32, "batch_size": 8}, beam_args=["--a=1"])
    assert config.eval_options == (("batch_size", 8), ("max_examples", 32))
    assert config.beam_args == ("--a=1",)
    hash(config)  # frozen and hashable


@pytest.mark.parametrize("changes, message", [
    ({"accelerator_type": "NVIDIA_TESLA_T4"}, "go together"),
    ({"accelerator_count": 2}, "go together"),
    ({"tpu_topology": "2by2"}, "tpu_topology"),
    ({"schedule_cron": "daily"}, "cron"),
    ({"image": ""}, "image"),
])
def test_invalid_vertex_configs_are_rejected(changes, message):
    with pytest.raises(ValueError, match=message):
        VertexConfig(**changes)


def test_vertex_worker_pool_and_dataflow_args():
    vertex = VertexConfig(project="p", region="r", image="img", machine_type="n1-standard-16",
                          accelerator_type="NVIDIA_TESLA_T4", accelerator_count=2,
                          dataflow_temp_location="gs://b/tmp")
    pool = vertex.trainer_worker_pool_specs()
    assert pool == [{"machine_spec": {"machine_type": "n1-standard-16", "accelerator_type": "NVIDIA_TESLA_T4",
                                      "accelerator_count": 2},
                     "replica_count": 1, "container_spec": {"image_uri": "img"}}]
    args = vertex.dataflow_beam_args()
    assert "--runner=DataflowRunner" in args and "--sdk_container_image=img" in args
    assert "--temp_location=gs://b/tmp" in args and "--project=p" in args
