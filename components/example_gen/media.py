"""Decoding, validation and normalization of media files into the canonical stored forms.

Canonical forms (`models.features.MediaConfig`):
* image: RGB JPEG whose longer side is at most `stored_image_max_side` (never upscaled).
* audio: 16-bit PCM mono WAV at `audio.sample_rate` (the whole file).
* video: `video_frames` RGB JPEG frames sampled at `video_fps` from a window centred in the video (the
  last frame repeats when the video is shorter), plus `audio_seconds` of its audio track centred on the
  same window, when the video has one.

PIL decodes PNG/JPEG/BMP/GIF (first frame); PyAV (bundled ffmpeg) decodes video containers and every
audio format, and resamples. All failures raise `rejects.RejectedMedia` with a reject reason.
"""

from __future__ import annotations

import io
from typing import List, Optional, Tuple

import av
import numpy as np
import tensorflow as tf
from PIL import Image

from components.example_gen import rejects
from components.wav import encode_pcm16_wav
from models.features import MediaConfig

JPEG_QUALITY = 90

# What a file's first bytes say it is. `None` = no opinion (unknown or a container that may hold
# either audio or video, like Ogg or MP4); only a definite mismatch becomes `wrong_media_kind`.
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image"), (b"\xff\xd8\xff", "image"), (b"GIF87a", "image"),
    (b"GIF89a", "image"), (b"BM", "image"),
    (b"fLaC", "audio"), (b"ID3", "audio"),
    (b"\x1a\x45\xdf\xa3", "video"),  # EBML: WebM / Matroska (can hold just audio, see ACCEPTS)
)
# Media field -> sniffed kinds it accepts (an audio field may point at a video: we take its track).
_ACCEPTS = {"image": {"image"}, "audio": {"audio", "video"}, "video": {"video"}}


def sniff_kind(head: bytes) -> Optional[str]:
    """`image`, `audio`, `video` or None from a file's first 12 bytes."""
    if head[:4] == b"RIFF" and len(head) >= 12:
        return {b"WAVE": "audio", b"AVI ": "video"}.get(head[8:12])
    if head[4:8] == b"ftyp":  # ISO BMFF: MP4/MOV video unless the brand says audio-only
        return "audio" if head[8:11] == b"M4A" else "video"
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0:
        return "audio"  # MPEG audio frame sync
    return None


def check_kind(field: str, data: bytes) -> None:
    kind = sniff_kind(data[:12])
    if kind is not None and kind not in _ACCEPTS[field]:
        raise rejects.RejectedMedia(rejects.WRONG_MEDIA_KIND,
                                    f"field {field!r} points at a file that looks like {kind}")


def read_file(path: str, media: MediaConfig) -> bytes:
    """Reads a media file through `tf.io.gfile` (local paths or any filesystem URI), size-checked."""
    try:
        size = tf.io.gfile.stat(path).length
    except tf.errors.NotFoundError:
        raise rejects.RejectedMedia(rejects.MISSING_FILE, f"{path} does not exist") from None
    if tf.io.gfile.isdir(path):
        raise rejects.RejectedMedia(rejects.MISSING_FILE, f"{path} is a directory")
    if size == 0:
        raise rejects.RejectedMedia(rejects.EMPTY_FILE, f"{path} has 0 bytes")
    if size > media.max_file_bytes:
        raise rejects.RejectedMedia(rejects.FILE_TOO_LARGE,
                                    f"{path} has {size} bytes > {media.max_file_bytes}")
    with tf.io.gfile.GFile(path, "rb") as f:
        return f.read()


def _to_jpeg(img: Image.Image, max_side: int) -> bytes:
    if img.mode != "RGB":
        if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
            background = Image.new("RGB", img.size, (255, 255, 255))
            background.paste(img.convert("RGBA"), mask=img.convert("RGBA").getchannel("A"))
            img = background
        else:
            img = img.convert("RGB")
    if max(img.size) > max_side:
        img = img.copy()
        img.thumbnail((max_side, max_side), Image.BILINEAR)
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def normalize_image(data: bytes, media: MediaConfig) -> bytes:
    """Any PIL-readable image -> canonical JPEG bytes."""
    check_kind("image", data)
    try:
        img = Image.open(io.BytesIO(data))
        img.load()  # decodes every pixel: truncated files fail here, not later in Transform
    except Exception as e:  # PIL raises many types (OSError, SyntaxError, ValueError, ...)
        raise rejects.RejectedMedia(rejects.UNDECODABLE_MEDIA, str(e)) from None
    if img.width == 0 or img.height == 0:
        raise rejects.RejectedMedia(rejects.UNDECODABLE_MEDIA, "no pixels")
    return _to_jpeg(img, media.stored_image_max_side)


