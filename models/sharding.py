"""DTensor meshes and layouts for data + expert parallelism (the only module that imports dtensor).

Mesh axes are `("batch", "expert")`. Inputs are sharded on `batch` (and replicated along `expert`),
expert weights `[E, ...]` on `expert`, everything else is replicated. Inside `SparseMoe` the
dispatched tokens `[G, E, C, d]` (groups sharded on `batch`) are relaid so that the experts axis is
sharded on `expert` (`to_expert_shards`, a local slice: every expert shard already holds its batch
shard's tokens), the experts run locally, and the outputs are gathered back along `expert`
(`to_batch_shards`). With `mesh=None` every helper is the identity, which is how the unsharded model,
export and serving run.

Usage:

    mesh = make_mesh(batch=2, expert=4)
    with expert_sharding_scope(mesh):
        model = build_model(..., mesh=mesh)
        model(distribute_batch(example_inputs, mesh))   # builds: expert variables -> sharded DVariables
    assert not unsharded_expert_variables(model)
    outputs = model(distribute_batch(inputs, mesh))

What DTensor does with the MoE ops [verified on TF 2.16.2, 8 logical CPUs, batch=2 x expert=4]:
routing (einsum, softmax, logsumexp, top_k, argsort, one_hot, cumsum, gather with batch_dims) keeps
the groups sharded on `batch` with no communication; the expert einsums run locally on
`(batch, expert)` shards and their weight gradients come back sharded on `expert`. Two caveats shape
`models.moe` / `models.routing`: TopKV2's gradient scatters into flattened global indices and fails on
sharded groups (so combine weights are re-gathered from the probabilities instead of differentiating
top_k), and `unsorted_segment_sum` (the combine) gathers its input and returns a replicated result,
which `SparseMoe` slices back to `batch` shards. tf_keras' LayoutMap requires
`enable_tf_random_generator()` and maps variables by attribute path, which cannot walk layers held
in dicts (the trainer therefore creates DVariables with a variable creator, models/training).
"""

from __future__ import annotations

import contextlib
import re
from typing import List, Optional, Tuple

import tensorflow as tf
import tf_keras
from tensorflow.experimental import dtensor

BATCH_AXIS = "batch"
EXPERT_AXIS = "expert"
UNSHARDED = dtensor.UNSHARDED

# Attribute names of the expert weights in `models.moe.SparseMoe`; LayoutMap keys are regexes matched
# (`re.match`) against object paths such as `encoder.blocks.3.mlp.expert_wi` (subclassed models) or
# `sparse_moe.expert_wi` (functional models), so the pattern anchors on the attribute name only.
EXPERT_VARIABLE_PATTERN = r"(.*\.)?expert_w[io]$"


# -- meshes -------------------------------------------------------------------------------------------


def parse_mesh_spec(spec: Optional[str]) -> Optional[Tuple[int, int]]:
    """"batch=2,expert=4" or "2x4" -> (2, 4); None, "", "none", "1x1", "batch=1,expert=1" -> None."""
    if spec is None or spec.strip().lower() in ("", "none"):
        return None
    text = spec.strip().lower()
    if re.fullmatch(r"\d+x\d+", text):
        batch, expert = (int(v) for v in text.split("x"))
    else:
        sizes = {}
        for part in text.split(","):
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or key not in (BATCH_AXIS, EXPERT_AXIS) or not value.strip().isdigit():
                raise ValueError(f"bad mesh spec {spec!r}: expected e.g. 'batch=2,expert=4' or '2x4'")
            sizes[key] = int(value)
        batch, expert = sizes.get(BATCH_AXIS, 1), sizes.get(EXPERT_AXIS, 1)
    if batch < 1 or expert < 1:
        raise ValueError(f"bad mesh spec {spec!r}: sizes must be positive")
    if batch == expert == 1:
        return None
    return batch, expert


