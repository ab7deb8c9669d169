"""Per-task tf.data input from transformed TFRecords (the ingest / TFX Transform output).

One stream per task, read from `transformed_examples/Split-<train_split>/*.gz`:

    serialized tf.Example --parse (only the task's kinds)--> flat media
      --reshape (MediaConfig)--> image [B,S,S,3] / video [B,F,S,S,3] / spectrogram [B,T,M] / ids [B,L]
      --task resolution--> resize to `image_size`, stride video to `frames`
      --tokenize (models.tokenizers)--> {"tokens": [B,N,D], "coords": [B,N,axes]}
      --DropToken (train only)--> N -> int((1 - drop_token) * N)

Determinism (what makes kill-and-resume exact): training streams are a seeded shuffle of the repeated
files, batched, then *enumerated*; the batch index is the task's own step counter, `skip(start_step)`
resumes the stream mid-way and DropToken is seeded with `(seed, task index, batch index)`. So the batch
a task sees at its k-th step is a pure function of (files, seed, task, k).

Batch structure (a fixed signature per task, so each task compiles once):
    {"<kind>": {"tokens": float32 [B,N,D], "coords": float32 [B,N,axes]}   for image / video / audio
     "text": {"ids": int64 [B,L]},   "label": int64 [B]}   (label only for classification tasks)
"""

from __future__ import annotations

import pathlib
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from models import features as F
from models import tokenizers
from models.configs import ImpConfig
from models.features import DEFAULT_MEDIA, MediaConfig
from models.training.tasks import Task

Batch = Dict[str, Union[tf.Tensor, Dict[str, tf.Tensor]]]
SHUFFLE_BUFFER = 1024

_MEDIA_KEYS = {"image": F.IMAGE_KEY, "video": F.VIDEO_KEY, "audio": F.AUDIO_KEY}


# -- files and vocabularies ---------------------------------------------------------------------------


def split_dir(data_dir: Union[str, pathlib.Path], split: str) -> pathlib.Path:
    """`data_dir/transformed_examples/Split-<split>` (TFX's layout of an Examples artifact)."""
    return pathlib.Path(data_dir) / "transformed_examples" / f"Split-{split}"


def split_files(data_dir: Union[str, pathlib.Path], split: str) -> List[str]:
    """Sorted TFRecord files of one split of an ingest output."""
    directory = split_dir(data_dir, split)
    files = sorted(str(p) for p in directory.glob("*") if p.is_file())
    if not files:
        raise FileNotFoundError(f"no TFRecord files in {directory}")
    return files


def assets_dir(data_dir: Union[str, pathlib.Path]) -> pathlib.Path:
    return pathlib.Path(data_dir) / "transform_graph" / "transform_fn" / "assets"


def read_vocabulary(path: Union[str, pathlib.Path]) -> List[str]:
    """One entry per line (trailing empty line ignored; TFT may append ids after a space: dropped)."""
    lines = pathlib.Path(path).read_text(encoding="utf-8").splitlines()
    return [line.split(" ")[0] if line.count(" ") == 1 and line.split(" ")[1].isdigit() else line
            for line in lines if line != ""]


def label_names(transform_assets: Union[str, pathlib.Path]) -> List[str]:
    return read_vocabulary(pathlib.Path(transform_assets) / F.LABEL_VOCAB_NAME)


def config_for_data(config: ImpConfig, transform_assets: Union[str, pathlib.Path],
                    tasks: Sequence[Task]) -> ImpConfig:
    """The model config sized to the data: text vocab from `text_wordpiece_vocab`, one classifier per
    label set with as many classes as the `labels` vocabulary."""
    assets = pathlib.Path(transform_assets)
    vocab_size = len(read_vocabulary(assets / F.TEXT_VOCAB_NAME))
    config = config.with_vocab_size(vocab_size)
    sets = sorted({t.label_set for t in tasks if t.objective == "classification"})
    if sets:
        num_classes = len(label_names(assets))
        config = config.with_classifiers({name: num_classes for name in sets})
    return config


# -- parsing and tokenization -------------------------------------------------------------------------


def feature_spec(task: Task, media: MediaConfig = DEFAULT_MEDIA) -> Dict[str, tf.io.FixedLenFeature]:
    """Parse spec of the features `task` needs (other modalities stay unparsed)."""
    sizes = {"image": int(np.prod(media.image_shape)), "video": int(np.prod(media.video_shape)),
             "audio": int(np.prod(media.spectrogram_shape))}
    spec = {}
    for kind in task.inputs:
        if kind == "text":
            spec[F.TEXT_IDS_KEY] = tf.io.FixedLenFeature([media.text_max_length], tf.int64)
        else:
            spec[_MEDIA_KEYS[kind]] = tf.io.FixedLenFeature([sizes[kind]], tf.float32)
    if task.objective == "classification":
        spec[F.LABEL_ID_KEY] = tf.io.FixedLenFeature([], tf.int64)
    return spec


