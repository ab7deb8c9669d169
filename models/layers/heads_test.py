"""Tests of pooling, common-space projections and temperatures."""

import numpy as np
import tensorflow as tf

from models import testing
from models.layers.heads import (CommonSpaceProjection, PairTemperatures, l2_normalize,
                                 masked_mean_pool, modality_pairs)


def test_vector_15_masked_gap():
    pooled = masked_mean_pool(tf.constant([[[1.0], [2.0], [3.0]]]), tf.constant([[1.0, 1.0, 0.0]]))
    np.testing.assert_allclose(pooled.numpy(), [[3.0 / (2.0 + 1e-6)]], rtol=1e-7)
    assert pooled.dtype == tf.float32


def test_fully_padded_rows_pool_to_zero():
    pooled = masked_mean_pool(tf.ones([1, 3, 2]), tf.zeros([1, 3]))
    np.testing.assert_array_equal(pooled.numpy(), np.zeros([1, 2]))


def test_common_space_projection():
    out = testing.run_layer_test(CommonSpaceProjection, dict(d_common=12), tf.random.normal([3, 8]),
                                 expected_output_shape=[3, 12])
    np.testing.assert_allclose(out.numpy().mean(-1), 0.0, atol=1e-5)  # ends in a LayerNorm


def test_l2_normalize():
    np.testing.assert_allclose(l2_normalize(tf.constant([[3.0, 4.0]])).numpy(),
                               [[3 / (5 + 1e-6), 4 / (5 + 1e-6)]], rtol=1e-7)


def test_temperatures_per_sorted_pair():
    assert modality_pairs(("vision", "audio", "text")) == (
        ("audio", "audio"), ("audio", "text"), ("audio", "vision"), ("text", "text"),
        ("text", "vision"), ("vision", "vision"))
    layer = PairTemperatures(("vision", "audio", "text"), init=0.2, name="temperatures")
    np.testing.assert_allclose(layer.temperature("vision", "text").numpy(), 0.2 + 1e-6)
    assert len(layer.weights) == 6
    assert "temperatures/temperature_text_vision:0" in {w.name for w in layer.weights}
    layer.temperatures["temperature_text_vision"].assign(-1.0)
    np.testing.assert_allclose(layer.temperature("text", "vision").numpy(), 1e-6)  # ReLU clamp
    np.testing.assert_allclose(layer.temperature("vision", "audio").numpy(), 0.2 + 1e-6)
