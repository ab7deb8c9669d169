"""Ingestion throughput: MultimodalExampleGen + Transform on the Beam DirectRunner, and cost per modality.

    .venv/bin/python bench/ingest.py [--per-task 40] [--modes in_process,multi_process]
    .venv/bin/python -m bench.ingest

1. Pipeline: a seeded dataset of `--per-task` examples for each of `image_text`, `audio_text` and
   `video_audio` (PIL / wave / PyAV fixtures, `components.example_gen.testing`) goes through
   ExampleGen -> StatisticsGen -> SchemaGen -> ExampleValidator -> Transform with LocalDagRunner, once
   per DirectRunner mode: `in_process` (in_memory, 1 worker) and `multi_process`
   (`--direct_running_mode=multi_processing --direct_num_workers=2`). Component wall times come from
   MLMD; examples/s = examples / component seconds.
2. Per modality, in this process (no Beam): milliseconds per example of ExampleGen's decode + normalize
   (`executor.decode_record`) and of Transform's TF functions (`models.preprocessing`, batch of 16).

Prints one JSON line per measurement and a final summary line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from components import cli  # noqa: E402
from components.example_gen import executor  # noqa: E402
from components.example_gen import manifest as manifest_lib  # noqa: E402
from components.example_gen import testing  # noqa: E402
from models import features as F  # noqa: E402
from models import preprocessing as P  # noqa: E402

MODES = {"in_process": 0, "multi_process": 2}
TIMED_COMPONENTS = ("MultimodalExampleGen", "StatisticsGen", "Transform")


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--per-task", type=int, default=40, help="examples per task (3 tasks)")
    p.add_argument("--modes", default=",".join(MODES),
                   help="comma-separated subset of " + ",".join(MODES))
    p.add_argument("--modality-repeats", type=int, default=3)
    p.add_argument("--work-dir", default=None, help="keep datasets and outputs here (default: temp)")
    return p.parse_args(argv)


def component_seconds(metadata_path: str) -> dict:
    """{component type: seconds of its latest execution} from MLMD."""
    import ml_metadata as mlmd
    from tfx.orchestration import metadata
    store = mlmd.MetadataStore(metadata.sqlite_metadata_connection_config(metadata_path))
    types = {t.id: t.name.split(".")[-1] for t in store.get_execution_types()}
    out = {}
    for e in sorted(store.get_executions(), key=lambda e: e.id):
        out[types[e.type_id]] = (e.last_update_time_since_epoch - e.create_time_since_epoch) / 1000
    return out


def bench_pipeline(data: str, work: str, mode: str, examples: int) -> dict:
    out = os.path.join(work, f"out-{mode}")
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    summary = cli.run_ingestion(data, out, workers=MODES[mode], text_vocab_size=512,
                                pipeline_name=f"bench-ingest-{mode}")
    total = time.perf_counter() - start
    seconds = component_seconds(os.path.join(out, "metadata.sqlite"))
    ingested = sum(summary["ingested"].values())
    assert ingested == examples, summary
    result = {"bench": "ingest_pipeline", "mode": mode, "examples": examples,
              "wall_seconds": round(total, 2),
              "component_seconds": {k: round(v, 2) for k, v in seconds.items()}}
    for name in ("MultimodalExampleGen", "Transform"):
        result[f"{name}_examples_per_s"] = round(examples / max(seconds[name], 1e-9), 2)
    return result


def bench_modalities(data: str, repeats: int) -> list:
    """ms/example of ExampleGen decode+normalize and of the Transform TF function, per modality."""
    media = F.DEFAULT_MEDIA
    results = []
    for task, kind in (("image_text", "image"), ("audio_text", "audio"), ("video_audio", "video")):
        path = os.path.join(data, f"{task}.jsonl")
        records = [manifest_lib.parse_line(line, media) for line in executor._read_lines((path, task))]
        start = time.perf_counter()
        for _ in range(repeats):
            examples = [executor.decode_record(r, media) for r in records]
        decode_ms = (time.perf_counter() - start) * 1000 / (repeats * len(records))

        feature = {"image": F.RAW_IMAGE, "audio": F.RAW_AUDIO, "video": F.RAW_VIDEO_FRAMES}[kind]
        raw = [list(e.features.feature[feature].bytes_list.value) for e in examples][:16]
        if kind == "video":
            fn = tf.function(lambda x: tf.map_fn(lambda f: P.decode_video_frames(f, media.image_size), x,
                                                 fn_output_signature=tf.float32))
        elif kind == "image":
            fn = tf.function(lambda x: tf.map_fn(lambda b: P.decode_image(b, media.image_size), x[:, 0],
                                                 fn_output_signature=tf.float32))
        else:
            fn = tf.function(lambda x: tf.map_fn(lambda b: P.decode_wav_to_log_mel(b, media), x[:, 0],
                                                 fn_output_signature=tf.float32))
        batch = tf.constant(raw)
        fn(batch)  # trace
        start = time.perf_counter()
        for _ in range(repeats):
            fn(batch).numpy()
        transform_ms = (time.perf_counter() - start) * 1000 / (repeats * len(raw))
        stored_kb = sum(len(b) for r in raw for b in r) / len(raw) / 1024
        results.append({"bench": "ingest_modality", "modality": kind,
                        "example_gen_ms_per_example": round(decode_ms, 2),
                        "transform_tf_ms_per_example": round(transform_ms, 2),
                        "stored_kib_per_example": round(stored_kb, 1)})
    return results


def main(argv=None) -> int:
    args = _parse(argv if argv is not None else sys.argv[1:])
    work = args.work_dir or tempfile.mkdtemp(prefix="bench-ingest-")
    data = os.path.join(work, "data")
    shutil.rmtree(data, ignore_errors=True)
    counts = testing.write_dataset(data, per_task=args.per_task, seed=0)
    examples = sum(counts.values())
    results = bench_modalities(data, args.modality_repeats)
    for r in results:
        print(json.dumps(r), flush=True)
    for mode in [m for m in args.modes.split(",") if m]:
        r = bench_pipeline(data, work, mode, examples)
        results.append(r)
        print(json.dumps(r), flush=True)
    pipeline = {r["mode"]: r for r in results if r["bench"] == "ingest_pipeline"}
    summary = {"bench": "ingest_summary", "examples": examples,
               "cpus": os.cpu_count(),
               **{f"{mode}_{k}": v for mode, r in pipeline.items()
                  for k, v in r.items() if k.endswith("_examples_per_s")}}
    print(json.dumps(summary), flush=True)
    if args.work_dir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
