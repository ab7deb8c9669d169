"""ImpEvaluator wiring and executor outputs: the blessing is a standard ModelBlessing that the stock
Pusher and LatestBlessedModelStrategy accept."""

import json
import os

import pytest
from tfx.components.util import model_utils
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy
from tfx.types import channel_utils
from tfx.types import standard_artifacts

from components.evaluator import ImpEvaluator
from components.evaluator import executor as executor_lib
from components.evaluator.blessing import BlessingPolicy
from models.training import tasks as tasks_lib

POLICY = BlessingPolicy(lower_bounds=(("zero_shot/*/accuracy", 0.2),),
                        comparison_metrics=("zero_shot/*/accuracy",))
TASKS_JSON = tasks_lib.tasks_to_json(tasks_lib.load_tasks())


def _artifact(cls, uri, artifact_id=None):
    artifact = cls()
    artifact.uri = str(uri)
    if artifact_id is not None:
        artifact.id = artifact_id
    return artifact


def test_component_outputs_are_standard_types():
    evaluator = ImpEvaluator(
        examples=channel_utils.as_channel([standard_artifacts.Examples()]),
        transform_graph=channel_utils.as_channel([standard_artifacts.TransformGraph()]),
        model=channel_utils.as_channel([standard_artifacts.Model()]),
        baseline_model=channel_utils.as_channel([standard_artifacts.Model()]),
        tasks_json=TASKS_JSON, policy=POLICY, options={"max_examples": 64})
    assert evaluator.outputs["blessing"].type is standard_artifacts.ModelBlessing
    assert evaluator.outputs["evaluation"].type is standard_artifacts.ModelEvaluation
    assert BlessingPolicy.from_json(evaluator.exec_properties["blessing_policy"]) == POLICY
    assert json.loads(evaluator.exec_properties["options"]) == {"max_examples": 64}


class _FakeEvaluator:
    """Stands in for the metric code: metrics by model URI."""

    results = {}

    def __init__(self, examples_uri, transform_graph_uri, tasks_json, options):
        assert json.loads(tasks_json)["tasks"]

    def __call__(self, model_uri):
        return dict(self.results[model_uri])


def _run(tmp_path, monkeypatch, results, with_baseline):
    monkeypatch.setattr(executor_lib.metrics_lib, "ModelEvaluator", _FakeEvaluator)
    _FakeEvaluator.results = results
    model = _artifact(standard_artifacts.Model, tmp_path / "model", 7)
    baseline = _artifact(standard_artifacts.Model, tmp_path / "baseline", 3)
    evaluation = _artifact(standard_artifacts.ModelEvaluation, tmp_path / "evaluation")
    blessing = _artifact(standard_artifacts.ModelBlessing, tmp_path / "blessing")
    inputs = {"examples": [_artifact(standard_artifacts.Examples, tmp_path / "ex")],
              "transform_graph": [_artifact(standard_artifacts.TransformGraph, tmp_path / "tg")],
              "model": [model]}
    if with_baseline:
        inputs["baseline_model"] = [baseline]
    executor_lib.Executor().Do(
        inputs, {"evaluation": [evaluation], "blessing": [blessing]},
        {"blessing_policy": POLICY.to_json(), "tasks": TASKS_JSON, "options": "{}"})
    return model, blessing, evaluation


def test_first_model_above_threshold_is_blessed_for_the_pusher(tmp_path, monkeypatch):
    results = {str(tmp_path / "model"): {"zero_shot/image_cls/accuracy": 0.5}}
    model, blessing, evaluation = _run(tmp_path, monkeypatch, results, with_baseline=False)
    assert model_utils.is_model_blessed(blessing)
    assert blessing.get_int_custom_property("current_model_id") == 7
    assert blessing.get_string_custom_property("current_model") == model.uri
    assert os.path.exists(os.path.join(blessing.uri, "BLESSED"))
    record = executor_lib.read_evaluation(evaluation.uri)
    assert record["candidate"] == {"zero_shot/image_cls/accuracy": 0.5}
    assert record["baseline"] is None and record["decision"]["blessed"]
    assert "| zero_shot/image_cls/accuracy | 0.500 |" in open(os.path.join(evaluation.uri, "metrics.md")).read()


def test_worse_than_baseline_is_not_blessed(tmp_path, monkeypatch):
    results = {str(tmp_path / "model"): {"zero_shot/image_cls/accuracy": 0.5},
               str(tmp_path / "baseline"): {"zero_shot/image_cls/accuracy": 0.6}}
    _, blessing, evaluation = _run(tmp_path, monkeypatch, results, with_baseline=True)
    assert not model_utils.is_model_blessed(blessing)
    assert blessing.get_int_custom_property("baseline_model_id") == 3
    assert os.path.exists(os.path.join(blessing.uri, "NOT_BLESSED"))
    record = executor_lib.read_evaluation(evaluation.uri)
    assert record["baseline"] == {"zero_shot/image_cls/accuracy": 0.6}
    assert record["decision"]["baseline_score"] == pytest.approx(0.6)


def test_latest_blessed_model_strategy_finds_our_blessings(tmp_path, monkeypatch):
    results = {str(tmp_path / "model"): {"zero_shot/image_cls/accuracy": 0.5}}
    model, blessing, _ = _run(tmp_path, monkeypatch, results, with_baseline=False)
    older = _artifact(standard_artifacts.Model, tmp_path / "older", 2)
    resolved = LatestBlessedModelStrategy()._resolve(  # pylint: disable=protected-access
        {"model": [older, model], "model_blessing": [blessing]}, "model", "model_blessing")
    assert [m.id for m in resolved["model"]] == [7]


def test_evaluation_metric_names_are_namespaced():
    from components.evaluator.metrics import rename_metrics

    renamed = rename_metrics({"image_cls/zero_shot_top1": 0.3, "image_cls/zero_shot_top5": 0.7,
                              "image_cls/accuracy": 0.9, "video_text/video_to_text/recall@5": 0.4,
                              "video_text/text_to_video/median_rank": 3.0})
    assert renamed == {"zero_shot/image_cls/accuracy": 0.3, "zero_shot/image_cls/top5_accuracy": 0.7,
                       "classifier/image_cls/accuracy": 0.9,
                       "retrieval/video_text/video_to_text/recall@5": 0.4,
                       "retrieval/video_text/text_to_video/median_rank": 3.0}


def test_unreadable_baseline_falls_back_to_thresholds(tmp_path, monkeypatch):
    results = {str(tmp_path / "model"): {"zero_shot/image_cls/accuracy": 0.5}}  # baseline: KeyError
    _, blessing, evaluation = _run(tmp_path, monkeypatch, results, with_baseline=True)
    assert model_utils.is_model_blessed(blessing)
    record = executor_lib.read_evaluation(evaluation.uri)
    assert record["baseline"] is None and "KeyError" in record["baseline_error"]
