"""Transform `preprocessing_fn` and the pure-TF media/text functions serving reuses.

Raw features (`models.features.RAW_*`, written by MultimodalExampleGen) become model features:

| output       | dtype / shape (per example)                         | from                      |
|--------------|-----------------------------------------------------|---------------------------|
| `text_ids`   | int64 [text_max_length], 0 = [PAD], zeros if no text | WordPiece (learned vocab) |
| `image`      | float32 [S*S*3] in [-1, 1], or [] if absent          | JPEG/PNG bytes            |
| `video`      | float32 [F*S*S*3] in [-1, 1], or []                  | F JPEG frames             |
| `audio`      | float32 [T*M] log-mel, or []                         | 16 kHz mono PCM16 WAV     |
| `label_id`   | int64 [], -1 if unlabelled or unseen                 | `labels` vocabulary       |
| `label`, `id`| bytes [] passthrough                                 |                           |

The analyzers learn two assets: `text_wordpiece_vocab` (WordPiece over the training captions, learned by a
Beam PTransform with tensorflow-text's learner; `[PAD]`=0, `[UNK]`=1, `[CLS]`=2, `[SEP]`=3, `[MASK]`=4)
and `labels`. Everything that runs per example (`decode_image`, `decode_video_frames`,
`decode_wav_to_log_mel`, `tokenize_text`) uses core TensorFlow and tensorflow-text ops only, so the TF
Serving signatures call exactly these functions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import uuid
from typing import Any, Dict, Mapping, Optional, Union

import apache_beam as beam
import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text
# BertTokenizer's own first stage (not re-exported at the top level); sharing it keeps the learned
# vocabulary's words identical to what the tokenizer splits.
from tensorflow_text.python.ops.bert_tokenizer import BasicTokenizer
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam

from models import configs
from models import features as F

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
RESERVED_TOKENS = (PAD, UNK, CLS, SEP, MASK)
DEFAULT_TEXT_VOCAB_SIZE = 2048

MEDIA_KEY = "media"               # custom_config key: dataclasses.asdict(MediaConfig)
TEXT_VOCAB_SIZE_KEY = "text_vocab_size"  # custom_config key: target WordPiece vocabulary size

_LOG_OFFSET = 1e-6


def media_config_from_custom_config(custom_config: Optional[Mapping[str, Any]]) -> F.MediaConfig:
    """`custom_config["media"]` (a MediaConfig as a dict) or the defaults."""
    media = (custom_config or {}).get(MEDIA_KEY)
    if media is None:
        return F.DEFAULT_MEDIA
    if isinstance(media, F.MediaConfig):
        return media
    return configs._from_dict(F.MediaConfig, dict(media))  # pylint: disable=protected-access


def make_custom_config(media: F.MediaConfig = F.DEFAULT_MEDIA,
                       text_vocab_size: int = DEFAULT_TEXT_VOCAB_SIZE) -> Dict[str, Any]:
    """The Transform `custom_config` this module reads (JSON-serializable)."""
    return {MEDIA_KEY: dataclasses.asdict(media), TEXT_VOCAB_SIZE_KEY: int(text_vocab_size)}


# ---------------------------------------------------------------------------------------------------
# Per-example TF functions (also used by the serving signatures).


def decode_image(image_bytes: tf.Tensor, image_size: int) -> tf.Tensor:
    """Encoded image (JPEG/PNG/GIF/BMP) string [] -> float32 [S, S, 3] in [-1, 1].

    The central square crop is resized (bilinear, antialiased) so that aspect ratios are not distorted.
    """
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    shape = tf.shape(image)
    side = tf.minimum(shape[0], shape[1])
    image = tf.image.crop_to_bounding_box(image, (shape[0] - side) // 2, (shape[1] - side) // 2,
                                          side, side)
    image = tf.image.resize(tf.cast(image, tf.float32), [image_size, image_size], antialias=True)
    image = tf.clip_by_value(image, 0.0, 255.0) / 127.5 - 1.0
    return tf.ensure_shape(image, [image_size, image_size, 3])


def decode_video_frames(frames: tf.Tensor, image_size: int) -> tf.Tensor:
    """Encoded frames string [F] -> float32 [F, S, S, 3] in [-1, 1]."""
    return tf.map_fn(lambda b: decode_image(b, image_size), frames,
                     fn_output_signature=tf.TensorSpec([image_size, image_size, 3], tf.float32))


def waveform_to_log_mel(waveform: tf.Tensor, media: F.MediaConfig = F.DEFAULT_MEDIA) -> tf.Tensor:
    """float32 [..., samples] at `media.audio.sample_rate` -> log-mel float32 [..., T, M].

    The waveform is cropped or zero-padded to `media.audio_samples` and the spectrogram to
    `media.spectrogram_frames` frames, so T = spectrogram_frames and M = num_mel_bins.
    """
    audio = media.audio
    n = media.audio_samples
    waveform = waveform[..., :n]
    pad = n - tf.shape(waveform)[-1]
    paddings = tf.concat([tf.zeros([tf.rank(waveform) - 1, 2], tf.int32), [[0, pad]]], axis=0)
    waveform = tf.pad(waveform, paddings)
    stft = tf.signal.stft(waveform, frame_length=audio.frame_length, frame_step=audio.frame_step,
                          fft_length=audio.fft_length, pad_end=True)
    mel_matrix = tf.signal.linear_to_mel_weight_matrix(
        num_mel_bins=audio.num_mel_bins, num_spectrogram_bins=audio.fft_length // 2 + 1,
        sample_rate=audio.sample_rate, lower_edge_hertz=audio.lower_edge_hz,
        upper_edge_hertz=audio.upper_edge_hz)
    mel = tf.tensordot(tf.abs(stft), mel_matrix, axes=1)
    log_mel = tf.math.log(mel + _LOG_OFFSET)
    frames = media.spectrogram_frames
    log_mel = log_mel[..., :frames, :]
    missing = frames - tf.shape(log_mel)[-2]
    paddings = tf.concat([tf.zeros([tf.rank(log_mel) - 2, 2], tf.int32), [[0, missing], [0, 0]]], 0)
    # Pad with the log of silence, not 0 (which would be a loud frame in log space).
    log_mel = tf.pad(log_mel, paddings, constant_values=float(np.log(_LOG_OFFSET)))
    return tf.ensure_shape(log_mel, [None] * (log_mel.shape.rank - 2) + [frames, audio.num_mel_bins])


def decode_wav_to_log_mel(wav_bytes: tf.Tensor, media: F.MediaConfig = F.DEFAULT_MEDIA) -> tf.Tensor:
    """WAV string [] (PCM16 mono at the canonical rate) -> log-mel float32 [T, M]."""
    waveform, _ = tf.audio.decode_wav(wav_bytes, desired_channels=1)
    return waveform_to_log_mel(waveform[:, 0], media)


def make_wordpiece_tokenizer(vocab: Union[str, tf.Tensor, tf.lookup.StaticVocabularyTable]
                             ) -> tf_text.BertTokenizer:
    """Lower-casing BERT tokenizer (basic split + WordPiece) over a vocab file path or lookup table."""
    return tf_text.BertTokenizer(vocab, lower_case=True, token_out_type=tf.int64,
                                 unknown_token=UNK)


def tokenize_text(text: tf.Tensor, vocab, max_length: int) -> tf.Tensor:
    """Captions string [B] -> WordPiece ids int64 [B, max_length], truncated, padded with 0 ([PAD]).

    Args:
      text: UTF-8 strings [B]; empty strings give all-zero rows.
      vocab: vocabulary file path (str or string tensor), a lookup table, or a `BertTokenizer`.
      max_length: ids kept per caption.
    """
    tokenizer = vocab if isinstance(vocab, tf_text.BertTokenizer) else make_wordpiece_tokenizer(vocab)
    ids = tokenizer.tokenize(text).merge_dims(-2, -1)  # [B, words, pieces] -> [B, pieces]
    return ids[:, :max_length].to_tensor(default_value=0, shape=[None, max_length])


def basic_words(text: tf.Tensor) -> tf.Tensor:
    """Captions string [B] -> lower-cased, accent-stripped words string [W] (what the vocab learns)."""
    return BasicTokenizer(lower_case=True).tokenize(text).flat_values


# ---------------------------------------------------------------------------------------------------
# WordPiece vocabulary learning (a Beam analyzer).


def learn_wordpiece_vocab(word_counts, vocab_size: int) -> list:
    """[(word, count)] -> WordPiece vocabulary with `RESERVED_TOKENS` first ([PAD] = 0)."""
    from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as learner
    if not word_counts:
        return list(RESERVED_TOKENS)
    # lower_thresh=1 keeps whole words of small datasets; the binary search raises it to fit vocab_size.
    vocab = learner.learn(sorted(word_counts), vocab_size=vocab_size,
                          reserved_tokens=list(RESERVED_TOKENS), lower_thresh=1)
    assert list(vocab[: len(RESERVED_TOKENS)]) == list(RESERVED_TOKENS), vocab[:8]
    return list(vocab)


class _LearnWordPieceVocab(tft_beam.experimental.PTransformAnalyzer):
    """Batches of words -> path of a `text_wordpiece_vocab` file under TFT's temp dir."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self._vocab_size = vocab_size

    def _write(self, word_counts):
        vocab = learn_wordpiece_vocab(word_counts, self._vocab_size)
        folder = os.path.join(self.base_temp_dir, f"wordpiece-{uuid.uuid4().hex}")
        tf.io.gfile.makedirs(folder)
        path = os.path.join(folder, F.TEXT_VOCAB_NAME)  # the basename becomes the asset name
        with tf.io.gfile.GFile(path, "w") as f:
            f.write("\n".join(vocab) + "\n")
        return np.array(path.encode())

    def expand(self, batches):
        return (batches
                | "Words" >> beam.FlatMap(lambda batch: (w.decode("utf-8") for w in batch[0]))
                | "Count" >> beam.combiners.Count.PerElement()
                | "Gather" >> beam.combiners.ToList()
                | "Learn" >> beam.Map(self._write))


