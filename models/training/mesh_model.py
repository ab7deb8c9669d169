"""Building an `ImpModel` for training, on one device or on a DTensor `batch` x `expert` mesh.

With a mesh every variable is created directly as a DTensor `DVariable`: the expert weights
(`expert_wi` / `expert_wo`, `[E, ...]`) sharded along `expert`, everything else replicated. Values come
from the same Keras initializers as the unsharded model (computed on the host, then placed), so a seeded
mesh model starts from exactly the weights of the seeded single-device model.

Why a variable creator and not `models.sharding.expert_layout_map(mesh).scope()`: tf_keras' LayoutMap
maps lazily created variables back by attribute path, and `ImpModel` keeps its per-modality layers in
dicts (`embedders["vision"]`, `classifiers[name]`), which `layout_map._set_object_by_path` cannot walk
(AttributeError: 'dict' object has no attribute ...). Intercepting creation avoids path mapping altogether.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any, Dict, Optional

import tensorflow as tf
import tf_keras
from tensorflow.experimental import dtensor

from models import sharding
from models.configs import ImpConfig
from models.imp_model import ImpModel

_EXPERT_NAME = re.compile(r"expert_w[io]")


def _mesh_variable_creator(mesh):
    def creator(next_creator, **kwargs):
        del next_creator  # DVariable replaces the regular variable
        value = kwargs["initial_value"]
        if callable(value):
            value = value()
        value = tf.convert_to_tensor(value, dtype=kwargs.get("dtype"))
        rank = value.shape.rank
        if _EXPERT_NAME.search(kwargs.get("name") or "") and rank >= 1:
            layout = sharding.expert_sharded_layout(mesh, rank)
        else:
            layout = sharding.replicated_layout(mesh, rank)
        value = dtensor.relayout(place_replicated(value, mesh), layout)
        return dtensor.DVariable(value, trainable=kwargs.get("trainable", True), name=kwargs.get("name"),
                                 dtype=kwargs.get("dtype"))
    return creator


@contextlib.contextmanager
def mesh_variables(mesh):
    """Scope in which every new `tf.Variable` becomes a DVariable on `mesh` (no-op for `mesh=None`)."""
    if mesh is None:
        yield
        return
    with tf.variable_creator_scope(_mesh_variable_creator(mesh)):
        yield


def place_replicated(value: tf.Tensor, mesh) -> tf.Tensor:
    """A host tensor copied to every device of `mesh` (replicated layout); identity without mesh."""
    if mesh is None:
        return value
    value = tf.convert_to_tensor(value)
    return dtensor.copy_to_mesh(value, sharding.replicated_layout(mesh, value.shape.rank))


def place_batch(batch: Any, mesh) -> Any:
    """Every `[batch, ...]` tensor of a (nested) batch sharded on the mesh's `batch` axis."""
    if mesh is None:
        return batch
    return tf.nest.map_structure(lambda t: sharding.distribute_batch(t, mesh), batch)


def build_model(config: ImpConfig, mesh=None, seed: Optional[int] = None) -> ImpModel:
    """A fully built `ImpModel` (all embedders, projections, heads, temperatures exist).

    Args:
      config: model config (vocab size and classifiers already set for the data).
      mesh: optional `("batch", "expert")` mesh from `models.sharding`; its batch size must divide the
        model's dummy batch (the number of experts).
      seed: seeds Keras initializers first (same seed -> same weights, with or without mesh).
    """
    if seed is not None:
        tf_keras.utils.set_random_seed(int(seed))
    model = ImpModel(config, mesh=mesh)
    if mesh is None:
        return model.build_all()
    d_model = config.encoder.d_model
    batch = int(mesh.dim_size(sharding.BATCH_AXIS))
    dummy = place_batch(model.dummy_inputs(), mesh)
    pooled = place_batch(tf.zeros([batch, d_model]), mesh)

    @tf.function
    def build(dummy, pooled):
        for modality, inputs in dummy.items():
            model.encode(modality, inputs)
        for projection in model.common_space.values():
            projection(pooled)
        for head_name in model.classifiers:
            model.classify(head_name, pooled)
        model.temperatures(pooled)

    with mesh_variables(mesh):
        build(dummy, pooled)
    model.built = True
    missing = sharding.unsharded_expert_variables(model)
    if missing:
        raise RuntimeError(f"expert variables not sharded on `expert`: {[v.name for v in missing]}")
    return model


def batch_signature(dataset: tf.data.Dataset):
    """The per-task `input_signature`: the dataset's element spec (fixed batch size and shapes)."""
    return dataset.element_spec


def to_numpy(value, mesh=None):
    """A (possibly DTensor) tensor as numpy (sharded DTensors are gathered first)."""
    if mesh is not None and isinstance(value, tf.Tensor) and sharding.variable_layout(value) is not None:
        value = sharding.replicate(value, mesh)
    return value.numpy() if hasattr(value, "numpy") else value


def numpy_weights(model, mesh=None) -> Dict[str, Any]:
    """`{variable name: numpy value}` of every model variable (for comparisons across runs/meshes)."""
    return {v.name: to_numpy(tf.convert_to_tensor(v), mesh) for v in model.variables}
