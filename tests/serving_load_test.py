"""Load and hot-swap test: 16 concurrent clients (8 gRPC, 8 REST), a version swap mid-load, zero errors.

Version 2 of the fake model is written with another seed, so every response is attributable to exactly one
version by its embedding (gRPC responses also echo the version in model_spec).
"""

import threading
import time

import numpy as np
import tensorflow as tf

from serving import testing
from serving.client import GrpcClient, RestClient

MODEL = "imp"
CLIENTS_PER_PROTOCOL = 8
REQUESTS_PER_CLIENT = 200          # 16 x 200 = 3200 requests
SWAP_AFTER_FRACTION = 0.3
TIME_LIMIT_SECONDS = 60.0
TEXTS = ["a seven moving left", "an eight", "the digit two moving up"]


def _expected(version_dir):
    loaded = tf.saved_model.load(version_dir)
    return loaded.signatures["embed_text"](text=tf.constant(TEXTS))["embedding"].numpy()


def test_hot_swap_under_concurrent_load(tmp_path):
    base = tmp_path / "serving" / MODEL
    v1_dir = testing.write_fake_model(str(base), version=1, model_name=MODEL)
    v2_staged = testing.write_fake_model(str(tmp_path / "staging"), version=2, model_name=MODEL)
    expected = {1: _expected(v1_dir), 2: _expected(v2_staged)}
    assert not np.allclose(expected[1], expected[2], atol=1e-3)

    def version_of(embedding):
        matches = [v for v, e in expected.items() if np.allclose(embedding, e, rtol=1e-4, atol=1e-5)]
        assert len(matches) == 1, "response matches neither version's embeddings"
        return matches[0]

    total = 2 * CLIENTS_PER_PROTOCOL * REQUESTS_PER_CLIENT
    done = [0]
    lock = threading.Lock()
    errors, results = [], {}  # results[client] = [(start time, version)]

    with testing.run_server(str(base), MODEL, poll_seconds=0.25) as server:
        def run(index, client):
            # Each client sends its share, and keeps going (within the time limit) until it has been
            # answered by version 2 a few times, however long the swap takes on a busy machine.
            records = results.setdefault(index, [])
            deadline = time.monotonic() + TIME_LIMIT_SECONDS
            while len(records) < REQUESTS_PER_CLIENT or sum(v == 2 for _, v in records[-10:]) < 10:
                if time.monotonic() > deadline:
                    errors.append((index, "time limit"))
                    break
                started = time.monotonic()
                try:
                    out = client.predict(MODEL, "embed_text", {"text": TEXTS})["embedding"]
                    version = version_of(out)
                    if isinstance(client, GrpcClient):
                        assert client.last_model_spec.version.value == version
                    records.append((started, version))
                except Exception as e:  # every failure counts; the test asserts there are none
                    errors.append((index, repr(e)))
                    break
                with lock:
                    done[0] += 1

        clients = ([GrpcClient("127.0.0.1", server.grpc_port) for _ in range(CLIENTS_PER_PROTOCOL)]
                   + [RestClient(server.rest_url) for _ in range(CLIENTS_PER_PROTOCOL)])
        threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(clients)]
        start = time.monotonic()
        for t in threads:
            t.start()
        while done[0] < SWAP_AFTER_FRACTION * total and any(t.is_alive() for t in threads):
            time.sleep(0.02)
        testing.copy_version(v2_staged, str(base), 2)
        for t in threads:
            t.join()
        elapsed = time.monotonic() - start
        status_client = RestClient(server.rest_url)
        for _ in range(50):  # version 1 ends once its last in-flight request has drained
            status = status_client.model_status(MODEL)
            if status[-1]["state"] == "END":
                break
            time.sleep(0.1)
        log = server.log_text()

    assert not errors, errors[:5]
    sent = sum(len(r) for r in results.values())
    assert sent >= total
    assert elapsed < TIME_LIMIT_SECONDS
    versions = [v for r in results.values() for _, v in r]
    assert versions.count(1) > 0 and versions.count(2) > 0
    # Every client ends on version 2, and never goes back to 1 once it has seen 2 (atomic swap).
    for records in results.values():
        seen = [v for _, v in sorted(records)]
        assert seen[-1] == 2
        assert 1 not in seen[seen.index(2):]
    assert status == [
        {"version": 2, "state": "AVAILABLE", "error_code": "OK", "error_message": ""},
        {"version": 1, "state": "END", "error_code": "OK", "error_message": ""}]
    assert log.count("Starting to read warmup data") == 2
    print(f"\n{sent} requests in {elapsed:.1f}s ({sent / elapsed:.0f}/s), "
          f"{versions.count(1)} from v1, {versions.count(2)} from v2")
