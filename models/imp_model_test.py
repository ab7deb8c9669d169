"""Tests of the public `ImpModel` API on the tiny config."""

import numpy as np
import pytest
import tensorflow as tf

from models import losses
from models import testing
from models import tokenizers
from models.configs import get_config
from models.imp_model import ImpModel

CONFIG = get_config("tiny").with_classifiers({"digits": 10})
D_COMMON = CONFIG.heads.d_common


@pytest.fixture(scope="module")
def model():
    tf.random.set_seed(0)
    return ImpModel(CONFIG).build_all()


def test_build_all_creates_every_variable(model):
    names = {w.name for w in model.weights}
    expected = (
        {f"{m}_embedder/pre_encoder_proj/kernel:0" for m in ("vision", "audio", "text")}
        | {f"{m}_post_encoder_proj/kernel:0" for m in ("vision", "audio", "text")}
        | {f"{s}_to_{t}/output/kernel:0" for s in ("vision", "audio", "text")
           for t in ("vision", "audio", "text") if s != t}
        | {"classifier_digits/kernel:0", "encoder/layer_1/moe/expert_wo:0",
           "text_embedder/token_embeddings/embeddings:0"}
        | {f"temperatures/temperature_{a}_{b}:0" for a, b in [
            ("audio", "audio"), ("audio", "text"), ("audio", "vision"), ("text", "text"),
            ("text", "vision"), ("vision", "vision")]})
    assert expected <= names
    assert len(names) == len(model.weights), "variable names are unique"
    count = len(model.weights)
    model.embed("video", testing.random_media("video", CONFIG), "audio")
    model.classify("digits", tf.zeros([1, CONFIG.encoder.d_model]))
    assert len(model.weights) == count, "build_all left nothing to create"


@pytest.mark.parametrize("kind,media_kwargs,tokens", [
    ("image", dict(image_size=32), 16), ("image", dict(image_size=48), 36),
    ("image", dict(image_size=64), 64), ("video", dict(frames=4), 32),
    ("video", dict(frames=8), 64), ("audio", dict(spectrogram_frames=64), 16),
    ("audio", dict(spectrogram_frames=192), 48), ("text", dict(), 12)])
def test_encode_and_embed_shapes(model, kind, media_kwargs, tokens):
    media = testing.random_media(kind, CONFIG, **media_kwargs)
    modality = {"image": "vision", "video": "vision"}.get(kind, kind)
    out = model.encode(modality, model.tokenize(kind, media))
    assert out["features"].shape == (2, tokens, CONFIG.encoder.d_model)
    assert out["features_agg"].shape == (2, CONFIG.encoder.d_model)
    assert out["mask"].shape == (2, tokens)
    assert out["aux_loss"].shape == () and list(out["router"]) == ["layer_1"]
    target = "audio" if kind == "text" else "text"
    embedding = model.embed(kind, media, target)
    assert embedding.shape == (2, D_COMMON) and embedding.dtype == tf.float32
    np.testing.assert_allclose(tf.norm(embedding, axis=-1).numpy(), 1.0, rtol=1e-5)


