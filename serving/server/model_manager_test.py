import os
import threading
import time

import grpc
import numpy as np
import pytest

from serving import testing
from serving.server.errors import ServingError
from serving.server.model_manager import ModelConfig, ModelManager, load_model_config_file

TEXT = {"text": np.array([b"a seven"], dtype=object)}


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    """Versions 1 and 2 of the fake model (different seeds), written once, copied into each test's base."""
    stage = str(tmp_path_factory.mktemp("stage"))
    return {v: testing.write_fake_model(stage, version=v, warmup=v == 1) for v in (1, 2)}


def _embed(manager, **spec):
    with manager.acquire("imp", **spec) as servable:
        return servable.version, servable.predict("embed_text", TEXT)[1]["embedding"]


def test_version_policies():
    assert ModelConfig("m", "/b").aspired([3, 1, 2]) == [3]
    assert ModelConfig("m", "/b", latest=2).aspired([3, 1, 2]) == [2, 3]
    assert ModelConfig("m", "/b", specific_versions=(1, 5)).aspired([1, 2, 3]) == [1]
    assert ModelConfig("m", "/b", all_versions=True).aspired([2, 1]) == [1, 2]
    assert ModelConfig("m", "/b").aspired([]) == []


def test_model_config_file(tmp_path):
    path = tmp_path / "models.config"
    path.write_text("""
model_config_list {
  config { name: "imp" base_path: "/models/imp" model_platform: "tensorflow"
           model_version_policy { specific { versions: 1 versions: 2 } }
           version_labels { key: "stable" value: 1 } version_labels { key: "canary" value: 2 } }
  config { name: "other" base_path: "/models/other" }
}""")
    imp, other = load_model_config_file(str(path))
    assert imp == ModelConfig("imp", "/models/imp", specific_versions=(1, 2),
                              version_labels={"stable": 1, "canary": 2})
    assert other == ModelConfig("other", "/models/other")


def test_loads_latest_swaps_and_drains_in_flight_requests(tmp_path, staged):
    base = str(tmp_path / "imp")
    os.makedirs(base)
    testing.copy_version(staged[1], base, 1)
    manager = ModelManager([ModelConfig("imp", base)], poll_seconds=0)
    manager.start()
    version, v1_embedding = _embed(manager)
    assert version == 1

    testing.copy_version(staged[2], base, 2)
    with manager.acquire("imp") as pinned:  # an in-flight request on version 1
        poller = threading.Thread(target=manager.poll_once)
        poller.start()
        deadline = time.monotonic() + 60
        while [s.state for _, s in manager.status("imp")] != ["AVAILABLE", "UNLOADING"]:
            assert time.monotonic() < deadline, manager.status("imp")
            time.sleep(0.05)
        # New requests already go to version 2 while the pinned one still runs on version 1.
        assert _embed(manager)[0] == 2
        assert pinned.version == 1
        np.testing.assert_allclose(pinned.predict("embed_text", TEXT)[1]["embedding"], v1_embedding)
    poller.join(timeout=30)
    assert [(v, s.state) for v, s in manager.status("imp")] == [(2, "AVAILABLE"), (1, "END")]
    with pytest.raises(ServingError) as err:
        manager.acquire("imp", version=1).__enter__()
    assert err.value.code == grpc.StatusCode.NOT_FOUND
    manager.stop()


def test_broken_version_does_not_replace_a_good_one(tmp_path, staged):
    base = str(tmp_path / "imp")
    os.makedirs(base)
    testing.copy_version(staged[1], base, 1)
    os.makedirs(os.path.join(base, "2"))
    with open(os.path.join(base, "2", "saved_model.pb"), "wb") as f:
        f.write(b"not a proto")
    manager = ModelManager([ModelConfig("imp", base, version_labels={"stable": 1})], poll_seconds=0,
                           max_load_retries=1)
    manager.start()
    manager.poll_once()  # no retry beyond max_load_retries
    (v2, s2), (v1, s1) = manager.status("imp")
    assert (v2, s2.state, s2.error_code) == (2, "END", "UNKNOWN") and s2.error_message
    assert (v1, s1.state) == (1, "AVAILABLE")
    assert _embed(manager)[0] == 1
    assert _embed(manager, label="stable")[0] == 1
    with pytest.raises(ServingError, match="Unrecognized servable version label"):
        _embed(manager, label="canary")
    manager.stop()
