"""Request errors with TF Serving's status codes, and their REST and gRPC renderings.

TF Serving reports every failure as a `tensorflow::Status`; its HTTP front end maps the code to an HTTP
status (`model_servers/http_server.cc::ToHTTPStatusCode`) and writes `{"error": "<message>"}`, while the
gRPC front end returns the same code as the RPC status. `ServingError` carries that code, so each
front end renders one error the way the real server would.
"""

from __future__ import annotations

import grpc
import tensorflow as tf

# TF error code (== gRPC code number) -> HTTP status, as TF Serving maps them.
_HTTP_STATUS = {
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}
_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


class ServingError(Exception):
    """A failed request: `code` is a `grpc.StatusCode` (the same numbers as TF's error codes)."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return _HTTP_STATUS.get(self.code, 500)

    @classmethod
    def from_tf(cls, error: tf.errors.OpError) -> "ServingError":
        """Wraps an error raised by a signature (e.g. decode_image's InvalidArgumentError)."""
        return cls(_BY_NUMBER.get(error.error_code, grpc.StatusCode.UNKNOWN), _strip_trace(error.message))


def _strip_trace(message: str) -> str:
    """Drops eager TF's "Graph execution error: Detected at node ..." preamble, keeping the op's message."""
    lines = message.splitlines()
    if not lines or not lines[0].startswith("Graph execution error"):
        return message
    markers = ("Detected at node", "<stack traces", "  File ")
    last = max((i for i, line in enumerate(lines) if line.startswith(markers)), default=0)
    rest = lines[last + 1:]
    while rest and (not rest[0].strip() or rest[0].startswith("    ")):
        rest = rest[1:]  # the traceback's source lines
    return "\n".join(rest).strip() or message


def invalid_argument(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.NOT_FOUND, message)