def test_padding_does_not_change_text_features():
    """Masked attention and pooling ignore padding: the amount of padding changes nothing.

    (A dense encoder: expert-choice routing legitimately depends on every token of the batch.)
    """
    dense = ImpModel(get_config("tiny-dense").with_vocab_size(CONFIG.text.vocab_size)).build_all()
    ids = testing.random_media("text", CONFIG, text_length=12)  # 9 real ids, 3 padding
    short = dense.encode("text", {"ids": ids[:, :10]})
    long = dense.encode("text", {"ids": ids})
    np.testing.assert_array_equal(long["mask"].numpy(), (ids.numpy() != 0).astype(np.float32))
    np.testing.assert_allclose(short["features"].numpy()[:, :9], long["features"].numpy()[:, :9],
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(short["features_agg"].numpy(), long["features_agg"].numpy(),
                               rtol=1e-4, atol=1e-5)


def test_score_is_cosine_of_embeddings(model):
    images = testing.random_media("image", CONFIG, batch=3)
    texts = testing.random_media("text", CONFIG, batch=2)
    scores = model.score("image", images, "text", texts)
    assert scores.shape == (3, 2)
    want = tf.matmul(model.embed("image", images, "text"), model.embed("text", texts, "vision"),
                     transpose_b=True)
    np.testing.assert_allclose(scores.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)


def test_temperature_and_classify(model):
    np.testing.assert_allclose(model.temperature("text", "image").numpy(),
                               CONFIG.heads.temperature_init + 1e-6)
    assert model.temperature("video", "text") is not None
    assert model.classify("digits", tf.zeros([2, CONFIG.encoder.d_model])).shape == (2, 10)
    with pytest.raises(ValueError, match="no classifier"):
        model.classify("nope", tf.zeros([2, CONFIG.encoder.d_model]))
    with pytest.raises(ValueError, match="unknown input kind"):
        model.embed("smell", tf.zeros([1]), "text")


def test_gradients_reach_every_trainable_weight():
    model = ImpModel(CONFIG).build_all()
    media = {kind: testing.random_media(kind, CONFIG, seed=i)
             for i, kind in enumerate(("image", "video", "audio", "text"))}
    with tf.GradientTape() as tape:
        image = model.encode("vision", model.tokenize("image", media["image"]), training=True)
        video = model.encode("vision", model.tokenize("video", media["video"]), training=True)
        audio = model.encode("audio", model.tokenize("audio", media["audio"]), training=True)
        text = model.encode("text", model.tokenize("text", media["text"]), training=True)
        loss = image["aux_loss"] + video["aux_loss"] + audio["aux_loss"] + text["aux_loss"]
        for (a, out_a), (b, out_b) in [(("vision", image), ("text", text)),
                                       (("audio", audio), ("text", text)),
                                       (("vision", video), ("audio", audio))]:
            loss += losses.contrastive_loss(model.project(a, out_a["features_agg"], b),
                                            model.project(b, out_b["features_agg"], a),
                                            model.temperature(a, b))
        loss += losses.softmax_cross_entropy(model.classify("digits", image["features_agg"]),
                                             testing.random_labels(10))
    grads = tape.gradient(loss, model.trainable_variables)
    no_grad = {v.name for v, g in zip(model.trainable_variables, grads)
               if g is None or not np.any(tf.convert_to_tensor(g).numpy())}
    # Only the self-pair temperatures (no same-modality loss here) may stay without gradient.
    assert no_grad == {f"temperatures/temperature_{m}_{m}:0" for m in ("audio", "text", "vision")}


def test_drop_token_inputs_encode(model):
    tokens, coords = tokenizers.video_to_tubelets(testing.random_media("video", CONFIG, frames=8),
                                                  CONFIG.vision.patch)
    tokens, coords = tokenizers.drop_tokens(tokens, coords, 0.75, seed=[0, 1])
    out = model.encode("vision", {"tokens": tokens, "coords": coords}, training=True)
    assert out["features"].shape == (2, 16, CONFIG.encoder.d_model)


def test_embed_in_a_serving_signature_matches_eager(model):
    images = testing.random_media("image", CONFIG, batch=2)

    @tf.function(input_signature=[tf.TensorSpec([None, 32, 32, 3], tf.float32)])
    def serve(x):
        return model.embed("image", x, "text")

    np.testing.assert_allclose(serve(images).numpy(), model.embed("image", images, "text").numpy(),
                               rtol=1e-5, atol=1e-6)


def test_config_round_trip_rebuilds_the_same_model(model):
    clone = ImpModel.from_config(model.get_config()).build_all()
    assert clone.imp_config == CONFIG
    assert [(w.name, w.shape) for w in clone.weights] == [(w.name, w.shape) for w in model.weights]
    clone.set_weights(model.get_weights())
    texts = testing.random_media("text", CONFIG)
    np.testing.assert_allclose(clone.embed("text", texts, "vision").numpy(),
                               model.embed("text", texts, "vision").numpy(), rtol=1e-6)
