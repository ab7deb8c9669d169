"""Forward+backward cost of `SparseMoe` against the dense MLP it replaces (same per-token compute).

    .venv/bin/python bench/moe.py [--routing tokens_choose] [--repeats 30]
    .venv/bin/python -m bench.moe

Times, in one process with interleaved repetitions (so that load from other processes hits every
variant alike), a compiled `tf.function` computing the loss gradient of

* dense: Dense(dim->mlp, no bias) GELU(tanh) Dense(mlp->dim, no bias),
* moe: SparseMoe with E experts of the same width, capacity factor 1 (each token processed once on
  average, the same FLOPs as dense plus routing),
* onehot (with --onehot): the same experts with the reference's one-hot `[G, T, E, C]` dispatch/combine
  einsums, for comparison with index dispatch.

`--jit-compile` XLA-compiles every variant (default: plain graph mode, which is what export and
serving run).

Prints one JSON line: config, median milliseconds per variant, `ratio` = moe / dense.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

from models import routing  # noqa: E402
from models.moe import SparseMoe  # noqa: E402


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--tokens", type=int, default=256)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--mlp-dim", type=int, default=1536)
    p.add_argument("--experts", type=int, default=16)
    p.add_argument("--capacity-factor", type=float, default=1.0)
    p.add_argument("--routing", choices=("experts_choose", "tokens_choose"), default="experts_choose")
    p.add_argument("--top-k", type=int, default=1)
    p.add_argument("--group-size", type=int, default=2048)
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--onehot", action="store_true", help="also time one-hot einsum dispatch")
    p.add_argument("--jit-compile", action="store_true", help="XLA-compile every variant's step")
    return p.parse_args(argv)


def _dense_mlp(dim, mlp_dim):
    return tf_keras.Sequential([
        tf_keras.layers.Dense(mlp_dim, use_bias=False,
                              activation=lambda h: tf.nn.gelu(h, approximate=True)),
        tf_keras.layers.Dense(dim, use_bias=False),
    ])


def _onehot_moe_forward(layer: SparseMoe, x):
    """The reference formulation: dispatch/combine via one-hot `[G, T, E, C]` einsums."""
    groups, per_group, capacity = layer.group_sizes(x)
    tokens = tf.reshape(x, [groups, per_group, x.shape[-1]])
    logits = tf.einsum("gtd,de->gte", tokens, layer.router_kernel)
    probs = tf.nn.softmax(logits)
    route = layer.route(probs, capacity)
    dispatch = tf.transpose(tf.one_hot(route.token_index, per_group), [0, 3, 1, 2])  # [G,T,E,C]
    combine = dispatch * tf.transpose(route.combine_weights[..., tf.newaxis], [0, 3, 1, 2])
    expert_in = tf.einsum("gtec,gtd->gecd", dispatch, tokens)
    hidden = tf.nn.gelu(tf.einsum("gecd,edf->gecf", expert_in, layer.expert_wi), approximate=True)
    expert_out = tf.einsum("gecf,efd->gecd", hidden, layer.expert_wo)
    out = tf.einsum("gtec,gecd->gtd", combine, expert_out)
    return tf.reshape(out, tf.shape(x)), routing.router_z_loss(logits)


def _grad_step(forward, variables, jit_compile=False):
    @tf.function(jit_compile=jit_compile)
    def step(x):
        with tf.GradientTape() as tape:
            y, aux = forward(x)
            loss = tf.reduce_mean(tf.square(y)) + aux
        return tape.gradient(loss, variables)
    return step


def main(argv=None) -> int:
    args = _parse(argv)
    tf.random.set_seed(0)
    x = tf.random.normal([args.batch, args.tokens, args.dim])

    dense = _dense_mlp(args.dim, args.mlp_dim)
    dense.build(x.shape)
    moe = SparseMoe(args.experts, args.mlp_dim, capacity_factor=args.capacity_factor,
                    routing=args.routing, top_k=args.top_k, group_size=args.group_size)
    moe.build(x.shape)

    def moe_forward(inputs):
        y, aux = moe(inputs, return_aux=True)
        return y, aux["aux_loss"]

    steps = {
        "dense": _grad_step(lambda inputs: (dense(inputs), 0.0), dense.trainable_variables,
                            args.jit_compile),
        "moe": _grad_step(moe_forward, moe.trainable_variables, args.jit_compile),
    }
    if args.onehot:
        steps["onehot"] = _grad_step(lambda inputs: _onehot_moe_forward(moe, inputs),
                                     moe.trainable_variables, args.jit_compile)

    times = {name: [] for name in steps}
    for repeat in range(args.warmup + args.repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            grads = step(x)
            _ = [g.numpy() for g in grads]  # wait for the values
            if repeat >= args.warmup:
                times[name].append((time.perf_counter() - start) * 1e3)

    medians = {name: statistics.median(t) for name, t in times.items()}
    groups, per_group, capacity = moe.group_sizes(x)
    result = {
        "bench": "moe_fwd_bwd",
        "config": {"batch": args.batch, "tokens": args.tokens, "dim": args.dim,
                   "mlp_dim": args.mlp_dim, "experts": args.experts,
                   "capacity_factor": args.capacity_factor, "top_k": args.top_k,
                   "groups": groups, "tokens_per_group": per_group, "capacity": capacity,
                   "repeats": args.repeats},
        "routing": args.routing,
        "jit_compile": args.jit_compile,
        "dense_ms": round(medians["dense"], 3),
        "moe_ms": round(medians["moe"], 3),
        "ratio": round(medians["moe"] / medians["dense"], 3),
    }
    if "onehot" in medians:
        result["onehot_ms"] = round(medians["onehot"], 3)
        result["onehot_ratio"] = round(medians["onehot"] / medians["dense"], 3)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
