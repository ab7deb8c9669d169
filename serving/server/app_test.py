import socket

import numpy as np
import portpicker
import pytest

from serving import testing
from serving.client import GrpcClient, RestClient
from serving.server.app import ModelServer, ServerOptions
from serving.server.model_manager import ModelConfig


def _port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_in_process_server_serves_both_apis_and_releases_ports(tmp_path):
    base = str(tmp_path / "imp")
    testing.write_fake_model(base, version=3, warmup=False)
    rest_port, grpc_port = portpicker.pick_unused_port(), portpicker.pick_unused_port()
    server = ModelServer(ServerOptions(models=[ModelConfig("imp", base)], rest_port=rest_port,
                                       grpc_port=grpc_port, poll_seconds=0, num_threads=2))
    server.start()
    try:
        rest, grpc_client = RestClient(f"http://127.0.0.1:{rest_port}"), GrpcClient("127.0.0.1", grpc_port)
        assert rest.model_status("imp")[0]["version"] == 3
        texts = {"text": ["a three"]}
        np.testing.assert_allclose(rest.predict("imp", "embed_text", texts)["embedding"],
                                   grpc_client.predict("imp", "embed_text", texts)["embedding"], rtol=1e-6)
        assert grpc_client.last_model_spec.version.value == 3
        rest.close()
        grpc_client.close()
    finally:
        server.stop()
    assert _port_is_free(rest_port) and _port_is_free(grpc_port)


def test_rest_port_in_use_fails_start(tmp_path):
    base = str(tmp_path / "imp")
    testing.write_fake_model(base, version=1, warmup=False)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = ModelServer(ServerOptions(models=[ModelConfig("imp", base)], rest_port=taken.getsockname()[1],
                                           grpc_port=0, poll_seconds=0))
        with pytest.raises(OSError):
            server.start()
