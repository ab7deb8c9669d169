"""Tests of the positional tables' dilated nearest lookup (IMP_SPEC.md test vector 9)."""

import numpy as np
import tensorflow as tf

from models import tokenizers
from models.layers.positional import PositionalEmbedding, bucket_ids


def _axis_ids(coords, buckets, axis):
    return sorted(set(bucket_ids(coords, buckets).numpy()[0, :, axis].tolist()))


def test_vector_9_video_ids():
    # 16-frame 256^2 video, patch (4, 8, 8) -> a (4, 32, 32) grid on a (16, 32, 32) table.
    _, coords = tokenizers.video_to_tubelets(tf.zeros([1, 16, 256, 256, 1]), (4, 8, 8))
    buckets = (16, 32, 32)
    assert _axis_ids(coords, buckets, 0) == [0, 4, 8, 12]
    # The spec's example: 256 px with 16-px patches = 16 rows on a 32-row table -> 0, 2, ..., 30.
    _, coords = tokenizers.image_to_tubelets(tf.zeros([1, 256, 256, 1]), (4, 16, 16))
    assert _axis_ids(coords, buckets, 1) == list(range(0, 32, 2))


def test_vector_9_non_power_of_two_image():
    _, coords = tokenizers.image_to_tubelets(tf.zeros([1, 224, 224, 1]), (4, 16, 16))
    want = [0, 2, 4, 6, 9, 11, 13, 16, 18, 20, 22, 25, 27, 29]
    assert _axis_ids(coords, (16, 32, 32), 1) == want
    assert _axis_ids(coords, (16, 32, 32), 2) == want


def test_vector_9_spectrogram_and_text():
    _, coords = tokenizers.spectrogram_to_patches(tf.zeros([1, 128, 128]), (16, 16))
    assert _axis_ids(coords, (64, 8), 0) == list(range(0, 64, 8))
    # Text uses its own length as the scale: positions 0..L-1.
    text_coords = tokenizers.grid_coordinates([16])[tf.newaxis]
    assert _axis_ids(text_coords, (16,), 0) == list(range(16))


def test_embedding_sums_axis_rows_then_normalizes():
    layer = PositionalEmbedding((4, 8), d_model=6, axis_names=("temporal", "spectral"),
                                name="positional")
    ids = tf.constant([[[1, 3], [0, 7]]])
    out = layer(ids)
    assert out.shape == (1, 2, 6)
    assert [w.name for w in layer.weights[:2]] == [
        "positional/temporal_embeddings:0", "positional/spectral_embeddings:0"]
    summed = layer.tables[0].numpy()[[1, 0]] + layer.tables[1].numpy()[[3, 7]]
    normed = (summed - summed.mean(-1, keepdims=True)) / np.sqrt(summed.var(-1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(out.numpy()[0], normed, rtol=1e-4, atol=1e-5)
    assert not np.allclose(layer.tables[0].numpy()[:4], layer.tables[1].numpy()[:4]), \
        "tables must be initialized independently"
