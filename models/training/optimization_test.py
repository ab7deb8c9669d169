import types

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from models.training import optimization


@pytest.mark.parametrize("step, expected", [
    (0, 2e-5), (1000, 1.25e-5), (2000, 5e-6), (14500, 5.025e-4), (27000, 1e-3),
    (264500, 5.005e-4), (500000, 1.0437e-6), (502000, 1e-6)])
def test_base_schedule_matches_spec_test_vector_8(step, expected):
    schedule = optimization.make_schedule(optimization.OptimizerConfig.imp_base())
    assert float(schedule(step)) == pytest.approx(expected, rel=1e-4)


def test_large_schedule_peak_and_tail():
    schedule = optimization.make_schedule(optimization.OptimizerConfig.imp_large())
    assert float(schedule(55000)) == pytest.approx(5e-4, rel=1e-5)
    assert float(schedule(500000)) == pytest.approx(1.152e-6, rel=1e-3)


def test_schedule_round_trips_config():
    schedule = optimization.make_schedule(optimization.OptimizerConfig.for_steps(200))
    clone = optimization.PreWarmupCosineDecay.from_config(schedule.get_config())
    for step in (0, 10, 20, 100, 200, 300):
        assert float(clone(step)) == float(schedule(step))


def test_weight_decay_only_on_kernels():
    dense = tf_keras.layers.Dense(3, name="dense")
    norm = tf_keras.layers.LayerNormalization(name="norm")
    norm(dense(tf.ones([1, 4])))
    variables = dense.trainable_variables + norm.trainable_variables
    assert [optimization.is_decayed(v) for v in variables] == [True, False, False, False]
    config = optimization.OptimizerConfig(weight_decay=0.5, clip_norm=0.0)
    optimizer = optimization.make_optimizer(config, variables)
    before = [v.numpy() for v in variables]
    optimization.apply_weight_decay(optimizer, variables, tf.constant(0.1))
    np.testing.assert_allclose(variables[0].numpy(), before[0] * (1 - 0.05), rtol=1e-6)
    for b, v in zip(before[1:], variables[1:]):
        np.testing.assert_array_equal(b, v.numpy())


@pytest.mark.parametrize("name, decayed", [
    ("encoder/layer_1/moe/expert_wi:0", True), ("encoder/layer_1/moe/router_kernel:0", True),
    ("text_to_vision/hidden/kernel:0", True), ("text_embedder/token_embeddings/embeddings:0", False),
    ("temperatures/temperature_text_vision:0", False), ("encoder/final_norm/gamma:0", False)])
def test_decay_mask_by_name(name, decayed):
    assert optimization.is_decayed(types.SimpleNamespace(name=name)) is decayed


def test_clip_gradients_global_norm():
    grads = [tf.constant([3.0, 0.0]), tf.constant([[4.0]])]
    clipped, norm = optimization.clip_gradients(grads, 1.0)
    assert float(norm) == pytest.approx(5.0)
    assert float(tf.linalg.global_norm(clipped)) == pytest.approx(1.0)
    unclipped, _ = optimization.clip_gradients(grads, 0.0)
    np.testing.assert_allclose(unclipped[0].numpy(), [3.0, 0.0])
