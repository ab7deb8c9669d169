"""Routing arithmetic against the spec's test vectors (IMP_SPEC.md section 8) and hand-worked cases."""

import math

import numpy as np
import pytest
import tensorflow as tf

from models import routing

# Spec test vector 4/6 probabilities: one group of 4 tokens, 2 experts.
SPEC_PROBS = np.array([[[.9, .1], [.8, .2], [.3, .7], [.6, .4]]], np.float32)


@pytest.mark.parametrize("tokens, experts, max_group, replicas, groups, capacity", [
    (8192 * 256, 16, 2048, 4, 1024, 128),   # vector 1: image/video step on 64 devices
    (8192 * 16, 16, 2048, 4, 64, 128),      # vector 1: text step
    (20, 2, 8, 1, 2, 5),                    # vector 2
    (24, 4, 8, 1, 4, 2),                    # vector 2
])
def test_num_groups_and_capacity_spec_vectors(tokens, experts, max_group, replicas, groups, capacity):
    assert routing.num_groups(tokens, experts, max_group, replicas) == groups
    assert routing.compute_capacity(tokens // groups, experts, 1.0) == capacity
    assert int(routing.num_groups_tf(tf.constant(tokens), experts, max_group, replicas)) == groups
    assert int(routing.compute_capacity_tf(tf.constant(tokens // groups), experts, 1.0)) == capacity


def test_num_groups_is_smallest_valid_divisor():
    # 36 tokens, 4 experts, groups of <= 4: at least 9 groups, multiple of 4 and dividing 36 -> 12.
    assert routing.num_groups(36, 4, 4) == 12
    with pytest.raises(ValueError, match="multiple"):
        routing.num_groups(6, 4, 8)
    assert int(routing.num_groups_tf(tf.constant(6), 4, 8)) == 0


def test_capacity_rounds_half_to_even_and_respects_minimum():
    assert routing.compute_capacity(16, 8, 1.25) == 2          # vector 3: round(2.5) = 2
    assert routing.compute_capacity(24, 8, 1.25) == 4          # round(3.75) = 4
    assert routing.compute_capacity(16, 8, 1.25, min_capacity=3) == 3
    assert int(routing.compute_capacity_tf(tf.constant(16), 8, 1.25)) == 2
    assert int(routing.compute_capacity_tf(tf.constant(48), 16, 0.5)) == 2  # round(1.5) = 2


def test_load_balance_loss_spec_vector():
    probs = tf.constant(SPEC_PROBS)
    chosen = tf.one_hot(tf.argmax(probs, axis=-1), 2)
    assert float(routing.load_balance_loss(probs, chosen)) == pytest.approx(1.15, abs=1e-6)
    # The tokens-choose router reports the same value for top-1.
    route = routing.tokens_choose_route(probs, capacity=2)
    assert float(route.load_balance_loss) == pytest.approx(1.15, abs=1e-6)


def test_z_loss_spec_vector():
    logits = tf.constant([[0.0, 0.0], [math.log(3.0), 0.0]])
    assert float(routing.router_z_loss(logits)) == pytest.approx(1.201133, abs=1e-6)


def test_experts_choose_spec_vector():
    route = routing.experts_choose_route(tf.constant(SPEC_PROBS), capacity=2)
    np.testing.assert_array_equal(route.token_index.numpy(), [[[0, 1], [2, 3]]])
    np.testing.assert_allclose(route.combine_weights.numpy(), [[[.9, .8], [.7, .4]]], rtol=1e-6)
    np.testing.assert_array_equal(route.slot_mask.numpy(), np.ones([1, 2, 2]))
    assert float(route.load_balance_loss) == 0.0


def _random_probs(groups, tokens, experts, seed):
    logits = np.random.RandomState(seed).normal(size=[groups, tokens, experts]) * 2.0
    return tf.nn.softmax(tf.constant(logits, tf.float32), axis=-1)


def test_experts_choose_fills_every_slot_with_top_tokens():
    probs = _random_probs(3, 10, 4, seed=0)
    route = routing.experts_choose_route(probs, capacity=3)
    p = probs.numpy()
    assert route.token_index.shape == (3, 4, 3)
    for g in range(3):
        for e in range(4):
            picked = route.token_index.numpy()[g, e]
            assert len(set(picked)) == 3  # distinct tokens, capacity respected
            np.testing.assert_array_equal(sorted(picked), sorted(np.argsort(-p[g, :, e])[:3]))
            np.testing.assert_allclose(route.combine_weights.numpy()[g, e], p[g, picked, e])
    np.testing.assert_array_equal(route.slot_mask.numpy(), 1.0)


def _reference_tokens_choose(p, capacity, top_k, batch_priority):
    """Loop version of the reference cumsum priority: {(g, e): [(token, prob), ...] in slot order}."""
    groups, tokens, experts = p.shape
    slots = {}
    for g in range(groups):
        order = (np.argsort(-p[g].max(-1), kind="stable") if batch_priority else np.arange(tokens))
        choices = np.argsort(-p[g], axis=-1, kind="stable")[:, :top_k]
        for rank in range(top_k):
            for t in order:
                e = choices[t, rank]
                taken = slots.setdefault((g, e), [])
                if len(taken) < capacity:
                    taken.append((t, p[g, t, e]))
    return slots


@pytest.mark.parametrize("top_k, batch_priority", [(1, False), (2, False), (1, True), (2, True)])
def test_tokens_choose_matches_priority_reference(top_k, batch_priority):
    probs = _random_probs(2, 12, 4, seed=top_k + 10 * batch_priority)
    capacity = 3  # below 12 * top_k / 4 -> some choices are dropped
    route = routing.tokens_choose_route(probs, capacity, top_k=top_k, batch_priority=batch_priority)
    expected = _reference_tokens_choose(probs.numpy(), capacity, top_k, batch_priority)
    index, weights, mask = (route.token_index.numpy(), route.combine_weights.numpy(),
                            route.slot_mask.numpy())
    for g in range(2):
        for e in range(4):
            taken = expected.get((g, e), [])
            used = int(mask[g, e].sum())
            assert used == len(taken) <= capacity
            np.testing.assert_array_equal(index[g, e, :used], [t for t, _ in taken])
            np.testing.assert_allclose(weights[g, e, :used], [w for _, w in taken], rtol=1e-6)
            np.testing.assert_array_equal(weights[g, e, used:], 0.0)
            np.testing.assert_array_equal(mask[g, e, :used], 1.0)


def test_tokens_choose_top2_prefers_first_choices_over_second():
    # Expert 0 is everybody's first choice; token 3 has expert 0 only as its second choice.
    probs = tf.constant([[[.6, .3, .1], [.7, .2, .1], [.5, .1, .4], [.3, .6, .1]]])
    route = routing.tokens_choose_route(probs, capacity=3, top_k=2)
    np.testing.assert_array_equal(route.token_index.numpy()[0, 0], [0, 1, 2])  # token 3 dropped
    # Expert 1: first choice of token 3, then second choices of tokens 0 and 1 (in token order).
    np.testing.assert_array_equal(route.token_index.numpy()[0, 1], [3, 0, 1])
    np.testing.assert_allclose(route.combine_weights.numpy()[0, 1], [.6, .3, .2], rtol=1e-6)
    # Expert 2: second choice of token 2 only.
    np.testing.assert_array_equal(route.slot_mask.numpy()[0, 2], [1, 0, 0])


def test_batch_priority_routing_keeps_confident_tokens():
    # All tokens choose expert 0 with capacity 2: without BPR the first two win, with BPR the two
    # most confident ones.
    probs = tf.constant([[[.55, .45], [.6, .4], [.9, .1], [.8, .2]]])
    plain = routing.tokens_choose_route(probs, capacity=2)
    bpr = routing.tokens_choose_route(probs, capacity=2, batch_priority=True)
    np.testing.assert_array_equal(plain.token_index.numpy()[0, 0], [0, 1])
    np.testing.assert_array_equal(bpr.token_index.numpy()[0, 0], [2, 3])
    assert float(tf.reduce_sum(plain.slot_mask[0, 1])) == 0.0


def test_router_metrics():
    probs = tf.constant([[[.6, .3, .1], [.7, .2, .1], [.5, .1, .4], [.3, .6, .1]]])
    route = routing.tokens_choose_route(probs, capacity=2)  # expert 0 keeps tokens 0, 1; 2 dropped
    metrics = routing.router_metrics(probs, route)
    np.testing.assert_allclose(metrics["expert_usage"].numpy(), [2 / 3, 1 / 3, 0.0], rtol=1e-6)
    np.testing.assert_allclose(metrics["expert_weight_share"].numpy(),
                               [1.3 / 1.9, .6 / 1.9, 0.0], rtol=1e-6)
    assert float(metrics["fraction_tokens_dropped"]) == pytest.approx(0.25)
    assert float(metrics["router_confidence"]) == pytest.approx((.6 + .7 + .5 + .6) / 4)
    ec = routing.experts_choose_route(tf.constant(SPEC_PROBS), capacity=1)  # tokens 0 and 2 taken
    ec_metrics = routing.router_metrics(tf.constant(SPEC_PROBS), ec)
    np.testing.assert_allclose(ec_metrics["expert_usage"].numpy(), [.5, .5])
    np.testing.assert_allclose(ec_metrics["expert_weight_share"].numpy(), [.9 / 1.6, .7 / 1.6],
                               rtol=1e-6)
    assert float(ec_metrics["fraction_tokens_dropped"]) == pytest.approx(0.5)
