"""Unit tests of the pure-TF media/text functions and of preprocessing_fn under tft_beam."""

import io
import os
import wave

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from models import features as F
from models import preprocessing as P

MEDIA = F.MediaConfig(image_size=16, video_frames=2, text_max_length=6, spectrogram_frames=32,
                      audio_seconds=0.5)


def _png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(out, format="PNG")
    return out.getvalue()


def _wav(samples: np.ndarray, rate: int = 16000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((samples * 32767).astype("<i2").tobytes())
    return out.getvalue()


@pytest.fixture()
def vocab_file(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(list(P.RESERVED_TOKENS) + ["a", "red", "square", "sq", "##uare", "##s"])
                    + "\n")
    return str(path)


def test_decode_image_center_crop_and_range():
    # 40 wide x 20 high: black 10-px borders left and right, white centre square.
    pixels = np.zeros([20, 40, 3])
    pixels[:, 10:30] = 255
    image = P.decode_image(tf.constant(_png(pixels)), 16).numpy()
    assert image.shape == (16, 16, 3) and image.dtype == np.float32
    np.testing.assert_allclose(image, 1.0, atol=1e-5)  # the crop kept only the white square
    black = P.decode_image(tf.constant(_png(np.zeros([8, 8, 3]))), 16).numpy()
    np.testing.assert_allclose(black, -1.0, atol=1e-5)


def test_decode_video_frames_keeps_frame_order():
    frames = tf.constant([_png(np.full([8, 8, 3], v)) for v in (0, 255)])
    video = P.decode_video_frames(frames, 16).numpy()
    assert video.shape == (2, 16, 16, 3)
    np.testing.assert_allclose(video[0], -1.0, atol=1e-5)
    np.testing.assert_allclose(video[1], 1.0, atol=1e-5)


def test_log_mel_shape_peak_and_padding():
    rate = MEDIA.audio.sample_rate
    t = np.arange(int(0.25 * rate)) / rate  # half of audio_seconds: the rest is padding
    tone = 0.5 * np.sin(2 * np.pi * 1000.0 * t)
    log_mel = P.decode_wav_to_log_mel(tf.constant(_wav(tone)), MEDIA).numpy()
    assert log_mel.shape == (MEDIA.spectrogram_frames, MEDIA.audio.num_mel_bins)
    audio = MEDIA.audio
    weights = tf.signal.linear_to_mel_weight_matrix(
        audio.num_mel_bins, audio.fft_length // 2 + 1, rate, audio.lower_edge_hz,
        audio.upper_edge_hz).numpy()
    tone_bin = round(1000.0 * audio.fft_length / rate)
    assert int(np.argmax(log_mel[5])) == int(np.argmax(weights[tone_bin]))
    # Frames past the tone (zero padding) sit at the log floor.
    np.testing.assert_allclose(log_mel[-1], np.log(1e-6), atol=1e-3)


def test_waveform_to_log_mel_batches():
    waves = tf.random.stateless_normal([3, 4000], seed=[1, 2])
    out = P.waveform_to_log_mel(waves, MEDIA)
    assert out.shape == (3, MEDIA.spectrogram_frames, MEDIA.audio.num_mel_bins)
    single = P.waveform_to_log_mel(waves[1], MEDIA)
    np.testing.assert_allclose(out[1], single, rtol=1e-5, atol=1e-5)


def test_tokenize_text_known_ids(vocab_file):
    ids = P.tokenize_text(tf.constant(["A red SQUARE", "", "red squares red red red red red", "xyz"]),
                          vocab_file, 6).numpy()
    unk = P.RESERVED_TOKENS.index(P.UNK)
    assert ids.dtype == np.int64 and ids.shape == (4, 6)
    np.testing.assert_array_equal(ids[0], [5, 6, 7, 0, 0, 0])     # lower-cased, padded with [PAD]=0
    np.testing.assert_array_equal(ids[1], [0] * 6)                # no text: all padding
    np.testing.assert_array_equal(ids[2], [6, 7, 10, 6, 6, 6])    # longest match: square ##s; truncated
    np.testing.assert_array_equal(ids[3], [unk, 0, 0, 0, 0, 0])


def test_learn_wordpiece_vocab_reserved_first():
    vocab = P.learn_wordpiece_vocab([("red", 5), ("square", 3), ("squares", 1)], vocab_size=64)
    assert vocab[:5] == list(P.RESERVED_TOKENS) and vocab[0] == "[PAD]"
    assert {"red", "square"} <= set(vocab)
    assert P.learn_wordpiece_vocab([], 64) == list(P.RESERVED_TOKENS)


def test_media_config_from_custom_config_round_trips():
    custom = P.make_custom_config(MEDIA, text_vocab_size=99)
    assert P.media_config_from_custom_config(custom) == MEDIA
    assert P.media_config_from_custom_config(None) == F.DEFAULT_MEDIA


@pytest.mark.timeout(300)
def test_preprocessing_fn_under_tft_beam(tmp_path):
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata
    from tensorflow_transform.tf_metadata import schema_utils

    image = _png(np.full([8, 8, 3], 255))
    wav = _wav(np.zeros(800))
    raw = [
        {"id": b"a", "text": [b"a red square"], "label": [b"red"], "image": [image], "audio": [],
         "video_frames": []},
        {"id": b"b", "text": [b"red red"], "label": [], "image": [], "audio": [wav],
         "video_frames": [image]},  # shorter than MEDIA.video_frames: the last frame repeats
        {"id": b"c", "text": [], "label": [b"red"], "image": [], "audio": [], "video_frames": []},
    ]
    spec = {"id": tf.io.FixedLenFeature([], tf.string)}
    spec.update({k: tf.io.VarLenFeature(tf.string)
                 for k in ("text", "label", "image", "audio", "video_frames")})
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
    custom = P.make_custom_config(MEDIA, text_vocab_size=64)
    with tft_beam.Context(temp_dir=str(tmp_path / "tmp"), force_tf_compat_v1=False):
        (rows, _), transform_fn = ((raw, metadata) | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: P.preprocessing_fn(inputs, custom)))
        _ = transform_fn | tft_beam.WriteTransformFn(str(tmp_path / "out"))
    rows = {r[F.ID_KEY]: r for r in rows}

    assets = tmp_path / "out" / "transform_fn" / "assets"
    vocab = (assets / F.TEXT_VOCAB_NAME).read_text().split("\n")
    assert vocab[:4] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    labels = (assets / F.LABEL_VOCAB_NAME).read_text().split()
    assert labels == ["red"]

    ids = {w: i for i, w in enumerate(vocab)}
    np.testing.assert_array_equal(rows[b"a"][F.TEXT_IDS_KEY],
                                  [ids["a"], ids["red"], ids["square"], 0, 0, 0])
    np.testing.assert_array_equal(rows[b"c"][F.TEXT_IDS_KEY], [0] * 6)
    assert [rows[k][F.LABEL_ID_KEY] for k in (b"a", b"b", b"c")] == [0, -1, 0]

    image_size = MEDIA.image_size * MEDIA.image_size * 3
    assert rows[b"a"][F.IMAGE_KEY].shape == (image_size,)
    np.testing.assert_allclose(rows[b"a"][F.IMAGE_KEY], 1.0, atol=1e-5)
    assert rows[b"b"][F.IMAGE_KEY].shape == (0,)
    assert rows[b"b"][F.VIDEO_KEY].shape == (MEDIA.video_frames * image_size,)
    np.testing.assert_allclose(rows[b"b"][F.VIDEO_KEY], 1.0, atol=1e-5)
    assert rows[b"b"][F.AUDIO_KEY].shape == (MEDIA.spectrogram_frames * MEDIA.audio.num_mel_bins,)
    assert rows[b"a"][F.AUDIO_KEY].shape == (0,) and rows[b"c"][F.VIDEO_KEY].shape == (0,)
    assert os.path.isdir(tmp_path / "out" / "transformed_metadata")
