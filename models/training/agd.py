"""Alternating Gradient Descent: one optimizer step per task batch, one compiled step per task.

IMP jit-compiles the train step once per input signature and caches it (spec 2.1). The TF equivalent
here: every task gets its own `tf.function` whose `input_signature` is the task's fixed batch structure
(shapes include the batch size, token counts after DropToken, text length), created on first use and
cached by task name. Because the signature is fixed the function is traced exactly once per task;
`AgdSteps.trace_counts` records every trace so tests can assert it never retraces.

All tasks share one model and one optimizer (one set of Adam moments), as in IMP.
Loss of a step (float32): the task objective (NCE averaged over the task's input pairs, or softmax
cross-entropy on the task's classifier head) plus the MoE auxiliary losses of every encoder call.
"""

from __future__ import annotations

import collections
import logging
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import tensorflow as tf

from models import losses
from models.configs import INPUT_KINDS
from models.training.mesh_model import place_replicated, to_numpy
from models.training.optimization import apply_schedule, apply_weight_decay, clip_gradients
from models.training.tasks import Task

Metrics = Dict[str, tf.Tensor]

# Router statistics of `encode(...)["router"]["layer_<i>"]`, logged per input kind and MoE layer.
class _PerTaskTracingFilter(logging.Filter):
    """Drops TF's "N out of the last M calls ... triggered tf.function retracing" warning for our steps.

    Every task has its own `tf.function` built from the same Python closure, so TF's heuristic (keyed
    by the closure's code) reports each task's single first trace as "retracing". Real retraces are
    still caught: `AgdSteps.trace_counts` counts traces per task and the tests assert one each.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("AgdSteps._python_step" in message and "triggered tf.function retracing" in message)


tf.get_logger().addFilter(_PerTaskTracingFilter())


MOE_METRIC_KEYS = ("expert_usage", "expert_weight_share", "fraction_tokens_dropped", "router_confidence")


def encoder_inputs(kind: str, batch: Dict[str, Any]) -> Dict[str, tf.Tensor]:
    return batch[kind]


def task_loss(model, task: Task, batch: Dict[str, Any],
              training: bool = True) -> Tuple[tf.Tensor, Metrics]:
    """Loss of one task batch: (float32 [] total loss, metrics of float32 scalars / vectors).

    Contrastive: every input kind is encoded in its own call of the shared encoder (IMP's datapasses),
    projected into the common space towards each partner modality, and each pair contributes the
    symmetric NCE with the pair's learnable temperature; the objective is the mean over pairs.
    Classification: softmax cross-entropy of `classify(label_set, features_agg)`.
    Both add the summed MoE aux losses of all encoder calls (coefficient 1, spec 2.2).
    """
    encoded = {}
    aux_loss = tf.constant(0.0, tf.float32)
    metrics: Metrics = {}
    for kind in task.inputs:
        out = model.encode(INPUT_KINDS[kind], encoder_inputs(kind, batch), training=training)
        encoded[kind] = out
        if "aux_loss" in out:
            aux_loss += tf.cast(out["aux_loss"], tf.float32)
        for layer, layer_metrics in sorted((out.get("router") or {}).items()):
            for key in MOE_METRIC_KEYS:
                if key in layer_metrics:
                    metrics[f"{key}/{kind}/{layer}"] = tf.cast(layer_metrics[key], tf.float32)

    if task.objective == "contrastive":
        pair_losses = []
        for a, b in task.pairs:
            ma, mb = INPUT_KINDS[a], INPUT_KINDS[b]
            za = model.project(ma, encoded[a]["features_agg"], mb)
            zb = model.project(mb, encoded[b]["features_agg"], ma)
            temperature = tf.cast(model.temperature(ma, mb), tf.float32)
            pair_losses.append(losses.contrastive_loss(za, zb, temperature))
            metrics[f"temperature/{a}_{b}"] = temperature
            metrics[f"accuracy/{a}_to_{b}"] = losses.contrastive_accuracy(za, zb)
        objective = tf.add_n(pair_losses) / float(len(pair_losses))
    else:
        (kind,) = task.inputs
        logits = tf.cast(model.classify(task.label_set, encoded[kind]["features_agg"]), tf.float32)
        objective = losses.softmax_cross_entropy(logits, batch["label"])
        metrics["accuracy"] = losses.classification_accuracy(logits, batch["label"])

    metrics["objective"] = objective
    metrics["aux_loss"] = aux_loss
    total = objective + aux_loss
    metrics["loss"] = total
    return total, metrics


def loss_and_gradients(model, task: Task, batch: Dict[str, Any], variables: Sequence[tf.Variable]
                       ) -> Tuple[tf.Tensor, Metrics, List[Optional[tf.Tensor]]]:
    """(loss, metrics, gradients aligned with `variables`; None where a variable is unused)."""
    with tf.GradientTape() as tape:
        loss, metrics = task_loss(model, task, batch, training=True)
    return loss, metrics, tape.gradient(loss, list(variables))


class AgdSteps:
    """Per-task compiled train steps over one model and one optimizer.

    Args:
      model: an `ImpModel` (built: its variables exist).
      optimizer: the shared optimizer, built over `variables`.
      clip_norm: global gradient-norm clip (0 disables it).
      variables: the trained variables (default: `model.trainable_variables`).
    """

    def __init__(self, model, optimizer, clip_norm: float = 1.0,
                 variables: Optional[Sequence[tf.Variable]] = None):
        self.model = model
        self.optimizer = optimizer
        self.clip_norm = float(clip_norm)
        self.variables = list(variables if variables is not None else model.trainable_variables)
        self.trace_counts: collections.Counter = collections.Counter()
        self._steps: Dict[str, Callable] = {}

    def step_fn(self, task: Task, signature) -> Callable:
        """The cached compiled step of `task` (created on first call with the task's signature)."""
        if task.name not in self._steps:
            self._steps[task.name] = tf.function(
                self._python_step(task),
                input_signature=[signature, tf.TensorSpec([], tf.int64)], reduce_retracing=False,
                jit_compile=False)
        return self._steps[task.name]

    def __call__(self, task: Task, batch, signature=None, step: Optional[int] = None) -> Metrics:
        """Runs one optimizer step of `task` on `batch` at global `step` (default: the optimizer's
        iteration count); returns its metrics (tensors)."""
        if signature is None:
            signature = tf.nest.map_structure(tf.TensorSpec.from_tensor, batch)
        mesh = self.model.mesh
        if step is None:
            step = int(to_numpy(tf.convert_to_tensor(self.optimizer.iterations), mesh))
        step_tensor = place_replicated(tf.constant(step, tf.int64), mesh)
        return self.step_fn(task, signature)(batch, step_tensor)

    def _python_step(self, task: Task) -> Callable:
        def step(batch, global_step):
            self.trace_counts[task.name] += 1  # Python side effect: runs once per trace only
            _, metrics, grads = loss_and_gradients(self.model, task, batch, self.variables)
            # Variables a task does not touch (other modalities' embedders, other heads) get no
            # gradient: they are left out of this step (no Adam update, no decay), as in a sparse
            # update; their moments resume when their task comes round again.
            pairs = [(g, v) for g, v in zip(grads, self.variables) if g is not None]
            if self.model.mesh is not None:
                # Embedding lookups give IndexedSlices; the optimizer's sparse scatter update does not
                # combine the slices of different batch shards under DTensor (the weights drift from
                # the single-device run), so apply them densely (the same Adam math).
                pairs = [(tf.convert_to_tensor(g), v) for g, v in pairs]
            clipped, norm = clip_gradients([g for g, _ in pairs], self.clip_norm)
            learning_rate = apply_schedule(self.optimizer, global_step)
            metrics["learning_rate"] = learning_rate
            trained = [v for _, v in pairs]
            apply_weight_decay(self.optimizer, trained, learning_rate)
            self.optimizer.apply_gradients(zip(clipped, trained))
            metrics["grad_norm"] = norm
            return metrics

        return step
