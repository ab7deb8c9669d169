"""Unit tests of the demo world's pieces: captions, task shares and splits, rendering, encoders."""

import io
import shutil
import wave

import av
import numpy as np
import pytest
from PIL import Image

from components.demo_data import captions, encoding, images, manifest, speech, videos


def ink_centroid(frame: np.ndarray) -> np.ndarray:
    """(row, col) centre of mass of whatever differs from the paper colour (the frame's median)."""
    ink = np.abs(frame.astype(np.float32) - np.median(frame.reshape(-1, 3), axis=0)).sum(-1)
    ink = np.where(ink > 0.5 * ink.max(), ink, 0.0)
    rows, cols = np.mgrid[0:frame.shape[0], 0:frame.shape[1]]
    return np.array([(rows * ink).sum(), (cols * ink).sum()]) / ink.sum()


EXPECTED_STEP = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}


def test_captions_use_the_right_article_and_words():
    assert captions.image_caption(7) == "a handwritten seven"
    assert captions.image_caption(8) == "a handwritten eight"
    assert captions.image_caption(8, template=2) == "an eight written by hand"
    assert captions.image_caption(1, template=2) == "a one written by hand"
    assert captions.motion_caption(8, "left") == "an eight moving left"
    assert captions.motion_caption(1, "up", template=1) == "the digit one moving up"
    assert captions.class_prompt("eight") == "a handwritten eight"
    with pytest.raises(ValueError):
        captions.motion_caption(3, "sideways")


def test_allocation_adds_up_and_follows_shares():
    for total in (1, 7, 40, 600, 1001):
        counts = manifest.allocate(total, manifest.TASKS)
        assert sum(counts.values()) == total
        for name, count in counts.items():
            assert abs(count - total * manifest.SPECS[name].share) < 1.0
    assert manifest.allocate(10, ["audio_cls", "image_text"]) == {"image_text": 6, "audio_cls": 4}
    with pytest.raises(ValueError):
        manifest.allocate(10, ["image_text", "smell_text"])


@pytest.mark.parametrize("count", [2, 6, 7, 40, 120, 599])
def test_held_back_share_is_about_one_sixth_and_spread(count):
    held = manifest.held_back_indices(count)
    assert len(held) == max(1, round(count / 6))
    assert count - 1 in held and all(0 <= i < count for i in held)
    if len(held) > 1:  # evenly spread, not bunched at the end
        assert min(held) < count // 2
    assert manifest.held_back_indices(1) == frozenset()


def test_manifest_line_orders_keys_and_rejects_unknown_fields():
    line = manifest.manifest_line("x-1", "eval", label="two", image="images/x.png")
    assert line == '{"id": "x-1", "split": "eval", "image": "images/x.png", "label": "two"}'
    with pytest.raises(ValueError):
        manifest.manifest_line("x-1", "train", smell="roses")


def test_source_pools_split_writers_and_match_digits():
    _, targets = images._digits()
    for digit in range(10):
        train, held = images.source_pool(digit, False), images.source_pool(digit, True)
        assert len(train) > 100 and len(held) > 20
        assert train.max() < images.EVAL_POOL_START <= held.min()
        assert (targets[train] == digit).all() and (targets[held] == digit).all()


def test_rendered_digit_is_a_centred_glyph_on_paper():
    rng = np.random.default_rng(0)
    rgb = images.render_digit_image(images.source_image(0), rng)
    assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
    centre = ink_centroid(rgb)
    assert np.all(np.abs(centre - 32) < 12)
    ink = np.abs(rgb.astype(float) - np.median(rgb.reshape(-1, 3), 0)).sum(-1) > 60
    assert 0.04 < ink.mean() < 0.5  # strokes, neither empty nor a blob


@pytest.mark.parametrize("extension", sorted(images.IMAGE_FORMATS))
def test_encoded_images_decode_to_the_picture(extension):
    rgb = images.render_digit_image(images.source_image(3), np.random.default_rng(1))
    decoded = np.asarray(Image.open(io.BytesIO(images.encode_image(rgb, extension))).convert("RGB"))
    assert decoded.shape == rgb.shape
    tolerance = {"png": 0, "bmp": 0, "jpg": 12, "gif": 24}[extension]
    assert np.abs(decoded.astype(int) - rgb).mean() <= tolerance


