"""Fixture writer: a small ingest-output folder of transformed tf.Examples (random but learnable).

Layout (the same as `imp-tfx ingest` writes):

    DIR/transformed_examples/Split-<split>/data_tfrecord-00000-of-00001.gz   GZIP TFRecords
    DIR/transform_graph/transform_fn/assets/text_wordpiece_vocab               one token per line
    DIR/transform_graph/transform_fn/assets/labels                             one class name per line

Every example belongs to one of `num_classes` classes; each modality carries a fixed class pattern plus
noise and the caption is the class's token ids, so contrastive and classification losses can fall.
"""

from __future__ import annotations

import pathlib
from typing import Dict, Iterable, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from models import features as F
from models.features import DEFAULT_MEDIA, MediaConfig
from models.training.data import assets_dir, split_dir
from models.training.tasks import Task

CLASS_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def _float_feature(values: np.ndarray) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=np.asarray(values, np.float32).ravel()))


def _int_feature(values) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=np.atleast_1d(values).astype(np.int64)))


def _bytes_feature(value: str) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))


class _Patterns:
    """Fixed per-class media patterns (seeded), shared by every split so eval matches train."""

    def __init__(self, media: MediaConfig, num_classes: int, vocab_size: int, seed: int):
        rng = np.random.default_rng(seed)
        side = media.image_size
        # Smooth low-frequency class images (upsampled 4x4 noise) so resizing keeps them apart.
        coarse = rng.uniform(-1, 1, size=(num_classes, 4, 4, 3)).astype(np.float32)
        self.image = np.stack([np.kron(c, np.ones((side // 4, side // 4, 1))) for c in coarse])
        self.video_shift = rng.integers(1, 4, size=num_classes)  # pixels per frame the pattern moves
        self.audio = rng.normal(size=(num_classes, 1, media.audio.num_mel_bins)).astype(np.float32)
        first = len(SPECIAL_TOKENS)
        self.captions = rng.integers(first, vocab_size, size=(num_classes, 4))
        self.media = media

    def example(self, rng: np.random.Generator, label: int, kinds: Iterable[str], index: int,
                split: str, with_label: bool) -> tf.train.Example:
        m = self.media
        feats: Dict[str, tf.train.Feature] = {}
        kinds = set(kinds)
        noise = 0.3
        image = np.clip(self.image[label] + noise * rng.normal(size=self.image[label].shape), -1, 1)
        video = np.stack([np.roll(self.image[label], f * self.video_shift[label], axis=1)
                          for f in range(m.video_frames)])
        video = np.clip(video + noise * rng.normal(size=video.shape), -1, 1)
        audio = np.tile(self.audio[label], (m.spectrogram_frames, 1))
        audio = audio + noise * rng.normal(size=audio.shape)
        ids = np.zeros(m.text_max_length, np.int64)
        caption = self.captions[label]
        ids[:len(caption)] = caption
        feats[F.IMAGE_KEY] = _float_feature(image if "image" in kinds else [])
        feats[F.VIDEO_KEY] = _float_feature(video if "video" in kinds else [])
        feats[F.AUDIO_KEY] = _float_feature(audio if "audio" in kinds else [])
        feats[F.TEXT_IDS_KEY] = _int_feature(ids if "text" in kinds else np.zeros_like(ids))
        feats[F.LABEL_ID_KEY] = _int_feature(label if with_label else -1)
        feats[F.LABEL_KEY] = _bytes_feature(CLASS_NAMES[label] if with_label else "")
        feats[F.ID_KEY] = _bytes_feature(f"{split}-{index:05d}")
        return tf.train.Example(features=tf.train.Features(feature=feats))


def write_fixture(data_dir: Union[str, pathlib.Path], tasks: Sequence[Task],
                  examples_per_split: int = 32, eval_examples_per_split: Optional[int] = None,
                  num_classes: int = 4, vocab_size: int = 64, media: MediaConfig = DEFAULT_MEDIA,
                  seed: int = 0) -> pathlib.Path:
    """Writes train and eval splits for every task plus the vocabulary assets; returns `data_dir`."""
    if num_classes > len(CLASS_NAMES):
        raise ValueError(f"at most {len(CLASS_NAMES)} classes")
    data_dir = pathlib.Path(data_dir)
    patterns = _Patterns(media, num_classes, vocab_size, seed)
    eval_n = eval_examples_per_split or examples_per_split
    for task_index, task in enumerate(tasks):
        for split, count in ((task.train_split, examples_per_split), (task.eval_split, eval_n)):
            out = split_dir(data_dir, split)
            out.mkdir(parents=True, exist_ok=True)
            rng = np.random.default_rng([seed, task_index, 0 if split.startswith("train") else 1])
            path = out / "data_tfrecord-00000-of-00001.gz"
            with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
                for i in range(count):
                    label = int(i % num_classes)
                    example = patterns.example(rng, label, task.inputs, i, split, with_label=True)
                    writer.write(example.SerializeToString())
    assets = assets_dir(data_dir)
    assets.mkdir(parents=True, exist_ok=True)
    vocab = list(SPECIAL_TOKENS) + [f"tok{i}" for i in range(vocab_size - len(SPECIAL_TOKENS))]
    (assets / F.TEXT_VOCAB_NAME).write_text("\n".join(vocab) + "\n")
    (assets / F.LABEL_VOCAB_NAME).write_text("\n".join(CLASS_NAMES[:num_classes]) + "\n")
    return data_dir
