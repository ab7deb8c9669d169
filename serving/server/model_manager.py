"""Loads SavedModel versions from `BASE/VERSION/`, keeps the aspired ones available, swaps without drops.

A background poller (TF Serving's file system source) lists the integer version directories under each
model's base path. A new aspired version is loaded and warmed up *before* it becomes visible, then made
available in one step under a lock; a version leaving the policy is first hidden from new requests and
unloaded only when its in-flight requests have finished (TF Serving's availability-preserving policy).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
import time
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import grpc
import numpy as np
import tensorflow as tf
# Registers tensorflow-text's ops (WordPiece tokenization in the exported graphs), as TF Serving's
# build with tensorflow-text ops does; without it those SavedModels fail to load.
import tensorflow_text  # noqa: F401  pylint: disable=unused-import
from google.protobuf import text_format
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow_serving.config import model_server_config_pb2

from serving.server import tensor_codec, warmup
from serving.server.errors import ServingError, invalid_argument, not_found

DEFAULT_SIGNATURE = "serving_default"
log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """One served model (a `model_config_list.config` entry).

    Attributes:
      name: model name in request paths and `model_spec.name`.
      base_path: directory holding integer version subdirectories.
      latest: serve the newest `latest` versions (TF Serving's default policy is latest 1); ignored when
        `specific_versions` is set or `all_versions` is true.
      specific_versions: serve exactly these versions.
      all_versions: serve every version found.
      version_labels: label -> version, for `/labels/L` and `model_spec.version_label`.
    """

    name: str
    base_path: str
    latest: int = 1
    specific_versions: Tuple[int, ...] = ()
    all_versions: bool = False
    version_labels: Mapping[str, int] = dataclasses.field(default_factory=dict)

    def aspired(self, on_disk: Sequence[int]) -> List[int]:
        if self.specific_versions:
            return sorted(v for v in on_disk if v in self.specific_versions)
        if self.all_versions:
            return sorted(on_disk)
        return sorted(on_disk)[-self.latest:] if on_disk else []


def load_model_config_file(path: str) -> List[ModelConfig]:
    """Parses TF Serving's text-proto `--model_config_file` (`model_config_list { config { ... } }`)."""
    with open(path) as f:
        proto = text_format.Parse(f.read(), model_server_config_pb2.ModelServerConfig())
    if proto.WhichOneof("config") != "model_config_list":
        raise ValueError(f"{path}: only model_config_list is supported")
    configs = []
    for c in proto.model_config_list.config:
        if c.model_platform not in ("", "tensorflow"):
            raise ValueError(f"{path}: model {c.name!r}: unsupported model_platform {c.model_platform!r}")
        policy = c.model_version_policy
        kind = policy.WhichOneof("policy_choice")
        configs.append(ModelConfig(
            name=c.name,
            base_path=c.base_path,
            latest=(policy.latest.num_versions or 1) if kind == "latest" else 1,
            specific_versions=tuple(policy.specific.versions) if kind == "specific" else (),
            all_versions=kind == "all",
            version_labels=dict(c.version_labels)))
    return configs


def read_signature_defs(version_dir: str) -> Dict[str, meta_graph_pb2.SignatureDef]:
    """The `serve` MetaGraph's SignatureDefs, read from saved_model.pb (what GetModelMetadata returns)."""
    saved_model = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(os.path.join(version_dir, "saved_model.pb"), "rb") as f:
        saved_model.ParseFromString(f.read())
    for meta_graph in saved_model.meta_graphs:
        if "serve" in meta_graph.meta_info_def.tags:
            return dict(meta_graph.signature_def)
    raise ValueError(f"{version_dir}: no MetaGraph tagged 'serve'")


def _shape_compatible(shape: Tuple[int, ...], info: meta_graph_pb2.TensorInfo) -> bool:
    if info.tensor_shape.unknown_rank:
        return True
    dims = [d.size for d in info.tensor_shape.dim]
    return len(dims) == len(shape) and all(d < 0 or d == s for d, s in zip(dims, shape))


def _shape_str(info: meta_graph_pb2.TensorInfo) -> str:
    if info.tensor_shape.unknown_rank:
        return "<unknown>"
    return "[" + ",".join("?" if d.size < 0 else str(d.size) for d in info.tensor_shape.dim) + "]"


class LoadedVersion:
    """One loaded SavedModel version: its SignatureDefs and callable signatures."""

    def __init__(self, name: str, version: int, path: str):
        self.name, self.version, self.path = name, version, path
        self.signature_defs = read_signature_defs(path)
        self._loaded = tf.saved_model.load(path, tags=["serve"])  # keeps variables alive
        self._functions = dict(self._loaded.signatures)

    def signature_def(self, signature_name: str) -> Tuple[str, meta_graph_pb2.SignatureDef]:
        resolved = signature_name or DEFAULT_SIGNATURE
        if resolved not in self.signature_defs:
            # TF Serving: FAILED_PRECONDITION over gRPC; the REST front end maps it to 400 as well.
            raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                               f'Serving signature name: "{resolved}" not found in signature def')
        return resolved, self.signature_defs[resolved]

    def predict(
        self, signature_name: str, inputs: Mapping[str, np.ndarray], output_filter: Sequence[str] = ()
    ) -> Tuple[str, Dict[str, np.ndarray]]:
        """Runs a signature. Returns (resolved signature name, {output alias: array}).

        Raises ServingError for unknown signatures/outputs, missing or extra inputs, wrong dtypes or
        shapes, and for errors the signature itself raises (e.g. undecodable media).
        """
        resolved, sig = self.signature_def(signature_name)
        inputs = dict(inputs)
        for key, default in sig.defaults.items():
            inputs.setdefault(key, tf.make_ndarray(default))
        expected, sent = set(sig.inputs), set(inputs)
        if expected != sent:
            raise invalid_argument(
                f"input size does not match signature: {len(sent)}!={len(expected)} "
                f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(expected))}}}). "
                f"Sent extra: {{{','.join(sorted(sent - expected))}}}. "
                f"Missing but required: {{{','.join(sorted(expected - sent))}}}.")
        for i, key in enumerate(sorted(sig.inputs)):
            info, value = sig.inputs[key], np.asarray(inputs[key])
            want = tf.dtypes.as_dtype(info.dtype)
            got = tf.string if value.dtype == object or value.dtype.kind in "SU" else tf.as_dtype(value.dtype)
            if got != want:
                raise invalid_argument(
                    f"Expects arg[{i}] ({key}) to be {want.name} but {got.name} is provided")
            if not _shape_compatible(value.shape, info):
                raise invalid_argument(
                    f"Input {key} has shape {list(value.shape)}, incompatible with the signature's "
                    f"{_shape_str(info)}")
        for alias in output_filter:
            if alias not in sig.outputs:
                raise invalid_argument(
                    f"output tensor alias not found in signature: {alias} Outputs expected to be in the "
                    f"set {{{','.join(sorted(sig.outputs))}}}.")
        try:
            tensors = {k: tf.constant(v, dtype=tf.dtypes.as_dtype(sig.inputs[k].dtype))
                       for k, v in inputs.items()}
            outputs = self._functions[resolved](**tensors)
        except tf.errors.OpError as e:
            raise ServingError.from_tf(e) from e
        except (TypeError, ValueError) as e:
            raise invalid_argument(str(e)) from e
        wanted = list(output_filter) or list(outputs)
        return resolved, {k: outputs[k].numpy() for k in wanted}

    def warm_up(self) -> int:
        """Replays the version's warmup requests; returns how many ran (errors fail the load)."""
        requests = warmup.read_warmup_requests(self.path)
        if not requests:
            log.info("No warmup data file found at %s", os.path.join(self.path, warmup.WARMUP_RELATIVE_PATH))
            return 0
        log.info("Starting to read warmup data for model at %s with model name: %s", self.path, self.name)
        start = time.perf_counter()
        for request in requests:
            inputs = {k: tensor_codec.proto_to_ndarray(v) for k, v in request.inputs.items()}
            self.predict(request.model_spec.signature_name, inputs, list(request.output_filter))
        log.info("Finished reading warmup data for model at %s. Number of warmup records read: %d. "
                 "Elapsed time (microseconds): %d.", self.path, len(requests),
                 int((time.perf_counter() - start) * 1e6))
        return len(requests)


