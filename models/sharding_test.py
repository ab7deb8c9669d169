"""DTensor sharding of SparseMoe on the 8-logical-CPU mesh `batch=2, expert=4` (see conftest.py)."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from models import sharding
from models.moe import SparseMoe

pytestmark = pytest.mark.dtensor

BATCH, TOKENS, DIM = 4, 8, 16


class _MoeModel(tf_keras.Model):
    """A subclassed model holding one SparseMoe, as the encoder does (path `moe.expert_wi`)."""

    def __init__(self, mesh=None, **moe_kwargs):
        super().__init__()
        self.moe = SparseMoe(num_experts=4, mlp_dim=32, group_size=8, mesh=mesh, **moe_kwargs)

    def call(self, inputs, return_aux=False):
        return self.moe(inputs, return_aux=return_aux)


@pytest.fixture(scope="module")
def mesh():
    yield sharding.make_mesh(batch=2, expert=4)
    # The LayoutMap needs Keras' tf.random.Generator mode; restore the default for other tests.
    tf_keras.backend.experimental.disable_tf_random_generator()


def _sharded_and_reference(mesh, **moe_kwargs):
    with sharding.expert_sharding_scope(mesh):
        model = _MoeModel(mesh, **moe_kwargs)
        model(sharding.distribute_batch(tf.zeros([BATCH, TOKENS, DIM]), mesh))
    reference = _MoeModel(None, **moe_kwargs)
    reference(tf.zeros([BATCH, TOKENS, DIM]))
    for target, source in zip(reference.variables, model.variables):
        target.assign(sharding.replicate(source.read_value(), mesh).numpy())
    return model, reference


@tf.function
def _loss_and_grads(model, inputs):
    with tf.GradientTape() as tape:
        outputs, aux = model(inputs, return_aux=True)
        loss = tf.reduce_sum(tf.square(outputs)) + aux["aux_loss"]
    return outputs, aux, tape.gradient(loss, model.trainable_variables)


def test_parse_mesh_spec():
    assert sharding.parse_mesh_spec("batch=2,expert=4") == (2, 4)
    assert sharding.parse_mesh_spec("expert=4") == (1, 4)
    assert sharding.parse_mesh_spec("2x4") == (2, 4)
    for no_mesh in (None, "", "none", "1x1", "batch=1,expert=1"):
        assert sharding.parse_mesh_spec(no_mesh) is None
        assert sharding.mesh_from_spec(no_mesh) is None
    for bad in ("batch=2,model=4", "batch=two", "batch=0,expert=2"):
        with pytest.raises(ValueError):
            sharding.parse_mesh_spec(bad)


def test_make_mesh(mesh):
    assert mesh.dim_names == ["batch", "expert"]
    assert mesh.shape() == [2, 4]
    with pytest.raises(ValueError, match="needs 16"):
        sharding.make_mesh(4, 4)


def test_unsharded_model_reports_every_expert_variable():
    model = _MoeModel()
    model(tf.zeros([BATCH, TOKENS, DIM]))
    assert {v.name for v in sharding.unsharded_expert_variables(model)} == {
        model.moe.expert_wi.name, model.moe.expert_wo.name}


@pytest.mark.parametrize("moe_kwargs", [
    dict(routing="experts_choose"),
    dict(routing="tokens_choose", top_k=2, batch_priority_routing=True, capacity_factor=0.75),
])
def test_sharded_forward_and_gradients_match_unsharded(mesh, moe_kwargs):
    model, reference = _sharded_and_reference(mesh, **moe_kwargs)

    assert sharding.unsharded_expert_variables(model) == []
    for variable in model.moe.expert_variables:
        assert sharding.variable_layout(variable).sharding_specs == ["expert", "unsharded",
                                                                     "unsharded"]
    assert sharding.variable_layout(model.moe.router_kernel).is_fully_replicated()

    x = tf.constant(np.random.RandomState(0).normal(size=[BATCH, TOKENS, DIM]), tf.float32)
    outputs, aux, grads = _loss_and_grads(model, sharding.distribute_batch(x, mesh))
    ref_outputs, ref_aux, ref_grads = _loss_and_grads(reference, x)

    assert sharding.variable_layout(outputs).sharding_specs[0] == "batch"
    np.testing.assert_allclose(sharding.replicate(outputs, mesh).numpy(), ref_outputs.numpy(),
                               atol=1e-5)
    for key, value in ref_aux.items():
        np.testing.assert_allclose(sharding.replicate(aux[key], mesh).numpy(), value.numpy(),
                                   rtol=1e-5, atol=1e-6, err_msg=key)
    for variable, grad, ref_grad in zip(model.trainable_variables, grads, ref_grads):
        expected_layout = sharding.variable_layout(variable)
        assert sharding.variable_layout(grad).sharding_specs == expected_layout.sharding_specs
        np.testing.assert_allclose(sharding.replicate(grad, mesh).numpy(), ref_grad.numpy(),
                                   rtol=1e-4, atol=1e-5, err_msg=variable.name)


def test_check_divisible(mesh):
    sharding.check_divisible(mesh, groups=4, experts=8)
    with pytest.raises(ValueError, match="experts"):
        sharding.check_divisible(mesh, groups=4, experts=6)
    with pytest.raises(ValueError, match="groups"):
        sharding.check_divisible(mesh, groups=3, experts=4)


def test_layout_map_matches_only_expert_weights(mesh):
    layout_map = sharding.expert_layout_map(mesh)
    for path in ("moe.expert_wi", "encoder.blocks.3.mlp.expert_wo", "sparse_moe.expert_wi"):
        assert layout_map[path].sharding_specs[0] == "expert", path
    for path in ("encoder.blocks.0.mlp.wi", "moe.router_kernel", "moe.expert_wi_scale"):
        assert layout_map[path] is None, path


def test_make_mesh_splits_a_fresh_process_cpu_into_logical_devices():
    # A CLI process (`imp-tfx train --mesh batch=2,expert=2`) starts with one CPU device; make_mesh
    # must create the logical devices itself before TF initializes.
    code = ("from models import sharding; import tensorflow as tf; "
            "mesh = sharding.make_mesh(2, 2); "
            "print(len(tf.config.list_logical_devices('CPU')), mesh.dim_size('batch'), mesh.dim_size('expert'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-3:] == ["4", "2", "2"]
