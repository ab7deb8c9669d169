"""Tests of the contrastive and classification losses."""

import numpy as np
import pytest
import tensorflow as tf

from models import losses


def test_vector_7_nce():
    e1 = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    e2 = tf.constant([[1.0, 0.0], [0.6, 0.8]])
    loss = losses.contrastive_loss(e1, e2, 0.1 + 1e-6)
    assert loss.dtype == tf.float32 and loss.shape == ()
    np.testing.assert_allclose(loss.numpy(), 0.0363656, rtol=1e-4)
    # The two directions separately: L12 = 0.0092431 (rows), L21 = 0.0634881 (columns).
    s = losses.similarity_logits(e1, e2, 0.1 + 1e-6).numpy()[..., 0]
    l12 = np.mean(np.log(np.exp(s).sum(1)) - np.diag(s))
    l21 = np.mean(np.log(np.exp(s).sum(0)) - np.diag(s))
    np.testing.assert_allclose([l12, l21], [0.0092431, 0.0634881], rtol=1e-4)
    assert float(losses.contrastive_accuracy(e1, e2)) == 1.0


def test_nce_is_symmetric_and_scale_invariant():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=[4, 8]).astype(np.float32), rng.normal(size=[4, 8]).astype(np.float32)
    np.testing.assert_allclose(losses.contrastive_loss(a, b, 0.5).numpy(),
                               losses.contrastive_loss(b, a, 0.5).numpy(), rtol=1e-5)
    np.testing.assert_allclose(losses.contrastive_loss(3 * a, b, 0.5).numpy(),
                               losses.contrastive_loss(a, b, 0.5).numpy(), rtol=1e-5)


def test_nce_multiple_instances_matches_numpy():
    rng = np.random.default_rng(1)
    a = rng.normal(size=[3, 1, 4]).astype(np.float32)
    b = rng.normal(size=[3, 2, 4]).astype(np.float32)  # two captions per example
    t = 0.3
    an = a / (np.linalg.norm(a, axis=-1, keepdims=True) + 1e-6)
    bn = b / (np.linalg.norm(b, axis=-1, keepdims=True) + 1e-6)
    s = np.einsum("bnd,cmd->bcnm", an, bn).reshape(3, 3, 2) / t

    def lse(x, axis):
        m = x.max(axis=axis, keepdims=True)
        return np.squeeze(m, axis) + np.log(np.exp(x - m).sum(axis=axis))

    pos = lse(s[np.arange(3), np.arange(3)], -1)
    l12 = np.mean(lse(s.reshape(3, -1), -1) - pos)
    l21 = np.mean(lse(s.transpose(1, 0, 2).reshape(3, -1), -1) - pos)
    np.testing.assert_allclose(losses.contrastive_loss(a, b, t).numpy(), (l12 + l21) / 2, rtol=1e-5)


def test_cross_entropy_ignores_unlabelled():
    logits = tf.constant([[2.0, 0.0], [0.0, 1.0], [5.0, -5.0]])
    labels = tf.constant([0, 1, -1])
    want = np.mean([np.log1p(np.exp(-2.0)), np.log1p(np.exp(-1.0))])
    np.testing.assert_allclose(losses.softmax_cross_entropy(logits, labels).numpy(), want, rtol=1e-6)
    assert float(losses.softmax_cross_entropy(logits, tf.constant([-1, -1, -1]))) == 0.0
    assert float(losses.classification_accuracy(logits, labels)) == 1.0


@pytest.mark.parametrize("temperature", [0.07, 1.0])
def test_lower_temperature_sharpens(temperature):
    e = tf.eye(3)
    loss = losses.contrastive_loss(e, e, temperature)
    assert 0.0 < float(loss) < np.log(3.0)
