"""TF Serving's REST API (`g3doc/api_rest.md`) on aiohttp.

    POST /v1/models/NAME[/versions/V | /labels/L]:predict     row or columnar JSON
    GET  /v1/models/NAME[/versions/V | /labels/L]             model version status
    GET  /v1/models/NAME[/versions/V | /labels/L]/metadata    signature_def map

The event loop only moves bytes: JSON parsing, TensorFlow calls and JSON encoding run in a thread pool.
Errors are `{"error": "<message>"}` with TF Serving's HTTP status for the error code.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import re
from typing import Callable, Optional

import grpc
from aiohttp import web

from serving.server import responses, tensor_codec
from serving.server.errors import ServingError, invalid_argument
from serving.server.model_manager import ModelManager

log = logging.getLogger(__name__)

_MODEL = r"/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
_PREDICT = re.compile(_MODEL + r":(?P<method>classify|regress|predict)", re.IGNORECASE)
_STATUS = re.compile(_MODEL, re.IGNORECASE)
_METADATA = re.compile(_MODEL + r"/metadata", re.IGNORECASE)

JSON_CONTENT_TYPE = "application/json"


def _json_response(payload, status: int = 200) -> web.Response:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode("utf-8")
    return web.Response(body=body, status=status, content_type=JSON_CONTENT_TYPE)


def _error_response(error: ServingError) -> web.Response:
    return _json_response({"error": error.message}, status=error.http_status)


class RestApi:
    """Request handlers bound to a ModelManager; `app()` builds the aiohttp application."""

    def __init__(self, manager: ModelManager, executor: concurrent.futures.Executor,
                 max_request_bytes: int):
        self._manager = manager
        self._executor = executor
        self._max_request_bytes = max_request_bytes

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self._max_request_bytes)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    async def _dispatch(self, request: web.Request) -> web.Response:
        path, method = request.path, request.method
        try:
            if method == "POST" and (m := _PREDICT.fullmatch(path)):
                raw = await self._read_body(request)
                return _json_response(await self._run(lambda: self._predict(m, raw)))
            if method == "GET" and (m := _METADATA.fullmatch(path)):
                return _json_response(await self._run(lambda: self._metadata(m)))
            if method == "GET" and (m := _STATUS.fullmatch(path)):
                return _json_response(await self._run(lambda: self._status(m)))
            if not path.lower().startswith("/v1/"):
                return _json_response({"error": f"Not found: {path}"}, status=404)
            raise invalid_argument(f"Malformed request: {method} {path}")
        except ServingError as e:
            if e.http_status >= 500:
                log.error("%s %s failed: %s", method, path, e.message)
            return _error_response(e)
        except Exception as e:  # a server bug: answer like TF Serving's INTERNAL and keep serving
            log.exception("%s %s failed", method, path)
            return _json_response({"error": f"Internal error: {e!r}"}, status=500)

    async def _read_body(self, request: web.Request) -> bytes:
        limit = self._max_request_bytes
        if request.content_length is not None and request.content_length > limit:
            raise _TooLarge(request.content_length, limit)
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise _TooLarge(None, limit) from None

    async def _run(self, fn: Callable[[], bytes]) -> bytes:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    # -- blocking work (thread pool) ------------------------------------------------------------------

    @staticmethod
    def _version(match: re.Match) -> Optional[int]:
        return int(match["version"]) if match["version"] else None

    def _predict(self, match: re.Match, raw: bytes) -> bytes:
        if match["method"].lower() != "predict":
            raise ServingError(grpc.StatusCode.UNIMPLEMENTED,
                               f"{match['method']} is not supported by this server; the IMP "
                               "signatures are Predict signatures")
        body = tensor_codec.parse_json_body(raw)
        signature_name = body.get("signature_name", "")
        if not isinstance(signature_name, str):
            raise invalid_argument("'signature_name' must be a string")
        with self._manager.acquire(match["name"], self._version(match), match["label"]) as servable:
            resolved, signature = servable.signature_def(signature_name)
            inputs, fmt = tensor_codec.decode_predict_inputs(body, signature.inputs)
            _, outputs = servable.predict(resolved, inputs)
        return json.dumps(tensor_codec.encode_predict_outputs(outputs, fmt)).encode("utf-8")

    def _status(self, match: re.Match) -> bytes:
        status = responses.model_status(self._manager, match["name"], self._version(match), match["label"])
        return json.dumps(responses.to_json_dict(status), indent=1).encode("utf-8")

    def _metadata(self, match: re.Match) -> bytes:
        metadata = responses.model_metadata(self._manager, match["name"], self._version(match),
                                            match["label"])
        return json.dumps(responses.metadata_json(metadata), indent=1).encode("utf-8")


class _TooLarge(ServingError):
    """413: the body exceeds --max-request-bytes (aiohttp's client_max_size)."""

    def __init__(self, size: Optional[int], limit: int):
        what = f"{size} bytes" if size is not None else "more bytes"
        super().__init__(grpc.StatusCode.RESOURCE_EXHAUSTED,
                         f"Request body of {what} exceeds the limit of {limit} bytes")

    @property
    def http_status(self) -> int:
        return 413
