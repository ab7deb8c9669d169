"""GetModelStatus / GetModelMetadata responses, shared by the REST and gRPC front ends."""

from __future__ import annotations

from typing import Any, Dict, Optional

from google.protobuf import json_format
from tensorflow.core.protobuf import error_codes_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, model_pb2

from serving.server.model_manager import ModelManager

SIGNATURE_DEF_FIELD = "signature_def"
_STATE = get_model_status_pb2.ModelVersionStatus.State


def model_status(manager: ModelManager, name: str, version: Optional[int] = None,
                 label: Optional[str] = None) -> get_model_status_pb2.GetModelStatusResponse:
    response = get_model_status_pb2.GetModelStatusResponse()
    for v, state in manager.status(name, version, label):
        entry = response.model_version_status.add(version=v, state=_STATE.Value(state.state))
        entry.status.error_code = error_codes_pb2.Code.Value(state.error_code)
        entry.status.error_message = state.error_message
    return response


def model_metadata(manager: ModelManager, name: str, version: Optional[int] = None,
                   label: Optional[str] = None) -> get_model_metadata_pb2.GetModelMetadataResponse:
    with manager.acquire(name, version, label) as servable:
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, signature_def in servable.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(signature_def)
        response = get_model_metadata_pb2.GetModelMetadataResponse(
            model_spec=model_pb2.ModelSpec(name=name))
        response.model_spec.version.value = servable.version
    response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_map)
    return response


def to_json_dict(message) -> Dict[str, Any]:
    """Proto -> JSON object as TF Serving's REST API prints it (proto field names, defaults included)."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     including_default_value_fields=True)


def metadata_json(response: get_model_metadata_pb2.GetModelMetadataResponse) -> Dict[str, Any]:
    """REST metadata body: `{"model_spec": {...}, "metadata": {"signature_def": {"signature_def": ...}}}`."""
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata[SIGNATURE_DEF_FIELD].Unpack(signature_map)
    return {"model_spec": to_json_dict(response.model_spec),
            "metadata": {SIGNATURE_DEF_FIELD: to_json_dict(signature_map)}}
