"""Tests of the TF Serving export: contract (names, I/O), parity with the in-process model, deploy files.

One tiny MoE model is checkpointed with the trainer's checkpoint code and exported once per module
through `imp-tfx export`'s handler (about a minute on 2 cores: tracing ten signatures dominates).
"""

import argparse
import contextlib
import io
import pathlib

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.apis import prediction_log_pb2
from tensorflow_serving.config import model_server_config_pb2

from models import features as F
from models import preprocessing
from models.configs import get_config
from models.features import MediaConfig
from serving import deploy_files, export, signatures, warmup

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "the", "of", "photo", "picture", "video",
         "clip", "sound", "recording", "handwritten", "seven", "cat", "dog", "moving", "left", "##s"]
LABELS = ["cat", "dog", "seven"]
MEDIA = MediaConfig(image_size=32, video_frames=4, spectrogram_frames=64, audio_seconds=0.7)
MODEL_NAME = "imp"


def write_tiny_run(root: pathlib.Path, seed: int = 0):
    """A training-run folder as the trainer leaves it, plus an ingest-style Transform output.

    root/run/{config.json, checkpoints/}, root/transform_graph/transform_fn/assets/{vocab, labels}.
    Returns (run_dir, the in-memory model that was checkpointed).
    """
    from models.training import checkpointing, mesh_model, tasks

    assets = root / "transform_graph" / export.TRANSFORM_ASSETS_SUBDIR
    assets.mkdir(parents=True)
    (assets / F.TEXT_VOCAB_NAME).write_text("\n".join(VOCAB) + "\n")
    (assets / F.LABEL_VOCAB_NAME).write_text("\n".join(LABELS) + "\n")
    config = get_config("tiny").with_vocab_size(len(VOCAB)).with_classifiers({"digits": len(LABELS)})
    run_dir = root / "run"
    checkpointing.write_run_config(run_dir, config, tasks.load_tasks(), MEDIA)
    model = mesh_model.build_model(config, seed=seed)
    checkpointing.make_manager(checkpointing.make_checkpoint(model), run_dir).save(checkpoint_number=7)
    return run_dir, model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    run_dir, model = write_tiny_run(root)
    base = root / "serving"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = export.run_export_command(argparse.Namespace(
            checkpoint=str(run_dir), base=str(base), name=MODEL_NAME))
    assert code == 0
    version_dir = stdout.getvalue().strip().splitlines()[-1]
    return {"root": root, "base": base, "model": model, "version_dir": pathlib.Path(version_dir),
            "loaded": tf.saved_model.load(version_dir)}


def _column(values):
    return tf.constant(np.array(values, dtype=object))


def _inputs():
    size = 40
    images = [warmup.sample_png(1, size), warmup.sample_jpeg(2, size + 8)]
    wavs = [warmup.sample_wav(0, MEDIA), warmup.sample_wav(3, MEDIA)]
    frames = [[warmup.sample_jpeg(10 * i + f, size) for f in range(MEDIA.video_frames)] for i in range(2)]
    texts = ["a handwritten seven", "a photo of the cats moving left"]
    return {"image": images, "audio": wavs, "video": frames, "text": texts}


def _in_process_media(kind, values, vocab_path):
    """Dense media from the preprocessing functions, eagerly, outside any export code."""
    if kind == "text":
        return preprocessing.tokenize_text(tf.constant(values), vocab_path, MEDIA.text_max_length)
    if kind == "image":
        return tf.stack([preprocessing.decode_image(v, MEDIA.image_size) for v in values])
    if kind == "video":
        return tf.stack([preprocessing.decode_video_frames(tf.constant(v), MEDIA.image_size)
                         for v in values])
    return tf.stack([preprocessing.decode_wav_to_log_mel(v, MEDIA) for v in values])


def test_layout_and_deploy_files(exported):
    version_dir, base = exported["version_dir"], exported["base"]
    assert version_dir == base / MODEL_NAME / "1"
    for name in ("saved_model.pb", "variables", f"assets/{F.TEXT_VOCAB_NAME}", f"assets/{F.LABEL_VOCAB_NAME}",
                 "assets.extra/tf_serving_warmup_requests"):
        assert (version_dir / name).exists(), name
    assert not [p for p in (base / MODEL_NAME).iterdir() if p.name.startswith(".")]  # no staging left

    config = text_format.Parse((base / "models.config").read_text(),
                               model_server_config_pb2.ModelServerConfig())
    (entry,) = config.model_config_list.config
    assert (entry.name, entry.base_path, entry.model_platform) == (MODEL_NAME, "/models/imp", "tensorflow")
    batching = deploy_files.read_batching_config(base / "batching.config")
    assert batching.max_batch_size.value == 32 and batching.num_batch_threads.value >= 1


