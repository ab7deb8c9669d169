"""The shared pre-LN Transformer encoder (IMP_SPEC.md 1.4-1.5).

    x = x + Dropout(MHA(LN(x), mask))
    x = x + Dropout(MLP(LN(x)))        MLP = dense GELU FFN, or `SparseMoe` in the last MoE layers
    y = FinalLN(x)                     (scale + bias; in-layer LNs are scale-only)

Encoding is one call per modality, so router losses are returned (not `add_loss`-ed): the caller sums
them over the calls of a step.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional, Tuple

import tensorflow as tf
import tf_keras

from models.configs import EncoderConfig, ImpConfig
from models.layers.attention import MultiHeadAttention, layer_norm
from models.layers.tracing import static_graph
from models.moe import SparseMoe

RouterMetrics = Dict[str, Dict[str, tf.Tensor]]


@tf_keras.utils.register_keras_serializable(package="imp_tfx")
class FeedForward(tf_keras.layers.Layer):
    """Bias-free GELU (tanh) MLP: float32 [B, N, d] -> [B, N, d]; `wi` [d, d_ff], `wo` [d_ff, d]."""

    def __init__(self, d_ff: int, dropout_rate: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.d_ff = int(d_ff)
        self.dropout_rate = float(dropout_rate)
        self._dropout = tf_keras.layers.Dropout(self.dropout_rate)

    def build(self, input_shape):
        d_model = int(input_shape[-1])
        self.wi = self.add_weight(name="wi", shape=[d_model, self.d_ff], initializer="lecun_normal")
        self.wo = self.add_weight(name="wo", shape=[self.d_ff, d_model], initializer="lecun_normal")
        super().build(input_shape)

    @static_graph
    def call(self, x: tf.Tensor, training=None) -> tf.Tensor:
        hidden = tf.nn.gelu(tf.einsum("bnd,df->bnf", x, self.wi), approximate=True)
        hidden = self._dropout(hidden, training=training)
        return tf.einsum("bnf,fd->bnd", hidden, self.wo)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(d_ff=self.d_ff, dropout_rate=self.dropout_rate)
        return config


@tf_keras.utils.register_keras_serializable(package="imp_tfx")
class EncoderBlock(tf_keras.layers.Layer):
    """One pre-LN block: float32 [B, N, d] (+ mask [B, N]) -> (float32 [B, N, d], router aux or None).

    Args:
      num_heads, d_ff, qk_layernorm, dropout_rate, layer_norm_epsilon: as in `EncoderConfig`.
      moe: a `SparseMoe` replacing the dense MLP (weights under `<block>/moe/`), or None.
    """

    def __init__(self, num_heads: int, d_ff: int, qk_layernorm: bool = False,
                 dropout_rate: float = 0.0, layer_norm_epsilon: float = 1e-6,
                 moe: Optional[SparseMoe] = None, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.d_ff = int(d_ff)
        self.qk_layernorm = bool(qk_layernorm)
        self.dropout_rate = float(dropout_rate)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.attention_norm = layer_norm("attention_norm", self.layer_norm_epsilon)
        self.attention = MultiHeadAttention(self.num_heads, self.qk_layernorm, self.dropout_rate,
                                            self.layer_norm_epsilon, name="attention")
        self.mlp_norm = layer_norm("mlp_norm", self.layer_norm_epsilon)
        self.mlp = moe if moe is not None else FeedForward(self.d_ff, self.dropout_rate, name="mlp")
        self._dropout = tf_keras.layers.Dropout(self.dropout_rate)

    @property
    def is_moe(self) -> bool:
        return isinstance(self.mlp, SparseMoe)

    @static_graph
    def call(self, x: tf.Tensor, mask: Optional[tf.Tensor] = None,
             training=None) -> Tuple[tf.Tensor, Optional[Dict[str, tf.Tensor]]]:
        h = tf.cast(self.attention_norm(x), x.dtype)
        x = x + self._dropout(self.attention(h, mask=mask, training=training), training=training)
        h = tf.cast(self.mlp_norm(x), x.dtype)
        aux = None
        if self.is_moe:
            h, aux = self.mlp(h, training=training, return_aux=True)
        else:
            h = self.mlp(h, training=training)
        return x + self._dropout(h, training=training), aux

    def get_config(self) -> Dict[str, Any]:
        # A MoE block is rebuilt by `Encoder` from its `EncoderConfig`, not from this dict.
        config = super().get_config()
        config.update(num_heads=self.num_heads, d_ff=self.d_ff, qk_layernorm=self.qk_layernorm,
                      dropout_rate=self.dropout_rate, layer_norm_epsilon=self.layer_norm_epsilon)
        return config


@tf_keras.utils.register_keras_serializable(package="imp_tfx")
class Encoder(tf_keras.layers.Layer):
    """The shared stack: float32 [B, N, d] + mask [B, N] -> (features, aux_loss, router metrics).

    Blocks are `layer_0 .. layer_{L-1}`; the MLP of `config.moe_layer_indices` is a `SparseMoe`
    (`layer_i/moe/...`), the others a dense `FeedForward` (`layer_i/mlp/...`); then `final_layer_norm`.

    Args:
      config: the `EncoderConfig` (its `to_dict` form in `get_config`).
      mesh: optional DTensor mesh handed to the MoE layers (expert-parallel dispatch).
    """

    def __init__(self, config: EncoderConfig, mesh=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(config, dict):  # from get_config
            config = ImpConfig.from_dict({"encoder": config}).encoder
        self.config = config
        moe_layers = set(config.moe_layer_indices)
        self.blocks = []
        for i in range(config.num_layers):
            moe = None
            if i in moe_layers:
                moe = SparseMoe.from_moe_config(config.moe, mlp_dim=config.d_ff, mesh=mesh,
                                                dropout_rate=config.dropout_rate, name="moe")
            self.blocks.append(EncoderBlock(
                config.num_heads, config.d_ff, config.qk_layernorm, config.dropout_rate,
                config.layer_norm_epsilon, moe=moe, name=f"layer_{i}"))
        self.final_layer_norm = layer_norm("final_layer_norm", config.layer_norm_epsilon,
                                           center=True)
        self._dropout = tf_keras.layers.Dropout(config.dropout_rate)

    @static_graph
    def call(self, x: tf.Tensor, mask: Optional[tf.Tensor] = None,
             training=None) -> Tuple[tf.Tensor, tf.Tensor, RouterMetrics]:
        """Returns features float32 [B, N, d], the summed router aux loss float32 [] (0 when dense)
        and `{"layer_i": {metric: tensor}}` for every MoE layer."""
        aux_loss = tf.zeros([], tf.float32)
        router: RouterMetrics = {}
        for block in self.blocks:
            x, aux = block(x, mask=mask, training=training)
            if aux is not None:
                aux_loss += tf.cast(aux["aux_loss"], tf.float32)
                router[block.name] = aux
        x = self._dropout(tf.cast(self.final_layer_norm(x), x.dtype), training=training)
        return x, aux_loss, router

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(config=dataclasses.asdict(self.config))
        return config