@dataclasses.dataclass
class VersionState:
    """A version's lifecycle state as GetModelStatus reports it (ModelVersionStatus.State names)."""

    state: str = "START"           # START, LOADING, AVAILABLE, UNLOADING, END
    error_code: str = "OK"         # google.rpc / tensorflow error code name
    error_message: str = ""


@dataclasses.dataclass
class _Model:
    config: ModelConfig
    available: Dict[int, LoadedVersion] = dataclasses.field(default_factory=dict)
    states: Dict[int, VersionState] = dataclasses.field(default_factory=dict)
    inflight: Dict[int, int] = dataclasses.field(default_factory=dict)
    load_failures: Dict[int, int] = dataclasses.field(default_factory=dict)
    warned_empty: bool = False


def list_versions(base_path: str) -> List[int]:
    """Integer version subdirectories of `base_path` that hold a saved_model.pb."""
    if not tf.io.gfile.isdir(base_path):
        return []
    versions = []
    for entry in tf.io.gfile.listdir(base_path):
        entry = entry.rstrip("/")
        if entry.isdigit() and tf.io.gfile.exists(os.path.join(base_path, entry, "saved_model.pb")):
            versions.append(int(entry))
    return sorted(versions)


class ModelManager:
    """Serves the aspired versions of each configured model and swaps them as the file system changes."""

    def __init__(self, configs: Sequence[ModelConfig], poll_seconds: float = 2.0, max_load_retries: int = 5,
                 unload_timeout_seconds: float = 300.0):
        names = [c.name for c in configs]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate model names in {names}")
        self._models = {c.name: _Model(c) for c in configs}
        self._poll_seconds = poll_seconds
        self._max_load_retries = max_load_retries
        self._unload_timeout = unload_timeout_seconds
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._poller: Optional[threading.Thread] = None

    # ------------------------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Loads the aspired versions once (blocking), then keeps polling in a background thread."""
        self.poll_once()
        if self._poll_seconds > 0:
            self._poller = threading.Thread(target=self._poll_loop, name="model-poller", daemon=True)
            self._poller.start()

    def stop(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join()

    def _poll_loop(self) -> None:
        while not self._stop.wait(self._poll_seconds):
            try:
                self.poll_once()
            except Exception:  # keep polling: one bad directory must not stop version management
                log.exception("Polling model base paths failed")

    def poll_once(self) -> None:
        """One file-system scan: load new aspired versions, then retire versions no longer aspired."""
        for model in self._models.values():
            on_disk = list_versions(model.config.base_path)
            if not on_disk and not model.warned_empty:  # warn once, not at every poll
                log.warning("No versions of servable %s found under base path %s", model.config.name,
                            model.config.base_path)
            model.warned_empty = not on_disk
            # A version whose loads keep failing drops out of the candidates, so the policy falls back
            # to the newest loadable one (TF Serving would serve nothing for `latest` in that case).
            for _ in range(len(on_disk) + 1):
                aspired = model.config.aspired([v for v in on_disk if self._should_try(model, v)
                                                or v in model.available])
                pending = [v for v in aspired if v not in model.available]
                if not pending or all([self._load(model, v) for v in pending]):
                    break
            with self._lock:
                ready = [v for v in aspired if v in model.available]
                retire = [v for v in model.available if v not in aspired]
            # Availability-preserving: never drop the last available version before a successor is up.
            if retire and (ready or not aspired):
                for version in retire:
                    self._unload(model, version)

    def _should_try(self, model: _Model, version: int) -> bool:
        return model.load_failures.get(version, 0) < self._max_load_retries

    def _load(self, model: _Model, version: int) -> bool:
        name, path = model.config.name, os.path.join(model.config.base_path, str(version))
        with self._lock:
            model.states[version] = VersionState("LOADING")
        log.info("Loading servable: {name: %s version: %d} from %s", name, version, path)
        try:
            loaded = LoadedVersion(name, version, path)
            loaded.warm_up()
        except Exception as e:  # a broken version must not take the server down
            model.load_failures[version] = model.load_failures.get(version, 0) + 1
            log.error("Loading servable: {name: %s version: %d} failed: %s", name, version, e)
            code = e.code.name if isinstance(e, ServingError) else "UNKNOWN"
            with self._lock:
                model.states[version] = VersionState("END", code, str(e))
            return False
        with self._lock:
            model.available[version] = loaded
            model.states[version] = VersionState("AVAILABLE")
        log.info("Successfully loaded servable version {name: %s version: %d}", name, version)
        return True

    def _unload(self, model: _Model, version: int) -> None:
        name = model.config.name
        with self._lock:
            model.available.pop(version, None)  # new requests no longer see it
            model.states[version] = VersionState("UNLOADING")
            drained = self._lock.wait_for(lambda: model.inflight.get(version, 0) == 0,
                                          timeout=self._unload_timeout)
            model.states[version] = VersionState("END")
        log.info("Unloaded servable version {name: %s version: %d}%s", name, version,
                 "" if drained else " (in-flight requests still running after the timeout)")

    # ------------------------------------------------------------------------------------ requests

    def _resolve(self, model_name: str, version: Optional[int], label: Optional[str]) -> Tuple[_Model, int]:
        model = self._models.get(model_name)
        if label:
            if model is None or label not in model.config.version_labels:
                raise invalid_argument(f"Unrecognized servable version label: {label}")
            version = model.config.version_labels[label]
        if model is not None and version is not None and version in model.available:
            return model, version
        if model is not None and version is None and model.available:
            return model, max(model.available)
        request = f"Specific({model_name}, {version})" if version is not None else f"Latest({model_name})"
        raise not_found(f"Servable not found for request: {request}")

    @contextlib.contextmanager
    def acquire(self, model_name: str, version: Optional[int] = None,
                label: Optional[str] = None) -> Iterator[LoadedVersion]:
        """Pins a version for one request (latest when neither version nor label is given)."""
        with self._lock:
            model, resolved = self._resolve(model_name, version, label)
            model.inflight[resolved] = model.inflight.get(resolved, 0) + 1
            loaded = model.available[resolved]
        try:
            yield loaded
        finally:
            with self._lock:
                model.inflight[resolved] -= 1
                if model.inflight[resolved] == 0:
                    self._lock.notify_all()

    def status(self, model_name: str, version: Optional[int] = None,
               label: Optional[str] = None) -> List[Tuple[int, VersionState]]:
        """[(version, state)] newest first, as GetModelStatus reports them."""
        with self._lock:
            model = self._models.get(model_name)
            if model is None or not model.states:
                raise not_found(f"Could not find any versions of model {model_name}")
            if label:
                if label not in model.config.version_labels:
                    raise invalid_argument(f"Unrecognized servable version label: {label}")
                version = model.config.version_labels[label]
            if version is not None:
                if version not in model.states:
                    raise not_found(f"Could not find version {version} of model {model_name}")
                return [(version, dataclasses.replace(model.states[version]))]
            return [(v, dataclasses.replace(s)) for v, s in sorted(model.states.items(), reverse=True)]

    @property
    def model_names(self) -> List[str]:
        return list(self._models)
