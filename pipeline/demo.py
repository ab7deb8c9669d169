"""`imp-tfx demo`, the main job: demo data -> the whole TFX pipeline -> TF Serving -> example queries.

    OUT/data/          the generated "digits world" dataset (manifests + media)
    OUT/pipeline/      pipeline root: every component's outputs and the SQLite ML Metadata
    OUT/serving/imp/   the TF Serving model base path the Pusher wrote `<version>/` into
    OUT/tensorboard/   the Trainer's TensorBoard logs (`tensorboard --logdir OUT/tensorboard`)
    OUT/*.png          the expert-usage plot(s) written by the trainer
    OUT/evaluation.md  the evaluator's table and blessing decision
    OUT/answers.json   the example queries and the served model's answers

Steps print progress to stderr as they go; the answers and the evaluation table go to stdout.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time
from typing import Any, Dict, List, Sequence

import numpy as np

from components.evaluator import executor as evaluator_executor
from components.evaluator import metrics as evaluator_metrics
from components.evaluator.blessing import RECALL_AT_5, ZERO_SHOT_ACCURACY
from pipeline import configs
from pipeline import local_runner

MODEL_NAME = "imp"


@dataclasses.dataclass(frozen=True)
class DemoSize:
    """A preset: dataset size, training steps and model preset."""

    examples: int
    train_steps: int
    model_config: str
    min_zero_shot_accuracy: float
    description: str


# The tiny model trains at ~40 steps/s on 2 cores, so the default's time goes mostly to ingestion.
SIZES: Dict[str, DemoSize] = {
    "tiny": DemoSize(240, 60, "tiny", 0.0,
                     "a smoke run of every stage (a few minutes; accuracy near chance, so no gate)"),
    "default": DemoSize(2400, 10000, "tiny", 0.2, "the main job (10 classes: gate at twice chance)"),
    "large": DemoSize(3600, 6000, "small", 0.3, "a longer run with the small model"),
}
DEFAULT_SIZE = "default"


class _Clock:
    def __init__(self):
        self.start = time.monotonic()

    def log(self, message: str) -> None:
        print(f"[demo {time.monotonic() - self.start:6.0f}s] {message}", file=sys.stderr, flush=True)


# -- data ---------------------------------------------------------------------------------------------


def generate_data(data_dir: pathlib.Path, examples: int, seed: int, clock: _Clock) -> None:
    """Generates the dataset unless `data_dir` already holds this exact one (so reruns hit the cache:
    regenerated files would have new modification times, which ExampleGen's fingerprint includes)."""
    from components.demo_data.generator import generate_demo_dataset

    stamp = data_dir.parent / "data_params.json"
    params = {"examples": examples, "seed": seed}
    if stamp.exists() and json.loads(stamp.read_text()) == params and data_dir.is_dir():
        clock.log(f"data: reusing {data_dir} ({examples} examples, seed {seed})")
        return
    clock.log(f"data: generating {examples} examples into {data_dir}")
    summary = generate_demo_dataset(str(data_dir), examples=examples, seed=seed,
                                    progress=lambda m: clock.log(f"data: {m}"))
    stamp.write_text(json.dumps(params))
    clock.log(f"data: done in {summary['seconds']:.0f} s")


def held_back(data_dir: pathlib.Path, task: str) -> List[Dict[str, Any]]:
    """The eval-split manifest lines of a task, media paths made absolute ([] without a manifest)."""
    manifest = data_dir / f"{task}.jsonl"
    if not manifest.is_file():
        return []
    lines = []
    for raw in manifest.read_text().splitlines():
        if not raw.strip():
            continue
        line = json.loads(raw)
        if line.get("split") != "eval":
            continue
        for field in ("image", "audio", "video"):
            if field in line:
                line[field] = str(data_dir / line[field])
        lines.append(line)
    return lines


# -- queries ------------------------------------------------------------------------------------------


def run_queries(querier, data_dir: pathlib.Path, labels: Sequence[str]) -> Dict[str, Any]:
    """Zero-shot classification of one held-back video, audio clip and image; text-to-video retrieval
    over the held-back videos."""
    answers: Dict[str, Any] = {"zero_shot": []}
    for kind, task in (("video", "video_audio"), ("audio", "audio_cls"), ("image", "image_cls")):
        examples = held_back(data_dir, task)
        if not examples:
            continue
        example = examples[0]
        result = querier.zero_shot(kind, example[kind], labels)
        top3 = list(result["scores"].items())[:3]
        answers["zero_shot"].append({"task": task, "kind": kind, "file": example[kind],
                                     "truth": example.get("label"), "predicted": result["top"],
                                     "top3": top3})
    videos = held_back(data_dir, "video_text")
    if videos:
        paths = [v["video"] for v in videos]
        captions = [v["text"] for v in videos]
        video_embeddings = querier.embed_files("video", paths)
        text_embeddings = querier.embed_texts(captions)
        similarities = text_embeddings @ video_embeddings.T  # [captions, videos]
        ranks = [int(np.sum(similarities[i] > similarities[i, i])) + 1 for i in range(len(videos))]
        order = np.argsort(-similarities[0])
        answers["text_to_video"] = {
            "query": captions[0], "candidates": len(paths), "true_video": paths[0],
            "true_video_rank": ranks[0],
            "top3": [(paths[j], float(similarities[0, j])) for j in order[:3]],
            "recall@1": float(np.mean([r <= 1 for r in ranks])),
            "recall@5": float(np.mean([r <= 5 for r in ranks])),
        }
    return answers


def format_answers(answers: Dict[str, Any]) -> str:
    lines = ["Zero-shot classification of held-back examples (served model, gRPC):"]
    for a in answers["zero_shot"]:
        mark = "ok " if a["predicted"] == a["truth"] else "   "
        top = ", ".join(f"{label} {score:.3f}" for label, score in a["top3"])
        lines.append(f"  {mark}{a['kind']:<6} {os.path.basename(a['file']):<28} truth={a['truth']:<6} "
                     f"predicted={a['predicted']:<6} (top-3: {top})")
    if "text_to_video" in answers:
        r = answers["text_to_video"]
        lines.append(f"Text-to-video retrieval among {r['candidates']} held-back videos:")
        lines.append(f"  query {r['query']!r}: true video ranked #{r['true_video_rank']}")
        for path, score in r["top3"]:
            lines.append(f"    {score:+.3f}  {os.path.basename(path)}")
        lines.append(f"  over all held-back captions: recall@1 {r['recall@1']:.2f}, recall@5 {r['recall@5']:.2f}")
    return "\n".join(lines)


# -- outputs ------------------------------------------------------------------------------------------


def collect_training_outputs(summary: local_runner.RunSummary, out: pathlib.Path) -> List[str]:
    """Links the Trainer's TensorBoard logs to OUT/tensorboard and copies its plots to OUT/."""
    copied = []
    model_run = summary.components["Trainer"].outputs.get("model_run", ())
    if not model_run:
        return copied
    run_dir = pathlib.Path(model_run[0])
    tensorboard = out / "tensorboard"
    if tensorboard.is_symlink() or tensorboard.exists():
        tensorboard.unlink() if tensorboard.is_symlink() else shutil.rmtree(tensorboard)
    tensorboard.symlink_to(run_dir.resolve(), target_is_directory=True)
    copied.append(str(tensorboard))
    for plot in sorted(run_dir.rglob("*.png")):
        shutil.copy2(plot, out / plot.name)
        copied.append(str(out / plot.name))
    return copied


def start_detached_server(serving_base: pathlib.Path, out: pathlib.Path, rest_port: int = 8501,
                 grpc_port: int = 8500) -> str:
    """Starts a detached `imp-tfx serve` that outlives the demo; returns how to use and stop it."""
    log = open(out / "serve.log", "ab")  # pylint: disable=consider-using-with
    process = subprocess.Popen(
        [sys.executable, "-m", "imp_tfx", "serve", "--model-base-path", str(serving_base),
         "--model-name", MODEL_NAME, "--rest-port", str(rest_port), "--grpc-port", str(grpc_port)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    (out / "serve.pid").write_text(str(process.pid))
    return (f"serving {MODEL_NAME} on REST http://127.0.0.1:{rest_port} and gRPC 127.0.0.1:{grpc_port} "
            f"(pid {process.pid}, log {out / 'serve.log'}); e.g.\n"
            f"  imp-tfx query --server grpc://127.0.0.1:{grpc_port} --model {MODEL_NAME} "
            f"--image IMAGE --labels zero,one,two,three,four,five,six,seven,eight,nine\n"
            f"  stop it with: kill {process.pid}")


# -- the job ------------------------------------------------------------------------------------------


def demo_config(size: DemoSize, out: pathlib.Path, seed: int = 0, beam_multi_processing: bool = False,
                **changes) -> configs.PipelineConfig:
    blessing = configs.BlessingPolicy(lower_bounds=(
        (ZERO_SHOT_ACCURACY, size.min_zero_shot_accuracy), (RECALL_AT_5, 0.0)))
    fields = dict(
        name="imp-demo", pipeline_root=str(out / "pipeline"), data_root=str(out / "data"), blessing=blessing,
        serving_base_path=str(out / "serving" / MODEL_NAME), model_config=size.model_config,
        train_steps=size.train_steps, seed=seed,
        beam_args=configs.MULTI_PROCESSING_BEAM_ARGS if beam_multi_processing else configs.LOCAL_BEAM_ARGS)
    fields.update(changes)
    return configs.PipelineConfig(**fields)


def run_demo(size: str = DEFAULT_SIZE, out: str = "demo_output", keep_serving: bool = False,
             seed: int = 0, beam_multi_processing: bool = False) -> int:
    """The main job; returns the process exit code (0: a model was pushed, served and queried)."""
    from components.demo_data import captions
    from serving.client import GrpcClient
    from serving.query import Querier
    from serving.testing import run_server

    preset = SIZES[size]
    out_dir = pathlib.Path(out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    clock = _Clock()
    clock.log(f"size {size!r}: {preset.examples} examples, {preset.train_steps} steps, "
              f"model {preset.model_config}; output in {out_dir}")
    config = demo_config(preset, out_dir, seed=seed, beam_multi_processing=beam_multi_processing)
    generate_data(pathlib.Path(config.data_root), preset.examples, seed, clock)

    clock.log("pipeline: ExampleGen -> StatisticsGen -> SchemaGen -> ExampleValidator -> Transform "
              "-> Trainer -> ImpEvaluator -> Pusher")
    summary = local_runner.run_and_summarize(config, progress=clock.log)
    print(summary.describe())

    record = evaluator_executor.read_evaluation(summary.output("ImpEvaluator", "evaluation"))
    table = evaluator_metrics.format_table(record["candidate"], record["baseline"])
    decision = "BLESSED" if record["decision"]["blessed"] else "NOT BLESSED: " + "; ".join(
        record["decision"]["failures"])
    (out_dir / "evaluation.md").write_text(f"{table}\n\n{decision}\n")
    print("\nEvaluation on the held-back split (ImpEvaluator):\n" + table + "\n" + decision)
    for path in collect_training_outputs(summary, out_dir):
        clock.log(f"output: {path}")
    if not summary.pushed:
        clock.log("the model was not blessed, so nothing was pushed or served")
        return 1

    serving_base = pathlib.Path(config.serving_path)
    pushed = pathlib.Path(summary.pushed_destination)
    if not (pushed / "saved_model.pb").is_file():
        clock.log(f"the pushed model {pushed} holds no SavedModel (is the serving export wired into "
                  "models.training.run_fn?); nothing to serve")
        return 1
    clock.log(f"serving: starting `imp-tfx serve` on {serving_base}")
    with run_server(str(serving_base), model_name=MODEL_NAME) as server:
        clock.log(f"serving: ready (REST {server.rest_url}, gRPC {server.grpc_target}); querying")
        host, port = server.grpc_target.rsplit(":", 1)
        querier = Querier(GrpcClient(host, int(port)), MODEL_NAME)
        answers = run_queries(querier, pathlib.Path(config.data_root), list(captions.DIGIT_NAMES))
    (out_dir / "answers.json").write_text(json.dumps(answers, indent=2))
    print("\n" + format_answers(answers))
    if keep_serving:
        print("\n" + start_detached_server(serving_base, out_dir))
    clock.log(f"done; outputs in {out_dir}")
    return 0

