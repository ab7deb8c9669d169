"""Test and benchmark helpers: a small fake IMP-like SavedModel, sample media, a server subprocess.

The fake model exposes the export contract's signatures and I/O (names, dtypes, shapes) with cheap core-TF
ops, so server tests exercise real decoding and real shapes without training anything:

* `embed_text`      text string [batch]                       -> embedding float32 [batch, dim]
* `embed_image`     image_bytes string [batch] (JPEG/PNG/...)  -> embedding float32 [batch, dim]
* `embed_audio`     audio_bytes string [batch] (WAV)           -> embedding float32 [batch, dim]
* `embed_video`     frames_bytes string [batch, frames] (JPEG), audio_bytes string [batch] ("" = none)
                                                               -> embedding float32 [batch, dim]
* `zero_shot`       image_bytes string [batch], class_names string [classes]
                                                               -> scores float32 [batch, classes]
* `serving_examples` examples string [batch] (serialized tf.Example with a `text` feature)
                                                               -> embedding float32 [batch, dim]
  (also exported as `serving_default`, the TFX convention for serialized-example signatures)

Embeddings are L2-normalized. Text = sum of hashed word vectors; images = 4x4 average-pooled RGB
projected; audio = RMS of 32 frames of 2 s at 16 kHz projected. Weights come from `seed`, so versions
written with different seeds give different embeddings (tests tell versions apart that way).
"""

from __future__ import annotations

import contextlib
import io
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Iterator, List, Optional, Sequence

import numpy as np

from components.wav import encode_pcm16_wav

EMBED_DIM = 16
TEXT_BUCKETS = 1024
POOLED_IMAGE = 4            # images are average-pooled to POOLED_IMAGE x POOLED_IMAGE x 3
AUDIO_SAMPLES = 32000       # 2 s at 16 kHz
AUDIO_FRAMES = 32
SIGNATURE_NAMES = ("embed_text", "embed_image", "embed_audio", "embed_video", "zero_shot",
                   "serving_examples")


def _build_module(seed: int, dim: int):
    import tensorflow as tf

    image_features = POOLED_IMAGE * POOLED_IMAGE * 3

    class FakeImp(tf.Module):
        def __init__(self):
            super().__init__()
            rng = np.random.default_rng(seed)
            self.text_table = tf.Variable(rng.normal(size=[TEXT_BUCKETS, dim]).astype(np.float32))
            self.image_proj = tf.Variable(rng.normal(size=[image_features, dim]).astype(np.float32))
            self.audio_proj = tf.Variable(rng.normal(size=[AUDIO_FRAMES, dim]).astype(np.float32))

        # -- pure functions of one modality --------------------------------------------------------
        def _text(self, text):
            words = tf.strings.split(tf.strings.lower(text))                       # ragged [B, None]
            ids = tf.strings.to_hash_bucket_fast(words, TEXT_BUCKETS)
            vectors = tf.gather(self.text_table, ids)                              # ragged [B, None, d]
            return tf.math.l2_normalize(tf.reduce_sum(vectors, axis=1), axis=-1)   # [B, d]

        def _pooled_images(self, encoded):
            """string [N] -> float32 [N, 48]; InvalidArgumentError for undecodable bytes."""
            def one(data):
                image = tf.io.decode_image(data, channels=3, expand_animations=False)
                image = tf.image.resize(tf.cast(image, tf.float32) / 127.5 - 1.0, [32, 32])
                return tf.reshape(tf.nn.avg_pool2d(image[None], 8, 8, "VALID"), [image_features])
            return tf.map_fn(one, encoded, fn_output_signature=tf.TensorSpec([image_features], tf.float32))

        def _audio_features(self, wavs):
            """string [B] WAV ("" = silence) -> float32 [B, 32] frame RMS."""
            def one(data):
                def decode():
                    audio, _ = tf.audio.decode_wav(data, desired_channels=1)
                    samples = audio[:AUDIO_SAMPLES, 0]
                    return tf.pad(samples, [[0, AUDIO_SAMPLES - tf.shape(samples)[0]]])
                samples = tf.cond(tf.strings.length(data) > 0, decode, lambda: tf.zeros([AUDIO_SAMPLES]))
                frames = tf.reshape(samples, [AUDIO_FRAMES, -1])
                return tf.sqrt(tf.reduce_mean(tf.square(frames), axis=-1) + 1e-8)
            return tf.map_fn(one, wavs, fn_output_signature=tf.TensorSpec([AUDIO_FRAMES], tf.float32))

        def _image(self, image_bytes):
            return tf.math.l2_normalize(self._pooled_images(image_bytes) @ self.image_proj, axis=-1)

        # -- signatures ------------------------------------------------------------------------------
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def embed_text(self, text):
            return {"embedding": self._text(text)}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
        def embed_image(self, image_bytes):
            return {"embedding": self._image(image_bytes)}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="audio_bytes")])
        def embed_audio(self, audio_bytes):
            return {"embedding": tf.math.l2_normalize(
                self._audio_features(audio_bytes) @ self.audio_proj, axis=-1)}

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.string, name="frames_bytes"),
                                      tf.TensorSpec([None], tf.string, name="audio_bytes")])
        def embed_video(self, frames_bytes, audio_bytes):
            batch, frames = tf.shape(frames_bytes)[0], tf.shape(frames_bytes)[1]
            pooled = tf.reshape(self._pooled_images(tf.reshape(frames_bytes, [-1])),
                                [batch, frames, image_features])
            visual = tf.reduce_mean(pooled, axis=1) @ self.image_proj
            sound = self._audio_features(audio_bytes) @ self.audio_proj
            return {"embedding": tf.math.l2_normalize(visual + 0.1 * sound, axis=-1)}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes"),
                                      tf.TensorSpec([None], tf.string, name="class_names")])
        def zero_shot(self, image_bytes, class_names):
            prompts = tf.strings.join(["a photo of a ", class_names])
            return {"scores": tf.matmul(self._image(image_bytes), self._text(prompts), transpose_b=True)}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        def serving_examples(self, examples):
            features = tf.io.parse_example(
                examples, {"text": tf.io.FixedLenFeature([], tf.string, default_value="")})
            return {"embedding": self._text(features["text"])}

    return FakeImp()


