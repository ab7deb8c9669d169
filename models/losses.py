"""Training losses (IMP_SPEC.md 2.2), float32 scalars.

* `contrastive_loss`: symmetric cross-modal NCE between two batches of common-space embeddings,
  multiple-instance (MIL) style when an example has several instances (e.g. captions).
* `softmax_cross_entropy`: classification from logits with integer labels (-1 = unlabelled, ignored).
"""

from __future__ import annotations

import tensorflow as tf

from models.layers.heads import l2_normalize

IGNORE_LABEL = -1


def _with_instances(x: tf.Tensor) -> tf.Tensor:
    """[B, D] -> [B, 1, D]; [B, N, D] unchanged."""
    x = tf.convert_to_tensor(x)
    if x.shape.rank == 2:
        return x[:, tf.newaxis, :]
    if x.shape.rank != 3:
        raise ValueError(f"embeddings must be [B, D] or [B, N, D], got shape {x.shape}")
    return x


def similarity_logits(embeddings_a: tf.Tensor, embeddings_b: tf.Tensor,
                      temperature) -> tf.Tensor:
    """All pair similarities / temperature: float32 [B_a, B_b, N_a * N_b].

    Embeddings are L2-normalized here (`x / (||x|| + 1e-6)`), whatever the caller did.
    """
    a = l2_normalize(_with_instances(embeddings_a))
    b = l2_normalize(_with_instances(embeddings_b))
    sims = tf.einsum("bnd,cmd->bcnm", a, b)
    shape = tf.shape(sims)
    sims = tf.reshape(sims, [shape[0], shape[1], shape[2] * shape[3]])
    return sims / tf.cast(temperature, tf.float32)


def contrastive_loss(embeddings_a: tf.Tensor, embeddings_b: tf.Tensor, temperature) -> tf.Tensor:
    """Symmetric NCE: float32 [] = (L_ab + L_ba) / 2.

    Example b's positives are all its instance pairs (`logsumexp` over them), its negatives every
    instance pair with the other examples of the batch:
    `L_ab = mean_b(logsumexp_{c,n} S[b,c,n] - pos_b)` and
    `L_ba = mean_b(logsumexp_{b',n} S[b',b,n] - pos_b)`.

    Args:
      embeddings_a: float [B, D] or [B, N_a, D].
      embeddings_b: float [B, D] or [B, N_b, D] (same B; row i of both is a positive pair).
      temperature: float scalar divisor (`ImpModel.temperature`, already clamped).
    """
    logits = similarity_logits(embeddings_a, embeddings_b, temperature)  # [B, B, P]
    # The diagonal through an identity mask: DTensor has no layout rule for `diag_part`.
    eye = tf.eye(tf.shape(logits)[0], dtype=logits.dtype)[..., tf.newaxis]
    positives = tf.reduce_logsumexp(tf.reduce_sum(logits * eye, axis=1), axis=-1)  # [B]
    loss_ab = tf.reduce_mean(tf.reduce_logsumexp(logits, axis=[1, 2]) - positives)
    loss_ba = tf.reduce_mean(tf.reduce_logsumexp(logits, axis=[0, 2]) - positives)
    return (loss_ab + loss_ba) / 2.0


def contrastive_accuracy(embeddings_a: tf.Tensor, embeddings_b: tf.Tensor) -> tf.Tensor:
    """Top-1 retrieval accuracy a -> b within the batch (best instance pair), float32 []."""
    logits = tf.reduce_max(similarity_logits(embeddings_a, embeddings_b, 1.0), axis=-1)
    predicted = tf.argmax(logits, axis=1, output_type=tf.int32)
    correct = tf.equal(predicted, tf.range(tf.shape(logits)[0]))
    return tf.reduce_mean(tf.cast(correct, tf.float32))


def softmax_cross_entropy(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Mean softmax cross-entropy over labelled examples, float32 [] (0 when none is labelled).

    Args:
      logits: float [B, classes].
      labels: int [B] class indices; `-1` marks an unlabelled example, which is ignored.
    """
    logits = tf.cast(logits, tf.float32)
    labels = tf.cast(labels, tf.int32)
    valid = tf.not_equal(labels, IGNORE_LABEL)
    per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.where(valid, labels, tf.zeros_like(labels)), logits=logits)
    weights = tf.cast(valid, tf.float32)
    return tf.math.divide_no_nan(tf.reduce_sum(per_example * weights), tf.reduce_sum(weights))


def classification_accuracy(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Top-1 accuracy over labelled examples, float32 []."""
    labels = tf.cast(labels, tf.int32)
    valid = tf.cast(tf.not_equal(labels, IGNORE_LABEL), tf.float32)
    correct = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), labels), tf.float32)
    return tf.math.divide_no_nan(tf.reduce_sum(correct * valid), tf.reduce_sum(valid))
