"""SavedModel warmup requests: `assets.extra/tf_serving_warmup_requests`, a TFRecord of PredictionLog.

TF Serving replays these (at most 1000) through the loaded model before marking a version AVAILABLE, so
the first real request does not pay for graph initialisation (`g3doc/saved_model_warmup.md`).
"""

from __future__ import annotations

import logging
import os
from typing import Iterable, List, Mapping, Tuple

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from serving.server import tensor_codec

WARMUP_RELATIVE_PATH = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_WARMUP_RECORDS = 1000

log = logging.getLogger(__name__)


def write_warmup_requests(
    version_dir: str, model_name: str, requests: Iterable[Tuple[str, Mapping[str, np.ndarray]]]
) -> str:
    """Writes Predict warmup records `(signature_name, {input: array})` into a SavedModel version dir."""
    path = os.path.join(version_dir, WARMUP_RELATIVE_PATH)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.TFRecordWriter(path) as writer:
        for signature_name, inputs in requests:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model_name
            request.model_spec.signature_name = signature_name
            for key, value in inputs.items():
                request.inputs[key].CopyFrom(tensor_codec.ndarray_to_proto(value))
            log_record = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log_record.SerializeToString())
    return path


def read_warmup_requests(version_dir: str) -> List[predict_pb2.PredictRequest]:
    """The Predict requests of a version's warmup file ([] when it has none); other log kinds are skipped."""
    path = os.path.join(version_dir, WARMUP_RELATIVE_PATH)
    if not tf.io.gfile.exists(path):
        return []
    requests = []
    for i, record in enumerate(tf.data.TFRecordDataset(path).as_numpy_iterator()):
        if i >= MAX_WARMUP_RECORDS:
            raise ValueError(f"Too many warmup records: more than {MAX_WARMUP_RECORDS} in {path}")
        prediction_log = prediction_log_pb2.PredictionLog.FromString(record)
        if prediction_log.WhichOneof("log_type") != "predict_log":
            log.warning("Skipping unsupported warmup record kind %s in %s",
                        prediction_log.WhichOneof("log_type"), path)
            continue
        requests.append(prediction_log.predict_log.request)
    return requests
