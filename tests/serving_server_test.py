"""Integration tests of the TF Serving compatible server: REST (plain HTTP) and gRPC (official stubs).

One server subprocess on free loopback ports serves the fake IMP model (serving/testing.py); results are
compared with a direct in-process call of the same SavedModel.
"""

import base64
import json
import os

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2, model_service_pb2_grpc,
                                     predict_pb2, prediction_service_pb2_grpc)

from imp_tfx import cli as imp_cli
from serving import testing
from serving.client import GrpcClient, RestClient, ServingClientError

MODEL = "imp"
MAX_REQUEST_BYTES = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("models") / MODEL
    return testing.write_fake_model(str(base), version=1, model_name=MODEL)


@pytest.fixture(scope="module")
def server(model_dir):
    with testing.run_server(os.path.dirname(model_dir), MODEL,
                            extra_args=["--max-request-bytes", str(MAX_REQUEST_BYTES)]) as s:
        yield s


@pytest.fixture(scope="module")
def direct(model_dir):
    """The same SavedModel called in-process: signature name -> callable returning numpy outputs."""
    loaded = tf.saved_model.load(model_dir)

    def call(signature, **inputs):
        return {k: v.numpy() for k, v in loaded.signatures[signature](
            **{k: tf.constant(v) for k, v in inputs.items()}).items()}
    return call


@pytest.fixture(scope="module")
def stubs(server):
    channel = grpc.insecure_channel(server.grpc_target, options=[
        ("grpc.max_send_message_length", 16 * MAX_REQUEST_BYTES)])
    yield (prediction_service_pb2_grpc.PredictionServiceStub(channel),
           model_service_pb2_grpc.ModelServiceStub(channel))
    channel.close()


def _b64(data: bytes) -> dict:
    return {"b64": base64.b64encode(data).decode("ascii")}


def _post(server, body, path=f"/v1/models/{MODEL}:predict"):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return requests.post(server.rest_url + path, data=data, timeout=30)


# ------------------------------------------------------------------------------------------- status


