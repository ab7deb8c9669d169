"""The pipeline graph: components, wiring, run_fn by dotted path, runner-specific settings."""

import json

import pytest

from imp_tfx import cli as imp_cli
from pipeline import pipeline as pipeline_lib
from pipeline.configs import MULTI_PROCESSING_BEAM_ARGS, PipelineConfig

ORDER = ["MultimodalExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Transform",
         "latest_blessed_model_resolver", "Trainer", "ImpEvaluator", "Pusher"]


def _config(tmp_path, **changes):
    return PipelineConfig(**{"pipeline_root": str(tmp_path / "root"), "data_root": str(tmp_path / "data"),
                             "train_steps": 7, **changes})


def _by_id(pipeline):
    return {c.id: c for c in pipeline.components}


def test_local_pipeline_components_and_settings(tmp_path):
    config = _config(tmp_path, beam_args=MULTI_PROCESSING_BEAM_ARGS, mesh="batch=2,expert=4")
    pipeline = pipeline_lib.create_pipeline(config)
    assert sorted(c.id for c in pipeline.components) == sorted(ORDER)
    assert pipeline.enable_cache
    assert pipeline.beam_pipeline_args == list(MULTI_PROCESSING_BEAM_ARGS)
    assert pipeline.metadata_connection_config.sqlite.filename_uri == config.metadata_file
    components = _by_id(pipeline)
    trainer = components["Trainer"]
    assert trainer.exec_properties["run_fn"] == "models.training.run_fn.run_fn"
    custom = json.loads(trainer.exec_properties["custom_config"])
    assert custom["model_config"] == "tiny" and custom["mesh"] == "batch=2,expert=4"
    assert custom["train"] == {"seed": 0}
    assert json.loads(trainer.exec_properties["train_args"])["num_steps"] == 7
    assert {t["name"] for t in custom["tasks"]} >= {"image_text", "video_audio"}
    assert "base_model" not in trainer.inputs  # no warm start by default
    evaluator = components["ImpEvaluator"]
    assert evaluator.inputs["baseline_model"].producer_component_id == "latest_blessed_model_resolver"
    assert evaluator.inputs["model"].producer_component_id == "Trainer"
    pusher = components["Pusher"]
    assert pusher.inputs["model_blessing"].producer_component_id == "ImpEvaluator"
    assert config.serving_path in pusher.exec_properties["push_destination"]


def test_warm_start_feeds_the_latest_blessed_model_to_the_trainer(tmp_path):
    pipeline = pipeline_lib.create_pipeline(_config(tmp_path, span_pattern="span-{SPAN}"), warm_start=True)
    components = _by_id(pipeline)
    assert components["Trainer"].inputs["base_model"].producer_component_id == "latest_blessed_model_resolver"
    input_config = components["MultimodalExampleGen"].exec_properties["input_config"]
    assert "span-{SPAN}/image_text.jsonl" in input_config


def test_unknown_runner_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="runner"):
        pipeline_lib.create_pipeline(_config(tmp_path), runner="airflow")


def test_cli_dry_run_prints_the_graph(tmp_path, capsys):
    code = imp_cli.main(["pipeline", "run", "--data", str(tmp_path / "d"), "--root", str(tmp_path / "r"),
                         "--steps", "5", "--dry-run"])
    assert code == 0
    out = capsys.readouterr().out
    assert "Pusher  <- ImpEvaluator, Trainer" in out
    assert "ImpEvaluator  <- Trainer, Transform, latest_blessed_model_resolver" in out
