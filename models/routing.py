"""Routing arithmetic of the sparse Mixture-of-Experts (pure TensorFlow, no Keras).

Tokens are routed inside *groups*: `[groups, tokens_per_group]`; every expert has `capacity` slots per
group. A route is kept in *index form*: for each expert slot `[G, E, C]` the index of the token that fills
it, its combine weight (the router probability) and whether the slot is used. `models.moe.SparseMoe`
dispatches with a gather over these indices and combines with a segment sum, so nothing of size
`[tokens, experts, capacity]` is ever materialized.

Two routers (IMP_SPEC.md section 1.5):

* experts choose (IMP default): each expert takes its `capacity` most probable tokens; every slot is
  used, a token may be taken by 0..E experts, there is no load-balance loss.
* tokens choose (Switch / V-MoE): each token picks its `top_k` experts; slots are given out in priority
  order (all top-1 choices before any top-2 choice; optionally the most confident tokens first, "batch
  priority routing") and choices beyond an expert's capacity are dropped.
"""

from __future__ import annotations

from typing import NamedTuple, Union

import tensorflow as tf

IntLike = Union[int, tf.Tensor]


class Route(NamedTuple):
    """Index-form dispatch of one routing decision.

    Attributes:
      token_index: int32 [G, E, C], the token (index within its group) that fills each expert slot;
        0 for unused slots.
      combine_weights: float32 [G, E, C], router probability of (token, expert) for used slots, else 0.
      slot_mask: float32 [G, E, C], 1 where the slot is used.
      load_balance_loss: float32 [], Switch load-balance loss (0 for experts-choose).
    """

    token_index: tf.Tensor
    combine_weights: tf.Tensor
    slot_mask: tf.Tensor
    load_balance_loss: tf.Tensor


# ---------------------------------------------------------------------------------------------------
# Group and capacity arithmetic.


