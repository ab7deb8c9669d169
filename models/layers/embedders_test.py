"""Tests of the per-modality embedders at several resolutions."""

import numpy as np
import pytest
import tensorflow as tf

from models import testing
from models import tokenizers
from models.configs import get_config
from models.layers.embedders import AUDIO_AXES, VISION_AXES, PatchEmbedder, TextEmbedder

CONFIG = get_config("tiny")
D = CONFIG.encoder.d_model


def _vision_kwargs():
    return dict(d_model=D, pos_buckets=CONFIG.vision.pos_buckets, axis_names=VISION_AXES)


@pytest.mark.parametrize("size", [32, 48, 64])
def test_image_embedding_shapes(size):
    tokens, coords = tokenizers.image_to_tubelets(
        testing.random_media("image", CONFIG, image_size=size), CONFIG.vision.patch)
    n = (size // 8) ** 2
    testing.run_layer_test(PatchEmbedder, _vision_kwargs(), {"tokens": tokens, "coords": coords},
                           expected_output_shape=[2, n, D])
    _, mask = PatchEmbedder(**_vision_kwargs())({"tokens": tokens, "coords": coords})
    np.testing.assert_array_equal(mask.numpy(), np.ones([2, n]))


@pytest.mark.parametrize("frames", [4, 8])
def test_video_embedding_shapes(frames):
    tokens, coords = tokenizers.video_to_tubelets(
        testing.random_media("video", CONFIG, frames=frames), CONFIG.vision.patch)
    testing.run_layer_test(PatchEmbedder, _vision_kwargs(), {"tokens": tokens, "coords": coords},
                           expected_output_shape=[2, frames // 2 * 16, D])


@pytest.mark.parametrize("frames", [64, 192])
def test_audio_embedding_shapes(frames):
    tokens, coords = tokenizers.spectrogram_to_patches(
        testing.random_media("audio", CONFIG, spectrogram_frames=frames), CONFIG.audio.patch)
    kwargs = dict(d_model=D, pos_buckets=CONFIG.audio.pos_buckets, axis_names=AUDIO_AXES)
    testing.run_layer_test(PatchEmbedder, kwargs, {"tokens": tokens, "coords": coords},
                           expected_output_shape=[2, frames // 16 * 4, D])


def test_position_changes_the_embedding_but_resolution_shares_tables():
    layer = PatchEmbedder(**_vision_kwargs())
    tokens = tf.ones([1, 2, CONFIG.vision.token_dim])
    out, _ = layer({"tokens": tokens, "coords": tf.constant([[[0, 0, 0], [0, 0.5, 0]]])})
    assert not np.allclose(out.numpy()[0, 0], out.numpy()[0, 1])
    # Row 4 of an 8-row table: the same for 2/4 (coarse grid) and 4/8 (fine grid).
    coarse, _ = layer({"tokens": tokens[:, :1], "coords": tf.constant([[[0, 2 / 4, 0]]])})
    fine, _ = layer({"tokens": tokens[:, :1], "coords": tf.constant([[[0, 4 / 8, 0]]])})
    np.testing.assert_allclose(coarse.numpy(), fine.numpy())


def test_wrong_coordinate_axes_are_rejected():
    layer = PatchEmbedder(**_vision_kwargs())
    with pytest.raises(ValueError, match="coordinate axes"):
        layer({"tokens": tf.zeros([1, 2, CONFIG.vision.token_dim]), "coords": tf.zeros([1, 2, 2])})


@pytest.mark.parametrize("length", [4, 12])
def test_text_embedding_shapes_and_mask(length):
    ids = testing.random_media("text", CONFIG, text_length=length)
    kwargs = dict(vocab_size=CONFIG.text.vocab_size, d_model=D,
                  max_positions=CONFIG.text.max_positions)
    testing.run_layer_test(TextEmbedder, kwargs, {"ids": ids}, expected_output_shape=[2, length, D])
    _, mask = TextEmbedder(**kwargs)({"ids": ids})
    np.testing.assert_array_equal(mask.numpy(), (ids.numpy() != 0).astype(np.float32))