def wordpiece_vocabulary(text: tf.Tensor, vocab_size: int) -> tf.Tensor:
    """Analyzer: captions string [B] -> deferred path of the learned `text_wordpiece_vocab` asset."""
    (path,) = tft.experimental.ptransform_analyzer(
        inputs=[basic_words(text)],
        ptransform=_LearnWordPieceVocab(vocab_size),
        output_dtypes=[tf.string], output_shapes=[[]],
        output_asset_default_values=["\n".join(RESERVED_TOKENS).encode()],
        name="wordpiece_vocabulary")
    return path


# ---------------------------------------------------------------------------------------------------
# Raw feature adapters (SchemaGen makes optional features var-length: Sparse or Ragged tensors).


def _string_matrix(x, width: Optional[int] = None) -> tf.Tensor:
    """Dense/Sparse/Ragged string feature -> dense [B, width] with "" where values are missing."""
    if isinstance(x, tf.SparseTensor):
        x = tf.sparse.to_dense(x, default_value="")
    elif isinstance(x, tf.RaggedTensor):
        x = x.to_tensor(default_value="")
    if x.shape.rank == 1:
        x = x[:, tf.newaxis]
    if width is None:
        width = 1
    x = x[:, :width]
    x = tf.pad(x, [[0, 0], [0, width - tf.shape(x)[1]]], constant_values="")
    return tf.ensure_shape(x, [None, width])


