"""Small shared helpers for model tests: random media and token batches per modality, layer checks.

Kept free of pytest so that benchmarks and the smoke command can reuse the batch builders.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Sequence

import numpy as np
import tensorflow as tf
import tf_keras

from models.configs import ImpConfig


def random_media(kind: str, config: ImpConfig, batch: int = 2, image_size: int = 32,
                 frames: int = 4, spectrogram_frames: int = 64, text_length: Optional[int] = None,
                 seed: int = 0) -> tf.Tensor:
    """A random dense media batch of `kind` as `ImpModel.embed` takes it.

    image float32 [B, S, S, 3] and video [B, F, S, S, 3] in [-1, 1]; audio log-mel [B, T, mel bins];
    text int32 ids [B, L] whose last quarter is padding (so masks are exercised).
    """
    rng = np.random.default_rng(seed)
    if kind == "image":
        return tf.constant(rng.uniform(-1, 1, [batch, image_size, image_size, 3]), tf.float32)
    if kind == "video":
        return tf.constant(rng.uniform(-1, 1, [batch, frames, image_size, image_size, 3]), tf.float32)
    if kind == "audio":
        return tf.constant(rng.normal(size=[batch, spectrogram_frames, config.audio.num_mel_bins]),
                           tf.float32)
    if kind == "text":
        length = text_length or config.text.max_length
        ids = rng.integers(1, config.text.vocab_size, [batch, length])
        ids[:, length - max(length // 4, 1):] = config.text.pad_id
        return tf.constant(ids, tf.int32)
    raise ValueError(f"unknown kind {kind!r}")


def random_labels(num_classes: int, batch: int = 2, seed: int = 0) -> tf.Tensor:
    """int32 [B] class ids."""
    return tf.constant(np.random.default_rng(seed).integers(0, num_classes, [batch]), tf.int32)


def run_layer_test(layer_cls: Callable[..., tf_keras.layers.Layer], init_kwargs: Dict[str, Any],
                   inputs: Any, expected_output_shape: Sequence[Optional[int]],
                   call_kwargs: Optional[Dict[str, Any]] = None) -> tf.Tensor:
    """keras-hub style layer check: output shape, finiteness, `get_config` round trip, gradients.

    Returns the output (the first one when the layer returns a tuple).
    """
    call_kwargs = call_kwargs or {}
    layer = layer_cls(**init_kwargs)
    with tf.GradientTape() as tape:
        outputs = layer(inputs, **call_kwargs)
        output = outputs[0] if isinstance(outputs, (tuple, list)) else outputs
        loss = tf.reduce_sum(tf.square(tf.cast(output, tf.float32)))
    assert list(output.shape) == list(expected_output_shape), (output.shape, expected_output_shape)
    assert bool(tf.reduce_all(tf.math.is_finite(tf.cast(output, tf.float32)))), "non-finite output"
    grads = tape.gradient(loss, layer.trainable_variables)
    missing = [v.name for v, g in zip(layer.trainable_variables, grads) if g is None]
    assert not missing, f"no gradient for {missing}"

    clone = layer_cls.from_config(layer.get_config())
    clone_outputs = clone(inputs, **call_kwargs)
    clone_output = clone_outputs[0] if isinstance(clone_outputs, (tuple, list)) else clone_outputs
    assert clone_output.shape == output.shape
    assert len(clone.weights) == len(layer.weights)
    return output
