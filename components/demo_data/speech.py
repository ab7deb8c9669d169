"""Spoken captions and digit names synthesized with eSpeak NG.

eSpeak NG is deterministic (same text, voice, speed and pitch give the same samples), fast (~15 ms per
phrase) and a Debian package (`apt-get install espeak-ng`; scripts/bootstrap.sh installs it).
Training and held-back evaluation examples use disjoint voices: different accents *and* different
voice variants, so evaluation measures generalisation to unheard speakers.
"""

from __future__ import annotations

import dataclasses
import pathlib
import shutil
import subprocess
import tempfile
import wave
from typing import Optional, Tuple

import numpy as np

ESPEAK = "espeak-ng"
SPEECH_RATE = 22050
"""eSpeak NG's native output rate (Hz); audio files keep it (ingestion resamples to 16 kHz)."""

TRAIN_VOICES: Tuple[str, ...] = (
    "en-us", "en-gb", "en-us+f3", "en-gb+m3", "en-gb-scotland+f2", "en-029+m2", "en-us+m5",
    "en-gb-x-gbclan+f4")
EVAL_VOICES: Tuple[str, ...] = ("en-us-nyc+f5", "en-gb-x-rp+m7", "en-gb-x-gbcwmd+f1")
"""Voices (accent+variant) heard only in held-back evaluation examples."""


@dataclasses.dataclass(frozen=True)
class Voice:
    """An eSpeak NG voice: `name` is `accent[+variant]`, `speed` words per minute, `pitch` 0-99."""

    name: str
    speed: int
    pitch: int


def random_voice(rng: np.random.Generator, held_back: bool) -> Voice:
    voices = EVAL_VOICES if held_back else TRAIN_VOICES
    return Voice(name=voices[int(rng.integers(len(voices)))],
                 speed=int(rng.integers(130, 186)), pitch=int(rng.integers(30, 71)))


def require_espeak() -> str:
    """Path of the espeak-ng executable, or a RuntimeError saying how to install it."""
    path = shutil.which(ESPEAK)
    if path is None:
        raise RuntimeError(
            "espeak-ng is not installed; it speaks the demo's captions. Install it with "
            "`apt-get install -y espeak-ng` (scripts/bootstrap.sh does this).")
    return path


def synthesize(text: str, voice: Voice) -> np.ndarray:
    """Speech for `text`: float32 [n] mono samples in [-1, 1] at `SPEECH_RATE` Hz."""
    with tempfile.TemporaryDirectory(prefix="imp-demo-speech-") as tmp:
        path = pathlib.Path(tmp) / "speech.wav"
        # espeak-ng writes a proper WAV header only to files (its --stdout header has no length).
        done = subprocess.run(
            [require_espeak(), "-v", voice.name, "-s", str(voice.speed), "-p", str(voice.pitch),
             "-w", str(path), text],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"espeak-ng failed for voice {voice.name!r}: {done.stderr.strip()}")
        with wave.open(str(path), "rb") as stored:
            layout = (stored.getnchannels(), stored.getsampwidth(), stored.getframerate())
            if layout != (1, 2, SPEECH_RATE):
                raise RuntimeError(f"unexpected espeak-ng output {layout} for voice {voice.name!r}")
            pcm = stored.readframes(stored.getnframes())
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def record(speech: np.ndarray, rng: np.random.Generator, lead: Optional[float] = None) -> np.ndarray:
    """Makes a synthesized phrase sound recorded: random gain, leading/trailing silence and a faint
    noise floor. `lead` fixes the leading silence in seconds (default: random 0-0.25 s).

    float32 [n] -> float32 [m] at `SPEECH_RATE` Hz."""
    lead = rng.uniform(0.0, 0.25) if lead is None else lead
    tail = rng.uniform(0.05, 0.25)
    peak = float(np.max(np.abs(speech))) or 1.0
    gain = rng.uniform(0.4, 0.95) / peak
    padded = np.concatenate([np.zeros(int(lead * SPEECH_RATE), np.float32), speech * gain,
                             np.zeros(int(tail * SPEECH_RATE), np.float32)])
    noise = rng.normal(0.0, rng.uniform(0.0, 0.004), size=padded.shape)
    return np.clip(padded + noise, -1.0, 1.0).astype(np.float32)
