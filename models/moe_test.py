"""SparseMoe against a slow numpy reference (loop over experts and slots)."""

import math

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from models import routing
from models.configs import MoeConfig
from models.moe import SparseMoe


def _gelu_tanh(h):
    return 0.5 * h * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (h + 0.044715 * h ** 3)))


def _reference_forward(layer: SparseMoe, x: np.ndarray) -> np.ndarray:
    """Routes with the (separately tested) routing functions, then loops over experts in numpy."""
    batch, tokens, dim = x.shape
    groups = routing.num_groups(batch * tokens, layer.num_experts, layer.group_size,
                                layer.num_expert_replicas)
    per_group = batch * tokens // groups
    capacity = routing.compute_capacity(per_group, layer.num_experts, layer.capacity_factor,
                                        layer.min_capacity)
    xg = x.reshape(groups, per_group, dim).astype(np.float64)
    router, wi, wo = (v.numpy().astype(np.float64) for v in
                      (layer.router_kernel, layer.expert_wi, layer.expert_wo))
    logits = xg @ router
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    probs_tf = tf.constant(probs, tf.float32)
    if layer.routing == "experts_choose":
        route = routing.experts_choose_route(probs_tf, capacity)
    else:
        route = routing.tokens_choose_route(probs_tf, capacity, layer.top_k,
                                            layer.batch_priority_routing)
    out = np.zeros_like(xg)
    index, mask = route.token_index.numpy(), route.slot_mask.numpy()
    for g in range(groups):
        for e in range(layer.num_experts):
            for c in range(index.shape[2]):
                if mask[g, e, c]:
                    t = index[g, e, c]
                    out[g, t] += probs[g, t, e] * (_gelu_tanh(xg[g, t] @ wi[e]) @ wo[e])
    return out.reshape(batch, tokens, dim)


def _inputs(shape=(2, 12, 8), seed=0):
    return tf.constant(np.random.RandomState(seed).normal(size=shape), tf.float32)


@pytest.mark.parametrize("kwargs", [
    dict(routing="experts_choose"),
    dict(routing="experts_choose", capacity_factor=2.0),
    dict(routing="tokens_choose", top_k=1),
    dict(routing="tokens_choose", top_k=2, batch_priority_routing=True),
    dict(routing="tokens_choose", top_k=2, capacity_factor=0.5),
])
def test_matches_numpy_reference(kwargs):
    layer = SparseMoe(num_experts=4, mlp_dim=16, group_size=8, **kwargs)
    x = _inputs()
    y = layer(x)
    assert y.shape == x.shape and y.dtype == tf.float32
    np.testing.assert_allclose(y.numpy(), _reference_forward(layer, x.numpy()), atol=2e-5)
    # Same result when traced with an unknown batch size (serving signatures).
    traced = tf.function(lambda inputs: layer(inputs), input_signature=[tf.TensorSpec([None, 12, 8], tf.float32)])
    np.testing.assert_allclose(traced(x).numpy(), y.numpy(), atol=1e-6)


def test_weights_shapes_and_init():
    layer = SparseMoe(num_experts=4, mlp_dim=64, group_size=8)
    layer.build([2, 12, 32])
    assert layer.router_kernel.shape == (32, 4) and layer.router_kernel.dtype == tf.float32
    assert layer.expert_wi.shape == (4, 32, 64) and layer.expert_wo.shape == (4, 64, 32)
    assert len(layer.trainable_variables) == 3  # no biases
    assert np.std(layer.router_kernel.numpy()) == pytest.approx(0.02, rel=0.25)
    # LeCun normal with the per-expert fan-in (32, resp. 64), not E * fan-in.
    assert np.std(layer.expert_wi.numpy()) == pytest.approx(1 / math.sqrt(32), rel=0.1)
    assert np.std(layer.expert_wo.numpy()) == pytest.approx(1 / math.sqrt(64), rel=0.1)
    wi = layer.expert_wi.numpy()
    assert not np.allclose(wi[0], wi[1])  # experts are initialized independently


@pytest.mark.parametrize("routing_name", ["experts_choose", "tokens_choose"])
def test_gradients_reach_router_and_experts(routing_name):
    layer = SparseMoe(num_experts=4, mlp_dim=16, group_size=8, routing=routing_name, top_k=2)
    x = _inputs()
    with tf.GradientTape() as tape:
        tape.watch(x)
        y, aux = layer(x, return_aux=True)
        loss = tf.reduce_sum(tf.square(y)) + aux["aux_loss"]
    grads = tape.gradient(loss, [layer.router_kernel, layer.expert_wi, layer.expert_wo, x])
    for grad in grads:
        assert grad is not None
        grad = tf.convert_to_tensor(grad)
        assert float(tf.reduce_max(tf.abs(grad))) > 0.0
        assert bool(tf.reduce_all(tf.math.is_finite(grad)))


def test_capacity_factor_below_one_drops_tokens():
    layer = SparseMoe(num_experts=4, mlp_dim=16, group_size=8, capacity_factor=0.5)
    x = _inputs((2, 16, 8))
    y, aux = layer(x, return_aux=True)
    # 4 groups x 8 tokens, capacity round(0.5 * 8 / 4) = 1: at most 4 of 8 tokens per group processed.
    assert float(aux["fraction_tokens_dropped"]) >= 0.5
    processed_rows = np.abs(y.numpy()).sum(-1) > 0
    assert processed_rows.mean() == pytest.approx(1.0 - float(aux["fraction_tokens_dropped"]))


