"""Tensors <-> TF Serving's wire formats: REST JSON (row and columnar) and gRPC TensorProto.

REST (`g3doc/api_rest.md`):
* row format: `{"signature_name": s, "instances": [...]}` -> `{"predictions": [...]}`. With one signature
  input an instance is that input's value; otherwise an instance is `{input_name: value}`. Every input
  (and output) is stacked along a leading batch axis, so all must share the batch size.
* columnar format: `{"inputs": value | {input_name: value}}` -> `{"outputs": value | {name: value}}`; each
  value is the whole tensor, so inputs may have different leading sizes.
* binary strings travel as `{"b64": "<base64>"}`; outputs whose alias ends in `_bytes` are encoded so.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
from typing import Any, Dict, List, Mapping, Tuple

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.protobuf import meta_graph_pb2

from serving.server.errors import invalid_argument

BYTES_SUFFIX = "_bytes"


class JsonFormat(enum.Enum):
    ROW = "row"            # instances -> predictions
    COLUMNAR = "columnar"  # inputs -> outputs


# --------------------------------------------------------------------------------------- TensorProto


def ndarray_to_proto(value: Any, dtype: tf.DType | None = None) -> tensor_pb2.TensorProto:
    """numpy array / nested list (str or bytes for DT_STRING) -> TensorProto."""
    return tf.make_tensor_proto(value, dtype=dtype)


def proto_to_ndarray(proto: tensor_pb2.TensorProto) -> np.ndarray:
    """TensorProto -> numpy array (DT_STRING becomes an object array of bytes)."""
    try:
        return tf.make_ndarray(proto)
    except (TypeError, ValueError) as e:
        raise invalid_argument(f"Malformed TensorProto: {e}") from e


# --------------------------------------------------------------------------------------- JSON -> tensors


def parse_json_body(raw: bytes) -> Dict[str, Any]:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise invalid_argument(f"JSON Parse error: {e}") from e
    if not isinstance(body, dict):
        raise invalid_argument("JSON Value: request body is not an object")
    return body


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and "b64" in value


def _leaf_to_python(leaf: Any, dtype: tf.DType, name: str) -> Any:
    if dtype == tf.string:
        if _is_b64(leaf):
            if not isinstance(leaf["b64"], str):
                raise invalid_argument(f"'b64' value of {name} is not a string")
            try:
                return base64.b64decode(leaf["b64"], validate=True)
            except (binascii.Error, ValueError) as e:
                raise invalid_argument(f"Unable to base64 decode value of {name}: {e}") from e
        if isinstance(leaf, str):
            return leaf.encode("utf-8")
        raise invalid_argument(
            f"JSON Value: {json.dumps(leaf)} Type: {type(leaf).__name__} is not of expected type: string "
            f"(tensor {name})")
    if _is_b64(leaf) or isinstance(leaf, (str, dict)) or leaf is None:
        raise invalid_argument(
            f"JSON Value: {json.dumps(leaf)} Type: {type(leaf).__name__} is not of expected type: "
            f"{dtype.name} (tensor {name})")
    # JSON has one number type: refuse what the dtype would silently truncate or reinterpret.
    is_bool, is_int = isinstance(leaf, bool), isinstance(leaf, int) and not isinstance(leaf, bool)
    if ((dtype == tf.bool and not is_bool) or (dtype.is_integer and not is_int)
            or (dtype.is_floating and is_bool)):
        raise invalid_argument(
            f"JSON Value: {json.dumps(leaf)} is not of expected type: {dtype.name} (tensor {name})")
    return leaf


def json_to_ndarray(value: Any, dtype: tf.DType, name: str) -> np.ndarray:
    """A (nested, rectangular) JSON value -> numpy array of `dtype`; DT_STRING -> object array of bytes."""
    shape: List[int] = []
    probe = value
    while isinstance(probe, list):
        shape.append(len(probe))
        if not probe:
            break
        probe = probe[0]
    flat: List[Any] = []

    def walk(node: Any, depth: int) -> None:
        if depth == len(shape):
            if isinstance(node, list):
                raise invalid_argument(f"Tensor {name} has ragged (non-rectangular) nested lists")
            flat.append(_leaf_to_python(node, dtype, name))
            return
        if not isinstance(node, list) or len(node) != shape[depth]:
            raise invalid_argument(
                f"Tensor {name} has ragged nested lists: expecting {shape[depth]} values at depth "
                f"{depth}, all lists of one level must have the same length")
        for child in node:
            walk(child, depth + 1)

    walk(value, 0)
    if dtype == tf.string:
        array = np.empty(len(flat), dtype=object)
        array[:] = flat
        return array.reshape(shape)
    try:
        return np.asarray(flat, dtype=dtype.as_numpy_dtype).reshape(shape)
    except (TypeError, ValueError, OverflowError) as e:
        raise invalid_argument(f"Tensor {name}: values are not of expected type {dtype.name}: {e}") from e


def decode_predict_inputs(
    body: Mapping[str, Any], input_infos: Mapping[str, meta_graph_pb2.TensorInfo]
) -> Tuple[Dict[str, np.ndarray], JsonFormat]:
    """REST predict body -> ({input name: array}, format). `input_infos` is the signature's inputs."""
    has_rows, has_cols = "instances" in body, "inputs" in body
    if has_rows == has_cols:
        raise invalid_argument(
            "Missing 'inputs' or 'instances' key" if not has_rows else
            "Not formatted correctly expecting only one of 'inputs' or 'instances' keys exists")
    dtypes = {k: tf.dtypes.as_dtype(info.dtype) for k, info in input_infos.items()}
    if has_cols:
        columns = body["inputs"]
        if not (isinstance(columns, dict) and not _is_b64(columns)):
            if len(dtypes) != 1:
                raise invalid_argument(
                    f"'inputs' must name its tensors: the signature has {len(dtypes)} inputs "
                    f"{sorted(dtypes)}")
            columns = {next(iter(dtypes)): columns}
        inputs = {k: json_to_ndarray(v, _dtype_for(dtypes, k), k) for k, v in columns.items()}
        return inputs, JsonFormat.COLUMNAR

    rows = body["instances"]
    if not isinstance(rows, list):
        raise invalid_argument("Expecting 'instances' to be an list/array")
    if not rows:
        raise invalid_argument("'instances' is empty")
    named = all(isinstance(r, dict) and not _is_b64(r) for r in rows)
    if not named:
        if len(dtypes) != 1:
            raise invalid_argument(
                f"Expecting object (named inputs) as instances: the signature has {len(dtypes)} inputs "
                f"{sorted(dtypes)}")
        name = next(iter(dtypes))
        return {name: json_to_ndarray(rows, dtypes[name], name)}, JsonFormat.ROW
    keys = set(rows[0])
    for i, row in enumerate(rows):
        if set(row) != keys:
            raise invalid_argument(
                f"Failed to process element: {i} of 'instances' list. Expecting keys {sorted(keys)}, "
                f"got {sorted(row)}; every instance must name the same inputs")
    return ({k: json_to_ndarray([row[k] for row in rows], _dtype_for(dtypes, k), k) for k in keys},
            JsonFormat.ROW)