def dense_media(parsed: Dict[str, tf.Tensor], task: Task,
                media: MediaConfig = DEFAULT_MEDIA) -> Dict[str, tf.Tensor]:
    """Parsed flat features (batched) -> dense media at the task's resolution.

    Returns per kind: image float32 [B,S,S,3], video float32 [B,frames,S,S,3], audio float32 [B,T,M],
    text int64 [B,L]; S = task image size.
    """
    out = {}
    size = task.resolved_image_size(media)
    for kind in task.inputs:
        if kind == "text":
            out[kind] = parsed[F.TEXT_IDS_KEY]
        elif kind == "image":
            images = tf.reshape(parsed[F.IMAGE_KEY], (-1,) + media.image_shape)
            out[kind] = _resize(images, size, media.image_size)
        elif kind == "video":
            videos = tf.reshape(parsed[F.VIDEO_KEY], (-1,) + media.video_shape)
            frames = task.resolved_frames(media)
            if frames > media.video_frames:
                raise ValueError(f"task {task.name}: {frames} frames > stored {media.video_frames}")
            keep = np.linspace(0, media.video_frames, frames, endpoint=False).astype(np.int32)
            videos = tf.gather(videos, keep, axis=1)
            if size != media.image_size:
                flat = tf.reshape(videos, (-1,) + media.image_shape)
                videos = tf.reshape(_resize(flat, size, media.image_size), [-1, frames, size, size, 3])
            out[kind] = videos
        else:
            out[kind] = tf.reshape(parsed[F.AUDIO_KEY], (-1,) + media.spectrogram_shape)
    return out


def _resize(images: tf.Tensor, size: int, stored: int) -> tf.Tensor:
    if size == stored:
        return images
    resized = tf.image.resize(images, [size, size], method="bilinear", antialias=True)
    return tf.clip_by_value(resized, -1.0, 1.0)


def tokenize(media_by_kind: Dict[str, tf.Tensor], config: ImpConfig) -> Dict[str, Dict[str, tf.Tensor]]:
    """Dense media -> encoder inputs ({"tokens", "coords"} for vision/audio, {"ids"} for text)."""
    out = {}
    for kind, value in media_by_kind.items():
        if kind == "text":
            out[kind] = {"ids": value}
            continue
        if kind == "image":
            tokens, coords = tokenizers.image_to_tubelets(value, config.vision.patch)
        elif kind == "video":
            tokens, coords = tokenizers.video_to_tubelets(value, config.vision.patch)
        else:
            tokens, coords = tokenizers.spectrogram_to_patches(value, config.audio.patch)
        out[kind] = {"tokens": tokens, "coords": coords}
    return out


def apply_drop_token(inputs: Dict[str, Dict[str, tf.Tensor]], rate: float,
                     seed: tf.Tensor) -> Dict[str, Dict[str, tf.Tensor]]:
    """DropToken on every vision/audio input of a batch; `seed` int64 [2] (one sub-seed per kind)."""
    if rate <= 0.0:
        return inputs
    out = dict(inputs)
    for offset, kind in enumerate(sorted(inputs)):
        if kind == "text":
            continue
        kind_seed = tf.stack([seed[0], seed[1] * 8 + offset])
        tokens, coords = tokenizers.drop_tokens(inputs[kind]["tokens"], inputs[kind]["coords"], rate,
                                                kind_seed)
        out[kind] = {"tokens": tokens, "coords": coords}
    return out


def make_batch_fn(task: Task, config: ImpConfig, media: MediaConfig = DEFAULT_MEDIA,
                  training: bool = True, seed: int = 0, task_index: int = 0):
    """(batch index int64 [], serialized string [B]) -> Batch."""
    spec = feature_spec(task, media)

    def batch_fn(index, serialized):
        parsed = tf.io.parse_example(serialized, spec)
        inputs = tokenize(dense_media(parsed, task, media), config)
        if training:
            drop_seed = tf.stack([tf.constant(seed * 1000 + task_index, tf.int64), index])
            inputs = apply_drop_token(inputs, task.drop_token, drop_seed)
        batch: Batch = dict(inputs)
        if task.objective == "classification":
            batch["label"] = parsed[F.LABEL_ID_KEY]
        return batch

    return batch_fn


def train_dataset(task: Task, files: Sequence[str], config: ImpConfig,
                  media: MediaConfig = DEFAULT_MEDIA, seed: int = 0, task_index: int = 0,
                  start_step: int = 0) -> tf.data.Dataset:
    """Endless, deterministic batches of `task`; `start_step` = batches the task already consumed."""
    ds = tf.data.TFRecordDataset(list(files), compression_type="GZIP")
    ds = ds.repeat().shuffle(SHUFFLE_BUFFER, seed=seed * 1000 + task_index, reshuffle_each_iteration=True)
    ds = ds.batch(task.batch_size, drop_remainder=True).enumerate().skip(start_step)
    batch_fn = make_batch_fn(task, config, media, training=True, seed=seed, task_index=task_index)
    ds = ds.map(batch_fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.with_options(_deterministic_options()).prefetch(2)


def eval_dataset(task: Task, files: Sequence[str], config: ImpConfig,
                 media: MediaConfig = DEFAULT_MEDIA, batch_size: Optional[int] = None,
                 max_examples: Optional[int] = None) -> tf.data.Dataset:
    """One ordered pass over the eval split (no shuffle, no DropToken; last batch may be smaller)."""
    ds = tf.data.TFRecordDataset(list(files), compression_type="GZIP")
    if max_examples:
        ds = ds.take(max_examples)
    ds = ds.batch(batch_size or task.batch_size).enumerate()
    batch_fn = make_batch_fn(task, config, media, training=False)
    ds = ds.map(batch_fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.with_options(_deterministic_options()).prefetch(2)


def _deterministic_options() -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = True
    return options