def test_aux_loss_goes_to_layer_losses_or_is_returned():
    layer = SparseMoe(num_experts=4, mlp_dim=16, group_size=8, routing="tokens_choose",
                      z_loss_weight=0.5, load_balance_weight=2.0)
    x = _inputs()
    y, aux = layer(x, return_aux=True)
    assert not layer.losses  # returned, not added: the caller sums it
    assert set(aux) == {"aux_loss", "z_loss", "load_balance_loss", "expert_usage",
                        "expert_weight_share", "fraction_tokens_dropped", "router_confidence"}
    assert aux["expert_usage"].shape == (4,) and aux["expert_usage"].dtype == tf.float32
    assert float(tf.reduce_sum(aux["expert_usage"])) == pytest.approx(1.0)
    assert float(aux["load_balance_loss"]) >= 1.0 - 1e-6  # 1 = perfectly balanced
    assert float(aux["aux_loss"]) == pytest.approx(
        0.5 * float(aux["z_loss"]) + 2.0 * float(aux["load_balance_loss"]), rel=1e-6)
    # z-loss from the layer's own router logits.
    logits = tf.reshape(x, [-1, 8]) @ layer.router_kernel
    assert float(aux["z_loss"]) == pytest.approx(float(routing.router_z_loss(logits)), rel=1e-5)

    y2 = layer(x)
    np.testing.assert_allclose(y2.numpy(), y.numpy())
    assert len(layer.losses) == 1
    assert float(layer.losses[0]) == pytest.approx(float(aux["aux_loss"]), rel=1e-6)


def test_experts_choose_has_no_load_balance_loss_and_full_usage():
    layer = SparseMoe(num_experts=4, mlp_dim=16, group_size=8)
    _, aux = layer(_inputs(), return_aux=True)
    assert float(aux["load_balance_loss"]) == 0.0
    np.testing.assert_allclose(aux["expert_usage"].numpy(), 0.25)
    assert float(aux["aux_loss"]) == pytest.approx(float(aux["z_loss"]))


def test_get_config_round_trip_and_keras_model_save(tmp_path):
    layer = SparseMoe(num_experts=4, mlp_dim=16, capacity_factor=1.5, routing="tokens_choose",
                      top_k=2, group_size=8, batch_priority_routing=True, min_capacity=1,
                      z_loss_weight=0.1, load_balance_weight=0.01, dropout_rate=0.1,
                      num_expert_replicas=1, name="moe")
    config = layer.get_config()
    assert "mesh" not in config
    clone = SparseMoe.from_config(config)
    assert clone.get_config() == config

    inputs = tf_keras.Input([12, 8], batch_size=2)
    model = tf_keras.Model(inputs, SparseMoe(num_experts=4, mlp_dim=16, group_size=8)(inputs))
    x = _inputs()
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = tf_keras.models.load_model(path)
    np.testing.assert_allclose(restored(x).numpy(), model(x).numpy(), atol=1e-6)


def test_from_moe_config():
    config = MoeConfig(num_experts=8, num_moe_layers=2, capacity_factor=1.25, routing="tokens_choose",
                       top_k=2, group_size=64, router_z_loss_weight=0.3)
    layer = SparseMoe.from_moe_config(config, mlp_dim=32)
    assert (layer.num_experts, layer.mlp_dim, layer.capacity_factor, layer.top_k, layer.group_size,
            layer.z_loss_weight) == (8, 32, 1.25, 2, 64, 0.3)


def test_dropout_only_in_training():
    layer = SparseMoe(num_experts=4, mlp_dim=16, group_size=8, dropout_rate=0.5)
    x = _inputs()
    np.testing.assert_allclose(layer(x, training=False).numpy(), layer(x).numpy())
    assert not np.allclose(layer(x, training=True).numpy(), layer(x).numpy())


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="routing"):
        SparseMoe(num_experts=4, mlp_dim=8, routing="soft")
    with pytest.raises(ValueError, match="top_k"):
        SparseMoe(num_experts=4, mlp_dim=8, routing="tokens_choose", top_k=5)


def test_benchmark_script_runs_and_prints_one_json_line(capsys):
    import json  # pylint: disable=import-outside-toplevel

    from bench import moe as bench_moe  # pylint: disable=import-outside-toplevel

    assert bench_moe.main(["--batch", "2", "--tokens", "8", "--dim", "8", "--mlp-dim", "16",
                           "--experts", "4", "--group-size", "4", "--repeats", "2", "--warmup", "1",
                           "--routing", "tokens_choose", "--onehot"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["routing"] == "tokens_choose" and result["config"]["groups"] == 4
    assert result["ratio"] == pytest.approx(result["moe_ms"] / result["dense_ms"], rel=1e-2)
    assert result["onehot_ms"] > 0


def test_mixed_bfloat16_keeps_router_in_float32():
    layer = SparseMoe(num_experts=4, mlp_dim=16, group_size=8, dtype="mixed_bfloat16")
    x = _inputs()
    y, aux = layer(x, return_aux=True)
    assert y.dtype == tf.bfloat16 and aux["aux_loss"].dtype == tf.float32
    assert all(v.dtype == tf.float32 for v in layer.variables)
    full = SparseMoe(num_experts=4, mlp_dim=16, group_size=8)
    full.build(x.shape)
    for target, source in zip(full.variables, layer.variables):
        target.assign(source)
    np.testing.assert_allclose(tf.cast(y, tf.float32).numpy(), full(x).numpy(), atol=3e-2)