def test_model_config_keeps_other_models_and_versions_increase(tmp_path):
    deploy_files.write_model_config(tmp_path, "b")
    deploy_files.write_model_config(tmp_path, "a")
    deploy_files.write_model_config(tmp_path, "b")
    config = deploy_files.read_model_config(tmp_path / "models.config")
    assert [c.name for c in config.model_config_list.config] == ["a", "b"]
    with pytest.raises(text_format.ParseError):
        (tmp_path / "bad.config").write_text("max_batch_size { value: 1 } no_such_field: 2")
        deploy_files.read_batching_config(tmp_path / "bad.config")

    assert export.next_version(tmp_path / "none") == 1
    for name in ("1", "3", "10", "tmp", ".11-x"):
        (tmp_path / "m" / name).mkdir(parents=True)
    assert export.existing_versions(tmp_path / "m") == (1, 3, 10)
    assert export.next_version(tmp_path / "m") == 11


def test_signature_names_and_io(exported):
    loaded = exported["loaded"]
    assert set(loaded.signatures) == set(signatures.SIGNATURE_NAMES) | {"serving_default"}
    dim = exported["model"].imp_config.heads.d_common
    embedding = {"embedding": ([None, dim], tf.float32)}
    zero_shot = {"scores": ([None, None], tf.float32), "probabilities": ([None, None], tf.float32)}
    expected = {
        "embed_text": ({"text": [None]}, embedding),
        "embed_text_for_audio": ({"text": [None]}, embedding),
        "embed_image": ({"image_bytes": [None]}, embedding),
        "embed_audio": ({"audio_bytes": [None]}, embedding),
        "embed_video": ({"frames_bytes": [None, None]}, embedding),
        "embed_video_audio": ({"frames_bytes": [None, None], "audio_bytes": [None]}, embedding),
        "zero_shot": ({"image_bytes": [None], "class_names": [None]}, zero_shot),
        "zero_shot_audio": ({"audio_bytes": [None], "class_names": [None]}, zero_shot),
        "zero_shot_video": ({"frames_bytes": [None, None], "class_names": [None]}, zero_shot),
        "serving_examples": ({"examples": [None]},
                             {f"{k}_embedding": ([None, dim], tf.float32) for k in signatures.EMBED_KINDS}),
    }
    for name, (inputs, outputs) in expected.items():
        function = loaded.signatures[name]
        specs = function.structured_input_signature[1]
        assert {k: (s.shape.as_list(), s.dtype) for k, s in specs.items()} == {
            k: (shape, tf.string) for k, shape in inputs.items()}, name
        got = {k: (t.shape.as_list(), t.dtype) for k, t in function.structured_outputs.items()}
        assert got == outputs, name


def test_embeddings_match_the_in_process_model(exported):
    loaded, model = exported["loaded"], exported["model"]
    vocab = str(exported["version_dir"] / "assets" / F.TEXT_VOCAB_NAME)
    inputs = _inputs()
    calls = {"text": ("embed_text", "text", "vision"), "image": ("embed_image", "image_bytes", "text"),
             "audio": ("embed_audio", "audio_bytes", "text"), "video": ("embed_video", "frames_bytes", "text")}
    for kind, (name, key, target) in calls.items():
        got = loaded.signatures[name](**{key: _column(inputs[kind])})["embedding"].numpy()
        want = model.embed(kind, _in_process_media(kind, inputs[kind], vocab), target=target).numpy()
        np.testing.assert_allclose(got, want, atol=1e-5, err_msg=kind)
        np.testing.assert_allclose(np.linalg.norm(got, axis=-1), 1.0, atol=1e-5)
    text_audio = loaded.signatures["embed_text_for_audio"](text=_column(inputs["text"]))["embedding"]
    want = model.embed("text", _in_process_media("text", inputs["text"], vocab), target="audio")
    np.testing.assert_allclose(text_audio.numpy(), want.numpy(), atol=1e-5)

    # Video + audio: the normalized sum; a row without audio is the video embedding alone.
    video = loaded.signatures["embed_video"](frames_bytes=_column(inputs["video"]))["embedding"].numpy()
    audio = loaded.signatures["embed_audio"](audio_bytes=_column(inputs["audio"][:1]))["embedding"].numpy()
    fused = loaded.signatures["embed_video_audio"](
        frames_bytes=_column(inputs["video"]), audio_bytes=_column([inputs["audio"][0], b""]))["embedding"]
    want0 = (video[0] + audio[0]) / np.linalg.norm(video[0] + audio[0])
    np.testing.assert_allclose(fused.numpy(), np.stack([want0, video[1]]), atol=1e-5)


def test_serving_examples_embed_present_modalities(exported):
    loaded = exported["loaded"]
    inputs = _inputs()
    full = tf.train.Example.FromString(warmup.sample_example(0, MEDIA))
    text_only = tf.train.Example()
    text_only.features.feature[F.RAW_TEXT].bytes_list.value.append(inputs["text"][0].encode())
    full.features.feature[F.RAW_TEXT].bytes_list.value[:] = [inputs["text"][0].encode()]
    out = loaded.signatures["serving_examples"](
        examples=_column([full.SerializeToString(), text_only.SerializeToString()]))
    norms = {k: np.linalg.norm(v.numpy(), axis=-1) for k, v in out.items()}
    np.testing.assert_allclose(norms["text_embedding"], [1, 1], atol=1e-5)
    for kind in ("image", "audio", "video"):
        np.testing.assert_allclose(norms[f"{kind}_embedding"], [1, 0], atol=1e-5)
    # The same text alone through embed_text: present rows are embedded exactly like direct requests.
    text = loaded.signatures["embed_text"](text=_column(inputs["text"][:1]))["embedding"].numpy()
    np.testing.assert_allclose(out["text_embedding"].numpy()[1], text[0], atol=1e-5)


