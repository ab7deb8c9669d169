"""Multi-head self-attention of the shared encoder (IMP_SPEC.md 1.4) and its LayerNorm flavour.

No biases anywhere (IMP `use_bias=False`); optional qk-LayerNorm over the head dimension (MoE configs);
softmax and LayerNorm statistics in float32; masked keys get a large negative logit.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional

import tensorflow as tf
import tf_keras

from models.layers.tracing import static_graph

# Added to the logits of padded keys (the reference's -1e10); finite so fully padded rows stay NaN-free.
MASK_LOGIT = -1e10


def layer_norm(name: str, epsilon: float = 1e-6, axis: int = -1,
               center: bool = False) -> tf_keras.layers.LayerNormalization:
    """IMP's LayerNorm: scale-only inside layers (`center=False`), float32 statistics."""
    return tf_keras.layers.LayerNormalization(axis=axis, epsilon=epsilon, center=center,
                                              dtype=tf.float32, name=name)


def attention_bias(mask: Optional[tf.Tensor]) -> Optional[tf.Tensor]:
    """Key mask float [B, N] (1 = attend) -> additive logit bias float32 [B, 1, 1, N], or None."""
    if mask is None:
        return None
    return (1.0 - tf.cast(mask, tf.float32))[:, tf.newaxis, tf.newaxis, :] * MASK_LOGIT


@tf_keras.utils.register_keras_serializable(package="imp_tfx")
class MultiHeadAttention(tf_keras.layers.Layer):
    """Self-attention: float32 [B, N, d_model] (+ key mask [B, N]) -> float32 [B, N, d_model].

    Weights: `query`, `key`, `value` kernels [d_model, heads, d_head] and `output` [heads, d_head,
    d_model], all bias-free; with `qk_layernorm`, scale-only LayerNorms `query_norm` / `key_norm` over
    d_head (shared by all heads).

    Args:
      num_heads: attention heads; d_model must be a multiple.
      qk_layernorm: normalize queries and keys per head before the dot product (stabilizes MoE training).
      dropout_rate: dropout on the attention probabilities (training only).
      layer_norm_epsilon: epsilon of the qk LayerNorms.
    """

    def __init__(self, num_heads: int, qk_layernorm: bool = False, dropout_rate: float = 0.0,
                 layer_norm_epsilon: float = 1e-6, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.qk_layernorm = bool(qk_layernorm)
        self.dropout_rate = float(dropout_rate)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self._dropout = tf_keras.layers.Dropout(self.dropout_rate)
        if self.qk_layernorm:
            self.query_norm = layer_norm("query_norm", self.layer_norm_epsilon)
            self.key_norm = layer_norm("key_norm", self.layer_norm_epsilon)

    def build(self, input_shape):
        d_model = int(input_shape[-1])
        if d_model % self.num_heads:
            raise ValueError(f"d_model {d_model} is not a multiple of num_heads {self.num_heads}")
        self.d_head = d_model // self.num_heads
        # Keras' fan-in of a [d, h, dh] kernel is d * h: the same std 1/sqrt(d*h) as the reference's
        # jax variance_scaling over its 3-D q/k/v kernels (IMP_SPEC.md 1.4). The output kernel
        # [h, dh, d] gets fan-in h * dh = d (LeCun normal).
        # (A fresh initializer per kernel: a reused unseeded one would give q, k and v equal values.)
        def init():
            return tf_keras.initializers.VarianceScaling(1.0, "fan_in", "truncated_normal")

        qkv_shape = [d_model, self.num_heads, self.d_head]
        self.query_kernel = self.add_weight(name="query", shape=qkv_shape, initializer=init())
        self.key_kernel = self.add_weight(name="key", shape=qkv_shape, initializer=init())
        self.value_kernel = self.add_weight(name="value", shape=qkv_shape, initializer=init())
        self.output_kernel = self.add_weight(
            name="output", shape=[self.num_heads, self.d_head, d_model], initializer=init())
        super().build(input_shape)

    @static_graph
    def call(self, x: tf.Tensor, mask: Optional[tf.Tensor] = None, training=None) -> tf.Tensor:
        q = tf.einsum("bnd,dhk->bnhk", x, self.query_kernel)
        k = tf.einsum("bnd,dhk->bnhk", x, self.key_kernel)
        v = tf.einsum("bnd,dhk->bnhk", x, self.value_kernel)
        if self.qk_layernorm:
            q = tf.cast(self.query_norm(q), x.dtype)
            k = tf.cast(self.key_norm(k), x.dtype)
        q = q * tf.cast(1.0 / math.sqrt(self.d_head), q.dtype)
        logits = tf.cast(tf.einsum("bqhk,bvhk->bhqv", q, k), tf.float32)
        bias = attention_bias(mask)
        if bias is not None:
            logits += bias
        probs = tf.cast(tf.nn.softmax(logits, axis=-1), x.dtype)
        probs = self._dropout(probs, training=training)
        context = tf.einsum("bhqv,bvhk->bqhk", probs, v)
        return tf.einsum("bqhk,hkd->bqd", context, self.output_kernel)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(num_heads=self.num_heads, qk_layernorm=self.qk_layernorm,
                      dropout_rate=self.dropout_rate, layer_norm_epsilon=self.layer_norm_epsilon)
        return config
