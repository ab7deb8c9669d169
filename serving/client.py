"""Clients for TF Serving (the real server or ours): gRPC via tensorflow-serving-api stubs, and REST.

Both expose the same interface:

    client = GrpcClient("127.0.0.1", 8500)          # or RestClient("http://127.0.0.1:8501")
    out = client.predict("imp", "embed_text", {"text": ["a seven moving left"]})
    out["embedding"]                                # float32 [1, dim]
    client.model_status("imp")                      # [{"version": 1, "state": "AVAILABLE", ...}]

Inputs are numpy arrays or (nested) lists; str values are sent as UTF-8, bytes as binary strings.
Outputs come back as numpy arrays (DT_STRING -> object arrays of bytes).
"""

from __future__ import annotations

import base64
import http.client
import json
import threading
import urllib.parse
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

ArrayLike = Union[np.ndarray, Sequence[Any]]


class ServingClientError(RuntimeError):
    """A request the server refused: `code` is the gRPC status name or the HTTP status number."""

    def __init__(self, code: Union[str, int], message: str):
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


def _as_array(value: ArrayLike) -> np.ndarray:
    array = np.asarray(value, dtype=object if _is_textual(value) else None)
    if array.dtype.kind in "SU":
        array = array.astype(object)
    if array.dtype == object:
        flat = [v.encode("utf-8") if isinstance(v, str) else v for v in array.reshape(-1)]
        encoded = np.empty(len(flat), dtype=object)
        encoded[:] = flat
        array = encoded.reshape(array.shape)
    return array


def _is_textual(value: Any) -> bool:
    while isinstance(value, (list, tuple)) and value:
        value = value[0]
    return isinstance(value, (str, bytes))


def _state_dicts(statuses) -> List[Dict[str, Any]]:
    return [{"version": int(s["version"]), "state": s["state"],
             "error_code": s.get("status", {}).get("error_code", "OK"),
             "error_message": s.get("status", {}).get("error_message", "")} for s in statuses]


class GrpcClient:
    """PredictionService / ModelService stubs over one insecure channel."""

    def __init__(self, host: str, port: int, timeout: float = 60.0,
                 max_message_bytes: int = 256 * 1024 * 1024):
        import grpc
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        self._channel = grpc.insecure_channel(
            f"{host}:{port}", options=[("grpc.max_receive_message_length", max_message_bytes),
                                       ("grpc.max_send_message_length", max_message_bytes)])
        self._predict = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)
        self._timeout = timeout
        self.last_model_spec = None  # the response's model_spec echo of the last predict()

    def predict(self, model: str, signature: str, inputs: Mapping[str, ArrayLike],
                version: Optional[int] = None, output_filter: Sequence[str] = ()) -> Dict[str, np.ndarray]:
        import grpc
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        request.model_spec.signature_name = signature
        if version is not None:
            request.model_spec.version.value = version
        for key, value in inputs.items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(_as_array(value)))
        request.output_filter.extend(output_filter)
        try:
            response = self._predict.Predict(request, timeout=self._timeout)
        except grpc.RpcError as e:
            raise ServingClientError(e.code().name, e.details()) from None
        self.last_model_spec = response.model_spec
        return {k: tf.make_ndarray(v) for k, v in response.outputs.items()}

    def model_status(self, model: str, version: Optional[int] = None) -> List[Dict[str, Any]]:
        import grpc
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = model
        if version is not None:
            request.model_spec.version.value = version
        try:
            response = self._models.GetModelStatus(request, timeout=self._timeout)
        except grpc.RpcError as e:
            raise ServingClientError(e.code().name, e.details()) from None
        as_dict = json_format.MessageToDict(response, preserving_proto_field_name=True,
                                            including_default_value_fields=True)
        return _state_dicts(as_dict["model_version_status"])

    def signature_inputs(self, model: str, signature: str) -> List[str]:
        """Input aliases of a signature (GetModelMetadata)."""
        import grpc
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = model
        try:
            response = self._predict.GetModelMetadata(request, timeout=self._timeout)
        except grpc.RpcError as e:
            raise ServingClientError(e.code().name, e.details()) from None
        signatures = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signatures)
        if signature not in signatures.signature_def:
            raise ServingClientError("NOT_FOUND", f"model {model} has no signature {signature}")
        return sorted(signatures.signature_def[signature].inputs)

    def close(self) -> None:
        self._channel.close()


