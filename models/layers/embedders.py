"""Modality-specific input embedders (IMP_SPEC.md 1.1 steps 1-3).

Every embedder maps one modality's token inputs to `(embeddings float32 [B, N, d_model], mask float32
[B, N])`: token projection, plus layer-normalized learned positions, then `pre_encoder_proj`. All of
them are per modality; only the Transformer after them is shared.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Sequence, Tuple

import tensorflow as tf
import tf_keras

from models.layers.positional import PositionalEmbedding
from models.layers.tracing import static_graph

VISION_AXES = ("temporal", "vertical", "horizontal")
AUDIO_AXES = ("temporal", "spectral")
TEXT_AXES = ("position",)


def dense(units: int, name: str, use_bias: bool = True) -> tf_keras.layers.Dense:
    """A Dense layer with the reference's LeCun-normal kernel init and zero bias."""
    return tf_keras.layers.Dense(units, use_bias=use_bias, kernel_initializer="lecun_normal",
                                 name=name)


@tf_keras.utils.register_keras_serializable(package="imp_tfx")
class PatchEmbedder(tf_keras.layers.Layer):
    """Embeds pre-patched media (vision tubelets, spectrogram patches).

    Inputs `{"tokens": float32 [B, N, token_dim], "coords": float32 [B, N, axes]}` (coords as made by
    `models.tokenizers`); returns `(float32 [B, N, d_model], mask float32 [B, N] of ones)`.

    Args:
      d_model: embedding width.
      pos_buckets: positional table rows per axis (the largest input's grid).
      axis_names: names of the coordinate axes (names the positional tables).
      layer_norm_epsilon: epsilon of the positional LayerNorm.
    """

    def __init__(self, d_model: int, pos_buckets: Sequence[int], axis_names: Sequence[str],
                 layer_norm_epsilon: float = 1e-6, **kwargs):
        super().__init__(**kwargs)
        self.d_model = int(d_model)
        self.pos_buckets = tuple(int(b) for b in pos_buckets)
        self.axis_names = tuple(axis_names)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.token_projection = dense(self.d_model, "token_projection")
        self.positional = PositionalEmbedding(self.pos_buckets, self.d_model, self.axis_names,
                                              self.layer_norm_epsilon, name="positional")
        self.pre_encoder_proj = dense(self.d_model, "pre_encoder_proj")

    @static_graph
    def call(self, inputs: Mapping[str, tf.Tensor]) -> Tuple[tf.Tensor, tf.Tensor]:
        tokens = tf.cast(inputs["tokens"], self.compute_dtype)
        coords = inputs["coords"]
        if coords.shape[-1] != len(self.pos_buckets):
            raise ValueError(f"{self.name} expects {len(self.pos_buckets)} coordinate axes "
                             f"{self.axis_names}, got coords of shape {coords.shape}")
        x = self.token_projection(tokens)
        x = x + self.positional(self.positional.ids_from_coords(coords))
        x = self.pre_encoder_proj(x)
        mask = tf.ones(tf.shape(tokens)[:2], tf.float32)
        return x, mask

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(d_model=self.d_model, pos_buckets=self.pos_buckets,
                      axis_names=self.axis_names, layer_norm_epsilon=self.layer_norm_epsilon)
        return config


@tf_keras.utils.register_keras_serializable(package="imp_tfx")
class TextEmbedder(tf_keras.layers.Layer):
    """Embeds token ids: `{"ids": int [B, L]}` -> `(float32 [B, L, d_model], mask float32 [B, L])`.

    The mask is `ids != pad_id`; positions are 0..L-1 (text's coordinate scale is its own length).

    Args:
      vocab_size: rows of the token table.
      d_model: embedding width.
      max_positions: rows of the positional table (longest sequence).
      pad_id: the padding id (masked out of attention and pooling).
      layer_norm_epsilon: epsilon of the positional LayerNorm.
    """

    def __init__(self, vocab_size: int, d_model: int, max_positions: int, pad_id: int = 0,
                 layer_norm_epsilon: float = 1e-6, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = int(vocab_size)
        self.d_model = int(d_model)
        self.max_positions = int(max_positions)
        self.pad_id = int(pad_id)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        # The reference's Embed init: variance_scaling(1, fan_in, normal) with fan-in = d_model.
        self.token_embeddings = tf_keras.layers.Embedding(
            self.vocab_size, self.d_model, name="token_embeddings",
            embeddings_initializer=tf_keras.initializers.RandomNormal(
                stddev=1.0 / math.sqrt(self.d_model)))
        self.positional = PositionalEmbedding((self.max_positions,), self.d_model, TEXT_AXES,
                                              self.layer_norm_epsilon, name="positional")
        self.pre_encoder_proj = dense(self.d_model, "pre_encoder_proj")

    @static_graph
    def call(self, inputs: Mapping[str, tf.Tensor]) -> Tuple[tf.Tensor, tf.Tensor]:
        ids = tf.cast(inputs["ids"], tf.int32)
        length = ids.shape[1] if ids.shape[1] is not None else tf.shape(ids)[1]
        if isinstance(length, int) and length > self.max_positions:
            raise ValueError(f"text of {length} tokens exceeds max_positions={self.max_positions}")
        positions = tf.range(length)[tf.newaxis, :, tf.newaxis]  # [1, L, 1]
        x = self.token_embeddings(ids)
        x = x + self.positional(positions)
        x = self.pre_encoder_proj(x)
        mask = tf.cast(tf.not_equal(ids, self.pad_id), tf.float32)
        return x, mask

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(vocab_size=self.vocab_size, d_model=self.d_model,
                      max_positions=self.max_positions, pad_id=self.pad_id,
                      layer_norm_epsilon=self.layer_norm_epsilon)
        return config


def build_embedders(config) -> Dict[str, tf_keras.layers.Layer]:
    """One embedder per encoder modality of an `ImpConfig`, keyed `vision`, `audio`, `text`."""
    d, eps = config.encoder.d_model, config.encoder.layer_norm_epsilon
    return {
        "vision": PatchEmbedder(d, config.vision.pos_buckets, VISION_AXES, eps,
                                name="vision_embedder"),
        "audio": PatchEmbedder(d, config.audio.pos_buckets, AUDIO_AXES, eps, name="audio_embedder"),
        "text": TextEmbedder(config.text.vocab_size, d, config.text.max_positions,
                             config.text.pad_id, eps, name="text_embedder"),
    }
