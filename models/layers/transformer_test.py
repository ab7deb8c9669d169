"""Tests of the shared encoder: structure, masking, MoE aux outputs and paper parameter counts."""

import numpy as np
import pytest
import tensorflow as tf

from models import testing
from models.configs import get_config
from models.layers.transformer import Encoder, FeedForward

TINY = get_config("tiny").encoder


def test_feed_forward_has_no_biases():
    testing.run_layer_test(FeedForward, dict(d_ff=32), tf.random.normal([2, 3, 8]), [2, 3, 8])
    layer = FeedForward(d_ff=32, name="mlp")
    layer(tf.zeros([1, 1, 8]))
    assert [w.name for w in layer.weights] == ["mlp/wi:0", "mlp/wo:0"]


def test_tiny_encoder_structure_and_outputs():
    encoder = Encoder(TINY, name="encoder")
    x = tf.random.normal([2, 8, TINY.d_model])
    features, aux_loss, router = encoder(x, mask=tf.ones([2, 8]))
    assert features.shape == (2, 8, TINY.d_model)
    assert list(router) == ["layer_1"]  # the last num_moe_layers = 1 of 2 layers
    assert set(router["layer_1"]) >= {"aux_loss", "z_loss", "load_balance_loss", "expert_usage",
                                      "fraction_tokens_dropped", "router_confidence"}
    np.testing.assert_allclose(aux_loss.numpy(), router["layer_1"]["aux_loss"].numpy())
    assert aux_loss.numpy() > 0  # the z-loss of a randomly initialized router
    names = {w.name for w in encoder.weights}
    assert {"encoder/layer_0/mlp/wi:0", "encoder/layer_1/moe/expert_wi:0",
            "encoder/layer_1/moe/router_kernel:0", "encoder/layer_0/attention/query_norm/gamma:0",
            "encoder/final_layer_norm/beta:0"} <= names
    assert not any("bias" in n for n in names)
    assert not any("beta" in n for n in names if "final_layer_norm" not in n)


def test_dense_encoder_has_zero_aux_loss_and_round_trips():
    config = get_config("tiny-dense").encoder
    encoder = Encoder(config)
    x = tf.random.normal([1, 4, config.d_model])
    _, aux_loss, router = encoder(x)
    assert float(aux_loss) == 0.0 and router == {}
    clone = Encoder.from_config(encoder.get_config())
    assert clone.config == config
    clone(x)
    assert len(clone.weights) == len(encoder.weights)


def test_padding_does_not_leak_into_real_tokens():
    encoder = Encoder(get_config("tiny-dense").encoder)
    x = tf.random.normal([2, 6, 64])
    mask = tf.constant([[1, 1, 1, 1, 1, 0], [1, 1, 0, 0, 0, 0]], tf.float32)
    noise = tf.random.normal([2, 6, 64]) * 10.0
    out, _, _ = encoder(x, mask=mask)
    out_changed, _, _ = encoder(tf.where(mask[..., None] > 0, x, noise), mask=mask)
    valid = mask.numpy() > 0
    np.testing.assert_allclose(out.numpy()[valid], out_changed.numpy()[valid], rtol=1e-4,
                               atol=1e-4)


def _zeros_init(next_creator, **kwargs):
    """Variables start as zeros: counting parameters needs shapes, not 500M random draws."""
    shape, dtype = kwargs["shape"], kwargs.get("dtype")
    kwargs["initial_value"] = lambda: tf.zeros(shape, dtype)
    return next_creator(**kwargs)


@pytest.mark.parametrize("name,expected", [("B", 84_954_624), ("MoE-B", 509_703_168)])
def test_paper_encoder_parameter_counts(name, expected):
    """IMP_SPEC.md test vector 11 (the notebook prints 84.954624 M for IMP-B)."""
    config = get_config(name).encoder
    n = max(config.moe.num_experts, 1)  # n examples of n tokens: valid MoE groups
    with tf.variable_creator_scope(_zeros_init):
        encoder = Encoder(config)
        encoder(tf.zeros([n, n, config.d_model]))
    try:
        assert encoder.count_params() == expected
    finally:
        del encoder
