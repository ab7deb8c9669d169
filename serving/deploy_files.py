"""TF Serving deployment files written next to exports: `models.config` and `batching.config`.

Both are text protos the real `tensorflow_model_server` reads:

* `BASE/models.config`   - `ModelServerConfig.model_config_list`, one entry per model folder of BASE,
  with `base_path` as seen inside the serving container (BASE mounted at `/models`, as in the
  `tensorflow/serving` image and `serving/k8s/tf-serving.yaml`).
* `BASE/batching.config` - `BatchingParameters` for `--enable_batching --batching_parameters_file`.
"""

from __future__ import annotations

import os
import pathlib
from typing import Union

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

MODEL_CONFIG_NAME = "models.config"
BATCHING_CONFIG_NAME = "batching.config"
CONTAINER_MODELS_ROOT = "/models"

PathLike = Union[str, pathlib.Path]


def _batching_parameters_class():
    """`tensorflow.serving.BatchingParameters`.

    The pip package tensorflow-serving-api does not ship `session_bundle_config_pb2`, so when it is
    missing the message is declared here from the upstream definition
    (`tensorflow_serving/servables/tensorflow/session_bundle_config.proto`) in a private descriptor pool.
    """
    try:
        from tensorflow_serving.servables.tensorflow import session_bundle_config_pb2
        return session_bundle_config_pb2.BatchingParameters
    except ImportError:
        pass
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    proto = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving/servables/tensorflow/session_bundle_config.proto",
        package="tensorflow.serving", syntax="proto3", dependency=[wrappers.name])
    message = proto.message_type.add(name="BatchingParameters")
    field = descriptor_pb2.FieldDescriptorProto
    for number, (name, wrapper) in enumerate(
            (("max_batch_size", "Int64Value"), ("batch_timeout_micros", "Int64Value"),
             ("max_enqueued_batches", "Int64Value"), ("num_batch_threads", "Int64Value"),
             ("thread_pool_name", "StringValue")), start=1):
        message.field.add(name=name, number=number, type=field.TYPE_MESSAGE, label=field.LABEL_OPTIONAL,
                          type_name=f".google.protobuf.{wrapper}")
    message.field.add(name="allowed_batch_sizes", number=6, type=field.TYPE_INT64,
                      label=field.LABEL_REPEATED)
    message.field.add(name="pad_variable_length_inputs", number=7, type=field.TYPE_BOOL,
                      label=field.LABEL_OPTIONAL)
    pool.Add(proto)
    return message_factory.MessageFactory(pool).GetPrototype(
        pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))


BatchingParameters = _batching_parameters_class()


def _write_atomic(path: pathlib.Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_model_config(path: PathLike) -> model_server_config_pb2.ModelServerConfig:
    return text_format.Parse(pathlib.Path(path).read_text(), model_server_config_pb2.ModelServerConfig())


def write_model_config(base_path: PathLike, model_name: str,
                       models_root: str = CONTAINER_MODELS_ROOT) -> pathlib.Path:
    """Adds (or refreshes) `model_name` in `BASE/models.config`, keeping the other models' entries.

    The latest version is served (TF Serving's default policy); pin one by editing
    `model_version_policy { specific { versions: N } }` in the file.
    """
    path = pathlib.Path(base_path) / MODEL_CONFIG_NAME
    config = read_model_config(path) if path.exists() else model_server_config_pb2.ModelServerConfig()
    entries = config.model_config_list.config
    kept = [entry for entry in entries if entry.name != model_name]
    entry = model_server_config_pb2.ModelConfig(
        name=model_name, base_path=f"{models_root.rstrip('/')}/{model_name}", model_platform="tensorflow")
    entry.model_version_policy.latest.num_versions = 1
    del entries[:]
    entries.extend(sorted(kept + [entry], key=lambda e: e.name))
    _write_atomic(path, text_format.MessageToString(config))
    return path


def batching_parameters(max_batch_size: int = 32, batch_timeout_micros: int = 5000,
                        num_batch_threads: int = 4, max_enqueued_batches: int = 64
                        ):
    """Server-side batching settings.

    No `allowed_batch_sizes`: padding a batch to an allowed size would add rows, and the experts-choose
    MoE routes tokens per group, so padded rows could change the other rows' embeddings.
    """
    params = BatchingParameters()
    params.max_batch_size.value = max_batch_size
    params.batch_timeout_micros.value = batch_timeout_micros
    params.num_batch_threads.value = num_batch_threads
    params.max_enqueued_batches.value = max_enqueued_batches
    return params


def write_batching_config(base_path: PathLike, params=None) -> pathlib.Path:
    """Writes `BASE/batching.config` (kept if it exists: operators tune it by hand)."""
    path = pathlib.Path(base_path) / BATCHING_CONFIG_NAME
    if not path.exists():
        _write_atomic(path, text_format.MessageToString(params or batching_parameters()))
    return path


def read_batching_config(path: PathLike):
    """`BatchingParameters` parsed from a text-proto file (raises ParseError on unknown fields)."""
    return text_format.Parse(pathlib.Path(path).read_text(), BatchingParameters())
