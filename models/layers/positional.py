"""Learned per-axis positional tables with dilated nearest lookup (IMP_SPEC.md 1.3).

Each axis (t, h, w for vision; t, f for spectrograms; position for text) has its own learned table
sized for the *largest* input. A token at normalized coordinate `c` on an axis with `buckets` rows reads
row `int(c * buckets)`: a 256-px image on a 32-row table reads rows 0, 2, ..., 30, so every resolution
and frame count shares one table. The per-axis rows are summed and layer-normalized (scale and bias),
then added to the token embeddings by the embedder.
"""

from __future__ import annotations

from typing import Any, Dict, Sequence

import tensorflow as tf
import tf_keras

from models.layers.tracing import static_graph

# Coordinates are `i / n` in float32; `i / n * buckets` may land a hair below an exact integer. Any true
# non-integer product is at least 1/n away from the next integer, so this nudge never changes a bucket.
_ROUNDING_GUARD = 1e-4


def bucket_ids(coords: tf.Tensor, buckets: Sequence[int]) -> tf.Tensor:
    """Table rows of normalized coordinates: int32 [..., axes] = floor(coords * buckets), clipped.

    Args:
      coords: float [..., axes] in [0, 1).
      buckets: rows per axis.
    """
    scale = tf.constant(buckets, tf.float32)
    ids = tf.math.floor(tf.cast(coords, tf.float32) * scale + _ROUNDING_GUARD)
    return tf.clip_by_value(tf.cast(ids, tf.int32), 0, tf.constant(buckets, tf.int32) - 1)


@tf_keras.utils.register_keras_serializable(package="imp_tfx")
class PositionalEmbedding(tf_keras.layers.Layer):
    """Sum of per-axis learned tables, then LayerNorm: int ids [B, N, axes] -> float32 [B, N, d_model].

    Args:
      buckets: rows of each axis' table (e.g. `VisionConfig.pos_buckets`).
      d_model: embedding width.
      axis_names: one readable name per axis; the tables are the weights `<name>_embeddings`.
      layer_norm_epsilon: epsilon of the output LayerNorm.
    """

    def __init__(self, buckets: Sequence[int], d_model: int, axis_names: Sequence[str],
                 layer_norm_epsilon: float = 1e-6, **kwargs):
        super().__init__(**kwargs)
        if len(buckets) != len(axis_names):
            raise ValueError(f"one axis name per table needed, got {buckets} and {axis_names}")
        self.buckets = tuple(int(b) for b in buckets)
        self.d_model = int(d_model)
        self.axis_names = tuple(axis_names)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.layer_norm = tf_keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=tf.float32, name="layer_norm")

    def build(self, input_shape):
        # One initializer per table: an unseeded Keras initializer repeats its values when reused.
        self.tables = [
            self.add_weight(name=f"{name}_embeddings", shape=[rows, self.d_model],
                            initializer=tf_keras.initializers.RandomNormal(stddev=0.02))
            for name, rows in zip(self.axis_names, self.buckets)]
        super().build(input_shape)

    def ids_from_coords(self, coords: tf.Tensor) -> tf.Tensor:
        """Normalized coordinates float32 [B, N, axes] -> table rows int32 [B, N, axes]."""
        return bucket_ids(coords, self.buckets)

    @static_graph
    def call(self, ids: tf.Tensor) -> tf.Tensor:
        """ids: int32 [B, N, axes] table rows -> float32 [B, N, d_model]."""
        summed = tf.add_n([tf.gather(table, ids[..., axis])
                           for axis, table in enumerate(self.tables)])
        return self.layer_norm(summed)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(buckets=self.buckets, d_model=self.d_model, axis_names=self.axis_names,
                      layer_norm_epsilon=self.layer_norm_epsilon)
        return config
