"""`ImpModel`: the public IMP model API (docs/architecture.md, "Model API").

    media --tokenize--> tokens + coords --embedder[m]--> [B, N, d] --shared Encoder--> [B, N, d]
          --post_encoder_proj[m]--> masked mean --> features_agg [B, d]
          --common space m->target--> [B, d_common] (L2-normalized by `embed`)
          --classifier[name]--> logits

Modalities are encoded in separate calls of the same encoder (IMP's shared-weight multi-encoder), so
each `encode` returns its own MoE aux loss; training steps sum them with the task losses.

Variables are created by `build_all()` (call it before checkpoint restore or DTensor layout mapping):
`<modality>_embedder/...`, `encoder/layer_<i>/{attention,mlp|moe,...}/...`,
`<modality>_post_encoder_proj/...`, `<source>_to_<target>/...`, `classifier_<name>/...`,
`temperatures/temperature_<a>_<b>` (object paths for DTensor: `encoder.blocks.<i>.mlp.expert_wi`, ...).
Call it before any Keras `model(...)` call, which would prefix the names with the model's (`imp/`).
"""

from __future__ import annotations

from typing import Any, Dict, Mapping

import tensorflow as tf
import tf_keras

from models import tokenizers
from models.configs import INPUT_KINDS, MODALITIES, ImpConfig
from models.layers.embedders import build_embedders, dense
from models.layers.heads import (CommonSpaceProjection, PairTemperatures, l2_normalize,
                                 masked_mean_pool)
from models.layers.tracing import static_graph
from models.layers.transformer import Encoder

Inputs = Mapping[str, tf.Tensor]


def encoder_modality(kind: str) -> str:
    """Input kind (image, video, audio, text) or modality -> encoder modality (vision, audio, text)."""
    if kind in MODALITIES:
        return kind
    try:
        return INPUT_KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown input kind {kind!r}; choose one of {sorted(INPUT_KINDS)}") from None


def projection_name(source: str, target: str) -> str:
    return f"{source}_to_{target}"


