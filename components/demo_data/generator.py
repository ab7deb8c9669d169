"""`generate_demo_dataset`: the procedural "digits world" that the demo, tests and new users train on.

Every example is a pure function of (seed, span, task, index): each draws from its own random
generator, so the dataset is byte-identical for the same arguments whatever order it is built in,
and held-back examples never share augmentation randomness with training ones. Held-back examples
also draw their digits from held-back source images (`images.EVAL_POOL_START`) and their speech from
held-back voices (`speech.EVAL_VOICES`).
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
import shutil
import time
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from components.demo_data import captions, encoding, images, manifest, readme, speech, videos

IMAGE_FORMAT_CYCLE = ("png", "jpg", "bmp", "gif", "png", "jpg", "png", "png")
VIDEO_CODEC_CYCLE = ("mp4-h264", "webm-vp8", "avi-mpeg4", "mp4-h264")
AV_CODEC_CYCLE = ("mp4-h264-aac", "webm-vp8-opus")
AUDIO_FORMAT_CYCLE = ("wav", "flac", "mp3", "ogg", "wav", "wav", "wav", "wav")
"""Encodings are cycled (by rank within a split) rather than drawn, with the rarer ones first, so even
a tiny dataset holds every format; eval examples start half-way through each cycle."""

SPEAKING_TASKS = ("audio_text", "video_audio", "audio_cls")
MEDIA_DIRS = {"image": "images", "video": "videos", "audio": "audio"}
_SPAN_DIR = re.compile(r"^span-\d+$")


@dataclasses.dataclass(frozen=True)
class Example:
    """What one example of a task is built from."""

    task: str
    index: int
    id: str
    held_back: bool
    rank: int          # position among the task's examples of the same split
    digit: int
    direction: str
    rng: np.random.Generator = dataclasses.field(compare=False)

    @property
    def split(self) -> str:
        return "eval" if self.held_back else "train"

    def cycle(self, options: Sequence[str]) -> str:
        offset = len(options) // 2 if self.held_back else 0
        return options[(self.rank + offset) % len(options)]

    def source_digit(self) -> np.ndarray:
        """float32 [8, 8]: a source image of `digit` from the split's writer pool."""
        pool = images.source_pool(self.digit, held_back=self.held_back)
        return images.source_image(int(pool[self.rng.integers(len(pool))]))

    def voice(self) -> speech.Voice:
        return speech.random_voice(self.rng, held_back=self.held_back)


@dataclasses.dataclass(frozen=True)
class Built:
    """A built example: its manifest fields (media as paths) and the media files to write."""

    fields: Dict[str, str]
    files: Dict[str, bytes]


def _media(example: Example, kind: str, extension: str, data: bytes) -> Tuple[str, Dict[str, bytes]]:
    path = f"{MEDIA_DIRS[kind]}/{example.id}.{extension}"
    return path, {path: data}


def _image(example: Example) -> Tuple[str, Dict[str, bytes]]:
    rgb = images.render_digit_image(example.source_digit(), example.rng)
    extension = example.cycle(IMAGE_FORMAT_CYCLE)
    return _media(example, "image", extension, images.encode_image(rgb, extension))


def _spoken(example: Example, text: str, lead: Optional[float] = None) -> np.ndarray:
    return speech.record(speech.synthesize(text, example.voice()), example.rng, lead=lead)


def build_image_text(example: Example) -> Built:
    path, files = _image(example)
    template = int(example.rng.integers(len(captions.IMAGE_TEMPLATES)))
    return Built({"image": path, "text": captions.image_caption(example.digit, template)}, files)


def build_image_cls(example: Example) -> Built:
    path, files = _image(example)
    return Built({"image": path, "label": captions.DIGIT_NAMES[example.digit]}, files)


