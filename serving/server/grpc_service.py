"""TF Serving's gRPC API from tensorflow-serving-api's generated servicers.

`PredictionService.Predict` / `GetModelMetadata` and `ModelService.GetModelStatus`; the other RPCs
(Classify, Regress, MultiInference, HandleReloadConfigRequest) answer UNIMPLEMENTED. Handlers run on
grpc's thread pool; a request larger than the server's max receive size is refused by grpc itself with
RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import concurrent.futures
import logging

import grpc
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2, model_service_pb2_grpc,
                                     predict_pb2, prediction_service_pb2_grpc)

from serving.server import responses, tensor_codec
from serving.server.errors import ServingError, invalid_argument
from serving.server.model_manager import ModelManager

log = logging.getLogger(__name__)


def _spec_version(spec):
    """(version or None, label or None) from a ModelSpec's version_choice oneof."""
    choice = spec.WhichOneof("version_choice")
    if choice == "version":
        return spec.version.value, None
    if choice == "version_label":
        return None, spec.version_label
    return None, None


def _abort(context: grpc.ServicerContext, error: ServingError):
    if error.code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
        log.error("gRPC request failed: %s", error.message)
    context.abort(error.code, error.message)


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):

    def __init__(self, manager: ModelManager):
        self._manager = manager

    def Predict(self, request: predict_pb2.PredictRequest, context) -> predict_pb2.PredictResponse:
        try:
            version, label = _spec_version(request.model_spec)
            inputs = {k: tensor_codec.proto_to_ndarray(v) for k, v in request.inputs.items()}
            with self._manager.acquire(request.model_spec.name, version, label) as servable:
                resolved, outputs = servable.predict(request.model_spec.signature_name, inputs,
                                                     list(request.output_filter))
                served_version = servable.version
        except ServingError as e:
            _abort(context, e)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = served_version
        response.model_spec.signature_name = resolved
        for key, value in outputs.items():
            response.outputs[key].CopyFrom(tensor_codec.ndarray_to_proto(value))
        return response

    def GetModelMetadata(self, request: get_model_metadata_pb2.GetModelMetadataRequest, context):
        try:
            if not request.metadata_field:
                raise invalid_argument("GetModelMetadataRequest must specify at least one metadata_field")
            for field in request.metadata_field:
                if field != responses.SIGNATURE_DEF_FIELD:
                    raise invalid_argument(f"Metadata field {field} is not supported")
            version, label = _spec_version(request.model_spec)
            response = responses.model_metadata(self._manager, request.model_spec.name, version, label)
        except ServingError as e:
            _abort(context, e)
        response.model_spec.signature_name = request.model_spec.signature_name
        return response


class ModelService(model_service_pb2_grpc.ModelServiceServicer):

    def __init__(self, manager: ModelManager):
        self._manager = manager

    def GetModelStatus(self, request: get_model_status_pb2.GetModelStatusRequest, context):
        try:
            version, label = _spec_version(request.model_spec)
            return responses.model_status(self._manager, request.model_spec.name, version, label)
        except ServingError as e:
            _abort(context, e)


def create_server(manager: ModelManager, address: str, max_workers: int,
                  max_message_bytes: int) -> grpc.Server:
    """A started-on-demand grpc.Server with both services bound to `address` ("host:port")."""
    server = grpc.server(
        concurrent.futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
        options=[("grpc.max_receive_message_length", max_message_bytes),
                 ("grpc.max_send_message_length", max_message_bytes),
                 ("grpc.so_reuseport", 0)])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(manager), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(manager), server)
    if server.add_insecure_port(address) == 0:
        raise OSError(f"could not bind gRPC to {address}")
    return server
