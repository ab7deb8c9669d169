import base64
import json

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2

from serving.server import tensor_codec
from serving.server.errors import ServingError
from serving.server.tensor_codec import JsonFormat


def _infos(**dtypes):
    return {k: meta_graph_pb2.TensorInfo(dtype=d.as_datatype_enum) for k, d in dtypes.items()}


def _b64(data: bytes):
    return {"b64": base64.b64encode(data).decode()}


def test_row_format_single_input_decodes_b64_and_text():
    inputs, fmt = tensor_codec.decode_predict_inputs(
        {"instances": [_b64(b"\xff\x00"), "caf\u00e9"]}, _infos(image_bytes=tf.string))
    assert fmt is JsonFormat.ROW
    assert inputs["image_bytes"].dtype == object
    assert inputs["image_bytes"].tolist() == [b"\xff\x00", "caf\u00e9".encode()]


def test_row_format_named_inputs_stack_along_batch():
    inputs, _ = tensor_codec.decode_predict_inputs(
        {"instances": [{"x": [1, 2], "s": "a"}, {"x": [3, 4], "s": "b"}]}, _infos(x=tf.float32, s=tf.string))
    assert inputs["x"].dtype == np.float32 and inputs["x"].tolist() == [[1, 2], [3, 4]]
    assert inputs["s"].shape == (2,)


def test_columnar_format_allows_different_leading_sizes():
    inputs, fmt = tensor_codec.decode_predict_inputs(
        {"inputs": {"image_bytes": [_b64(b"a")], "class_names": ["x", "y", "z"]}},
        _infos(image_bytes=tf.string, class_names=tf.string))
    assert fmt is JsonFormat.COLUMNAR
    assert inputs["image_bytes"].shape == (1,) and inputs["class_names"].shape == (3,)
    bare, _ = tensor_codec.decode_predict_inputs({"inputs": [[1, 2]]}, _infos(ids=tf.int64))
    assert bare["ids"].dtype == np.int64 and bare["ids"].shape == (1, 2)


@pytest.mark.parametrize("body, fragment", [
    ({}, "Missing 'inputs' or 'instances'"),
    ({"inputs": [1], "instances": [1]}, "only one of"),
    ({"instances": "x"}, "list/array"),
    ({"instances": []}, "empty"),
    ({"instances": [[1, 2], [3]]}, "ragged"),
    ({"instances": [[1, 2], 3]}, "ragged"),
    ({"instances": ["a"]}, "not of expected type: float"),
    ({"instances": [{"b64": "!!"}]}, "not of expected type"),
    ({"inputs": {"nope": [1.0]}}, "input tensor alias not found"),
    ({"instances": [{"x": 1.0}, {"y": 2.0}]}, "same inputs"),
])
def test_malformed_bodies_are_invalid_argument(body, fragment):
    with pytest.raises(ServingError) as err:
        tensor_codec.decode_predict_inputs(body, _infos(x=tf.float32))
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and err.value.http_status == 400
    assert fragment in err.value.message


def test_bad_base64_and_bad_json():
    with pytest.raises(ServingError, match="base64"):
        tensor_codec.decode_predict_inputs({"instances": [{"b64": "%%"}]}, _infos(s=tf.string))
    with pytest.raises(ServingError, match="JSON Parse error"):
        tensor_codec.parse_json_body(b"{")
    with pytest.raises(ServingError, match="not an object"):
        tensor_codec.parse_json_body(b"[1]")


def test_outputs_encode_rows_columns_and_bytes_aliases():
    outputs = {"embedding": np.array([[1.5, 2.0], [0.0, -1.0]], np.float32),
               "thumb_bytes": np.array([b"\x00\x01", b"z"], dtype=object),
               "label": np.array([b"seven", b"eight"], dtype=object)}
    rows = tensor_codec.encode_predict_outputs(outputs, JsonFormat.ROW)["predictions"]
    assert rows[0] == {"embedding": [1.5, 2.0], "thumb_bytes": {"b64": "AAE="}, "label": "seven"}
    columns = tensor_codec.encode_predict_outputs(outputs, JsonFormat.COLUMNAR)["outputs"]
    assert columns["thumb_bytes"] == [{"b64": "AAE="}, {"b64": "eg=="}]
    single = tensor_codec.encode_predict_outputs({"scores": np.zeros([1, 3], np.float32)},
                                                 JsonFormat.COLUMNAR)
    assert single == {"outputs": [[0.0, 0.0, 0.0]]}
    json.dumps(rows)


def test_row_outputs_need_a_common_batch_size():
    with pytest.raises(ServingError, match="inconsistent batch size"):
        tensor_codec.encode_predict_outputs(
            {"a": np.zeros([2, 1]), "b": np.zeros([3])}, JsonFormat.ROW)


def test_tensor_proto_round_trip():
    for value in (np.arange(6, dtype=np.float32).reshape(2, 3), np.array([[b"a", b"\xff"]], dtype=object)):
        back = tensor_codec.proto_to_ndarray(tensor_codec.ndarray_to_proto(value))
        assert back.shape == value.shape and back.tolist() == value.tolist()


def test_json_numbers_must_fit_the_dtype():
    with pytest.raises(ServingError, match="not of expected type: int64"):
        tensor_codec.decode_predict_inputs({"instances": [1.5]}, _infos(ids=tf.int64))
    with pytest.raises(ServingError, match="not of expected type: float"):
        tensor_codec.decode_predict_inputs({"instances": [True]}, _infos(x=tf.float32))
    ints_as_floats, _ = tensor_codec.decode_predict_inputs({"instances": [1, 2.5]}, _infos(x=tf.float32))
    assert ints_as_floats["x"].tolist() == [1.0, 2.5]
