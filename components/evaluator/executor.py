"""ImpEvaluator's executor: metrics of candidate and baseline -> `BlessingPolicy` decision -> artifacts."""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Dict, List, Mapping, Optional

import tensorflow as tf
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from components.evaluator import blessing as blessing_lib
from components.evaluator import metrics as metrics_lib

EXAMPLES_KEY = "examples"
TRANSFORM_GRAPH_KEY = "transform_graph"
MODEL_KEY = "model"
BASELINE_MODEL_KEY = "baseline_model"
EVALUATION_KEY = "evaluation"
BLESSING_KEY = "blessing"
POLICY_KEY = "blessing_policy"
TASKS_KEY = "tasks"
OPTIONS_KEY = "options"

METRICS_FILE = "metrics.json"
TABLE_FILE = "metrics.md"
# The same property names and marker files as TFX's own Evaluator (tfx/components/evaluator/constants.py),
# which the Pusher and LatestBlessedModelStrategy read.
BLESSED_PROPERTY = "blessed"
CURRENT_MODEL_PROPERTY = "current_model"
CURRENT_MODEL_ID_PROPERTY = "current_model_id"
BASELINE_MODEL_PROPERTY = "baseline_model"
BASELINE_MODEL_ID_PROPERTY = "baseline_model_id"
BLESSED_FILE = "BLESSED"
NOT_BLESSED_FILE = "NOT_BLESSED"


def write_blessing(artifact: types.Artifact, decision: blessing_lib.Decision, model: types.Artifact,
                   baseline: Optional[types.Artifact]) -> None:
    """Fills a ModelBlessing artifact the way the stock Evaluator does."""
    artifact.set_int_custom_property(BLESSED_PROPERTY, 1 if decision.blessed else 0)
    artifact.set_string_custom_property(CURRENT_MODEL_PROPERTY, model.uri)
    artifact.set_int_custom_property(CURRENT_MODEL_ID_PROPERTY, model.id)
    if baseline is not None:
        artifact.set_string_custom_property(BASELINE_MODEL_PROPERTY, baseline.uri)
        artifact.set_int_custom_property(BASELINE_MODEL_ID_PROPERTY, baseline.id)
    artifact.set_float_custom_property("score", decision.score)
    tf.io.gfile.makedirs(artifact.uri)
    marker = BLESSED_FILE if decision.blessed else NOT_BLESSED_FILE
    with tf.io.gfile.GFile(os.path.join(artifact.uri, marker), "w") as f:
        f.write(decision.explain() + "\n")


def write_evaluation(uri: str, candidate: Mapping[str, float], baseline: Optional[Mapping[str, float]],
                     decision: blessing_lib.Decision, policy: blessing_lib.BlessingPolicy,
                     baseline_error: Optional[str] = None) -> None:
    tf.io.gfile.makedirs(uri)
    record = {"candidate": dict(candidate), "baseline": None if baseline is None else dict(baseline),
              "baseline_error": baseline_error, "decision": decision.to_dict(),
              "policy": json.loads(policy.to_json())}
    with tf.io.gfile.GFile(os.path.join(uri, METRICS_FILE), "w") as f:
        json.dump(record, f, indent=2, sort_keys=True)
    with tf.io.gfile.GFile(os.path.join(uri, TABLE_FILE), "w") as f:
        f.write(metrics_lib.format_table(candidate, baseline) + "\n\n" + decision.explain() + "\n")


def read_evaluation(uri: str) -> Dict[str, Any]:
    """The `metrics.json` record of a ModelEvaluation artifact written by this component."""
    with tf.io.gfile.GFile(os.path.join(uri, METRICS_FILE)) as f:
        return json.load(f)


class Executor(base_executor.BaseExecutor):
    """Evaluates `model` (and `baseline_model`) on the eval splits and blesses by the policy."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]],
           output_dict: Dict[str, List[types.Artifact]], exec_properties: Dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        examples = artifact_utils.get_single_instance(input_dict[EXAMPLES_KEY])
        transform_graph = artifact_utils.get_single_instance(input_dict[TRANSFORM_GRAPH_KEY])
        model = artifact_utils.get_single_instance(input_dict[MODEL_KEY])
        baselines = input_dict.get(BASELINE_MODEL_KEY) or []
        baseline = baselines[0] if baselines else None
        if baseline is not None and baseline.id == model.id:
            baseline = None  # a cached Trainer output resolved as its own baseline
        policy = blessing_lib.BlessingPolicy.from_json(exec_properties[POLICY_KEY])
        options = json.loads(exec_properties.get(OPTIONS_KEY) or "{}")
        evaluate = metrics_lib.ModelEvaluator(
            examples_uri=examples.uri, transform_graph_uri=transform_graph.uri,
            tasks_json=exec_properties[TASKS_KEY], options=options)

        candidate = evaluate(model.uri)
        baseline_metrics, baseline_error = None, None
        if baseline is not None:
            # A baseline that cannot be scored on today's data (e.g. exported by an older version, or
            # sized for another vocabulary) must not block every future model: like the TFMA
            # Evaluator without a baseline, the decision then rests on the thresholds alone.
            try:
                baseline_metrics = evaluate(baseline.uri)
            except Exception as e:  # pylint: disable=broad-except
                baseline_error = f"{type(e).__name__}: {e}"
                logging.warning("baseline %s could not be evaluated (%s); thresholds only",
                                baseline.uri, baseline_error)
        decision = blessing_lib.decide(candidate, baseline_metrics, policy)

        evaluation = artifact_utils.get_single_instance(output_dict[EVALUATION_KEY])
        write_evaluation(evaluation.uri, candidate, baseline_metrics, decision, policy, baseline_error)
        write_blessing(artifact_utils.get_single_instance(output_dict[BLESSING_KEY]), decision, model,
                       baseline)
