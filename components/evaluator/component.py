"""ImpEvaluator: zero-shot and retrieval metrics of a trained IMP model, and the blessing the Pusher reads.

Inputs:
* `examples` (Examples): Transform's `transformed_examples`; the `eval_<task>` splits are evaluated.
* `transform_graph` (TransformGraph): vocabularies (label names, text word pieces) for the prompts.
* `model` (Model): the candidate, from the Trainer.
* `baseline_model` (Model, optional): the last blessed model (a `LatestBlessedModelStrategy` Resolver);
  it is evaluated on the same data so the comparison is fair.

Outputs:
* `evaluation` (ModelEvaluation): `metrics.json` (candidate, baseline, decision, policy) and
  `metrics.md` (the table the demo prints).
* `blessing` (ModelBlessing): the standard artifact: `blessed` (1/0), `current_model(_id)`,
  `baseline_model(_id)` custom properties and a `BLESSED` / `NOT_BLESSED` marker file, so the stock
  Pusher and `LatestBlessedModelStrategy` treat it like the TFMA Evaluator's.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Optional

from tfx import types
from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter
from tfx.types.component_spec import ComponentSpec
from tfx.types.component_spec import ExecutionParameter

from components.evaluator import executor
from components.evaluator.blessing import BlessingPolicy


class ImpEvaluatorSpec(ComponentSpec):
    PARAMETERS = {
        executor.POLICY_KEY: ExecutionParameter(type=str),
        executor.TASKS_KEY: ExecutionParameter(type=str),
        executor.OPTIONS_KEY: ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {
        executor.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        executor.TRANSFORM_GRAPH_KEY: ChannelParameter(type=standard_artifacts.TransformGraph),
        executor.MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        executor.BASELINE_MODEL_KEY: ChannelParameter(type=standard_artifacts.Model, optional=True),
    }
    OUTPUTS = {
        executor.EVALUATION_KEY: ChannelParameter(type=standard_artifacts.ModelEvaluation),
        executor.BLESSING_KEY: ChannelParameter(type=standard_artifacts.ModelBlessing),
    }


class ImpEvaluator(base_component.BaseComponent):
    """Evaluates a candidate IMP model (and the baseline) and blesses it by a `BlessingPolicy`.

    Example:
      evaluator = ImpEvaluator(
          examples=transform.outputs["transformed_examples"],
          transform_graph=transform.outputs["transform_graph"],
          model=trainer.outputs["model"],
          baseline_model=latest_blessed.outputs["model"],
          tasks_json=tasks_to_json(tasks), policy=BlessingPolicy(...))
    """

    SPEC_CLASS = ImpEvaluatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self,
                 examples: types.BaseChannel,
                 transform_graph: types.BaseChannel,
                 model: types.BaseChannel,
                 tasks_json: str,
                 policy: BlessingPolicy = BlessingPolicy(),
                 baseline_model: Optional[types.BaseChannel] = None,
                 options: Optional[Dict[str, Any]] = None):
        """Args:
          examples / transform_graph: Transform's outputs.
          model: the Trainer's model.
          tasks_json: the AGD tasks (`models.training.tasks.tasks_to_json`); their eval splits are read.
          policy: thresholds and baseline comparison.
          baseline_model: the last blessed model channel (optional).
          options: evaluation knobs passed to the metric code (e.g. `max_examples`, `batch_size`).
        """
        spec = ImpEvaluatorSpec(
            examples=examples,
            transform_graph=transform_graph,
            model=model,
            baseline_model=baseline_model,
            blessing_policy=policy.to_json(),
            tasks=tasks_json,
            options=json.dumps(dict(options or {}), sort_keys=True),
            evaluation=types.Channel(type=standard_artifacts.ModelEvaluation),
            blessing=types.Channel(type=standard_artifacts.ModelBlessing))
        super().__init__(spec=spec)
