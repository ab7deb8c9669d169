"""Output heads on top of the shared encoder (IMP_SPEC.md 1.1 steps 6-8 and 1.6).

* masked global average pooling (no CLS token),
* per (source, target) modality common-space MLPs ("disjoint" common space),
* learnable per-pair temperatures (ReLU-clamped divisors),
* named classifiers are plain `Dense(num_classes)` layers (built by `ImpModel`).
"""

from __future__ import annotations

import itertools
from typing import Any, Dict, Sequence, Tuple

import tensorflow as tf
import tf_keras

from models.layers.embedders import dense
from models.layers.tracing import static_graph

POOL_EPSILON = 1e-6


def masked_mean_pool(x: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Masked mean over tokens: float [B, N, d], mask [B, N] -> float32 [B, d].

    `sum(x * m) / (sum(m) + 1e-6)` as the reference's GAP head: all-padded rows pool to zeros.
    """
    x = tf.cast(x, tf.float32)
    mask = tf.cast(mask, tf.float32)[..., tf.newaxis]
    return tf.reduce_sum(x * mask, axis=1) / (tf.reduce_sum(mask, axis=1) + POOL_EPSILON)


def l2_normalize(x: tf.Tensor, epsilon: float = 1e-6) -> tf.Tensor:
    """`x / (||x|| + eps)` over the last axis, in float32 (the reference's normalization)."""
    x = tf.cast(x, tf.float32)
    return x / (tf.norm(x, axis=-1, keepdims=True) + epsilon)


@tf_keras.utils.register_keras_serializable(package="imp_tfx")
class CommonSpaceProjection(tf_keras.layers.Layer):
    """Dense(d_common) -> GELU -> Dense(d_common) -> LayerNorm: float [B, d] -> float32 [B, d_common]."""

    def __init__(self, d_common: int, layer_norm_epsilon: float = 1e-6, **kwargs):
        super().__init__(**kwargs)
        self.d_common = int(d_common)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.hidden = dense(self.d_common, "hidden")
        self.output_proj = dense(self.d_common, "output")
        self.layer_norm = tf_keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=tf.float32, name="layer_norm")

    @static_graph
    def call(self, x: tf.Tensor) -> tf.Tensor:
        h = tf.nn.gelu(self.hidden(x), approximate=True)
        return self.layer_norm(self.output_proj(h))

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(d_common=self.d_common, layer_norm_epsilon=self.layer_norm_epsilon)
        return config


def modality_pairs(modalities: Sequence[str]) -> Tuple[Tuple[str, str], ...]:
    """Sorted unordered pairs including self pairs: (audio, audio), (audio, text), ... ."""
    return tuple(itertools.combinations_with_replacement(sorted(modalities), 2))


def pair_name(a: str, b: str) -> str:
    """`temperature_<x>_<y>` with x <= y, so (text, vision) and (vision, text) share one scalar."""
    x, y = sorted((a, b))
    return f"temperature_{x}_{y}"


@tf_keras.utils.register_keras_serializable(package="imp_tfx")
class PairTemperatures(tf_keras.layers.Layer):
    """One learnable scalar per sorted modality pair; `temperature(a, b)` = relu(t) + 1e-6 (a divisor).

    Args:
      modalities: encoder modalities (all sorted pairs, self pairs included, get a scalar).
      init: initial value of every temperature.
    """

    def __init__(self, modalities: Sequence[str], init: float, **kwargs):
        super().__init__(**kwargs)
        self.modalities = tuple(modalities)
        self.init = float(init)
        self.pairs = modality_pairs(self.modalities)

    def build(self, input_shape=None):
        self.temperatures = {
            pair_name(a, b): self.add_weight(
                name=pair_name(a, b), shape=[],
                initializer=tf_keras.initializers.Constant(self.init))
            for a, b in self.pairs}
        super().build(input_shape)

    def ensure_built(self) -> None:
        """Creates the scalars (under this layer's name scope) if no call did yet."""
        if not self.built:
            with tf.name_scope(self.name):
                self.build()

    def temperature(self, a: str, b: str) -> tf.Tensor:
        """float32 [] positive divisor of the (a, b) similarity logits."""
        self.ensure_built()
        name = pair_name(a, b)
        if name not in self.temperatures:
            raise ValueError(f"no temperature for modalities ({a!r}, {b!r}); "
                             f"known: {sorted(self.temperatures)}")
        return tf.nn.relu(self.temperatures[name]) + 1e-6

    @static_graph
    def call(self, inputs=None) -> Dict[str, tf.Tensor]:
        """All clamped temperatures by pair name (handy for logging)."""
        return {pair_name(a, b): self.temperature(a, b) for a, b in self.pairs}

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(modalities=self.modalities, init=self.init)
        return config
