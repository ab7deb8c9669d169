"""Small seeded media fixtures and datasets for tests and benchmarks (PIL, components.wav, PyAV).

`write_dataset` makes a bring-your-own-data folder with good lines only; `write_salted_dataset` adds one
or more lines for every reject reason and returns the exact counts a correct ingestion must report.
"""

from __future__ import annotations

import io
import json
import os
from typing import Dict, List, Tuple

import av
import numpy as np
from PIL import Image

from components.example_gen import manifest as manifest_lib
from components.example_gen import rejects
from components.wav import encode_pcm16_wav

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def image_bytes(rng: np.random.Generator, size=(48, 40), fmt: str = "PNG") -> bytes:
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format=fmt)
    return out.getvalue()


def wav_bytes(rng: np.random.Generator, seconds: float = 0.5, rate: int = 8000, channels: int = 1,
              freq: float = 440.0) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(t.size)
    samples = np.repeat((tone * 32767).astype(np.int16)[:, None], channels, axis=1)
    return encode_pcm16_wav(samples, rate)


def video_bytes(rng: np.random.Generator, frames: int = 6, fps: int = 6, size=(32, 32),
                with_audio: bool = True, container: str = "mp4") -> bytes:
    """A tiny MPEG-4 + AAC (mp4) or VP9 + Opus (webm) video, optionally with a tone track."""
    out = io.BytesIO()
    codec, audio_codec, rate = (("mpeg4", "aac", 16000) if container == "mp4"
                                else ("libvpx-vp9", "libopus", 48000))
    with av.open(out, mode="w", format=container) as c:
        vs = c.add_stream(codec, rate=fps)
        vs.width, vs.height, vs.pix_fmt = size[0], size[1], "yuv420p"
        a_stream = c.add_stream(audio_codec, rate=rate) if with_audio else None
        if a_stream is not None:
            a_stream.layout = "mono"
        for i in range(frames):
            img = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
            for packet in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(packet)
        for packet in vs.encode(None):
            c.mux(packet)
        if a_stream is not None:
            seconds = frames / fps
            t = np.arange(int(seconds * rate)) / rate
            tone = (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)[None, :]
            frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
            frame.sample_rate = rate
            for packet in a_stream.encode(frame):
                c.mux(packet)
            for packet in a_stream.encode(None):
                c.mux(packet)
    return out.getvalue()


def _write(root: str, rel: str, data: bytes) -> str:
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return rel


def _write_manifest(root: str, task: str, lines: List[str]) -> None:
    with open(os.path.join(root, f"{task}.jsonl"), "w") as f:
        f.write("\n".join(lines) + "\n")


def write_dataset(root: str, per_task: int = 6, seed: int = 0) -> Dict[str, int]:
    """Good data only: `image_text`, `audio_text` (with labels) and `video_audio` manifests.

    Returns {task: lines}.
    """
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    tasks = {"image_text": [], "audio_text": [], "video_audio": []}
    for i in range(per_task):
        word = WORDS[i % len(WORDS)]
        split = "eval" if i % 3 == 2 else "train"
        img = _write(root, f"img/{i}.png", image_bytes(rng))
        tasks["image_text"].append(json.dumps(
            {"id": f"img-{i}", "image": img, "text": f"a picture of {word}", "label": word,
             "split": split}))
        wav = _write(root, f"audio/{i}.wav", wav_bytes(rng, freq=200 + 50 * i))
        tasks["audio_text"].append(json.dumps(
            {"id": f"aud-{i}", "audio": wav, "text": f"the spoken {word}", "label": word,
             "split": split}))
        vid = _write(root, f"video/{i}.mp4", video_bytes(rng))
        tasks["video_audio"].append(json.dumps({"id": f"vid-{i}", "video": vid, "split": split}))
    for task, lines in tasks.items():
        _write_manifest(root, task, lines)
    return {task: len(lines) for task, lines in tasks.items()}