def _dtype_for(dtypes: Mapping[str, tf.DType], name: str) -> tf.DType:
    if name not in dtypes:
        raise invalid_argument(f"input tensor alias not found in signature: {name}. Inputs expected to be "
                               f"in the set {{{', '.join(sorted(dtypes))}}}.")
    return dtypes[name]


# --------------------------------------------------------------------------------------- tensors -> JSON


def _to_json_value(array: np.ndarray, name: str) -> Any:
    if array.dtype == object or array.dtype.kind in "SU":
        encode_b64 = name.endswith(BYTES_SUFFIX)

        def leaf(item: Any) -> Any:
            if isinstance(item, str):
                item = item.encode("utf-8")
            if encode_b64:
                return {"b64": base64.b64encode(item).decode("ascii")}
            return item.decode("utf-8", errors="replace")

        return _map_nested(array.tolist(), leaf)
    return array.tolist()


def _map_nested(node: Any, fn) -> Any:
    if isinstance(node, list):
        return [_map_nested(child, fn) for child in node]
    return fn(node)


def encode_predict_outputs(outputs: Mapping[str, np.ndarray], fmt: JsonFormat) -> Dict[str, Any]:
    """{alias: array} -> the REST response object (`predictions` for rows, `outputs` for columns)."""
    values = {k: _to_json_value(np.asarray(v), k) for k, v in outputs.items()}
    if fmt is JsonFormat.COLUMNAR:
        return {"outputs": next(iter(values.values())) if len(values) == 1 else values}
    batch = None
    for k, v in outputs.items():
        size = np.shape(v)[0] if np.ndim(v) else None
        if size is None or (batch is not None and size != batch):
            raise invalid_argument(
                f"Tensor name: {k} has inconsistent batch size: {size} expecting: {batch}; use the "
                f"columnar ('inputs') format for outputs without a common batch dimension")
        batch = size
    if len(values) == 1:
        return {"predictions": next(iter(values.values()))}
    return {"predictions": [{k: v[i] for k, v in values.items()} for i in range(batch or 0)]}
