"""Media -> tokens with normalized grid coordinates, and DropToken (pure core TensorFlow).

These functions run in three places that must agree bit for bit: the trainer's input pipeline, the
serving signatures (TF Serving has no custom ops) and tests. They use reshapes and transposes only, so
they are exact, differentiable and fast.

Token layout (IMP_SPEC.md 1.2): tokens are ordered t-major, then h, then w (then f for spectrograms);
each token's features are the patch's values in (t, h, w, c) order. Coordinates are the patch's grid
position `i / n_axis` per axis, in [0, 1): the positional tables are indexed by them (dilated nearest
lookup), so tokens keep their position after DropToken and across resolutions.

Shapes that do not divide by the patch are zero-padded at the end ("SAME" padding, as the reference's
`extract_volume_patches`); clips with fewer frames than the temporal patch are tiled in time.
"""

from __future__ import annotations

from typing import Sequence, Tuple, Union

import tensorflow as tf

Seed = Union[Sequence[int], tf.Tensor]


def _dim(x: tf.Tensor, axis: int):
    """The static size of `axis` when known, else the dynamic one (int32 scalar tensor)."""
    static = x.shape[axis]
    return static if static is not None else tf.shape(x)[axis]


def _ceil_div(a, b):
    return -(-a // b)


def _pad_to_multiple(x: tf.Tensor, axis: int, multiple: int) -> tf.Tensor:
    """Zero-pads `axis` at the end up to a multiple of `multiple` (no-op when it already is)."""
    if multiple == 1:
        return x
    size = _dim(x, axis)
    if isinstance(size, int) and size % multiple == 0:
        return x
    pad = (-size) % multiple
    paddings = [[0, 0]] * x.shape.rank
    paddings[axis] = [0, pad]
    return tf.pad(x, paddings)


def grid_coordinates(grid: Sequence[Union[int, tf.Tensor]]) -> tf.Tensor:
    """Normalized positions of every cell of a grid, float32 [prod(grid), len(grid)].

    Cells are enumerated in row-major order (the first axis varies slowest); cell `(i, j, ...)` has
    coordinates `(i / grid[0], j / grid[1], ...)`.
    """
    axes = [tf.cast(tf.range(n), tf.float32) / tf.cast(n, tf.float32) for n in grid]
    mesh = tf.meshgrid(*axes, indexing="ij")
    return tf.stack([tf.reshape(m, [-1]) for m in mesh], axis=-1)


def _batch_coords(coords: tf.Tensor, batch) -> tf.Tensor:
    return tf.tile(coords[tf.newaxis], [batch, 1, 1])


def video_to_tubelets(videos: tf.Tensor, patch: Sequence[int]) -> Tuple[tf.Tensor, tf.Tensor]:
    """Cuts videos into non-overlapping tubelets.

    Args:
      videos: float32 [B, F, H, W, C].
      patch: (frames, height, width) of one tubelet. A clip of fewer than `patch[0]` frames (or of a
        frame count that is not a multiple of it) is tiled cyclically in time up to the next multiple.

    Returns:
      tokens: float32 [B, N, patch_t * patch_h * patch_w * C] with N = nt * nh * nw,
      coords: float32 [B, N, 3], the (t, h, w) grid position of each tubelet divided by (nt, nh, nw).
    """
    videos = tf.convert_to_tensor(videos)
    if videos.shape.rank != 5:
        raise ValueError(f"videos must be [B, F, H, W, C], got shape {videos.shape}")
    pt, ph, pw = (int(p) for p in patch)
    frames = _dim(videos, 1)
    if isinstance(frames, int):
        if frames % pt:
            videos = tf.gather(videos, [i % frames for i in range(_ceil_div(frames, pt) * pt)], axis=1)
    else:
        target = _ceil_div(frames, pt) * pt
        videos = tf.gather(videos, tf.range(target) % frames, axis=1)
    videos = _pad_to_multiple(_pad_to_multiple(videos, 2, ph), 3, pw)

    batch = _dim(videos, 0)
    nt, nh, nw = _dim(videos, 1) // pt, _dim(videos, 2) // ph, _dim(videos, 3) // pw
    channels = videos.shape[-1]
    x = tf.reshape(videos, [batch, nt, pt, nh, ph, nw, pw, channels])
    x = tf.transpose(x, [0, 1, 3, 5, 2, 4, 6, 7])  # [B, nt, nh, nw, pt, ph, pw, C]
    tokens = tf.reshape(x, [batch, nt * nh * nw, pt * ph * pw * channels])
    coords = _batch_coords(grid_coordinates([nt, nh, nw]), batch)
    return tokens, coords


def image_to_tubelets(images: tf.Tensor, patch: Sequence[int]) -> Tuple[tf.Tensor, tf.Tensor]:
    """Images float32 [B, H, W, C] -> `video_to_tubelets` of the image tiled to `patch[0]` frames.

    An image is a one-frame video (IMP shares the vision embedder): N = (H/ph) * (W/pw) tokens, all at
    temporal coordinate 0.
    """
    images = tf.convert_to_tensor(images)
    if images.shape.rank != 4:
        raise ValueError(f"images must be [B, H, W, C], got shape {images.shape}")
    return video_to_tubelets(images[:, tf.newaxis], patch)


def spectrogram_to_patches(spectrograms: tf.Tensor,
                           patch: Sequence[int]) -> Tuple[tf.Tensor, tf.Tensor]:
    """Cuts log-mel spectrograms into non-overlapping patches.

    Args:
      spectrograms: float32 [B, T, M] (time frames, mel bins).
      patch: (time frames, mel bins) of one patch.

    Returns:
      tokens: float32 [B, N, patch_t * patch_f] with N = nt * nf (time-major),
      coords: float32 [B, N, 2], the (t, f) grid position divided by (nt, nf).
    """
    spectrograms = tf.convert_to_tensor(spectrograms)
    if spectrograms.shape.rank != 3:
        raise ValueError(f"spectrograms must be [B, T, M], got shape {spectrograms.shape}")
    pt, pf = (int(p) for p in patch)
    x = _pad_to_multiple(_pad_to_multiple(spectrograms, 1, pt), 2, pf)
    batch = _dim(x, 0)
    nt, nf = _dim(x, 1) // pt, _dim(x, 2) // pf
    x = tf.reshape(x, [batch, nt, pt, nf, pf])
    x = tf.transpose(x, [0, 1, 3, 2, 4])  # [B, nt, nf, pt, pf]
    tokens = tf.reshape(x, [batch, nt * nf, pt * pf])
    coords = _batch_coords(grid_coordinates([nt, nf]), batch)
    return tokens, coords


def num_kept_tokens(num_tokens, rate: float):
    """Tokens DropToken keeps: `int((1 - rate) * num_tokens)`, at least 1."""
    if isinstance(num_tokens, int):
        return max(int((1.0 - rate) * num_tokens), 1)
    kept = tf.cast(tf.math.floor((1.0 - rate) * tf.cast(num_tokens, tf.float64)), tf.int32)
    return tf.maximum(kept, 1)


def drop_tokens(tokens: tf.Tensor, coords: tf.Tensor, rate: float,
                seed: Seed) -> Tuple[tf.Tensor, tf.Tensor]:
    """DropToken (IMP_SPEC.md 2.4): keeps a uniformly random subset of tokens per example.

    Every example keeps `int((1 - rate) * N)` of its tokens, chosen independently per example, in their
    original order, together with their coordinates (so positions stay correct). The choice is a
    function of `seed` only (stateless random ops): reproducible, and safe under DTensor.

    Args:
      tokens: float32 [B, N, D].
      coords: float32 [B, N, axes].
      rate: fraction of tokens to drop, in [0, 1).
      seed: int32/int64 [2], the stateless random seed.

    Returns:
      (tokens [B, K, D], coords [B, K, axes]) with K = int((1 - rate) * N).
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"DropToken rate must be in [0, 1), got {rate}")
    if rate == 0.0:
        return tokens, coords
    tokens = tf.convert_to_tensor(tokens)
    coords = tf.convert_to_tensor(coords)
    batch, num_tokens = _dim(tokens, 0), _dim(tokens, 1)
    keep = num_kept_tokens(num_tokens, rate)
    scores = tf.random.stateless_uniform([batch, num_tokens], seed=seed)
    _, indices = tf.math.top_k(scores, k=keep, sorted=False)
    indices = tf.sort(indices, axis=-1)
    return (tf.gather(tokens, indices, batch_dims=1),
            tf.gather(coords, indices, batch_dims=1))
