"""Metric computation for ImpEvaluator (delegating to `models.training.evaluation`) and the table.

A Model artifact's `Format-Serving` folder holds, next to the SavedModel, the final training checkpoint
and `config.json` (`models.training.trainer.export_checkpoint`); the evaluator restores the model from
those (unsharded, so a model trained on any mesh evaluates on one device) and scores it on Transform's
`eval_<task>` splits with the vocabularies of the same Transform output.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Dict, List, Mapping, Optional

import tensorflow as tf

DEFAULT_MAX_EXAMPLES = 256


class ModelEvaluator:
    """Evaluates Model artifacts on the eval splits of one Transform output.

    Args:
      examples_uri: Transform's `transformed_examples` artifact URI.
      transform_graph_uri: Transform's `transform_graph` artifact URI.
      tasks_json: the AGD tasks (`models.training.tasks.tasks_to_json`).
      options: `max_examples` / `batch_size` and other knobs of the evaluation code.
    """

    def __init__(self, examples_uri: str, transform_graph_uri: str, tasks_json: str,
                 options: Optional[Mapping[str, Any]] = None):
        from models.training import tasks as tasks_lib

        self.examples_uri = examples_uri
        self.transform_graph_uri = transform_graph_uri
        self.tasks = tasks_lib.tasks_from_dicts(json.loads(tasks_json)["tasks"])
        self.options = dict(options or {})

    def eval_files(self) -> Dict[str, List[str]]:
        """`{eval_<split>: files}` of the transformed examples (tasks without eval data are skipped)."""
        out = {}
        for task in self.tasks:
            files = sorted(tf.io.gfile.glob(os.path.join(self.examples_uri, f"Split-{task.eval_split}", "*")))
            if files:
                out[task.eval_split] = files
        return out

    def __call__(self, model_uri: str) -> Dict[str, float]:
        """Flat metrics `{zero_shot/<task>/accuracy, retrieval/<task>/<a>_to_<b>/recall@K}`."""
        from tfx.utils import path_utils

        from models.training import checkpointing
        from models.training import evaluation

        serving_dir = path_utils.serving_model_dir(model_uri)
        config, _, media, _ = checkpointing.read_run_config(serving_dir)
        model = checkpointing.restore_unsharded(serving_dir)
        raw = evaluation.evaluate_files(
            model, self.tasks, self.eval_files(), config, media,
            os.path.join(self.transform_graph_uri, "transform_fn", "assets"),
            max_examples=int(self.options.get("max_examples", DEFAULT_MAX_EXAMPLES)))
        return rename_metrics(raw)


def rename_metrics(raw: Mapping[str, float]) -> Dict[str, float]:
    """`models.training.evaluation` names -> the evaluator's namespaced ones:

        <task>/zero_shot_top1          -> zero_shot/<task>/accuracy
        <task>/zero_shot_top5          -> zero_shot/<task>/top5_accuracy
        <task>/accuracy                -> classifier/<task>/accuracy   (the trained head)
        <task>/<a>_to_<b>/<metric>     -> retrieval/<task>/<a>_to_<b>/<metric>  (recall@K, median_rank)
    """
    out = {}
    for name, value in raw.items():
        task, _, metric = str(name).partition("/")
        if metric == "zero_shot_top1":
            key = f"zero_shot/{task}/accuracy"
        elif metric == "zero_shot_top5":
            key = f"zero_shot/{task}/top5_accuracy"
        elif metric == "accuracy":
            key = f"classifier/{task}/accuracy"
        elif "_to_" in metric.split("/")[0]:
            key = f"retrieval/{task}/{metric}"
        else:
            key = f"other/{name}"
        out[key] = float(value)
    return out


def _fmt(value: Optional[float]) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.3f}"


def format_table(candidate: Mapping[str, float], baseline: Optional[Mapping[str, float]] = None) -> str:
    """A Markdown table of every metric, with the baseline's value and the change when there is one."""
    header = "| metric | candidate |" + (" baseline | change |" if baseline is not None else "")
    rule = "|---|---:|" + ("---:|---:|" if baseline is not None else "")
    rows = [header, rule]
    for name in sorted(candidate):
        row = f"| {name} | {_fmt(candidate[name])} |"
        if baseline is not None:
            old = baseline.get(name)
            change = None if old is None else candidate[name] - old
            row += f" {_fmt(old)} | {'-' if change is None else f'{change:+.3f}'} |"
        rows.append(row)
    return "\n".join(rows)