def write_salted_dataset(root: str, seed: int = 0, max_file_bytes: int = 200_000,
                         max_caption_chars: int = 64) -> Tuple[Dict[str, int], Dict[str, int], int]:
    """A dataset salted with every kind of bad input.

    Use it with `MediaConfig(max_file_bytes=max_file_bytes, max_caption_chars=max_caption_chars)`.
    Returns (expected ingested {split: n}, expected rejected {reason: n}, lines read).
    """
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    good_png = _write(root, "ok/a.png", image_bytes(rng))
    good_gif = _write(root, "ok/b.gif", image_bytes(rng, fmt="GIF"))
    good_bmp = _write(root, "ok/c.bmp", image_bytes(rng, fmt="BMP"))
    good_jpg = _write(root, "ok/d.jpg", image_bytes(rng, size=(600, 300), fmt="JPEG"))
    stereo_44k = _write(root, "ok/stereo.wav", wav_bytes(rng, rate=44100, channels=2))
    video_sound = _write(root, "ok/v.mp4", video_bytes(rng))
    video_webm = _write(root, "ok/v.webm", video_bytes(rng, container="webm"))
    video_mute = _write(root, "ok/mute.mp4", video_bytes(rng, with_audio=False))
    png = image_bytes(rng)
    bad = {
        "text_as_png": _write(root, "bad/text.png", b"this is not an image at all\n" * 10),
        "truncated_png": _write(root, "bad/truncated.png", png[: len(png) // 2]),
        "empty": _write(root, "bad/empty.wav", b""),
        "huge": _write(root, "bad/huge.png", image_bytes(rng, size=(400, 400))),
        "image_as_audio": _write(root, "bad/image.wav", png),
        "garbage_video": _write(root, "bad/garbage.mp4", bytes(rng.integers(0, 256, 3000, np.uint8))),
        "truncated_wav": _write(root, "bad/truncated.wav", wav_bytes(rng)[:30]),
    }
    assert os.path.getsize(os.path.join(root, bad["huge"])) > max_file_bytes
    long_text = "word " * (max_caption_chars // 5 + 2)

    image_text = [
        {"id": "i1", "image": good_png, "text": "a red square", "split": "train"},
        {"id": "i2", "image": good_gif, "text": "a gif", "split": "train"},
        {"id": "i3", "image": good_bmp, "text": "a bitmap", "split": "eval"},
        {"id": "i4", "image": good_jpg, "text": "a wide photo", "split": "train", "extra": [1, 2]},
        {"id": "i5", "image": good_png, "text": "no split given, hashed"},
        {"id": "i1", "image": good_png, "text": "same id again"},                     # duplicate_id
        {"id": "i6", "image": "nope/missing.png", "text": "gone"},                    # missing_file
        {"id": "i7", "image": bad["text_as_png"], "text": "text file"},               # undecodable
        {"id": "i8", "image": bad["truncated_png"], "text": "cut"},                   # undecodable
        {"id": "i9", "image": bad["huge"], "text": "too big"},                        # file_too_large
        {"id": "i10", "image": good_png},                                             # missing_field
        {"id": "i11", "text": "no image"},                                            # missing_field
        {"id": "i12", "image": good_png, "text": long_text},                          # caption_too_long
        {"id": "i13", "image": good_png, "text": 42},                                 # wrong_type
        {"id": "i14", "image": good_png, "text": "bad split", "split": "test"},       # wrong_type
        {"id": ["x"], "image": good_png, "text": "list id"},                          # wrong_type
        {"id": "i15", "image": video_sound, "text": "video as image"},                # wrong_media_kind
    ]
    image_lines = [json.dumps(x) for x in image_text]
    image_lines += ["{not json", "[1, 2, 3]", '"just a string"']                    # malformed_json x3

    audio_text = [
        {"id": "a1", "audio": stereo_44k, "text": "stereo tone", "label": "tone", "split": "train"},
        {"id": "a2", "audio": video_sound, "text": "track of a video", "label": "tone",
         "split": "eval"},
        {"id": "a3", "audio": bad["empty"], "text": "empty"},                         # empty_file
        {"id": "a4", "audio": bad["image_as_audio"], "text": "png"},                  # wrong_media_kind
        {"id": "a5", "audio": bad["truncated_wav"], "text": "cut"},                   # undecodable
        {"id": "a6", "audio": video_mute, "text": "silent film"},                     # undecodable
    ]
    video_audio = [
        {"id": "v1", "video": video_sound, "split": "train"},
        {"id": "v2", "video": video_webm, "split": "eval"},
        {"id": "v3", "video": video_mute, "audio": stereo_44k, "split": "train"},
        {"id": "v4", "video": video_mute},                                            # missing_field
        {"id": "v5", "video": bad["garbage_video"]},                                  # undecodable
        {"id": "v6", "video": stereo_44k},                                            # wrong_media_kind
    ]
    _write_manifest(root, "image_text", image_lines)
    _write_manifest(root, "audio_text", [json.dumps(x) for x in audio_text])
    _write_manifest(root, "video_audio", [json.dumps(x) for x in video_audio])

    i5_split = manifest_lib.hash_split("i5")
    ingested = {"train_image_text": 3, "eval_image_text": 1, "train_audio_text": 1,
                "eval_audio_text": 1, "train_video_audio": 2, "eval_video_audio": 1}
    ingested[f"{i5_split}_image_text"] += 1
    rejected = {rejects.DUPLICATE_ID: 1, rejects.MISSING_FILE: 1, rejects.UNDECODABLE_MEDIA: 5,
                rejects.FILE_TOO_LARGE: 1, rejects.MISSING_FIELD: 3, rejects.CAPTION_TOO_LONG: 1,
                rejects.WRONG_TYPE: 3, rejects.WRONG_MEDIA_KIND: 3, rejects.MALFORMED_JSON: 3,
                rejects.EMPTY_FILE: 1}
    read = len(image_lines) + len(audio_text) + len(video_audio)
    assert sum(ingested.values()) + sum(rejected.values()) == read
    return ingested, rejected, read