@tf_keras.utils.register_keras_serializable(package="imp_tfx")
class ImpModel(tf_keras.Model):
    """IMP: one shared Transformer encoder for vision, audio and text with per-modality ends.

    Args:
      config: the `ImpConfig` (text vocabulary size and classifier heads included).
      mesh: optional DTensor mesh for expert-parallel MoE layers (not serialized).
    """

    def __init__(self, config: ImpConfig, mesh=None, **kwargs):
        kwargs.setdefault("name", "imp")
        super().__init__(**kwargs)
        self.imp_config = config
        self.mesh = mesh
        d_model = config.encoder.d_model
        eps = config.encoder.layer_norm_epsilon
        self.embedders = build_embedders(config)
        self.encoder = Encoder(config.encoder, mesh=mesh, name="encoder")
        self.post_encoder_proj = {m: dense(d_model, f"{m}_post_encoder_proj") for m in MODALITIES}
        self.common_space = {
            projection_name(src, tgt): CommonSpaceProjection(
                config.heads.d_common, eps, name=projection_name(src, tgt))
            for src in MODALITIES for tgt in MODALITIES if src != tgt}
        self.classifiers = {name: dense(int(classes), f"classifier_{name}")
                            for name, classes in config.heads.classifiers}
        self.temperatures = PairTemperatures(MODALITIES, config.heads.temperature_init,
                                             name="temperatures")
        self._all_variables_built = False

    # -- the model API ------------------------------------------------------------------------------

    @static_graph
    def tokenize(self, kind: str, media: tf.Tensor) -> Dict[str, tf.Tensor]:
        """Dense media -> the token inputs of `encode` (see `models.tokenizers`).

        image float32 [B, H, W, 3] / video [B, F, H, W, 3] in [-1, 1] -> {"tokens", "coords" [B, N, 3]};
        audio log-mel [B, T, M] -> {"tokens", "coords" [B, N, 2]}; text int ids [B, L] -> {"ids"}.
        """
        if kind == "image":
            tokens, coords = tokenizers.image_to_tubelets(media, self.imp_config.vision.patch)
        elif kind == "video":
            tokens, coords = tokenizers.video_to_tubelets(media, self.imp_config.vision.patch)
        elif kind == "audio":
            tokens, coords = tokenizers.spectrogram_to_patches(media, self.imp_config.audio.patch)
        elif kind == "text":
            return {"ids": media}
        else:
            raise ValueError(f"unknown input kind {kind!r}; choose one of {sorted(INPUT_KINDS)}")
        return {"tokens": tokens, "coords": coords}

    @static_graph
    def encode(self, modality: str, inputs: Inputs, training=False) -> Dict[str, Any]:
        """Token inputs of one modality -> encoder outputs.

        Returns:
          features: float32 [B, N, d_model] (after `post_encoder_proj`),
          features_agg: float32 [B, d_model] (masked mean of `features`),
          mask: float32 [B, N] (1 = real token),
          aux_loss: float32 [] summed MoE router losses (0 for dense encoders),
          router: {"layer_<i>": {metric: tensor}} per MoE layer.
        """
        modality = encoder_modality(modality)
        x, mask = self.embedders[modality](inputs)
        features, aux_loss, router = self.encoder(x, mask=mask, training=training)
        features = self.post_encoder_proj[modality](features)
        return {"features": tf.cast(features, tf.float32),
                "features_agg": masked_mean_pool(features, mask),
                "mask": mask, "aux_loss": aux_loss, "router": router}

    @static_graph
    def project(self, modality: str, features_agg: tf.Tensor, target: str) -> tf.Tensor:
        """Common-space MLP source -> target: float [B, d_model] -> float32 [B, d_common], unnormalized."""
        modality, target = encoder_modality(modality), encoder_modality(target)
        name = projection_name(modality, target)
        if name not in self.common_space:
            raise ValueError(f"no common-space projection {name}; known: {sorted(self.common_space)}")
        return tf.cast(self.common_space[name](features_agg), tf.float32)

    @static_graph
    def embed(self, kind: str, media: tf.Tensor, target: str, training=False) -> tf.Tensor:
        """Dense media of `kind` -> L2-normalized float32 [B, d_common] in the space shared with
        `target` (any input kind or modality)."""
        outputs = self.encode(encoder_modality(kind), self.tokenize(kind, media), training=training)
        return l2_normalize(self.project(kind, outputs["features_agg"], target))

    @static_graph
    def classify(self, head_name: str, features_agg: tf.Tensor) -> tf.Tensor:
        """Named classifier on pooled features: float [B, d_model] -> logits float32 [B, classes]."""
        if head_name not in self.classifiers:
            raise ValueError(f"no classifier head {head_name!r}; known: {sorted(self.classifiers)}")
        return tf.cast(self.classifiers[head_name](features_agg), tf.float32)

    @static_graph
    def temperature(self, modality_a: str, modality_b: str) -> tf.Tensor:
        """Learnable contrastive temperature of a modality pair: float32 [] = relu(t) + 1e-6."""
        return self.temperatures.temperature(encoder_modality(modality_a),
                                             encoder_modality(modality_b))

    @static_graph
    def score(self, kind_a: str, media_a: tf.Tensor, kind_b: str, media_b: tf.Tensor) -> tf.Tensor:
        """Cosine similarities in the (a, b) common spaces: float32 [B_a, B_b]."""
        embeddings_a = self.embed(kind_a, media_a, target=encoder_modality(kind_b))
        embeddings_b = self.embed(kind_b, media_b, target=encoder_modality(kind_a))
        return tf.matmul(embeddings_a, embeddings_b, transpose_b=True)

    # -- Keras plumbing -----------------------------------------------------------------------------

    @static_graph
    def call(self, inputs: Mapping[str, Inputs], training=None) -> Dict[str, Dict[str, Any]]:
        """`{modality: token inputs}` -> `{modality: encode(...)}` (one encoder call per modality)."""
        return {modality: self.encode(modality, modality_inputs, training=training)
                for modality, modality_inputs in inputs.items()}

    def dummy_inputs(self) -> Dict[str, Dict[str, tf.Tensor]]:
        """Smallest token inputs per modality that every layer accepts (MoE grouping included).

        E examples of E tokens: the MoE splits them into E groups of E tokens, capacity 1.
        """
        n = max(self.imp_config.encoder.moe.num_experts, 1)
        vision, audio = self.imp_config.vision, self.imp_config.audio
        return {
            "vision": {"tokens": tf.zeros([n, n, vision.token_dim]), "coords": tf.zeros([n, n, 3])},
            "audio": {"tokens": tf.zeros([n, n, audio.token_dim]), "coords": tf.zeros([n, n, 2])},
            "text": {"ids": tf.ones([n, n], tf.int32)},
        }

    def build_all(self) -> "ImpModel":
        """Creates every variable (all embedders, projections, heads, temperatures) with a tiny forward.

        Checkpoint restores and DTensor layout maps only see variables that exist, and a training task
        touches only some of them. Idempotent; returns self.
        """
        if self._all_variables_built:
            return self
        d_model = self.imp_config.encoder.d_model
        pooled = tf.zeros([1, d_model])
        for modality, inputs in self.dummy_inputs().items():
            self.encode(modality, inputs)
        for name, projection in self.common_space.items():
            projection(pooled)
        for head_name in self.classifiers:
            self.classify(head_name, pooled)
        self.temperatures.ensure_built()
        self._all_variables_built = True
        self.built = True
        return self

    def get_config(self) -> Dict[str, Any]:
        return {"name": self.name, "config": self.imp_config.to_dict()}

    @classmethod
    def from_config(cls, config: Dict[str, Any], custom_objects=None) -> "ImpModel":
        return cls(ImpConfig.from_dict(config["config"]), name=config.get("name", "imp"))
