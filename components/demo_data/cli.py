"""`imp-tfx demo-data`: writes the procedural demo dataset and prints a JSON summary line on stdout."""

from __future__ import annotations

import argparse
import json
import sys

from components.demo_data.manifest import TASKS


def _tasks(value: str):
    tasks = [name.strip() for name in value.split(",") if name.strip()]
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown or not tasks:
        raise argparse.ArgumentTypeError(f"unknown tasks {unknown}; choose from {','.join(TASKS)}")
    return tasks


def _log_to_stderr(message: str) -> None:
    print(f"[demo-data] {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from components.demo_data.generator import generate_demo_dataset

    summary = generate_demo_dataset(args.out, examples=args.examples, seed=args.seed,
                                    tasks=args.tasks, span=args.span, progress=_log_to_stderr)
    print(json.dumps(summary), flush=True)
    return 0


def register(subparsers, name: str) -> None:
    parser = subparsers.add_parser(
        name, help="generate the procedural 'digits world' demo dataset",
        description="Writes handwritten-digit images, moving-digit videos, spoken captions and videos "
                    "with a spoken audio track, as media files plus one JSONL manifest per task. "
                    "Progress goes to stderr; a JSON summary line to stdout.")
    parser.add_argument("--out", required=True, help="dataset folder (created; a previous demo "
                                                     "dataset there is replaced)")
    parser.add_argument("--examples", type=int, default=600,
                        help="total examples across tasks (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="generation seed (default: %(default)s)")
    parser.add_argument("--span", type=int, default=None,
                        help="write a new data span under OUT/span-N/ with its own randomness")
    parser.add_argument("--tasks", type=_tasks, default=None,
                        help=f"comma-separated subset of {','.join(TASKS)} (default: all)")
    parser.set_defaults(handler=run)
