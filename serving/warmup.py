"""Warmup requests for an export: one Predict request per signature at representative shapes.

TF Serving replays `assets.extra/tf_serving_warmup_requests` before it marks a version AVAILABLE, so every
signature's graph (decoders, tokenizer, encoder) is initialized before the first user request. The media
are synthetic but real encodings (JPEG frames, PNG image, PCM16 WAV) at the canonical `MediaConfig` sizes.
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np
import tensorflow as tf

from models import features as F
from serving.server import warmup as warmup_io

WARMUP_BATCH_SIZES = (1, 4)
WARMUP_CLASS_NAMES = (b"cat", b"dog", b"seven")


def _picture(seed: int, size: int) -> np.ndarray:
    """A seeded uint8 [size, size, 3] gradient with a square (something a decoder really decodes)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / max(size, 1)
    image = rng.uniform(0, 1, 3) * np.stack([x, y, 1 - x], axis=-1) * 255
    corner = rng.integers(0, size // 2 + 1, 2)
    image[corner[0]:corner[0] + size // 3, corner[1]:corner[1] + size // 3] = rng.integers(0, 256, 3)
    return image.astype(np.uint8)


def sample_jpeg(seed: int, size: int) -> bytes:
    return tf.io.encode_jpeg(_picture(seed, size), quality=90).numpy()


def sample_png(seed: int, size: int) -> bytes:
    return tf.io.encode_png(_picture(seed, size)).numpy()


def sample_wav(seed: int, media: F.MediaConfig) -> bytes:
    """A PCM16 mono WAV of `media.audio_seconds` at the canonical rate: a tone plus a little noise."""
    rate = media.audio.sample_rate
    t = np.arange(media.audio_samples) / rate
    rng = np.random.default_rng(seed)
    wave = 0.4 * np.sin(2 * np.pi * (220 + 40 * seed) * t) + 0.02 * rng.standard_normal(t.shape)
    return tf.audio.encode_wav(wave.astype(np.float32)[:, None], rate).numpy()


def sample_example(seed: int, media: F.MediaConfig) -> bytes:
    """A serialized raw tf.Example (the ExampleGen contract) with every modality present."""
    size = media.stored_image_max_side // 2
    frames = [sample_jpeg(seed * 100 + i, size) for i in range(media.video_frames)]

    def strings(*values):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))

    return tf.train.Example(features=tf.train.Features(feature={
        F.RAW_ID: strings(f"warmup-{seed}".encode()),
        F.RAW_TEXT: strings(b"a handwritten seven moving left"),
        F.RAW_IMAGE: strings(sample_jpeg(seed, size)),
        F.RAW_AUDIO: strings(sample_wav(seed, media)),
        F.RAW_VIDEO_FRAMES: strings(*frames),
    })).SerializeToString()


def _column(values: Sequence) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = list(values)
    return array


def warmup_requests(media: F.MediaConfig, batch_sizes: Sequence[int] = WARMUP_BATCH_SIZES
                    ) -> List[Tuple[str, Dict[str, np.ndarray]]]:
    """[(signature name, {input: object/bytes array})] covering every exported signature."""
    size = media.stored_image_max_side // 2
    requests = []
    for batch in batch_sizes:
        seeds = range(batch)
        text = _column([f"warmup caption number {i}".encode() for i in seeds])
        images = _column([(sample_jpeg if i % 2 else sample_png)(i, size) for i in seeds])
        wavs = _column([sample_wav(i, media) for i in seeds])
        frames = np.array([[sample_jpeg(i * 100 + f, size) for f in range(media.video_frames)]
                           for i in seeds], dtype=object)
        classes = _column(list(WARMUP_CLASS_NAMES))
        requests += [
            ("embed_text", {"text": text}),
            ("embed_text_for_audio", {"text": text}),
            ("embed_image", {"image_bytes": images}),
            ("embed_audio", {"audio_bytes": wavs}),
            ("embed_video", {"frames_bytes": frames}),
            ("embed_video_audio", {"frames_bytes": frames, "audio_bytes": wavs}),
            ("zero_shot", {"image_bytes": images, "class_names": classes}),
            ("zero_shot_audio", {"audio_bytes": wavs, "class_names": classes}),
            ("zero_shot_video", {"frames_bytes": frames, "class_names": classes}),
            ("serving_examples", {"examples": _column([sample_example(i, media) for i in seeds])}),
        ]
    return requests


def write_warmup(version_dir: str, model_name: str, media: F.MediaConfig,
                 batch_sizes: Sequence[int] = WARMUP_BATCH_SIZES) -> str:
    """Writes `assets.extra/tf_serving_warmup_requests` into an export directory; returns its path."""
    return warmup_io.write_warmup_requests(version_dir, model_name, warmup_requests(media, batch_sizes))
