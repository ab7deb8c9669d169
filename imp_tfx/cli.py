"""The `imp-tfx` console script: one CLI, one subcommand per job.

Each subcommand lives beside the code it drives, in a module exposing `register(subparsers)`; that
function adds its parser and sets `handler` (a callable taking the parsed args and returning an exit
code). Modules are imported lazily, only when their command runs, so `imp-tfx --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Dict, List, Optional

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# command name -> (module defining register(), one-line help)
COMMANDS: Dict[str, tuple] = {
    "smoke": ("models.smoke", "build a model and run one forward/backward pass (quick install check)"),
    "demo-data": ("components.demo_data.cli", "generate the procedural 'digits world' demo dataset"),
    "ingest": ("components.cli", "ingest a dataset folder through ExampleGen..Transform locally"),
    "train": ("models.training.cli", "AGD training of an IMP model from TFRecords"),
    "export": ("serving.cli", "export a checkpoint as a TF Serving SavedModel"),
    "serve": ("serving.cli", "serve SavedModels over TF Serving's REST and gRPC APIs"),
    "query": ("serving.cli", "embed, classify zero-shot or retrieve against a TF Serving endpoint"),
    "pipeline": ("pipeline.cli", "run or compile the TFX pipeline"),
    "retrain": ("pipeline.cli", "one scheduled-retraining round on a new data span"),
    "demo": ("pipeline.cli", "the main job: demo data -> pipeline -> serving -> example queries"),
}


def _available() -> Dict[str, tuple]:
    out = {}
    for name, (module, help_text) in COMMANDS.items():
        if importlib.util.find_spec(module.split(".")[0]) is None:
            continue
        try:
            if importlib.util.find_spec(module) is None:
                continue
        except ModuleNotFoundError:
            continue
        out[name] = (module, help_text)
    return out


def build_parser(command: Optional[str] = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imp-tfx", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in _available().items():
        if command is not None and name == command:
            importlib.import_module(module).register(sub, name)
        else:
            sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and not argv[0].startswith("-") else None
    if command is not None and command not in _available():
        build_parser().print_usage(sys.stderr)
        print(f"imp-tfx: unknown command {command!r}; choose one of {sorted(_available())}",
              file=sys.stderr)
        return 2
    parser = build_parser(command)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
