"""Scheduled retraining, two rounds: span 1 (cold start, pushed as the first version), then span 2
(only the new span ingested, Trainer warm-started from the blessed model, evaluated against it, and a
second version pushed only when it is not worse)."""

import os

import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from components.evaluator import executor as evaluator_executor
from components.evaluator.blessing import BlessingPolicy
from pipeline import retraining
from pipeline.configs import PipelineConfig

pytestmark = pytest.mark.slow

POLICY = BlessingPolicy(lower_bounds=(("zero_shot/*/accuracy", 0.0),), max_regression=0.0)


def _generate(root, span):
    from components.demo_data.generator import generate_demo_dataset

    generate_demo_dataset(str(root), examples=90, seed=0, span=span)


def _input_uris(config, execution_id, key):
    store = metadata_store.MetadataStore(
        tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_file))
    events = [e for e in store.get_events_by_execution_ids([execution_id])
              if e.type == metadata_store_pb2.Event.INPUT and e.path.steps and e.path.steps[0].key == key]
    return [a.uri for a in store.get_artifacts_by_id([e.artifact_id for e in events])]


def _versions(path):
    return sorted(int(d) for d in os.listdir(path) if d.isdigit()) if os.path.isdir(path) else []


def test_two_rounds_warm_start_and_push_only_if_not_worse(tmp_path):
    data = tmp_path / "data"
    config = PipelineConfig(name="imp-retrain", pipeline_root=str(tmp_path / "root"), data_root=str(data),
                            model_config="tiny", train_steps=8, blessing=POLICY,
                            eval_options={"max_examples": 32})
    _generate(data, span=1)
    first = retraining.run_round(config)
    assert first.span == 1 and first.blessed and first.pushed_version is not None
    assert first.warm_started_from is None  # nothing blessed yet
    model_1 = first.summary.output("Trainer", "model")
    assert _versions(config.serving_path) == [int(first.pushed_version)]

    _generate(data, span=2)
    second = retraining.run_round(config)
    assert second.span == 2
    examples = second.summary.output("MultimodalExampleGen", "examples")
    assert examples != first.summary.output("MultimodalExampleGen", "examples")
    trainer = second.summary.components["Trainer"]
    assert _input_uris(config, trainer.execution_id, "base_model") == [model_1]
    evaluator = second.summary.components["ImpEvaluator"]
    assert _input_uris(config, evaluator.execution_id, "baseline_model") == [model_1]

    record = evaluator_executor.read_evaluation(second.summary.output("ImpEvaluator", "evaluation"))
    assert record["baseline"] is not None  # the first model was scored on span 2's eval data
    not_worse = record["decision"]["score"] >= record["decision"]["baseline_score"] - POLICY.max_regression
    assert second.blessed == not_worse
    if not_worse:
        assert _versions(config.serving_path) == sorted([int(first.pushed_version),
                                                         int(second.pushed_version)])
    else:
        assert second.pushed_version is None
        assert _versions(config.serving_path) == [int(first.pushed_version)]