def test_zero_shot_scores(exported):
    loaded = exported["loaded"]
    inputs = _inputs()
    classes = _column(["cat", "seven", "cat", "dog"])
    for name, key, kind in (("zero_shot", "image_bytes", "image"), ("zero_shot_audio", "audio_bytes", "audio"),
                            ("zero_shot_video", "frames_bytes", "video")):
        out = loaded.signatures[name](**{key: _column(inputs[kind]), "class_names": classes})
        scores, probabilities = out["scores"].numpy(), out["probabilities"].numpy()
        assert scores.shape == probabilities.shape == (2, 4), name
        np.testing.assert_array_equal(scores[:, 0], scores[:, 2])
        assert np.all(np.abs(scores) <= 1 + 1e-5)
        np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, atol=1e-5)
    # Scores are cosines with the prompt-ensemble keys: a single "{label}" template would not match them.
    image = loaded.signatures["embed_image"](image_bytes=_column(inputs["image"]))["embedding"].numpy()
    templates = export.prompt_templates()["image"]
    prompts = [t.format(label="dog") for t in templates]
    keys = loaded.signatures["embed_text"](text=_column(prompts))["embedding"].numpy().mean(axis=0)
    np.testing.assert_allclose(image @ (keys / np.linalg.norm(keys)),
                               loaded.signatures["zero_shot"](image_bytes=_column(inputs["image"]),
                                                              class_names=_column(["dog"]))["scores"].numpy()[:, 0],
                               atol=1e-5)


def test_undecodable_media_raise_invalid_argument(exported):
    loaded = exported["loaded"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="image_bytes: not an encoded JPEG"):
        loaded.signatures["embed_image"](image_bytes=_column([warmup.sample_png(0, 16), b"not an image"]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="audio_bytes: not a WAV file"):
        loaded.signatures["embed_audio"](audio_bytes=_column([b"RIFF....OGGS"]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="frames_bytes"):
        loaded.signatures["embed_video"](frames_bytes=_column([[b"\x00\x01", b""]]))
    wrong_rate = tf.audio.encode_wav(tf.zeros([800, 1]), 8000).numpy()
    with pytest.raises(tf.errors.InvalidArgumentError, match="16000 Hz"):
        loaded.signatures["embed_audio"](audio_bytes=_column([wrong_rate]))


def test_warmup_requests_cover_every_signature(exported):
    path = exported["version_dir"] / "assets.extra" / "tf_serving_warmup_requests"
    requests = [prediction_log_pb2.PredictionLog.FromString(r).predict_log.request
                for r in tf.data.TFRecordDataset(str(path)).as_numpy_iterator()]
    assert len(requests) == len(signatures.SIGNATURE_NAMES) * len(warmup.WARMUP_BATCH_SIZES)
    assert {r.model_spec.signature_name for r in requests} == set(signatures.SIGNATURE_NAMES)
    assert all(r.model_spec.name == MODEL_NAME for r in requests)
    # Replay a few through the loaded model, as TF Serving does before marking the version AVAILABLE.
    loaded = exported["loaded"]
    for request in requests[:len(signatures.SIGNATURE_NAMES)]:
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        outputs = loaded.signatures[request.model_spec.signature_name](**{k: tf.constant(v) for k, v in inputs.items()})
        assert all(o.shape[0] == 1 for o in outputs.values())


def test_missing_vocabulary_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="--transform-graph"):
        export.find_transform_assets(None, search_from=tmp_path)
    with pytest.raises(FileNotFoundError, match=F.TEXT_VOCAB_NAME):
        export.find_transform_assets(tmp_path)


def test_kubernetes_manifest_runs_tf_serving_on_the_export_layout():
    import yaml

    path = pathlib.Path(__file__).parent / "k8s" / "tf-serving.yaml"
    deployment, service = yaml.safe_load_all(path.read_text())
    assert (deployment["kind"], service["kind"]) == ("Deployment", "Service")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "tensorflow/serving:2.16.1"
    args = set(container["args"])
    assert {"--enable_batching", f"--model_config_file=/models/{deploy_files.MODEL_CONFIG_NAME}",
            f"--batching_parameters_file=/models/{deploy_files.BATCHING_CONFIG_NAME}"} <= args
    assert {p["containerPort"] for p in container["ports"]} == {8500, 8501}
    assert container["readinessProbe"]["httpGet"]["path"] == f"/v1/models/{MODEL_NAME}"
    assert {p["port"] for p in service["spec"]["ports"]} == {8500, 8501}
    assert deployment["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