def build_video_text(example: Example) -> Built:
    frames = videos.clip_frames(example.rng)
    clip = videos.render_moving_digit(example.source_digit(), example.direction, frames, example.rng)
    codec = example.cycle(VIDEO_CODEC_CYCLE)
    path, files = _media(example, "video", encoding.video_extension(codec),
                         encoding.encode_video(clip, videos.FPS, codec))
    template = int(example.rng.integers(len(captions.MOTION_TEMPLATES)))
    return Built({"video": path,
                  "text": captions.motion_caption(example.digit, example.direction, template)}, files)


def build_audio_text(example: Example) -> Built:
    # Mostly motion captions (what the videos are described with), some still-image captions.
    if example.rng.random() < 0.7:
        template = int(example.rng.integers(len(captions.MOTION_TEMPLATES)))
        text = captions.motion_caption(example.digit, example.direction, template)
    else:
        text = captions.image_caption(example.digit,
                                      int(example.rng.integers(len(captions.IMAGE_TEMPLATES))))
    extension = example.cycle(AUDIO_FORMAT_CYCLE)
    data = encoding.encode_audio_file(_spoken(example, text), speech.SPEECH_RATE, extension)
    path, files = _media(example, "audio", extension, data)
    return Built({"audio": path, "text": text}, files)


def build_audio_cls(example: Example) -> Built:
    extension = example.cycle(AUDIO_FORMAT_CYCLE)
    spoken = _spoken(example, captions.DIGIT_NAMES[example.digit])
    path, files = _media(example, "audio", extension,
                         encoding.encode_audio_file(spoken, speech.SPEECH_RATE, extension))
    return Built({"audio": path, "label": captions.DIGIT_NAMES[example.digit]}, files)


def build_video_audio(example: Example) -> Built:
    name = captions.DIGIT_NAMES[example.digit]
    spoken = _spoken(example, name, lead=float(example.rng.uniform(0.1, 0.4)))
    frames = videos.clip_frames(example.rng, seconds=len(spoken) / speech.SPEECH_RATE)
    clip = videos.render_moving_digit(example.source_digit(), example.direction, frames, example.rng)
    # The audio track lasts exactly as long as the clip (padded with silence, or cut).
    track = np.zeros(round(frames / videos.FPS * speech.SPEECH_RATE), np.float32)
    track[:min(len(track), len(spoken))] = spoken[:len(track)]
    codec = example.cycle(AV_CODEC_CYCLE)
    data = encoding.encode_video(clip, videos.FPS, codec, audio=track, audio_rate=speech.SPEECH_RATE)
    path, files = _media(example, "video", encoding.video_extension(codec), data)
    return Built({"video": path, "text": captions.motion_caption(example.digit, example.direction),
                  "label": name}, files)


BUILDERS: Dict[str, Callable[[Example], Built]] = {
    "image_text": build_image_text,
    "image_cls": build_image_cls,
    "video_text": build_video_text,
    "audio_text": build_audio_text,
    "video_audio": build_video_audio,
    "audio_cls": build_audio_cls,
}


def plan_task(task: str, count: int, seed: int, span: Optional[int]) -> List[Example]:
    """The task's examples: balanced digits and directions, shuffled, with held-back ones marked."""
    root = (seed, 0 if span is None else span + 1, manifest.TASKS.index(task))
    plan_rng = np.random.default_rng([*root, 0, 0])
    digits = plan_rng.permutation(np.resize(np.arange(len(captions.DIGIT_NAMES)), count))
    directions = plan_rng.permutation(np.resize(np.arange(len(captions.DIRECTIONS)), count))
    held = manifest.held_back_indices(count)
    prefix = task if span is None else f"{task}-span{span}"
    ranks = {True: 0, False: 0}
    examples = []
    for index in range(count):
        held_back = index in held
        examples.append(Example(
            task=task, index=index, id=f"{prefix}-{index:05d}", held_back=held_back,
            rank=ranks[held_back], digit=int(digits[index]),
            direction=captions.DIRECTIONS[int(directions[index])],
            rng=np.random.default_rng([*root, 1, index])))
        ranks[held_back] += 1
    return examples


