"""The README.txt written into every demo dataset: contents, format, provenance and licenses.

Its first line doubles as the marker by which the generator recognises (and may replace) a folder
it wrote before. It holds no paths or times, so it is as deterministic as the rest of the dataset.
"""

from __future__ import annotations

import pathlib
from typing import Dict, Optional, Sequence

import av

from components.demo_data import captions, encoding, images, manifest, speech

FILE_NAME = "README.txt"
TITLE = "imp-tfx demo dataset: digits world"


def is_demo_readme(path: pathlib.Path) -> bool:
    try:
        with path.open(encoding="utf-8") as stream:
            return stream.readline().strip() == TITLE
    except OSError:
        return False


def _command(total: int, seed: int, span: Optional[int], tasks: Optional[Sequence[str]]) -> str:
    command = f"imp-tfx demo-data --out DIR --examples {total} --seed {seed}"
    if span is not None:
        command += f" --span {span}"
    if tasks:
        command += " --tasks " + ",".join(tasks)
    return command


def render(counts: Dict[str, int], eval_counts: Dict[str, int], seed: int, span: Optional[int],
           total: int, tasks: Optional[Sequence[str]] = None) -> str:
    task_lines = "\n".join(
        f"  {name + '.jsonl':<18} {counts[name]:>6} examples ({eval_counts[name]} eval)  "
        f"fields: {', '.join(manifest.SPECS[name].fields)}\n"
        f"  {'':<19}{manifest.SPECS[name].description}"
        for name in manifest.TASKS if name in counts)
    video_codecs = ", ".join(
        f"{spec.container}/{spec.codec}" + (f"+{spec.audio.codec}" if spec.audio else "")
        for spec in encoding.VIDEO_CODECS.values())
    return f"""{TITLE}
{'=' * len(TITLE)}

A small procedural multimodal dataset for trying imp-tfx end to end with nothing else installed:
handwritten digits as images, the same digits moving left/right/up/down in short videos, their
captions spoken aloud, and videos whose audio track speaks the digit's name.

Regenerate byte-identically with:
  {_command(total, seed, span, tasks)}

Manifests (one per task source; one JSON example per line)
{task_lines}

Fields: "id" (unique in the dataset), "split" ("train" or "eval"), "image" / "video" / "audio"
(paths relative to the manifest), "text" (caption or transcript), "label" (one of
{', '.join(captions.DIGIT_NAMES)}).

Held-back evaluation examples ("split": "eval", about {manifest.EVAL_FRACTION:.0%} of each task) are
drawn from handwriting samples, speaker voices and augmentation randomness never used for training
examples, so zero-shot evaluation on them is meaningful.

Media
  images/  64x64 RGB pictures (PNG, JPEG, BMP, GIF): a source digit upsampled with a cubic spline,
           randomly rotated (+-12 deg), scaled (+-15%), shifted, with random stroke thickness,
           ink and paper colours and pixel noise.
  videos/  64x64, 8 fps, 1-2 s clips of a digit crossing the frame in a straight line,
           encoded as {video_codecs}.
           Clips in video_audio.jsonl carry a mono audio track speaking the digit's name.
  audio/   mono speech at {speech.SPEECH_RATE} Hz (WAV 16-bit PCM; some FLAC, MP3, and Ogg/Opus
           at 48 kHz), random voice, speed, pitch, gain, padding and a faint noise floor.
  Training voices: {', '.join(speech.TRAIN_VOICES)}
  Eval voices:     {', '.join(speech.EVAL_VOICES)}

Provenance and licenses
  Digits: scikit-learn's bundled copy of the UCI "Optical Recognition of Handwritten Digits" test
  set (E. Alpaydin, C. Kaynak, 1998; 1,797 8x8 images by 13 writers), licensed CC BY 4.0:
  https://archive.ics.uci.edu/ml/datasets/optical+recognition+of+handwritten+digits
  Source images 0-{images.EVAL_POOL_START - 1} feed training examples, the rest eval examples.
  Speech: synthesized with eSpeak NG (https://github.com/espeak-ng/espeak-ng).
  Encoding: PyAV {av.__version__} (bundled FFmpeg), Pillow.
  This generated dataset is a derivative of the digits and is distributed under CC BY 4.0 as well;
  credit the UCI dataset's authors when you share it.
"""


def write_readme(out_dir: pathlib.Path, counts: Dict[str, int], eval_counts: Dict[str, int],
                 seed: int, span: Optional[int], total: int,
                 tasks: Optional[Sequence[str]] = None) -> None:
    (out_dir / FILE_NAME).write_text(render(counts, eval_counts, seed, span, total, tasks),
                                     encoding="utf-8")