def _string_vector(x) -> tf.Tensor:
    """A scalar string feature -> [B], "" where absent."""
    return _string_matrix(x, 1)[:, 0]


def _flat_or_empty(values: tf.Tensor, present: tf.Tensor) -> tf.SparseTensor:
    """float32 [B, ...] + bool [B] -> SparseTensor [B, prod(...)] holding rows only where present.

    Serialized, an absent modality is an empty float list, as the feature contract says.
    """
    flat = tf.reshape(values, [tf.shape(values)[0], -1])
    width = tf.shape(flat, out_type=tf.int64)[1]
    lengths = tf.where(present, width, tf.zeros_like(width))
    kept = tf.reshape(tf.boolean_mask(flat, present), [-1])
    return tf.RaggedTensor.from_row_lengths(kept, lengths).to_sparse()


def _empty_floats(batch_size: tf.Tensor) -> tf.SparseTensor:
    """A modality the dataset never has: an empty float list per example."""
    return tf.SparseTensor(tf.zeros([0, 2], tf.int64), tf.zeros([0], tf.float32),
                           tf.stack([tf.cast(batch_size, tf.int64), tf.constant(0, tf.int64)]))


def _tokenize_lookup(text: tf.Tensor, vocab_path: tf.Tensor, max_length: int):
    """`tft.apply_vocabulary` lookup_fn: (ids int64 [B, L], vocabulary size)."""
    with contextlib.ExitStack() as stack:
        if tf.inside_function() and not tf.is_symbolic_tensor(vocab_path):
            # Once TFT has the asset path (final trace), build the table once, outside the graph, as
            # tft.apply_vocabulary does for its own tables.
            stack.enter_context(tf.init_scope())
        table = tf.lookup.StaticVocabularyTable(
            tf.lookup.TextFileInitializer(vocab_path, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
                                          tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER),
            num_oov_buckets=1)  # WordPiece maps unknown words to [UNK] itself; the bucket stays unused
    return tokenize_text(text, table, max_length), table.size() - 1


