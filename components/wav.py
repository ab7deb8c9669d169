"""The one WAV writer of the project: 16-bit PCM samples -> WAV bytes (standard library only, so the
demo generator, ingestion and test fixtures can share it without importing TFX)."""

import io
import wave

import numpy as np


def encode_pcm16_wav(samples: np.ndarray, sample_rate: int) -> bytes:
    """int16 [n] (mono) or [n, channels] samples -> PCM16 WAV bytes at `sample_rate` Hz."""
    samples = np.ascontiguousarray(samples, dtype="<i2")
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(samples.tobytes())
    return out.getvalue()