def _prepare_out_dir(out_dir: pathlib.Path) -> None:
    """Empties a previous demo dataset at `out_dir` (only the entries it writes; `span-N/`
    sub-datasets are kept); refuses a non-empty folder that is not a demo dataset."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ours = set(MEDIA_DIRS.values()) | {f"{task}.jsonl" for task in manifest.TASKS} | {readme.FILE_NAME}
    entries = [entry for entry in out_dir.iterdir() if not _SPAN_DIR.match(entry.name)]
    if not entries:
        return
    foreign = sorted(entry.name for entry in entries if entry.name not in ours)
    if foreign or not readme.is_demo_readme(out_dir / readme.FILE_NAME):
        raise FileExistsError(
            f"{out_dir} is not empty and not an imp-tfx demo dataset "
            f"(found {foreign[:5] or 'no README.txt'}); choose an empty or new folder")
    for entry in entries:
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def generate_demo_dataset(out_dir, examples: int = 600, seed: int = 0,
                          tasks: Optional[Iterable[str]] = None, span: Optional[int] = None,
                          progress: Optional[Callable[[str], None]] = None) -> dict:
    """Writes the demo dataset: media files, one `<task>.jsonl` manifest per task and a README.txt.

    Args:
      out_dir: dataset folder (created; a previous demo dataset there is replaced).
      examples: total examples across the selected tasks, split by `manifest.TASK_SPECS` shares.
      seed: generation seed; the same arguments always give byte-identical files.
      tasks: subset of `manifest.TASKS` (default: all).
      span: when given, writes under `out_dir/span-<span>/` with randomness (and ids) of its own:
        a new data span for scheduled-retraining runs.
      progress: callable taking one progress message per step (e.g. the CLI's stderr logger).

    Returns:
      Summary dict: {"out": dataset folder, "examples": {task: n}, "eval_examples": {task: n},
      "seed": seed, "span": span, "seconds": wall time}.
    """
    started = time.perf_counter()
    if examples < 1:
        raise ValueError(f"examples must be >= 1, got {examples}")
    if seed < 0 or (span is not None and span < 0):
        raise ValueError(f"seed and span must be >= 0, got seed={seed} span={span}")
    log = progress or (lambda message: None)
    counts = manifest.allocate(examples, manifest.TASKS if tasks is None else list(tasks))
    if any(counts.get(task) for task in SPEAKING_TASKS):
        speech.require_espeak()
    base = pathlib.Path(out_dir)
    dataset_dir = base if span is None else base / f"span-{int(span)}"
    _prepare_out_dir(dataset_dir)
    for folder in MEDIA_DIRS.values():
        (dataset_dir / folder).mkdir()

    eval_counts = {}
    for task, count in counts.items():
        if count == 0:
            continue
        task_started = time.perf_counter()
        lines = []
        for done, example in enumerate(plan_task(task, count, seed, span), start=1):
            built = BUILDERS[task](example)
            for relative, data in built.files.items():
                (dataset_dir / relative).write_bytes(data)
            lines.append(manifest.manifest_line(example.id, example.split, **built.fields))
            if done * 4 // count > (done - 1) * 4 // count:  # at each quarter
                log(f"{task}: {done}/{count}")
        manifest.write_manifest(dataset_dir / f"{task}.jsonl", lines)
        eval_counts[task] = len(manifest.held_back_indices(count))
        log(f"{task}: {count} examples ({eval_counts[task]} eval) in "
            f"{time.perf_counter() - task_started:.1f} s")

    for folder in MEDIA_DIRS.values():  # drop media folders no selected task used
        if not any((dataset_dir / folder).iterdir()):
            (dataset_dir / folder).rmdir()
    written = {task: n for task, n in counts.items() if n}
    readme.write_readme(dataset_dir, written, eval_counts, seed=seed, span=span, total=examples,
                        tasks=None if tasks is None else sorted(written))
    return {"out": str(dataset_dir), "examples": written, "eval_examples": eval_counts,
            "seed": seed, "span": span, "seconds": round(time.perf_counter() - started, 2)}
