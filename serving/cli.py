"""`imp-tfx serve`, `imp-tfx query` and `imp-tfx export`.

    imp-tfx serve --model-base-path BASE/NAME --model-name NAME [--rest-port 8501] [--grpc-port 8500]
    imp-tfx query --server grpc://127.0.0.1:8500 --model NAME --text "a seven moving left"
    imp-tfx query --server http://127.0.0.1:8501 --model NAME --image x.jpg --labels seven,eight
    imp-tfx query --server ... --model NAME --retrieve-text "a seven moving left" --folder DIR
    imp-tfx query --server ... --model NAME --video clip.mp4 --rank-texts "a seven" --rank-texts "a two"
    imp-tfx export --checkpoint DIR --base BASE --name NAME
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import List


def register(subparsers, name: str) -> None:
    {"serve": _register_serve, "query": _register_query, "export": _register_export}[name](subparsers, name)


# ------------------------------------------------------------------------------------------- serve


def _register_serve(subparsers, name: str) -> None:
    p = subparsers.add_parser(name, help="serve SavedModels over TF Serving's REST and gRPC APIs")
    p.add_argument("--model-base-path", help="directory of integer version subdirectories")
    p.add_argument("--model-name", default="default",
                   help="model name in request paths (default: %(default)s)")
    p.add_argument("--model-config-file",
                   help="TF Serving text-proto model_config_list (instead of --model-base-path/--model-name)")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: %(default)s)")
    p.add_argument("--rest-port", type=int, default=8501, help="REST port, 0 disables (default: %(default)s)")
    p.add_argument("--grpc-port", type=int, default=8500, help="gRPC port, 0 disables (default: %(default)s)")
    p.add_argument("--poll-seconds", type=float, default=2.0,
                   help="file-system poll period for new versions; 0 = never (default: %(default)s)")
    p.add_argument("--max-request-bytes", type=int, default=64 * 1024 * 1024,
                   help="REST body / gRPC message limit (default: 64 MiB)")
    p.add_argument("--num-threads", type=int, default=16,
                   help="request worker threads (default: %(default)s)")
    p.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s] %(message)s")
    from serving.server.app import ServerOptions, serve
    from serving.server.model_manager import ModelConfig, load_model_config_file

    if bool(args.model_config_file) == bool(args.model_base_path):
        print("imp-tfx serve: give exactly one of --model-base-path or --model-config-file", file=sys.stderr)
        return 2
    models = (load_model_config_file(args.model_config_file) if args.model_config_file
              else [ModelConfig(args.model_name, args.model_base_path)])
    return serve(ServerOptions(models=models, host=args.host, rest_port=args.rest_port,
                               grpc_port=args.grpc_port, poll_seconds=args.poll_seconds,
                               max_request_bytes=args.max_request_bytes, num_threads=args.num_threads))


# ------------------------------------------------------------------------------------------- query


def _register_query(subparsers, name: str) -> None:
    p = subparsers.add_parser(
        name, help="embed, classify zero-shot or retrieve against a TF Serving endpoint")
    p.add_argument("--server", required=True, help="grpc://HOST:PORT or http://HOST:PORT")
    p.add_argument("--model", required=True, help="served model name")
    p.add_argument("--version", type=int, help="model version (default: the latest)")
    p.add_argument("--text", action="append", default=[], help="text to embed (repeatable)")
    for kind in ("image", "audio", "video"):
        p.add_argument(f"--{kind}", action="append", default=[], metavar="PATH",
                       help=f"{kind} file (repeatable)")
    p.add_argument("--labels", help="zero-shot: comma-separated class names, scored for each media file")
    p.add_argument("--prompt", action="append", default=[], metavar="TEMPLATE",
                   help="zero-shot prompt template with {label} (repeatable; default: per-kind ensemble)")
    p.add_argument("--retrieve-text", metavar="TEXT", help="rank the media files of --folder by this text")
    p.add_argument("--folder", help="folder of media files for --retrieve-text")
    p.add_argument("--rank-texts", action="append", default=[], metavar="TEXT",
                   help="rank these texts by similarity to the one media file given (repeatable)")
    p.add_argument("--top-k", type=int, help="keep the best K retrieval results")
    p.set_defaults(handler=_query)


def _media_args(args: argparse.Namespace):
    return [(kind, path) for kind in ("image", "audio", "video") for path in getattr(args, kind)]


def _query(args: argparse.Namespace) -> int:
    from components.example_gen.rejects import RejectedMedia
    from serving.client import ServingClientError, connect
    from serving.query import Querier

    media = _media_args(args)
    querier = Querier(connect(args.server), args.model, version=args.version)
    try:
        if args.labels:
            labels = [label.strip() for label in args.labels.split(",") if label.strip()]
            if not media or not labels:
                return _usage("--labels needs class names and at least one --image/--audio/--video")
            results = [querier.zero_shot(kind, path, labels, args.prompt or None) for kind, path in media]
        elif args.retrieve_text:
            if not args.folder:
                return _usage("--retrieve-text needs --folder")
            results = [querier.retrieve_media(args.retrieve_text, args.folder, args.top_k)]
        elif args.rank_texts:
            if len(media) != 1:
                return _usage("--rank-texts needs exactly one --image/--audio/--video")
            results = [querier.rank_texts(media[0][0], media[0][1], args.rank_texts, args.top_k)]
        else:
            if not media and not args.text:
                return _usage("nothing to do: give --text, a media file, --labels or --retrieve-text")
            results = []
            if args.text:
                for text, vector in zip(args.text, querier.embed_texts(args.text)):
                    results.append({"text": text, "embedding": vector.tolist()})
            for kind, path in media:
                results.append({"file": path, "kind": kind,
                                "embedding": querier.embed_files(kind, [path])[0].tolist()})
    except ServingClientError as e:
        print(f"imp-tfx query: server error {e.code}: {e.message}", file=sys.stderr)
        return 1
    except (RejectedMedia, OSError, ValueError) as e:
        print(f"imp-tfx query: {e}", file=sys.stderr)
        return 1
    print(json.dumps(results if len(results) != 1 else results[0], indent=1))
    return 0


def _usage(message: str) -> int:
    print(f"imp-tfx query: {message}", file=sys.stderr)
    return 2


# ------------------------------------------------------------------------------------------- export


def _register_export(subparsers, name: str) -> None:
    p = subparsers.add_parser(name, help="export a checkpoint as a TF Serving SavedModel")
    p.add_argument("--checkpoint", required=True, metavar="DIR", help="training checkpoint directory")
    p.add_argument("--base", required=True, metavar="BASE", help="serving base directory (BASE/NAME/VERSION)")
    p.add_argument("--name", required=True, metavar="NAME", help="model name")
    p.add_argument("--version", type=int, default=None,
                   help="version number to write (default: one after the newest under BASE/NAME)")
    p.add_argument("--transform-graph", default=None, metavar="DIR",
                   help="Transform output dir holding the vocabularies (default: searched near the checkpoint)")
    p.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    from serving import export

    return int(export.run_export_command(args) or 0)


def main(argv: List[str] = None) -> int:  # `python -m serving.cli serve ...`, same as `imp-tfx serve ...`
    from imp_tfx.cli import main as imp_main

    return imp_main(argv)


if __name__ == "__main__":
    sys.exit(main())