class RestClient:
    """TF Serving's REST API with the columnar (`inputs`/`outputs`) format and b64 binary strings.

    Keeps one persistent HTTP/1.1 connection per thread (stdlib http.client, lighter per request than
    `requests`); the client is safe to share between threads.
    """

    def __init__(self, base_url: str, timeout: float = 60.0):
        url = urllib.parse.urlsplit(base_url.rstrip("/"))
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"expected http://HOST:PORT, got {base_url!r}")
        self._scheme, self._host = url.scheme, url.hostname
        self._port = url.port or (443 if url.scheme == "https" else 80)
        self._prefix = url.path
        self._timeout = timeout
        self._local = threading.local()
        self._output_names: Dict[tuple, List[str]] = {}

    def _connection(self, fresh: bool = False) -> http.client.HTTPConnection:
        if fresh or not hasattr(self._local, "connection"):
            if hasattr(self._local, "connection"):
                self._local.connection.close()
            factory = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
            self._local.connection = factory(self._host, self._port, timeout=self._timeout)
        return self._local.connection

    def _call(self, method: str, path: str, body: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json"} if data is not None else {}
        for attempt in (0, 1):  # a kept-alive connection the server has closed fails once: reconnect
            connection = self._connection(fresh=attempt == 1)
            try:
                connection.request(method, self._prefix + path, body=data, headers=headers)
                response = connection.getresponse()
                raw = response.read()
                break
            except (http.client.RemoteDisconnected, http.client.CannotSendRequest, ConnectionError):
                if attempt == 1:
                    raise
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = {"error": raw.decode("utf-8", errors="replace")}
        if response.status != 200:
            raise ServingClientError(response.status, payload.get("error", str(payload)))
        return payload

    @staticmethod
    def _model_path(model: str, version: Optional[int]) -> str:
        return f"/v1/models/{model}" + (f"/versions/{version}" if version is not None else "")

    def predict(self, model: str, signature: str, inputs: Mapping[str, ArrayLike],
                version: Optional[int] = None) -> Dict[str, np.ndarray]:
        body = {"signature_name": signature,
                "inputs": {k: _to_json(k, _as_array(v)) for k, v in inputs.items()}}
        outputs = self._call("POST", self._model_path(model, version) + ":predict", body)["outputs"]
        if not isinstance(outputs, dict) or set(outputs) == {"b64"}:
            # A single-output signature's response carries the bare value; its alias is in the metadata.
            key = (model, version, signature)
            if key not in self._output_names:
                self._output_names[key] = sorted(self._signature(model, version, signature)["outputs"])
            (name,) = self._output_names[key]
            outputs = {name: outputs}
        return {k: _from_json(k, v) for k, v in outputs.items()}

    def model_status(self, model: str, version: Optional[int] = None) -> List[Dict[str, Any]]:
        return _state_dicts(self._call("GET", self._model_path(model, version))["model_version_status"])

    def metadata(self, model: str, version: Optional[int] = None) -> Dict[str, Any]:
        return self._call("GET", self._model_path(model, version) + "/metadata")

    def _signature(self, model: str, version: Optional[int], signature: str) -> Dict[str, Any]:
        signatures = self.metadata(model, version)["metadata"]["signature_def"]["signature_def"]
        if signature not in signatures:
            raise ServingClientError(404, f"model {model} has no signature {signature}")
        return signatures[signature]

    def signature_inputs(self, model: str, signature: str) -> List[str]:
        return sorted(self._signature(model, None, signature)["inputs"])

    def close(self) -> None:
        if hasattr(self._local, "connection"):
            self._local.connection.close()


def _to_json(name: str, array: np.ndarray) -> Any:
    """Strings travel as JSON text when they are UTF-8 (and the alias is not `*_bytes`), else as b64."""
    if array.dtype != object:
        return array.tolist()
    binary = name.endswith("_bytes")

    def leaf(value: bytes) -> Any:
        if not binary:
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                pass
        return {"b64": base64.b64encode(value).decode("ascii")}

    return _map_nested(array.tolist(), leaf)


def _map_nested(node: Any, fn) -> Any:
    return [_map_nested(child, fn) for child in node] if isinstance(node, list) else fn(node)


def _from_json(name: str, value: Any) -> np.ndarray:
    probe = value
    while isinstance(probe, list) and probe:
        probe = probe[0]
    if isinstance(probe, dict) or isinstance(probe, str):
        def leaf(v):
            return base64.b64decode(v["b64"]) if isinstance(v, dict) else v.encode("utf-8")
        return np.vectorize(leaf, otypes=[object])(np.array(value, dtype=object))
    return np.asarray(value, dtype=np.float32 if isinstance(probe, float) else None)


def connect(server: str):
    """`grpc://host:port` -> GrpcClient, `http://host:port` -> RestClient."""
    if server.startswith("grpc://"):
        host, _, port = server[len("grpc://"):].rstrip("/").rpartition(":")
        return GrpcClient(host, int(port))
    if server.startswith(("http://", "https://")):
        return RestClient(server)
    raise ValueError(f"--server must start with grpc:// or http://, got {server!r}")