def ensure_logical_cpus(count: int) -> None:
    """Splits the CPU into `count` logical devices (for a CPU mesh), if TF is not initialized yet.

    Logical devices can be configured only before TensorFlow runs its first op; afterwards this is a
    no-op and `make_mesh` reports the shortfall.
    """
    physical = tf.config.list_physical_devices("CPU")
    if not physical or len(tf.config.get_logical_device_configuration(physical[0]) or []) >= count:
        return
    try:
        tf.config.set_logical_device_configuration(
            physical[0], [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:  # already initialized
        pass


def make_mesh(batch: int, expert: int, device_type: str = "CPU") -> dtensor.Mesh:
    """A `("batch", "expert")` mesh over the first `batch * expert` logical devices of `device_type`
    (on the CPU, the logical devices are made here when TF is not initialized yet)."""
    needed = batch * expert
    if device_type == "CPU":
        ensure_logical_cpus(needed)
    available = tf.config.list_logical_devices(device_type)
    if len(available) < needed:
        raise ValueError(f"mesh batch={batch},expert={expert} needs {needed} {device_type} devices, "
                         f"found {len(available)} (configure logical devices before TF runs ops)")
    devices = [f"{device_type}:{i}" for i in range(needed)]
    return dtensor.create_mesh([(BATCH_AXIS, batch), (EXPERT_AXIS, expert)], devices=devices,
                               device_type=device_type)


def mesh_from_spec(spec: Optional[str], device_type: str = "CPU") -> Optional[dtensor.Mesh]:
    """`make_mesh` from a spec string; None for no mesh."""
    sizes = parse_mesh_spec(spec)
    return None if sizes is None else make_mesh(*sizes, device_type=device_type)


# -- layouts ------------------------------------------------------------------------------------------


def replicated_layout(mesh: dtensor.Mesh, rank: int) -> dtensor.Layout:
    return dtensor.Layout.replicated(mesh, rank=rank)


def batch_sharded_layout(mesh: dtensor.Mesh, rank: int) -> dtensor.Layout:
    """Layout of `[batch, ...]` tensors: the leading axis sharded on `batch`."""
    return dtensor.Layout([BATCH_AXIS] + [UNSHARDED] * (rank - 1), mesh)


def expert_sharded_layout(mesh: dtensor.Mesh, rank: int) -> dtensor.Layout:
    """Layout of expert weights `[E, ...]`: the leading axis sharded on `expert`."""
    return dtensor.Layout([EXPERT_AXIS] + [UNSHARDED] * (rank - 1), mesh)


def expert_layout_map(mesh: dtensor.Mesh) -> tf_keras.dtensor.experimental.LayoutMap:
    """LayoutMap sharding every SparseMoe expert weight `[E, d, f]` on `expert`; the rest replicated."""
    layout_map = tf_keras.dtensor.experimental.LayoutMap(mesh=mesh)
    layout_map[EXPERT_VARIABLE_PATTERN] = expert_sharded_layout(mesh, rank=3)
    return layout_map


@contextlib.contextmanager
def expert_sharding_scope(mesh: dtensor.Mesh):
    """Create *and build* (first call) models inside: expert weights sharded, the rest replicated.

    Switches Keras to `tf.random.Generator` initializers first, which the LayoutMap requires (and
    which makes every device initialize replicated weights identically).
    """
    tf_keras.backend.experimental.enable_tf_random_generator()
    with expert_layout_map(mesh).scope():
        yield


def variable_layout(variable) -> Optional[dtensor.Layout]:
    """The DTensor layout of a variable, or None for a regular (non-DTensor) variable."""
    try:
        return dtensor.fetch_layout(variable)
    except (ValueError, TypeError, tf.errors.InvalidArgumentError):
        return None


def unsharded_expert_variables(model: tf.Module) -> List[tf.Variable]:
    """Expert variables of every MoE layer in `model` whose leading axis is not sharded on `expert`.

    A MoE layer is any submodule exposing `expert_variables` (as `models.moe.SparseMoe` does).
    """
    layers = [model] + list(model.submodules)
    missing, seen = [], set()
    for layer in layers:
        for variable in getattr(layer, "expert_variables", None) or ():
            if id(variable) in seen:
                continue
            seen.add(id(variable))
            layout = variable_layout(variable)
            if layout is None or layout.sharding_specs[0] != EXPERT_AXIS:
                missing.append(variable)
    return missing


def check_divisible(mesh: dtensor.Mesh, groups: Optional[int], experts: int) -> None:
    """Raises ValueError unless groups split evenly on `batch` and experts on `expert`."""
    batch_size, expert_size = mesh.dim_size(BATCH_AXIS), mesh.dim_size(EXPERT_AXIS)
    if experts % expert_size:
        raise ValueError(f"{experts} experts cannot be sharded on expert={expert_size}")
    if groups is not None and groups % batch_size:
        raise ValueError(f"{groups} routing groups cannot be sharded on batch={batch_size}; "
                         f"use a token count / group size giving a multiple of {batch_size} groups")


# -- moving tensors -----------------------------------------------------------------------------------


def distribute_batch(tensor: tf.Tensor, mesh: Optional[dtensor.Mesh]) -> tf.Tensor:
    """Places a regular `[batch, ...]` tensor on the mesh, sharded on `batch` (identity without mesh)."""
    if mesh is None:
        return tensor
    tensor = tf.convert_to_tensor(tensor)
    replicated = dtensor.copy_to_mesh(tensor, replicated_layout(mesh, tensor.shape.rank))
    return dtensor.relayout(replicated, batch_sharded_layout(mesh, tensor.shape.rank))


def replicate(tensor: tf.Tensor, mesh: Optional[dtensor.Mesh]) -> tf.Tensor:
    """Relayouts a DTensor to fully replicated (e.g. before `.numpy()`); identity without mesh."""
    if mesh is None:
        return tensor
    return dtensor.relayout(tensor, replicated_layout(mesh, tensor.shape.rank))


def to_expert_shards(dispatched: tf.Tensor, mesh: Optional[dtensor.Mesh]) -> tf.Tensor:
    """[G, E, C, d] with G on `batch` -> E also sharded on `expert` (a local slice, no communication)."""
    if mesh is None:
        return dispatched
    return dtensor.relayout(dispatched, dtensor.Layout(
        [BATCH_AXIS, EXPERT_AXIS] + [UNSHARDED] * (dispatched.shape.rank - 2), mesh))


def to_batch_shards(tensor: tf.Tensor, mesh: Optional[dtensor.Mesh]) -> tf.Tensor:
    """Relayouts a DTensor so that only its leading axis is sharded, on `batch`.

    Used for the expert outputs `[G, E, C, d]` (an all-gather along `expert`) and for the combined
    tokens, which DTensor's segment sum returns replicated (a local slice).
    """
    if mesh is None:
        return tensor
    return dtensor.relayout(tensor, batch_sharded_layout(mesh, tensor.shape.rank))
