"""`imp-tfx ingest --data DIR --out DIR`: ExampleGen..Transform on a dataset folder with LocalDagRunner.

Writes under OUT:
* `pipeline/` (artifacts) and `metadata.sqlite` (MLMD) of the local run; re-running reuses cached steps;
* `transformed_examples/Split-<split>/*.gz`, `transform_graph/` (the TFT output dir) and `rejects/`
  (summary.json + `<reason>.jsonl`): links to the run's artifacts, for the trainer;
* `ingest_summary.json`, also printed as the last stdout line:
  `{"read": N, "ingested": {split: n}, "rejected": {reason: n}}`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Dict, Optional

from components.example_gen import rejects as rejects_lib
from models import features as F

PIPELINE_NAME = "imp-ingest"
SUMMARY_FILE = "ingest_summary.json"
TRANSFORMED_EXAMPLES_DIR = "transformed_examples"
TRANSFORM_GRAPH_DIR = "transform_graph"
REJECTS_DIR = "rejects"


def beam_args(workers: int) -> list:
    """DirectRunner args: in-process for 0 workers, else multi-processing with `workers` processes."""
    if workers <= 0:
        return ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
    return ["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"]


def latest_outputs(metadata_path: str, pipeline_name: str, node_id: str) -> Dict[str, str]:
    """{output key: artifact uri} of the node's latest successful (or cached) execution in MLMD."""
    import ml_metadata as mlmd
    from ml_metadata.proto import metadata_store_pb2
    from tfx.orchestration import metadata

    store = mlmd.MetadataStore(metadata.sqlite_metadata_connection_config(metadata_path))
    context = store.get_context_by_type_and_name("node", f"{pipeline_name}.{node_id}")
    if context is None:
        raise LookupError(f"no {node_id} node in {metadata_path}")
    done = (metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED)
    executions = [e for e in store.get_executions_by_context(context.id)
                  if e.last_known_state in done]
    if not executions:
        raise LookupError(f"{node_id} has no successful execution in {metadata_path}")
    latest = max(executions, key=lambda e: e.id)
    events = [e for e in store.get_events_by_execution_ids([latest.id])
              if e.type == metadata_store_pb2.Event.OUTPUT]
    artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
    return {e.path.steps[0].key: artifacts[e.artifact_id].uri for e in events}


def _link(target: str, link: str) -> None:
    """`link` -> `target`: a symlink on local disks, a copy elsewhere (gs://, ...)."""
    import tensorflow as tf
    if os.path.islink(link):
        os.unlink(link)
    elif tf.io.gfile.exists(link):
        tf.io.gfile.rmtree(link) if tf.io.gfile.isdir(link) else tf.io.gfile.remove(link)
    if "://" in link or "://" in target:
        _copy_tree(target, link)
    else:
        os.symlink(os.path.abspath(target), link)


def _copy_tree(src: str, dst: str) -> None:
    import tensorflow as tf
    for folder, _, files in tf.io.gfile.walk(src):
        rel = os.path.relpath(folder, src)
        tf.io.gfile.makedirs(os.path.join(dst, rel))
        for name in files:
            tf.io.gfile.copy(os.path.join(folder, name), os.path.join(dst, rel, name), overwrite=True)


def run_ingestion(data: str, out: str, media: F.MediaConfig = F.DEFAULT_MEDIA,
                  text_vocab_size: Optional[int] = None, workers: int = 0,
                  pipeline_name: str = PIPELINE_NAME) -> Dict:
    """Runs the five ingestion components locally and materializes OUT (see the module docstring).

    Returns the ingestion summary.
    """
    import tensorflow as tf
    from tfx import v1 as tfx

    from components import ingestion
    from models import preprocessing

    tf.io.gfile.makedirs(out)
    parts = ingestion.make_ingestion_components(
        data, media=media,
        text_vocab_size=text_vocab_size or preprocessing.DEFAULT_TEXT_VOCAB_SIZE)
    metadata_path = os.path.join(out, "metadata.sqlite")
    pipeline = tfx.dsl.Pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=os.path.join(out, "pipeline"),
        components=parts["components"],
        enable_cache=True,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            metadata_path),
        beam_pipeline_args=beam_args(workers))
    tfx.orchestration.LocalDagRunner().run(pipeline)

    example_gen = latest_outputs(metadata_path, pipeline_name, parts["components"][0].id)
    transform = latest_outputs(metadata_path, pipeline_name, parts["components"][-1].id)
    _link(transform["transformed_examples"], os.path.join(out, TRANSFORMED_EXAMPLES_DIR))
    _link(transform["transform_graph"], os.path.join(out, TRANSFORM_GRAPH_DIR))
    _link(example_gen["ingestion_report"], os.path.join(out, REJECTS_DIR))
    summary = rejects_lib.read_summary(example_gen["ingestion_report"])
    with tf.io.gfile.GFile(os.path.join(out, SUMMARY_FILE), "w") as f:
        f.write(json.dumps(summary, sort_keys=True, indent=1) + "\n")
    return summary


def _handle(args: argparse.Namespace) -> int:
    from components import ingestion
    logging.getLogger().setLevel(logging.WARNING if args.quiet else logging.INFO)
    media = ingestion.media_config_with(
        image_size=args.image_size, video_frames=args.video_frames, video_fps=args.video_fps,
        audio_seconds=args.audio_seconds, text_max_length=args.text_max_length,
        max_caption_chars=args.max_caption_chars, max_file_bytes=args.max_file_bytes)
    try:
        summary = run_ingestion(args.data, args.out, media=media, text_vocab_size=args.vocab_size,
                                workers=args.workers)
    except FileNotFoundError as e:
        print(f"imp-tfx ingest: {e}", file=sys.stderr)
        return 2
    sys.stdout.flush()
    print(json.dumps(summary, sort_keys=True), flush=True)
    return 0


def register(subparsers, name: str) -> None:
    d = F.DEFAULT_MEDIA
    p = subparsers.add_parser(
        name, help="ingest a dataset folder through ExampleGen..Transform locally",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="dataset folder with <task>.jsonl manifests "
                   "(or span-<N>/ subfolders); local path or tf.io.gfile URI")
    p.add_argument("--out", required=True, help="output folder (pipeline root, MLMD, links)")
    p.add_argument("--vocab-size", type=int, default=None, help="target WordPiece vocabulary size")
    p.add_argument("--workers", type=int, default=0,
                   help="Beam DirectRunner worker processes (0 = in-process)")
    p.add_argument("--image-size", type=int, default=d.image_size)
    p.add_argument("--video-frames", type=int, default=d.video_frames)
    p.add_argument("--video-fps", type=float, default=d.video_fps)
    p.add_argument("--audio-seconds", type=float, default=d.audio_seconds)
    p.add_argument("--text-max-length", type=int, default=d.text_max_length)
    p.add_argument("--max-caption-chars", type=int, default=d.max_caption_chars,
                   help="longer captions are rejected")
    p.add_argument("--max-file-bytes", type=int, default=d.max_file_bytes,
                   help="larger media files are rejected")
    p.add_argument("--quiet", action="store_true", help="log warnings only")
    p.set_defaults(handler=_handle)