def test_rest_status_has_tf_serving_shape(server):
    response = requests.get(f"{server.rest_url}/v1/models/{MODEL}", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
    assert requests.get(f"{server.rest_url}/v1/models/{MODEL}/versions/1", timeout=10).json() == \
        response.json()


def test_grpc_status_with_official_stub(stubs):
    _, model_service = stubs
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = MODEL
    response = model_service.GetModelStatus(request, timeout=10)
    (status,) = response.model_version_status
    assert status.version == 1
    assert status.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert status.status.error_code == 0


def test_warmup_ran_before_serving(server):
    log = server.log_text()
    assert "Starting to read warmup data for model at" in log
    assert "Number of warmup records read: 4" in log
    assert log.index("Starting to read warmup data") < log.index("Exporting HTTP/REST API")


# ------------------------------------------------------------------------------------------- metadata


def test_rest_metadata_lists_contract_signatures(server):
    body = requests.get(f"{server.rest_url}/v1/models/{MODEL}/metadata", timeout=10).json()
    assert body["model_spec"] == {"name": MODEL, "version": "1", "signature_name": ""}
    signatures = body["metadata"]["signature_def"]["signature_def"]
    assert set(testing.SIGNATURE_NAMES) <= set(signatures)
    video = signatures["embed_video"]
    assert video["method_name"] == "tensorflow/serving/predict"
    assert video["inputs"]["frames_bytes"]["dtype"] == "DT_STRING"
    assert [d["size"] for d in video["inputs"]["frames_bytes"]["tensor_shape"]["dim"]] == ["-1", "-1"]
    assert video["outputs"]["embedding"]["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in video["outputs"]["embedding"]["tensor_shape"]["dim"]] == \
        ["-1", str(testing.EMBED_DIM)]
    assert set(signatures["zero_shot"]["inputs"]) == {"image_bytes", "class_names"}


def test_grpc_metadata(stubs):
    prediction, _ = stubs
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = MODEL
    response = prediction.GetModelMetadata(request, timeout=10)
    assert response.model_spec.name == MODEL and response.model_spec.version.value == 1
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    assert set(signatures.signature_def["embed_text"].inputs) == {"text"}


# ------------------------------------------------------------------------------------------- predict


def test_rest_row_format_b64_images_match_direct_call(server, direct):
    images = [testing.make_jpeg(1), testing.make_png(2)]
    response = _post(server, {"signature_name": "embed_image", "instances": [_b64(i) for i in images]})
    assert response.status_code == 200, response.text
    predictions = np.array(response.json()["predictions"], np.float32)
    expected = direct("embed_image", image_bytes=images)["embedding"]
    assert predictions.shape == (2, testing.EMBED_DIM)
    np.testing.assert_allclose(predictions, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(predictions, axis=-1), 1.0, atol=1e-5)


def test_rest_row_format_named_inputs(server, direct):
    frames = [testing.make_jpeg(3), testing.make_jpeg(4)]
    wav = testing.make_wav(5)
    instances = [{"frames_bytes": [_b64(f) for f in frames], "audio_bytes": _b64(wav)},
                 {"frames_bytes": [_b64(f) for f in reversed(frames)], "audio_bytes": ""}]
    response = _post(server, {"signature_name": "embed_video", "instances": instances})
    assert response.status_code == 200, response.text
    expected = direct("embed_video", frames_bytes=[frames, frames[::-1]], audio_bytes=[wav, b""])
    np.testing.assert_allclose(response.json()["predictions"], expected["embedding"], rtol=1e-5, atol=1e-6)


def test_rest_columnar_format(server, direct):
    images = [testing.make_jpeg(6), testing.make_jpeg(7)]
    labels = ["seven", "eight", "nine"]
    response = _post(server, {"signature_name": "zero_shot",
                              "inputs": {"image_bytes": [_b64(i) for i in images], "class_names": labels}})
    assert response.status_code == 200, response.text
    outputs = response.json()["outputs"]  # one output: the bare value, as TF Serving writes it
    expected = direct("zero_shot", image_bytes=images, class_names=labels)["scores"]
    assert np.shape(outputs) == (2, 3)
    np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=1e-6)
    texts = _post(server, {"signature_name": "embed_text", "inputs": ["a seven", "an eight"]})
    np.testing.assert_allclose(texts.json()["outputs"],
                               direct("embed_text", text=["a seven", "an eight"])["embedding"], rtol=1e-5,
                               atol=1e-6)


def test_rest_default_signature_and_version_path(server, direct):
    example = tf.train.Example(features=tf.train.Features(feature={
        "text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"a two moving up"]))}))
    serialized = example.SerializeToString()
    response = _post(server, {"instances": [_b64(serialized)]}, path=f"/v1/models/{MODEL}/versions/1:predict")
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(response.json()["predictions"],
                               direct("embed_text", text=["a two moving up"])["embedding"], rtol=1e-5,
                               atol=1e-6)


def test_grpc_predict_with_official_stub_echoes_model_spec(stubs, direct):
    prediction, _ = stubs
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.model_spec.signature_name = "embed_audio"
    wavs = [testing.make_wav(1), testing.make_wav(2, seconds=3.0)]
    request.inputs["audio_bytes"].CopyFrom(tf.make_tensor_proto(wavs))
    request.output_filter.append("embedding")
    response = prediction.Predict(request, timeout=30)
    assert response.model_spec.name == MODEL
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "embed_audio"
    assert list(response.outputs) == ["embedding"]
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["embedding"]),
                               direct("embed_audio", audio_bytes=wavs)["embedding"], rtol=1e-5, atol=1e-6)

    request = predict_pb2.PredictRequest()  # empty signature_name -> serving_default, echoed resolved
    request.model_spec.name = MODEL
    request.model_spec.version.value = 1
    request.inputs["examples"].CopyFrom(tf.make_tensor_proto([tf.train.Example().SerializeToString()]))
    assert prediction.Predict(request, timeout=30).model_spec.signature_name == "serving_default"


def test_grpc_and_rest_clients_agree(server, direct):
    grpc_client = GrpcClient("127.0.0.1", server.grpc_port)
    rest_client = RestClient(server.rest_url)
    inputs = {"image_bytes": [testing.make_jpeg(8)], "class_names": ["one", "two"]}
    via_grpc = grpc_client.predict(MODEL, "zero_shot", inputs)["scores"]
    via_rest = rest_client.predict(MODEL, "zero_shot", inputs, version=1)["scores"]
    np.testing.assert_allclose(via_grpc, via_rest, rtol=1e-6)
    assert grpc_client.model_status(MODEL) == rest_client.model_status(MODEL) == [
        {"version": 1, "state": "AVAILABLE", "error_code": "OK", "error_message": ""}]
    with pytest.raises(ServingClientError) as err:
        rest_client.predict("nope", "embed_text", {"text": ["x"]})
    assert err.value.code == 404
    with pytest.raises(ServingClientError) as err:
        grpc_client.predict("nope", "embed_text", {"text": ["x"]})
    assert err.value.code == "NOT_FOUND"
    grpc_client.close()
    rest_client.close()


# ------------------------------------------------------------------------------------------- errors


def test_malformed_rest_requests_get_tf_serving_errors(server):
    jpeg = _b64(testing.make_jpeg(1))
    predict = f"/v1/models/{MODEL}:predict"
    video_frames = {"frames_bytes": [[jpeg]]}
    cases = [  # (method, path, body, expected status, expected message fragment)
        ("POST", "/v1/models/nope:predict", {"instances": ["x"]}, 404,
         "Servable not found for request: Latest(nope)"),
        ("POST", f"/v1/models/{MODEL}/versions/9:predict", {"instances": ["x"]}, 404, "Specific(imp, 9)"),
        ("POST", f"/v1/models/{MODEL}/labels/stable:predict", {"instances": ["x"]}, 400,
         "Unrecognized servable version label"),
        ("POST", predict, {"signature_name": "nope", "instances": ["x"]}, 400,
         'Serving signature name: "nope" not found'),
        ("POST", predict, b"{not json", 400, "JSON Parse error"),
        ("POST", predict, {"signature_name": "embed_text"}, 400, "Missing 'inputs' or 'instances' key"),
        ("POST", predict, {"signature_name": "embed_text", "inputs": ["a"], "instances": ["a"]}, 400,
         "only one of"),
        ("POST", predict, {"signature_name": "embed_text", "instances": [1.5]}, 400,
         "is not of expected type: string"),
        ("POST", predict, {"signature_name": "embed_text", "inputs": [["a"], ["b"]]}, 400,
         "incompatible with the signature's [?]"),
        ("POST", predict, {"signature_name": "embed_video", "inputs": video_frames}, 400,
         "Missing but required: {audio_bytes}"),
        ("POST", predict, {"signature_name": "embed_text", "inputs": {"text": ["a"], "extra": ["b"]}}, 400,
         "input tensor alias not found"),
        ("POST", predict, {"signature_name": "embed_image", "instances": [_b64(b"not an image")]}, 400,
         "Unknown image file format"),
        ("POST", predict, {"signature_name": "embed_audio", "instances": [_b64(b"RIFF....WAVE")]}, 400, ""),
        ("POST", predict, {"signature_name": "embed_image", "instances": [{"b64": "%%%"}]}, 400, "base64"),
        ("POST", predict, {"signature_name": "embed_video",
                           "inputs": {"frames_bytes": [[jpeg, jpeg], [jpeg]], "audio_bytes": ["", ""]}},
         400, "ragged"),
        ("POST", f"/v1/models/{MODEL}:classify", {"examples": [{}]}, 501, "not supported"),
        ("POST", predict, b"x" * (MAX_REQUEST_BYTES + 1), 413, "exceeds the limit"),
        ("GET", f"/v1/models/{MODEL}/versions/7", None, 404, "Could not find version 7 of model imp"),
        ("GET", "/v1/models/nope/metadata", None, 404, "Servable not found"),
        ("GET", "/v1/unknown/path", None, 400, "Malformed request: GET /v1/unknown/path"),
    ]
    for method, path, body, status, fragment in cases:
        data = body if body is None or isinstance(body, bytes) else json.dumps(body)
        response = requests.request(method, server.rest_url + path, data=data, timeout=30)
        assert response.status_code == status, (path, body if not isinstance(body, bytes) else body[:40],
                                                response.text)
        assert fragment in response.json()["error"], (path, response.text)
    healthy = _post(server, {"signature_name": "embed_text", "instances": ["still serving"]})
    assert healthy.status_code == 200 and np.shape(healthy.json()["predictions"]) == (1, testing.EMBED_DIM)


def test_malformed_grpc_requests_get_status_codes(stubs):
    prediction, model_service = stubs

    def request(name=MODEL, signature="embed_text", version=None, output_filter=(), **inputs):
        r = predict_pb2.PredictRequest()
        r.model_spec.name = name
        r.model_spec.signature_name = signature
        if version is not None:
            r.model_spec.version.value = version
        for k, v in inputs.items():
            r.inputs[k].CopyFrom(v if isinstance(v, type(r.inputs[k])) else tf.make_tensor_proto(v))
        r.output_filter.extend(output_filter)
        return r

    cases = [
        (request(name="nope", text=["x"]), grpc.StatusCode.NOT_FOUND),
        (request(version=5, text=["x"]), grpc.StatusCode.NOT_FOUND),
        (request(signature="nope", text=["x"]), grpc.StatusCode.FAILED_PRECONDITION),
        (request(text=np.array([1.0], np.float32)), grpc.StatusCode.INVALID_ARGUMENT),
        (request(text=[["a", "b"]]), grpc.StatusCode.INVALID_ARGUMENT),
        (request(signature="embed_video", frames_bytes=[[b"x"]]), grpc.StatusCode.INVALID_ARGUMENT),
        (request(signature="embed_image", image_bytes=[b"garbage"]), grpc.StatusCode.INVALID_ARGUMENT),
        (request(text=["x"], output_filter=["nope"]), grpc.StatusCode.INVALID_ARGUMENT),
        (request(text=[b"x" * (MAX_REQUEST_BYTES + 10)]), grpc.StatusCode.RESOURCE_EXHAUSTED),
    ]
    for req, code in cases:
        with pytest.raises(grpc.RpcError) as err:
            prediction.Predict(req, timeout=30)
        assert err.value.code() == code, (req.model_spec, err.value.details())
    status_request = get_model_status_pb2.GetModelStatusRequest()
    status_request.model_spec.name = "nope"
    with pytest.raises(grpc.RpcError) as err:
        model_service.GetModelStatus(status_request, timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    ok = prediction.Predict(request(text=["still serving"]), timeout=30)
    assert tf.make_ndarray(ok.outputs["embedding"]).shape == (1, testing.EMBED_DIM)


# ------------------------------------------------------------------------------------------- query CLI


@pytest.fixture(scope="module")
def media_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("media")
    (folder / "a.jpg").write_bytes(testing.make_jpeg(11))
    (folder / "b.png").write_bytes(testing.make_png(12))
    (folder / "c.wav").write_bytes(testing.make_wav(13))
    testing.make_video_file(str(folder / "d.mp4"), seed=14)
    (folder / "notes.txt").write_text("not media")
    return folder


def _query(capsys, *args):
    code = imp_cli.main(["query", "--model", MODEL, *args])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


@pytest.mark.parametrize("scheme", ["grpc", "http"])
def test_query_cli_embed_zero_shot_and_retrieval(server, direct, media_folder, capsys, scheme):
    target = f"grpc://{server.grpc_target}" if scheme == "grpc" else server.rest_url
    embedded = _query(capsys, "--server", target, "--text", "a seven moving left",
                      "--video", str(media_folder / "d.mp4"))
    np.testing.assert_allclose(embedded[0]["embedding"],
                               direct("embed_text", text=["a seven moving left"])["embedding"][0], rtol=1e-5,
                               atol=1e-6)
    assert len(embedded[1]["embedding"]) == testing.EMBED_DIM and embedded[1]["kind"] == "video"

    zero_shot = _query(capsys, "--server", target, "--image", str(media_folder / "a.jpg"),
                       "--labels", "seven,eight,nine", "--prompt", "a photo of a {label}")
    image = direct("embed_image", image_bytes=[(media_folder / "a.jpg").read_bytes()])["embedding"][0]
    keys = direct("embed_text", text=["a photo of a seven", "a photo of a eight", "a photo of a nine"])
    expected = dict(zip(["seven", "eight", "nine"], keys["embedding"] @ image))
    assert zero_shot["top"] == max(expected, key=expected.get)
    for label, score in zero_shot["scores"].items():
        assert score == pytest.approx(float(expected[label]), abs=2e-2)  # JPEG re-encoding client-side

    retrieved = _query(capsys, "--server", target, "--retrieve-text", "a seven moving left",
                       "--folder", str(media_folder))
    files = [os.path.basename(r["file"]) for r in retrieved["results"]]
    assert sorted(files) == ["a.jpg", "b.png", "c.wav", "d.mp4"]
    scores = [r["score"] for r in retrieved["results"]]
    assert scores == sorted(scores, reverse=True)

    ranked = _query(capsys, "--server", target, "--audio", str(media_folder / "c.wav"),
                    "--rank-texts", "a dog barking", "--rank-texts", "a seven", "--top-k", "1")
    assert len(ranked["results"]) == 1


def test_query_cli_reports_server_errors(server, capsys):
    code = imp_cli.main(["query", "--server", server.rest_url, "--model", "nope", "--text", "x"])
    assert code == 1
    assert "404" in capsys.readouterr().err
