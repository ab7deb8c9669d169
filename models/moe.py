"""Sparse Mixture-of-Experts MLP (`SparseMoe`), IMP's replacement for the dense MLP of the last layers.

Data flow for inputs float32 [B, N, d] with E experts, G groups of T tokens, C slots per expert:

    tokens [G, T, d] --router (fp32)--> probs [G, T, E] --routing--> Route (indices [G, E, C])
    dispatch: gather tokens by index            -> [G, E, C, d]   (G sharded on `batch` under DTensor)
    relayout to expert shards                   -> [G, E, C, d]   (E sharded on `expert`)
    experts: gelu(x @ wi[e]) @ wo[e]            -> [G, E, C, d]
    relayout back, scale by combine weights, segment-sum into token rows -> [B, N, d]

Dispatch and combine are a gather and a segment sum over indices (their gradients are each other), so
the cost is linear in tokens instead of the `[T, E, C]` one-hot einsums of the reference code.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import tensorflow as tf
import tf_keras

from models import routing
from models import sharding
from models.configs import MoeConfig

ROUTINGS = ("experts_choose", "tokens_choose")


@tf_keras.utils.register_keras_serializable(package="imp_tfx")
class SparseMoe(tf_keras.layers.Layer):
    """Sparse MoE feed-forward block: float32 [batch, tokens, dim] -> float32 [batch, tokens, dim].

    Args:
      num_experts: E, independent GELU MLP experts.
      mlp_dim: hidden width of every expert (the dense MLP's d_ff).
      capacity_factor: slots per expert and group = round(cf * tokens_per_group / E).
      routing: "experts_choose" (IMP default) or "tokens_choose".
      top_k: experts per token (tokens-choose only).
      group_size: maximum tokens per routing group (see `routing.num_groups`).
      batch_priority_routing: tokens-choose only: most confident tokens get slots first.
      min_capacity: lower bound on the slots per expert.
      z_loss_weight / load_balance_weight: coefficients of the auxiliary losses.
      dropout_rate: dropout on the experts' hidden activations (training only).
      num_expert_replicas: expert replicas in the mesh; groups are a multiple of E * replicas.
      mesh: optional `dtensor.Mesh` with axes ("batch", "expert"); then the dispatched tokens are moved
        to the expert shards with `dtensor.relayout` (not serialized: a mesh belongs to a run, not a model).

    Weights: `router_kernel` float32 [dim, E] (no bias, always applied in float32), `expert_wi`
    [E, dim, mlp_dim] and `expert_wo` [E, mlp_dim, dim] (no biases; leading expert axis so that they can
    be sharded on `expert`).

    Aux loss `z_loss_weight * z_loss + load_balance_weight * load_balance_loss` is added with `add_loss`;
    with `call(..., return_aux=True)` it is returned instead (together with router metrics) and NOT added,
    for callers that run the model several times per step and sum the losses themselves.
    """

    def __init__(self,
                 num_experts: int,
                 mlp_dim: int,
                 capacity_factor: float = 1.0,
                 routing: str = "experts_choose",  # pylint: disable=redefined-outer-name
                 top_k: int = 1,
                 group_size: int = MoeConfig.group_size,
                 batch_priority_routing: bool = False,
                 min_capacity: int = 0,
                 z_loss_weight: float = 1.0,
                 load_balance_weight: float = 1.0,
                 dropout_rate: float = 0.0,
                 num_expert_replicas: int = 1,
                 mesh: Optional[Any] = None,
                 **kwargs):
        super().__init__(**kwargs)
        if routing not in ROUTINGS:
            raise ValueError(f"routing must be one of {ROUTINGS}, got {routing!r}")
        if num_experts < 1 or mlp_dim < 1:
            raise ValueError(f"num_experts and mlp_dim must be positive, got {num_experts}, {mlp_dim}")
        if routing == "tokens_choose" and not 1 <= top_k <= num_experts:
            raise ValueError(f"top_k must be in [1, num_experts={num_experts}], got {top_k}")
        self.num_experts = int(num_experts)
        self.mlp_dim = int(mlp_dim)
        self.capacity_factor = float(capacity_factor)
        self.routing = routing
        self.top_k = int(top_k)
        self.group_size = int(group_size)
        self.batch_priority_routing = bool(batch_priority_routing)
        self.min_capacity = int(min_capacity)
        self.z_loss_weight = float(z_loss_weight)
        self.load_balance_weight = float(load_balance_weight)
        self.dropout_rate = float(dropout_rate)
        self.num_expert_replicas = int(num_expert_replicas)
        self.mesh = mesh
        self._dropout = tf_keras.layers.Dropout(self.dropout_rate, dtype=self.dtype_policy)

    @classmethod
    def from_moe_config(cls, config: MoeConfig, mlp_dim: int, mesh=None, **kwargs) -> "SparseMoe":
        """Builds the layer from the encoder's `MoeConfig` (plus the expert width)."""
        return cls(num_experts=config.num_experts, mlp_dim=mlp_dim,
                   capacity_factor=config.capacity_factor, routing=config.routing,
                   top_k=config.top_k, group_size=config.group_size,
                   batch_priority_routing=config.batch_priority_routing,
                   min_capacity=config.min_capacity, z_loss_weight=config.router_z_loss_weight,
                   load_balance_weight=config.load_balance_loss_weight, mesh=mesh, **kwargs)

    def build(self, input_shape):
        dim = int(input_shape[-1])
        self.router_kernel = self.add_weight(
            name="router_kernel", shape=[dim, self.num_experts], dtype=tf.float32,
            initializer=tf_keras.initializers.RandomNormal(stddev=0.02),
            experimental_autocast=False)  # the router stays fp32 under mixed precision
        # Keras' fan-in of an [E, d, f] kernel is E * d (E counts as a receptive field); scaling the
        # variance by E gives every expert its own LeCun-normal init with fan-in d.
        def expert_init():
            return tf_keras.initializers.VarianceScaling(
                scale=float(self.num_experts), mode="fan_in", distribution="truncated_normal")

        self.expert_wi = self.add_weight(
            name="expert_wi", shape=[self.num_experts, dim, self.mlp_dim], initializer=expert_init())
        self.expert_wo = self.add_weight(
            name="expert_wo", shape=[self.num_experts, self.mlp_dim, dim], initializer=expert_init())
        super().build(input_shape)

    @property
    def expert_variables(self):
        """The variables with a leading experts axis (to be sharded on the mesh's `expert` axis)."""
        return [self.expert_wi, self.expert_wo]

    # -- forward ------------------------------------------------------------------------------------

    def call(self, inputs, training=None, return_aux=False):
        """Routes `inputs` float32 [B, N, d] through the experts; returns the same shape.

        With `return_aux=True` returns `(outputs, aux)`; `aux` holds float32 scalars `aux_loss`,
        `z_loss`, `load_balance_loss`, `fraction_tokens_dropped`, `router_confidence` and
        `expert_usage` float32 [E].
        """
        inputs = tf.convert_to_tensor(inputs)
        dim = inputs.shape[-1]
        groups, tokens_per_group, capacity = self.group_sizes(inputs)
        x = tf.reshape(tf.cast(inputs, self.compute_dtype), [groups, tokens_per_group, dim])

        logits = tf.einsum("gtd,de->gte", tf.cast(x, tf.float32), self.router_kernel)
        probs = tf.nn.softmax(logits, axis=-1)
        route = self.route(probs, capacity)

        outputs = self._dispatch_compute_combine(x, route, training)
        outputs = tf.reshape(outputs, tf.shape(inputs))

        z_loss = routing.router_z_loss(logits)
        aux_loss = self.z_loss_weight * z_loss + self.load_balance_weight * route.load_balance_loss
        if not return_aux:
            self.add_loss(aux_loss)
            return outputs
        aux = {"aux_loss": aux_loss, "z_loss": z_loss,
               "load_balance_loss": route.load_balance_loss}
        aux.update(routing.router_metrics(probs, route))
        return outputs, aux

    def route(self, router_probs, capacity) -> routing.Route:
        """This layer's routing of router_probs float32 [G, T, E] into `capacity` slots per expert."""
        if self.routing == "experts_choose":
            return routing.experts_choose_route(router_probs, capacity)
        return routing.tokens_choose_route(router_probs, capacity, top_k=self.top_k,
                                           batch_priority=self.batch_priority_routing)

    def group_sizes(self, inputs):
        """(groups, tokens_per_group, capacity): Python ints when the token count is static."""
        batch, tokens = inputs.shape[0], inputs.shape[1]
        if batch is not None and tokens is not None:
            groups = routing.num_groups(batch * tokens, self.num_experts, self.group_size,
                                        self.num_expert_replicas)
            per_group = batch * tokens // groups
            capacity = routing.compute_capacity(per_group, self.num_experts,
                                                self.capacity_factor, self.min_capacity)
            return groups, per_group, max(capacity, 1)
        # Serving signatures leave the batch unknown at trace time: same arithmetic in-graph.
        num_tokens = tf.shape(inputs)[0] * tf.shape(inputs)[1]
        groups = routing.num_groups_tf(num_tokens, self.num_experts, self.group_size,
                                       self.num_expert_replicas)
        per_group = num_tokens // groups
        capacity = routing.compute_capacity_tf(per_group, self.num_experts,
                                               self.capacity_factor, self.min_capacity)
        return groups, per_group, tf.maximum(capacity, 1)

    def _dispatch_compute_combine(self, x, route: routing.Route, training):
        """x [G, T, d] and a route -> combined expert outputs [G, T, d]."""
        if self.mesh is None:
            return self._experts_major(x, route, training)
        sharding.check_divisible(self.mesh, groups=x.shape[0], experts=self.num_experts)
        return self._groups_major(x, route, training)

    def _experts_major(self, x, route: routing.Route, training):
        """Single-device path: gathers straight into expert-major `[E, G*C, d]`.

        The expert MLPs are then plain batched matmuls with `[E, d, f]`; only the small index and
        weight tensors are transposed (an einsum over `[G, E, C, d]` would transpose the activations
        forward and backward, ~1.6x slower on CPU).
        """
        groups, tokens_per_group = tf.shape(x)[0], tf.shape(x)[1]
        dim = x.shape[-1]
        rows = _token_rows(route.token_index, tokens_per_group)  # [G, E, C]
        rows = tf.reshape(tf.transpose(rows, [1, 0, 2]), [self.num_experts, -1])  # [E, G*C]
        weights = tf.reshape(tf.transpose(route.combine_weights, [1, 0, 2]),
                             [self.num_experts, -1, 1])
        dispatched = tf.gather(tf.reshape(x, [-1, dim]), rows)  # [E, G*C, d]
        hidden = tf.matmul(dispatched, tf.cast(self.expert_wi, x.dtype))
        hidden = self._dropout(tf.nn.gelu(hidden, approximate=True), training=training)
        expert_out = tf.matmul(hidden, tf.cast(self.expert_wo, x.dtype))
        combined = _sum_into_tokens(expert_out * tf.cast(weights, x.dtype), rows,
                                    groups * tokens_per_group)
        return tf.reshape(combined, [groups, tokens_per_group, dim])

    def _groups_major(self, x, route: routing.Route, training):
        """DTensor path: `[G, E, C, d]` keeps groups on `batch` and relays experts to `expert`."""
        groups, tokens_per_group = tf.shape(x)[0], tf.shape(x)[1]
        capacity = tf.shape(route.token_index)[2]
        dim = x.shape[-1]
        slots = tf.reshape(route.token_index, [groups, -1])  # [G, E*C]
        dispatched = tf.gather(x, slots, batch_dims=1)
        dispatched = tf.reshape(dispatched, [groups, self.num_experts, capacity, dim])
        dispatched = sharding.to_expert_shards(dispatched, self.mesh)
        hidden = tf.einsum("gecd,edf->gecf", dispatched, tf.cast(self.expert_wi, x.dtype))
        hidden = self._dropout(tf.nn.gelu(hidden, approximate=True), training=training)
        expert_out = tf.einsum("gecf,efd->gecd", hidden, tf.cast(self.expert_wo, x.dtype))
        expert_out = sharding.to_batch_shards(expert_out, self.mesh)
        weighted = expert_out * tf.cast(route.combine_weights, x.dtype)[..., tf.newaxis]
        rows = _token_rows(route.token_index, tokens_per_group)
        combined = _sum_into_tokens(weighted, rows, groups * tokens_per_group)
        # DTensor's segment sum gathers its data and returns the result replicated; slice it back.
        combined = sharding.to_batch_shards(combined, self.mesh)
        return tf.reshape(combined, [groups, tokens_per_group, dim])

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update({
            "num_experts": self.num_experts,
            "mlp_dim": self.mlp_dim,
            "capacity_factor": self.capacity_factor,
            "routing": self.routing,
            "top_k": self.top_k,
            "group_size": self.group_size,
            "batch_priority_routing": self.batch_priority_routing,
            "min_capacity": self.min_capacity,
            "z_loss_weight": self.z_loss_weight,
            "load_balance_weight": self.load_balance_weight,
            "dropout_rate": self.dropout_rate,
            "num_expert_replicas": self.num_expert_replicas,
        })
        return config


def _token_rows(token_index, tokens_per_group):
    """Per-group token indices int32 [G, E, C] -> rows of the flattened `[G * T, d]` tokens."""
    groups = tf.shape(token_index)[0]
    return token_index + tf.range(groups)[:, tf.newaxis, tf.newaxis] * tokens_per_group


def _sum_into_tokens(slot_outputs, rows, num_rows):
    """Adds weighted slot outputs [..., d] into token rows float [num_rows, d] (dispatch's transpose)."""
    dim = slot_outputs.shape[-1]
    return tf.math.unsorted_segment_sum(tf.reshape(slot_outputs, [-1, dim]), tf.reshape(rows, [-1]),
                                        num_rows)