def _map_present(fn, strings: tf.Tensor, present: tf.Tensor, shape) -> tf.Tensor:
    """Applies `fn` to each present element (zeros of `shape` for absent ones)."""
    zeros = tf.zeros(shape, tf.float32)
    return tf.map_fn(lambda a: tf.cond(a[1], lambda: fn(a[0]), lambda: zeros), (strings, present),
                     fn_output_signature=tf.TensorSpec(shape, tf.float32))


def preprocessing_fn(inputs: Dict[str, Any], custom_config: Optional[Dict[str, Any]] = None
                     ) -> Dict[str, Any]:
    """TFX Transform entry point (`models.preprocessing.preprocessing_fn`); see the module docstring."""
    media = media_config_from_custom_config(custom_config)
    vocab_size = int((custom_config or {}).get(TEXT_VOCAB_SIZE_KEY, DEFAULT_TEXT_VOCAB_SIZE))
    outputs = {}

    example_id = _string_vector(inputs[F.RAW_ID])
    outputs[F.ID_KEY] = example_id

    text = _string_vector(inputs[F.RAW_TEXT]) if F.RAW_TEXT in inputs else tf.fill(
        tf.shape(example_id), "")
    vocab_path = wordpiece_vocabulary(text, vocab_size)
    outputs[F.TEXT_IDS_KEY] = tft.apply_vocabulary(
        text, vocab_path,
        lookup_fn=lambda x, path: _tokenize_lookup(x, path, media.text_max_length),
        name="tokenize_text")

    label = _string_vector(inputs[F.RAW_LABEL]) if F.RAW_LABEL in inputs else tf.fill(
        tf.shape(example_id), "")
    labels_vocab = tft.vocabulary(tf.boolean_mask(label, tf.strings.length(label) > 0),
                                  vocab_filename=F.LABEL_VOCAB_NAME, name="labels")
    outputs[F.LABEL_ID_KEY] = tft.apply_vocabulary(label, labels_vocab, default_value=-1)
    outputs[F.LABEL_KEY] = label

    batch_size = tf.shape(example_id)[0]
    for key in (F.IMAGE_KEY, F.VIDEO_KEY, F.AUDIO_KEY):  # replaced below when the schema has them
        outputs[key] = _empty_floats(batch_size)
    if F.RAW_IMAGE in inputs:
        images = _string_vector(inputs[F.RAW_IMAGE])
        present = tf.strings.length(images) > 0
        decoded = _map_present(lambda b: decode_image(b, media.image_size), images, present,
                               media.image_shape)
        outputs[F.IMAGE_KEY] = _flat_or_empty(decoded, present)
    if F.RAW_VIDEO_FRAMES in inputs:
        frames = _string_matrix(inputs[F.RAW_VIDEO_FRAMES], media.video_frames)
        present = tf.strings.length(frames[:, 0]) > 0
        # A short clip repeats its last frame (ExampleGen always stores video_frames; requests may not).
        stored = tf.strings.length(frames) > 0
        last = tf.maximum(tf.reduce_sum(tf.cast(stored, tf.int32), axis=1) - 1, 0)
        frames = tf.where(stored, frames, tf.gather(frames, last, batch_dims=1)[:, tf.newaxis])
        decoded = tf.map_fn(
            lambda a: tf.cond(a[1], lambda: decode_video_frames(a[0], media.image_size),
                              lambda: tf.zeros(media.video_shape)),
            (frames, present), fn_output_signature=tf.TensorSpec(media.video_shape, tf.float32))
        outputs[F.VIDEO_KEY] = _flat_or_empty(decoded, present)
    if F.RAW_AUDIO in inputs:
        wavs = _string_vector(inputs[F.RAW_AUDIO])
        present = tf.strings.length(wavs) > 0
        decoded = _map_present(lambda b: decode_wav_to_log_mel(b, media), wavs, present,
                               media.spectrogram_shape)
        outputs[F.AUDIO_KEY] = _flat_or_empty(decoded, present)
    return outputs