def num_groups(num_tokens: int, num_experts: int, max_group_size: int,
               num_expert_replicas: int = 1) -> int:
    """Number of routing groups for `num_tokens` tokens (the reference `_num_groups`).

    The smallest `n >= max(num_tokens // max_group_size, num_expert_replicas * num_experts)` that divides
    `num_tokens` and is a multiple of `num_expert_replicas * num_experts` (so that the groups can be
    exchanged evenly between expert shards).

    >>> num_groups(24, num_experts=4, max_group_size=8)
    4
    """
    multiple = num_expert_replicas * num_experts
    if num_tokens < 1 or multiple < 1 or max_group_size < 1:
        raise ValueError(f"num_groups needs positive sizes, got tokens={num_tokens}, "
                         f"experts x replicas={multiple}, max_group_size={max_group_size}")
    n = max(num_tokens // max_group_size, multiple)
    while n <= num_tokens:
        if num_tokens % n == 0 and n % multiple == 0:
            return n
        n += 1
    raise ValueError(f"{num_tokens} tokens cannot be split into groups that are a multiple of "
                     f"{multiple} (= experts x replicas); make the token count a multiple of it")


def num_groups_tf(num_tokens: tf.Tensor, num_experts: int, max_group_size: int,
                  num_expert_replicas: int = 1) -> tf.Tensor:
    """`num_groups` for a token count known only at run time (int32 scalar tensor in and out).

    Returns 0 groups when no valid split exists (the caller's reshape then fails loudly).
    """
    multiple = num_expert_replicas * num_experts
    num_tokens = tf.cast(num_tokens, tf.int32)
    lower = tf.maximum(num_tokens // max_group_size, multiple)
    candidates = tf.range(lower, num_tokens + 1)
    valid = tf.logical_and(num_tokens % candidates == 0, candidates % multiple == 0)
    none = num_tokens + 1
    first = tf.reduce_min(tf.concat([tf.where(valid, candidates, none), [none]], axis=0))
    return first % none


def compute_capacity(tokens_per_group: int, num_experts: int, capacity_factor: float,
                     min_capacity: int = 0) -> int:
    """Slots per expert and group: `max(round(cf * tokens_per_group / E), min_capacity)`.

    Python `round` is half-to-even, as in the reference: cf 1.25, 16 tokens, 8 experts -> round(2.5) = 2.
    """
    return max(int(round(capacity_factor * tokens_per_group / num_experts)), int(min_capacity))


def compute_capacity_tf(tokens_per_group: tf.Tensor, num_experts: int, capacity_factor: float,
                        min_capacity: int = 0) -> tf.Tensor:
    """`compute_capacity` on an int32 scalar tensor (`tf.round` is half-to-even too)."""
    raw = capacity_factor * tf.cast(tokens_per_group, tf.float64) / num_experts
    return tf.maximum(tf.cast(tf.round(raw), tf.int32), int(min_capacity))


# ---------------------------------------------------------------------------------------------------
# Routers.


def experts_choose_route(router_probs: tf.Tensor, capacity: IntLike) -> Route:
    """Expert-choice routing: every expert takes its `capacity` most probable tokens.

    Args:
      router_probs: float32 [G, T, E], softmax over experts.
      capacity: slots per expert (clipped to T).

    Returns:
      A `Route` with every slot used; `load_balance_loss` is 0.
    """
    capacity = _at_most(capacity, router_probs, choices_per_token=1)
    probs_by_expert = tf.transpose(router_probs, [0, 2, 1])  # [G, E, T], small: no hidden dim
    _, token_index = tf.math.top_k(probs_by_expert, k=capacity, sorted=True)
    # Re-gathering the selected probabilities (instead of differentiating top_k's values) keeps the
    # gradient a batched gather/segment-sum: TopKV2's gradient scatters into flattened *global*
    # indices, which breaks under DTensor when the groups are sharded.
    weights = tf.gather(probs_by_expert, token_index, batch_dims=2)
    return Route(token_index=tf.cast(token_index, tf.int32), combine_weights=weights,
                 slot_mask=tf.ones_like(weights),
                 load_balance_loss=tf.zeros([], router_probs.dtype))


def tokens_choose_route(router_probs: tf.Tensor, capacity: IntLike, top_k: int = 1,
                        batch_priority: bool = False) -> Route:
    """Token-choice routing: each token picks its `top_k` experts, first come first served.

    Priority follows the reference cumsum order: all top-1 choices (in token order, or by decreasing
    top-1 probability with `batch_priority`) before all top-2 choices, and so on. An expert keeps the
    first `capacity` choices that reach it; later ones are dropped. The slots are found with one
    `top_k` per expert over the choices' priority scores, which is the same as the reference's
    "position in expert = cumsum - 1 < capacity" rule without a `[T, E, C]` mask.

    Args:
      router_probs: float32 [G, T, E], softmax over experts.
      capacity: slots per expert.
      top_k: experts chosen per token.
      batch_priority: give slots to the tokens with the highest top-1 probability first.

    Returns:
      A `Route`; slots nobody reached are unused (mask 0, weight 0, token 0).
    """
    num_experts = router_probs.shape[-1]
    if not 1 <= top_k <= num_experts:
        raise ValueError(f"top_k must be in [1, {num_experts}], got {top_k}")
    shape = tf.shape(router_probs)
    groups, tokens = shape[0], shape[1]
    choice_probs, choice_experts = tf.math.top_k(router_probs, k=top_k)  # [G, T, k]

    # Token order inside each group: as given, or by decreasing top-1 probability (BPR).
    order = None
    ordered_experts = choice_experts
    if batch_priority:
        order = tf.argsort(choice_probs[..., 0], axis=-1, direction="DESCENDING", stable=True)
        ordered_experts = tf.gather(choice_experts, order, batch_dims=1)  # [G, T, k]

    # Choice j = rank * T + position-in-order; lower j = higher priority. Score the (choice, expert)
    # pairs so that the earliest choices win an expert's slots; 0 = "did not choose this expert".
    num_choices = top_k * tokens
    choice_expert = tf.reshape(tf.transpose(ordered_experts, [0, 2, 1]), [groups, num_choices])
    priority = tf.cast(num_choices - tf.range(num_choices), router_probs.dtype)  # [kT], > 0
    chose = tf.one_hot(choice_expert, num_experts, dtype=router_probs.dtype)  # [G, kT, E]
    scores = tf.transpose(chose * priority[:, tf.newaxis], [0, 2, 1])  # [G, E, kT]

    capacity = _at_most(capacity, router_probs, choices_per_token=top_k)
    top_scores, choice_index = tf.math.top_k(scores, k=capacity, sorted=True)  # [G, E, C]
    slot_mask = tf.cast(top_scores > 0, router_probs.dtype)
    token_index = choice_index % tokens  # position in `order`
    if order is not None:
        token_index = tf.gather(order, token_index, batch_dims=1)
    token_index = token_index * tf.cast(slot_mask, token_index.dtype)

    probs_by_expert = tf.transpose(router_probs, [0, 2, 1])  # [G, E, T]
    combine_weights = tf.gather(probs_by_expert, token_index, batch_dims=2) * slot_mask

    expert_chosen = tf.reduce_max(tf.one_hot(choice_experts, num_experts,
                                             dtype=router_probs.dtype), axis=-2)  # [G, T, E]
    lb_loss = load_balance_loss(router_probs, expert_chosen)
    return Route(token_index=tf.cast(token_index, tf.int32), combine_weights=combine_weights,
                 slot_mask=slot_mask, load_balance_loss=lb_loss)


def _at_most(capacity: IntLike, router_probs: tf.Tensor, choices_per_token: int) -> IntLike:
    """Clips the capacity to the number of (token, choice) candidates an expert can take."""
    tokens = router_probs.shape[1]
    if isinstance(capacity, int) and tokens is not None:
        return min(capacity, choices_per_token * tokens)
    return tf.minimum(capacity, choices_per_token * tf.shape(router_probs)[1])


# ---------------------------------------------------------------------------------------------------
# Auxiliary losses and metrics.


def router_z_loss(router_logits: tf.Tensor) -> tf.Tensor:
    """ST-MoE z-loss `mean_tokens(logsumexp(logits)^2)`; float32 [] from logits float32 [..., E]."""
    lse = tf.reduce_logsumexp(tf.cast(router_logits, tf.float32), axis=-1)
    return tf.reduce_mean(tf.square(lse))


def load_balance_loss(router_probs: tf.Tensor, expert_chosen: tf.Tensor) -> tf.Tensor:
    """Switch load-balance loss `E^2 * mean_{g,e}(fraction_of_tokens_{g,e} * mean_prob_{g,e})`.

    Args:
      router_probs: float32 [G, T, E].
      expert_chosen: float32 [G, T, E], 1 where the token chose the expert (any of its top-k, before
        capacity drops), e.g. `one_hot(argmax(router_probs))` for top-1.

    Returns:
      float32 []. It is 1 for a perfectly balanced router and grows up to E when one expert takes all.
    """
    num_experts = router_probs.shape[-1]
    fraction = tf.reduce_mean(tf.cast(expert_chosen, router_probs.dtype), axis=1)  # [G, E]
    mean_prob = tf.reduce_mean(router_probs, axis=1)  # [G, E]
    return tf.reduce_mean(fraction * mean_prob) * float(num_experts ** 2)


def token_coverage(route: Route, tokens_per_group: IntLike) -> tf.Tensor:
    """How many used slots each token occupies: float32 [G, T] (0 = the token was not processed)."""
    groups = tf.shape(route.token_index)[0]
    flat_ids = (route.token_index +
                tf.range(groups)[:, tf.newaxis, tf.newaxis] * tokens_per_group)
    counts = tf.math.unsorted_segment_sum(tf.reshape(route.slot_mask, [-1]),
                                          tf.reshape(flat_ids, [-1]), groups * tokens_per_group)
    return tf.reshape(counts, [groups, tokens_per_group])


def router_metrics(router_probs: tf.Tensor, route: Route) -> dict:
    """Routing statistics (not differentiated).

    Returns:
      `expert_usage` float32 [E]: share of all processed token-slots handled by each expert (sums to 1;
      uniform 1/E for experts-choose); `expert_weight_share` float32 [E]: each expert's share of the
      summed combine weights (the router probability mass it contributes to the outputs; this is what
      shows modality-specific experts under experts-choose, where slot counts are uniform by design);
      `fraction_tokens_dropped` float32 []: tokens no expert processed;
      `router_confidence` float32 []: mean over tokens of the largest router probability.
    """
    router_probs = tf.stop_gradient(router_probs)
    slots_per_expert = tf.reduce_sum(route.slot_mask, axis=[0, 2])  # [E]
    expert_usage = slots_per_expert / tf.maximum(tf.reduce_sum(slots_per_expert), 1.0)
    weight_per_expert = tf.reduce_sum(tf.stop_gradient(route.combine_weights) * route.slot_mask,
                                      axis=[0, 2])  # [E]
    weight_share = weight_per_expert / tf.maximum(tf.reduce_sum(weight_per_expert), 1e-9)
    coverage = token_coverage(route, tf.shape(router_probs)[1])
    dropped = tf.reduce_mean(tf.cast(coverage == 0, tf.float32))
    confidence = tf.reduce_mean(tf.reduce_max(router_probs, axis=-1))
    return {"expert_usage": expert_usage, "expert_weight_share": weight_share,
            "fraction_tokens_dropped": dropped,
            "router_confidence": confidence}