def encode_wav(samples: np.ndarray, sample_rate: int) -> bytes:
    """int16 [samples] -> mono PCM16 WAV bytes."""
    return encode_pcm16_wav(samples, sample_rate)


def _decode_audio_track(container, rate: int, start: float = 0.0,
                        seconds: Optional[float] = None) -> Optional[np.ndarray]:
    """The first audio stream resampled to mono int16 at `rate`, from `start` for `seconds` (None = all).

    Returns None when the container has no audio stream.
    """
    if not container.streams.audio:
        return None
    stream = container.streams.audio[0]
    resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
    end = None if seconds is None else start + seconds
    chunks = []
    for frame in container.decode(stream):
        if end is not None and frame.time is not None and frame.time > end:
            break
        chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
    chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    samples = np.concatenate(chunks) if chunks else np.zeros([0], np.int16)
    first = int(round(start * rate))
    last = None if seconds is None else first + int(round(seconds * rate))
    return samples[first:last]


def _open(data: bytes):
    try:
        return av.open(io.BytesIO(data), mode="r")
    except Exception as e:  # av.error.* (InvalidDataError, ...) and ValueError
        raise rejects.RejectedMedia(rejects.UNDECODABLE_MEDIA, str(e)) from None


def normalize_audio(data: bytes, media: MediaConfig) -> bytes:
    """Any audio file (WAV/FLAC/OGG/MP3/...) or a video's audio track -> canonical WAV bytes."""
    check_kind("audio", data)
    rate = media.audio.sample_rate
    with _open(data) as container:
        try:
            samples = _decode_audio_track(container, rate)
        except Exception as e:
            raise rejects.RejectedMedia(rejects.UNDECODABLE_MEDIA, str(e)) from None
    if samples is None:
        raise rejects.RejectedMedia(rejects.UNDECODABLE_MEDIA, "no audio stream")
    if samples.size == 0:
        raise rejects.RejectedMedia(rejects.UNDECODABLE_MEDIA, "no decodable samples")
    return encode_wav(samples, rate)


def _duration_seconds(container, stream) -> Optional[float]:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1e6  # av.time_base is microseconds
    return None


def clip_window(duration: Optional[float], clip_seconds: float) -> float:
    """Start time of a `clip_seconds` window centred in a video of `duration` seconds."""
    if duration is None or duration <= clip_seconds:
        return 0.0
    return (duration - clip_seconds) / 2.0


def _sample_frames(container, stream, start: float, times: np.ndarray) -> List[Image.Image]:
    """Per target time, the last decoded frame with timestamp <= it (the first frame if none is)."""
    if start > 0:
        container.seek(int(start / stream.time_base), stream=stream, backward=True, any_frame=False)
    picked: List[Optional[Image.Image]] = [None] * len(times)
    next_target = 0
    previous = None
    for frame in container.decode(stream):
        t = frame.time if frame.time is not None else 0.0
        while next_target < len(times) and t > times[next_target] + 1e-6:
            picked[next_target] = previous if previous is not None else frame.to_image()
            next_target += 1
        if next_target == len(times):
            break
        previous = frame.to_image()
    for i in range(next_target, len(times)):  # video ended early: repeat its last frame
        picked[i] = previous
    if previous is None and picked[0] is None:
        raise rejects.RejectedMedia(rejects.UNDECODABLE_MEDIA, "no decodable frames")
    return picked


def normalize_video(data: bytes, media: MediaConfig) -> Tuple[List[bytes], Optional[bytes]]:
    """A video file -> (`video_frames` JPEG frames, WAV of its audio track or None)."""
    check_kind("video", data)
    clip_seconds = media.video_frames / media.video_fps
    with _open(data) as container:
        if not container.streams.video:
            raise rejects.RejectedMedia(rejects.UNDECODABLE_MEDIA, "no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        start = clip_window(_duration_seconds(container, stream), clip_seconds)
        times = start + np.arange(media.video_frames) / media.video_fps
        try:
            frames = _sample_frames(container, stream, start, times)
        except rejects.RejectedMedia:
            raise
        except Exception as e:
            raise rejects.RejectedMedia(rejects.UNDECODABLE_MEDIA, str(e)) from None
        has_audio = bool(container.streams.audio)
    jpegs = [_to_jpeg(f, media.stored_image_max_side) for f in frames]

    wav = None
    if has_audio:
        middle = start + clip_seconds / 2.0
        audio_start = max(0.0, middle - media.audio_seconds / 2.0)
        with _open(data) as container:
            try:
                samples = _decode_audio_track(container, media.audio.sample_rate, audio_start,
                                              media.audio_seconds)
            except Exception:
                samples = None  # a broken audio track does not spoil good frames
        if samples is not None and samples.size:
            wav = encode_wav(samples, media.audio.sample_rate)
    return jpegs, wav