def write_fake_model(model_base_path: str, version: int = 1, seed: Optional[int] = None,
                     dim: int = EMBED_DIM, warmup: bool = True, model_name: str = "imp") -> str:
    """Writes the fake model as `model_base_path/version/` (a TF Serving layout); returns that dir.

    `seed` defaults to `version`, so each version embeds differently. With `warmup`, writes
    `assets.extra/tf_serving_warmup_requests` with one request per embed signature.
    """
    import tensorflow as tf

    from serving.server import warmup as warmup_lib

    module = _build_module(version if seed is None else seed, dim)
    signatures = {name: getattr(module, name).get_concrete_function() for name in SIGNATURE_NAMES}
    signatures["serving_default"] = signatures["serving_examples"]
    version_dir = os.path.join(model_base_path, str(version))
    # Write beside, then rename: a poller must never see a half-written version directory.
    staging = tempfile.mkdtemp(prefix=f".{version}-", dir=_ensure_dir(model_base_path))
    tf.saved_model.save(module, staging, signatures=signatures)
    if warmup:
        warmup_lib.write_warmup_requests(staging, model_name, [
            ("embed_text", {"text": np.array([b"a warmup sentence"], dtype=object)}),
            ("embed_image", {"image_bytes": np.array([make_jpeg(0)], dtype=object)}),
            ("embed_audio", {"audio_bytes": np.array([make_wav(0)], dtype=object)}),
            ("embed_video", {"frames_bytes": np.array([[make_jpeg(1), make_jpeg(2)]], dtype=object),
                             "audio_bytes": np.array([b""], dtype=object)}),
        ])
    os.rename(staging, version_dir)
    return version_dir


def copy_version(source_dir: str, model_base_path: str, version: int) -> str:
    """Publishes an existing version dir as `model_base_path/version` atomically (copy, then rename)."""
    staging = tempfile.mkdtemp(prefix=f".{version}-", dir=model_base_path)
    os.rmdir(staging)
    shutil.copytree(source_dir, staging)
    target = os.path.join(model_base_path, str(version))
    os.rename(staging, target)
    return target


def _ensure_dir(path: str) -> str:
    os.makedirs(path, exist_ok=True)
    return path


# ------------------------------------------------------------------------------------------- media


