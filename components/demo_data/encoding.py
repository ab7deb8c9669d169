"""Deterministic media encoders: WAV with the standard library, everything else with PyAV.

PyAV's wheels bundle FFmpeg, so the encoders below exist wherever `av` installs. Every stream and
container is opened single-threaded and with FFmpeg's `bitexact` flags (no encoder version strings,
no timing-dependent threading decisions), which makes the bytes a pure function of the input.
"""

from __future__ import annotations

import dataclasses
import io
from fractions import Fraction
from typing import Dict, Optional

import av
import numpy as np
from av.codec.context import Flags

from components.wav import encode_pcm16_wav

_BITEXACT = {"fflags": "+bitexact"}


@dataclasses.dataclass(frozen=True)
class AudioCodec:
    """An audio encoding: PyAV container format, codec and the sample rate the codec is fed."""

    container: str
    codec: str
    rate: Optional[int] = None  # None keeps the source rate


@dataclasses.dataclass(frozen=True)
class VideoCodec:
    """A video encoding: PyAV container format, video codec, options, and optional audio codec."""

    container: str
    codec: str
    options: tuple = ()  # (key, value) pairs of codec options
    audio: Optional[AudioCodec] = None


AUDIO_FILE_CODECS: Dict[str, AudioCodec] = {
    # extension -> encoding of standalone audio files (besides "wav")
    "flac": AudioCodec("flac", "flac"),
    "mp3": AudioCodec("mp3", "libmp3lame"),
    "ogg": AudioCodec("ogg", "libopus", rate=48000),  # Opus only runs at 8/12/16/24/48 kHz
}

# x264 picks some algorithms by CPU features at every encoder open; on this project's virtual machines
# that made one clip encode two different ways within a process (in ~1 of 5 processes). Its
# `cpu-independent` mode pins them (no variant in 1,100 encodes across 11 processes).
_X264 = (("preset", "medium"), ("crf", "18"), ("x264-params", "cpu-independent=1"))
_VP8 = (("crf", "8"), ("b", "400k"))

VIDEO_CODECS: Dict[str, VideoCodec] = {
    # name -> encoding; the container name doubles as the file extension
    "mp4-h264": VideoCodec("mp4", "libx264", _X264),
    "webm-vp8": VideoCodec("webm", "libvpx", _VP8),
    "avi-mpeg4": VideoCodec("avi", "mpeg4", (("qscale", "3"),)),
    "mp4-h264-aac": VideoCodec("mp4", "libx264", _X264, audio=AudioCodec("mp4", "aac")),
    "webm-vp8-opus": VideoCodec("webm", "libvpx", _VP8, audio=AudioCodec("webm", "libopus", rate=48000)),
}


def video_extension(name: str) -> str:
    """File extension of videos encoded as `VIDEO_CODECS[name]`."""
    return VIDEO_CODECS[name].container


def to_pcm16(samples: np.ndarray) -> np.ndarray:
    """float [n] in [-1, 1] -> int16 [n] (clipped)."""
    return np.clip(np.round(np.asarray(samples) * 32767.0), -32768, 32767).astype(np.int16)


def resample(samples: np.ndarray, rate: int, new_rate: int) -> np.ndarray:
    """Polyphase resampling of float32 [n] from `rate` to `new_rate` Hz."""
    if rate == new_rate:
        return samples.astype(np.float32)
    from scipy import signal  # deferred: scipy.signal pulls in scipy.stats (~0.5 s)

    gcd = np.gcd(rate, new_rate)
    return signal.resample_poly(samples, new_rate // gcd, rate // gcd).astype(np.float32)


def encode_wav(samples: np.ndarray, rate: int) -> bytes:
    """Mono 16-bit PCM WAV of float32 [n] samples in [-1, 1]."""
    return encode_pcm16_wav(to_pcm16(samples), rate)


def _add_audio_stream(container, codec: AudioCodec, rate: int):
    stream = container.add_stream(codec.codec, rate=rate)
    stream.layout = "mono"
    stream.codec_context.thread_count = 1
    stream.codec_context.flags |= Flags.bitexact
    return stream


def _mux_audio(container, stream, samples: np.ndarray, rate: int) -> None:
    # PyAV re-frames and converts the sample format to what the codec wants (e.g. fltp for AAC).
    frame = av.AudioFrame.from_ndarray(to_pcm16(samples)[None, :], format="s16", layout="mono")
    frame.sample_rate = rate
    frame.pts = 0
    frame.time_base = Fraction(1, rate)
    for packet in stream.encode(frame):
        container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def encode_audio_file(samples: np.ndarray, rate: int, extension: str) -> bytes:
    """Encodes mono float32 [n] samples at `rate` Hz as a .wav/.flac/.mp3/.ogg file's bytes."""
    if extension == "wav":
        return encode_wav(samples, rate)
    codec = AUDIO_FILE_CODECS[extension]
    out_rate = codec.rate or rate
    samples = resample(samples, rate, out_rate)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=codec.container, container_options=_BITEXACT) as container:
        stream = _add_audio_stream(container, codec, out_rate)
        _mux_audio(container, stream, samples, out_rate)
    return buffer.getvalue()


def encode_video(frames: np.ndarray, fps: int, codec_name: str,
                 audio: Optional[np.ndarray] = None, audio_rate: Optional[int] = None) -> bytes:
    """Encodes a clip, with an audio track when the codec has one.

    Args:
      frames: uint8 [frames, height, width, 3] RGB (even height and width, for 4:2:0 chroma).
      fps: frame rate.
      codec_name: a key of `VIDEO_CODECS`.
      audio: float32 [n] mono samples in [-1, 1], required iff the codec has an audio track.
      audio_rate: sample rate of `audio` in Hz.

    Returns:
      The container file's bytes.
    """
    codec = VIDEO_CODECS[codec_name]
    if (audio is None) != (codec.audio is None):
        raise ValueError(f"{codec_name} {'needs' if codec.audio else 'has no'} audio track")
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=codec.container, container_options=_BITEXACT) as container:
        stream = container.add_stream(codec.codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = dict(codec.options)
        stream.codec_context.thread_count = 1
        stream.codec_context.flags |= Flags.bitexact
        audio_stream = None
        if codec.audio is not None:
            out_rate = codec.audio.rate or audio_rate
            audio = resample(audio, audio_rate, out_rate)
            audio_stream = _add_audio_stream(container, codec.audio, out_rate)
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
        if audio_stream is not None:
            _mux_audio(container, audio_stream, audio, out_rate)
    return buffer.getvalue()
