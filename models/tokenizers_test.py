"""Tests of media tokenization and DropToken."""

import numpy as np
import pytest
import tensorflow as tf

from models import tokenizers


def _reference_tubelets(video, patch):
    """Loop reference: tubelet (t, h, w) flattened in (t, h, w, c) order, t-major enumeration."""
    pt, ph, pw = patch
    b, f, h, w, c = video.shape
    tokens, coords = [], []
    for t in range(f // pt):
        for i in range(h // ph):
            for j in range(w // pw):
                block = video[:, t * pt:(t + 1) * pt, i * ph:(i + 1) * ph, j * pw:(j + 1) * pw]
                tokens.append(block.reshape(b, -1))
                coords.append([t / (f // pt), i / (h // ph), j / (w // pw)])
    return np.stack(tokens, 1), np.array(coords, np.float32)


@pytest.mark.parametrize("frames,size", [(4, 32), (8, 48), (2, 64)])
def test_video_tubelets_match_loop_reference(frames, size):
    video = np.random.default_rng(0).normal(size=[2, frames, size, size, 3]).astype(np.float32)
    tokens, coords = tokenizers.video_to_tubelets(video, (2, 8, 8))
    want_tokens, want_coords = _reference_tubelets(video, (2, 8, 8))
    assert tokens.shape == (2, (frames // 2) * (size // 8) ** 2, 2 * 8 * 8 * 3)
    np.testing.assert_array_equal(tokens.numpy(), want_tokens)
    np.testing.assert_allclose(coords.numpy(), np.broadcast_to(want_coords, coords.shape))


def test_image_is_tiled_in_time():
    image = np.random.default_rng(1).normal(size=[3, 32, 32, 3]).astype(np.float32)
    tokens, coords = tokenizers.image_to_tubelets(image, (2, 8, 8))
    want, _ = _reference_tubelets(np.repeat(image[:, None], 2, axis=1), (2, 8, 8))
    assert tokens.shape == (3, 16, 384)
    np.testing.assert_array_equal(tokens.numpy(), want)
    np.testing.assert_array_equal(coords.numpy()[..., 0], 0.0)


def test_short_or_odd_clips_are_tiled_to_a_patch_multiple():
    video = np.arange(3, dtype=np.float32).reshape([1, 3, 1, 1, 1]) * np.ones([1, 3, 8, 8, 3],
                                                                              np.float32)
    tokens, coords = tokenizers.video_to_tubelets(video, (4, 8, 8))
    assert tokens.shape == (1, 1, 4 * 8 * 8 * 3)
    frame_values = tokens.numpy().reshape(4, 8 * 8 * 3)[:, 0]
    np.testing.assert_array_equal(frame_values, [0, 1, 2, 0])


def test_dynamic_shapes_in_a_signature():
    fn = tf.function(lambda v: tokenizers.video_to_tubelets(v, (2, 8, 8)),
                     input_signature=[tf.TensorSpec([None, None, None, None, 3], tf.float32)])
    video = np.random.default_rng(2).normal(size=[1, 3, 16, 24, 3]).astype(np.float32)
    tokens, coords = fn(video)
    eager_tokens, eager_coords = tokenizers.video_to_tubelets(video, (2, 8, 8))
    np.testing.assert_array_equal(tokens.numpy(), eager_tokens.numpy())
    np.testing.assert_array_equal(coords.numpy(), eager_coords.numpy())


@pytest.mark.parametrize("frames,expected_tokens", [(64, 4 * 4), (192, 12 * 4), (100, 7 * 4)])
def test_spectrogram_patches(frames, expected_tokens):
    spec = np.random.default_rng(3).normal(size=[2, frames, 64]).astype(np.float32)
    tokens, coords = tokenizers.spectrogram_to_patches(spec, (16, 16))
    assert tokens.shape == (2, expected_tokens, 256)
    assert coords.shape == (2, expected_tokens, 2)
    # Token (t=1, f=2) is the time-major 1 * 4 + 2 = 6th and holds that patch row by row.
    np.testing.assert_array_equal(tokens.numpy()[:, 6], spec[:, 16:32, 32:48].reshape(2, -1))
    nt = -(-frames // 16)
    np.testing.assert_allclose(coords.numpy()[0, 6], [1 / nt, 2 / 4])
    if frames % 16:  # zero padded at the end
        np.testing.assert_array_equal(tokens.numpy()[:, -1].reshape(2, 16, 16)[:, frames % 16:], 0)


def test_drop_tokens_keeps_sorted_tokens_with_their_coords():
    tokens = tf.reshape(tf.range(2 * 64 * 3, dtype=tf.float32), [2, 64, 3])
    coords = tf.stack([tf.reshape(tf.range(2 * 64, dtype=tf.float32), [2, 64])] * 2, axis=-1)
    kept, kept_coords = tokenizers.drop_tokens(tokens, coords, rate=0.75, seed=[1, 2])
    assert kept.shape == (2, 16, 3) and kept_coords.shape == (2, 16, 2)
    ids = kept.numpy()[..., 0] / 3  # original flat token index
    for b in range(2):
        assert np.all(np.diff(ids[b]) > 0), "kept tokens are in original order"
        np.testing.assert_array_equal(kept_coords.numpy()[b, :, 0], ids[b])
    assert not np.array_equal(ids[0] - 64 * 0, ids[1] - 64), "each example draws its own subset"
    again, _ = tokenizers.drop_tokens(tokens, coords, rate=0.75, seed=[1, 2])
    np.testing.assert_array_equal(again.numpy(), kept.numpy())
    other, _ = tokenizers.drop_tokens(tokens, coords, rate=0.75, seed=[3, 4])
    assert not np.array_equal(other.numpy(), kept.numpy())


def test_drop_tokens_count_and_identity():
    tokens = tf.zeros([1, 10, 4])
    coords = tf.zeros([1, 10, 3])
    assert tokenizers.drop_tokens(tokens, coords, 0.5, [0, 0])[0].shape == (1, 5, 4)
    assert tokenizers.drop_tokens(tokens, coords, 0.33, [0, 0])[0].shape == (1, 6, 4)
    assert tokenizers.drop_tokens(tokens, coords, 0.0, [0, 0])[0] is tokens
    with pytest.raises(ValueError):
        tokenizers.drop_tokens(tokens, coords, 1.0, [0, 0])
