"""Tests of the encoder's multi-head attention."""

import numpy as np
import pytest
import tensorflow as tf

from models import testing
from models.layers.attention import MultiHeadAttention


@pytest.mark.parametrize("qk_layernorm", [False, True])
def test_shapes_weights_and_round_trip(qk_layernorm):
    x = tf.random.normal([2, 5, 16])
    testing.run_layer_test(MultiHeadAttention, dict(num_heads=4, qk_layernorm=qk_layernorm), x,
                           expected_output_shape=[2, 5, 16])
    layer = MultiHeadAttention(num_heads=4, qk_layernorm=qk_layernorm)
    layer(x)
    shapes = {w.name.split("/", 1)[1]: tuple(w.shape) for w in layer.weights}
    want = {"query:0": (16, 4, 4), "key:0": (16, 4, 4), "value:0": (16, 4, 4),
            "output:0": (4, 4, 16)}
    if qk_layernorm:
        want.update({"query_norm/gamma:0": (4,), "key_norm/gamma:0": (4,)})
    assert shapes == want  # no biases, scale-only qk norms
    assert not np.allclose(layer.query_kernel.numpy(), layer.key_kernel.numpy())


def test_matches_numpy_reference():
    layer = MultiHeadAttention(num_heads=2)
    x = tf.random.normal([1, 3, 4])
    mask = tf.constant([[1.0, 1.0, 0.0]])
    out = layer(x, mask=mask).numpy()
    q = np.einsum("bnd,dhk->bhnk", x, layer.query_kernel.numpy()) / np.sqrt(2)
    k = np.einsum("bnd,dhk->bhnk", x, layer.key_kernel.numpy())
    v = np.einsum("bnd,dhk->bhnk", x, layer.value_kernel.numpy())
    logits = q @ k.transpose(0, 1, 3, 2) + (1 - mask.numpy())[:, None, None] * -1e10
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    want = np.einsum("bhnk,hkd->bnd", probs @ v, layer.output_kernel.numpy())
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-5)


def test_masked_keys_are_ignored():
    layer = MultiHeadAttention(num_heads=2, qk_layernorm=True)
    x = tf.random.normal([2, 6, 8])
    mask = tf.constant([[1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0]], tf.float32)
    changed = tf.where(mask[..., None] > 0, x, tf.random.normal([2, 6, 8]) * 100.0)
    out, out_changed = layer(x, mask=mask), layer(changed, mask=mask)
    valid = mask.numpy() > 0
    np.testing.assert_allclose(out.numpy()[valid], out_changed.numpy()[valid], rtol=1e-5,
                               atol=1e-5)
