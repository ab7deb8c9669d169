"""Serving overhead benchmark: REST and gRPC vs a direct in-process call of the same SavedModel.

For `embed_text` and `embed_image` at batch 1 and 8, measures sequential latency (p50/p99) and throughput
under `--concurrency` client threads, for three transports: `direct` (the loaded signature called in this
process), `grpc` and `rest` (against an `imp-tfx serve` subprocess). Prints one JSON line per
(signature, batch, transport); `overhead_p50` = transport p50 / direct p50.

    python bench/serving.py [--model-base-path BASE/NAME] [--requests 200] [--concurrency 4]

Without --model-base-path it benchmarks the fake IMP model of serving/testing.py.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import sys
import tempfile
import time
from typing import Callable, Dict, List

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def _inputs(signature: str, batch: int) -> Dict[str, np.ndarray]:
    from serving import testing

    if signature == "embed_text":
        return {"text": np.array([f"a seven moving left number {i}".encode() for i in range(batch)],
                                 dtype=object)}
    if signature == "embed_image":
        return {"image_bytes": np.array([testing.make_jpeg(i, size=64) for i in range(batch)], dtype=object)}
    raise ValueError(signature)


def _measure(call: Callable[[], object], requests: int, concurrency: int) -> Dict[str, float]:
    for _ in range(max(3, requests // 20)):  # warm up caches, connections and traced functions
        call()
    latencies: List[float] = []
    for _ in range(requests):
        start = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - start)
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda _: call(), range(requests)))
    wall = time.perf_counter() - start
    return {"p50_ms": float(np.percentile(latencies, 50) * 1e3),
            "p99_ms": float(np.percentile(latencies, 99) * 1e3),
            "throughput_rps": requests / wall}


def run(model_base_path: str, model_name: str, requests: int, concurrency: int) -> List[dict]:
    import tensorflow as tf

    from serving import testing
    from serving.client import GrpcClient, RestClient
    from serving.server.model_manager import list_versions

    version = list_versions(model_base_path)[-1]
    loaded = tf.saved_model.load(os.path.join(model_base_path, str(version)))
    rows = []
    with testing.run_server(model_base_path, model_name, poll_seconds=0) as server:
        grpc_client = GrpcClient("127.0.0.1", server.grpc_port)
        rest_client = RestClient(server.rest_url)
        for signature in ("embed_text", "embed_image"):
            function = loaded.signatures[signature]
            for batch in (1, 8):
                inputs = _inputs(signature, batch)
                calls = {
                    "direct": lambda: function(**{k: tf.constant(v) for k, v in inputs.items()}),
                    "grpc": lambda: grpc_client.predict(model_name, signature, inputs),
                    "rest": lambda: rest_client.predict(model_name, signature, inputs),
                }
                direct_p50 = None
                for transport, call in calls.items():
                    stats = _measure(call, requests, concurrency)
                    direct_p50 = direct_p50 or stats["p50_ms"]
                    row = {"bench": "serving", "signature": signature, "batch": batch, "transport": transport,
                           "requests": requests, "concurrency": concurrency,
                           **{k: round(v, 3) for k, v in stats.items()},
                           "examples_per_s": round(stats["throughput_rps"] * batch, 1),
                           "overhead_p50": round(stats["p50_ms"] / direct_p50, 2)}
                    print(json.dumps(row), flush=True)
                    rows.append(row)
        grpc_client.close()
        rest_client.close()
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-base-path", help="directory of integer versions (default: a fake IMP model)")
    parser.add_argument("--model-name", default="imp")
    parser.add_argument("--requests", type=int, default=200, help="requests per measurement")
    parser.add_argument("--concurrency", type=int, default=4, help="client threads for throughput")
    args = parser.parse_args(argv)
    if args.model_base_path:
        run(args.model_base_path, args.model_name, args.requests, args.concurrency)
        return 0
    from serving import testing

    with tempfile.TemporaryDirectory() as tmp:
        base = os.path.join(tmp, args.model_name)
        testing.write_fake_model(base, version=1, model_name=args.model_name)
        run(base, args.model_name, args.requests, args.concurrency)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