def make_image(seed: int, size: int = 48) -> np.ndarray:
    """A seeded RGB uint8 [size, size, 3] picture (smooth gradients plus a square)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    base = rng.uniform(0, 1, 3)[None, None, :] * np.stack([x, y, 1 - x], axis=-1)
    image = (base * 255).astype(np.uint8)
    corner = rng.integers(0, size // 2, 2)
    image[corner[0]:corner[0] + size // 3, corner[1]:corner[1] + size // 3] = rng.integers(0, 256, 3)
    return image


def _encode(image: np.ndarray, fmt: str) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(image).save(out, format=fmt)
    return out.getvalue()


def make_jpeg(seed: int, size: int = 48) -> bytes:
    return _encode(make_image(seed, size), "JPEG")


def make_png(seed: int, size: int = 48) -> bytes:
    return _encode(make_image(seed, size), "PNG")


def make_wav(seed: int, seconds: float = 1.0, rate: int = 16000) -> bytes:
    """A seeded tone with a seed-dependent frequency and envelope, mono PCM16 WAV."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    envelope = np.interp(t, np.linspace(0, seconds, 5), rng.uniform(0.1, 1.0, 5))
    samples = (0.5 * envelope * np.sin(2 * np.pi * rng.uniform(200, 2000) * t) * 32767).astype("<i2")
    return encode_pcm16_wav(samples, rate)


def make_video_file(path: str, seed: int, frames: int = 16, fps: int = 8, size: int = 64,
                    with_audio: bool = True) -> str:
    """Writes a small MP4 (MPEG-4 video, AAC audio) of a square moving over a gradient."""
    import av

    rng = np.random.default_rng(seed)
    with av.open(path, mode="w") as container:
        video = container.add_stream("mpeg4", rate=fps)
        video.width = video.height = size
        video.pix_fmt = "yuv420p"
        audio = container.add_stream("aac", rate=16000) if with_audio else None
        base = make_image(seed, size)
        for i in range(frames):
            frame = base.copy()
            x = (i * 3) % (size - 8)
            frame[20:28, x:x + 8] = rng.integers(0, 256, 3)
            for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if audio is not None:
            seconds = frames / fps
            t = np.arange(int(seconds * 16000)) / 16000
            tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
            frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
            frame.sample_rate = 16000
            for packet in audio.encode(frame):
                container.mux(packet)
            for packet in audio.encode():
                container.mux(packet)
    return path


# ------------------------------------------------------------------------------------------- server


class ServerProcess:
    """A `imp-tfx serve` subprocess on free loopback ports (see `run_server`)."""

    def __init__(self, process: subprocess.Popen, rest_port: int, grpc_port: int, log_path: str):
        self.process, self.rest_port, self.grpc_port, self.log_path = process, rest_port, grpc_port, log_path

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def log_text(self) -> str:
        return pathlib.Path(self.log_path).read_text(errors="replace")


@contextlib.contextmanager
def run_server(model_base_path: str, model_name: str = "imp", poll_seconds: float = 1.0,
               extra_args: Sequence[str] = (), timeout: float = 120.0) -> Iterator[ServerProcess]:
    """Starts the server as a subprocess, waits until the model is AVAILABLE, stops it on exit."""
    import portpicker

    from serving.client import RestClient, ServingClientError

    rest_port, grpc_port = portpicker.pick_unused_port(), portpicker.pick_unused_port()
    log_dir = tempfile.mkdtemp(prefix="imp-serve-")
    log_path = os.path.join(log_dir, "server.log")
    command: List[str] = [
        sys.executable, "-m", "imp_tfx", "serve", "--model-base-path", model_base_path,
        "--model-name", model_name, "--rest-port", str(rest_port), "--grpc-port", str(grpc_port),
        "--poll-seconds", str(poll_seconds), *extra_args]
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
    server = ServerProcess(process, rest_port, grpc_port, log_path)
    client = RestClient(server.rest_url, timeout=2)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}:\n{server.log_text()[-3000:]}")
            try:
                if any(v["state"] == "AVAILABLE" for v in client.model_status(model_name)):
                    break
            except (ServingClientError, OSError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"server not ready after {timeout}s:\n{server.log_text()[-3000:]}")
            time.sleep(0.25)
        yield server
    finally:
        client.close()
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(log_dir, ignore_errors=True)