@pytest.mark.parametrize("direction", captions.DIRECTIONS)
def test_moving_digit_travels_in_its_direction(direction):
    clip = videos.render_moving_digit(images.source_image(7), direction, 10, np.random.default_rng(4))
    assert clip.shape == (10, 64, 64, 3)
    motion = ink_centroid(clip[-1]) - ink_centroid(clip[0])
    along = np.dot(motion, EXPECTED_STEP[direction])
    across = abs(np.dot(motion, EXPECTED_STEP[direction][::-1]))
    assert along > 20 and across < 5, motion


def test_clip_length_covers_requested_seconds():
    rng = np.random.default_rng(0)
    lengths = [videos.clip_frames(rng) for _ in range(200)]
    assert min(lengths) == videos.MIN_FRAMES and max(lengths) == videos.MAX_FRAMES
    assert all(videos.clip_frames(rng, seconds=1.9) >= 16 for _ in range(20))


def test_wav_round_trips():
    samples = np.sin(np.linspace(0, 200, 2205)).astype(np.float32) * 0.5
    with wave.open(io.BytesIO(encoding.encode_wav(samples, 22050))) as stored:
        assert (stored.getnchannels(), stored.getsampwidth(), stored.getframerate()) == (1, 2, 22050)
        decoded = np.frombuffer(stored.readframes(stored.getnframes()), "<i2") / 32767.0
    np.testing.assert_allclose(decoded, samples, atol=1e-4)


@pytest.mark.parametrize("extension", sorted(encoding.AUDIO_FILE_CODECS))
def test_compressed_audio_decodes_with_the_tone(extension):
    rate = 22050
    t = np.arange(rate) / rate
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    data = encoding.encode_audio_file(tone, rate, extension)
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        decoded = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(stream)])
        out_rate = stream.rate
    assert out_rate == (encoding.AUDIO_FILE_CODECS[extension].rate or rate)
    assert abs(len(decoded) / out_rate - 1.0) < 0.1
    spectrum = np.abs(np.fft.rfft(decoded[:out_rate // 2]))
    assert abs(np.argmax(spectrum) * 2 - 440) <= 4  # 2 Hz bins over a half-second window


def test_encode_video_checks_the_audio_track_promise():
    clip = np.zeros((8, 64, 64, 3), np.uint8)
    with pytest.raises(ValueError):
        encoding.encode_video(clip, 8, "mp4-h264-aac")
    with pytest.raises(ValueError):
        encoding.encode_video(clip, 8, "mp4-h264", audio=np.zeros(100, np.float32), audio_rate=16000)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_every_voice_speaks_deterministically():
    for name in speech.TRAIN_VOICES + speech.EVAL_VOICES:
        voice = speech.Voice(name, speed=160, pitch=50)
        first = speech.synthesize("a seven moving left", voice)
        assert 1.0 < len(first) / speech.SPEECH_RATE < 3.0 and np.abs(first).max() > 0.1, name
        np.testing.assert_array_equal(first, speech.synthesize("a seven moving left", voice))
    slow = speech.synthesize("seven", speech.Voice("en-us", speed=130, pitch=50))
    fast = speech.synthesize("seven", speech.Voice("en-us", speed=185, pitch=50))
    assert len(slow) > len(fast)
    with pytest.raises(RuntimeError, match="voice"):
        speech.synthesize("seven", speech.Voice("nonexistent", speed=160, pitch=50))


def test_recording_pads_and_levels_speech():
    rng = np.random.default_rng(0)
    phrase = np.concatenate([np.zeros(100), np.ones(1000) * 0.2]).astype(np.float32)
    recorded = speech.record(phrase, rng, lead=0.5)
    lead = int(0.5 * speech.SPEECH_RATE)
    assert len(recorded) > len(phrase) + lead
    assert np.abs(recorded[:lead]).max() < 0.05  # the noise floor only
    assert 0.35 < np.abs(recorded).max() <= 1.0
