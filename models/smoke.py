"""`imp-tfx smoke`: build a model and run one forward/backward pass on random data of every modality.

    imp-tfx smoke --config tiny
    {"config": "tiny", "params": 273936, "loss": 9.1, "grad_norm": 3.2, "seconds": 4.1}

The loss is image-text + audio-text contrastive + image classification + MoE aux losses, i.e. every
code path of a training step except the optimizer and the input pipeline.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from typing import Dict, Optional

import tensorflow as tf

from models import losses
from models import testing
from models.configs import CONFIGS, get_config
from models.imp_model import ImpModel

SMOKE_HEAD = "smoke"
SMOKE_CLASSES = 10


def run_smoke(config_name: str, batch_size: int = 2, image_size: Optional[int] = None,
              seed: int = 0) -> Dict[str, object]:
    """Builds `config_name`, runs one forward/backward step; returns the JSON-able summary.

    Images default to 4 x 4 patches and spectrograms to 4 patches in time, which keeps every token
    count a multiple of the presets' expert counts (MoE groups need that).
    """
    start = time.time()
    tf.random.set_seed(seed)
    config = get_config(config_name)
    if not config.heads.classifiers:
        config = config.with_classifiers({SMOKE_HEAD: SMOKE_CLASSES})
    head, classes = config.heads.classifiers[0]
    model = ImpModel(config).build_all()

    image_size = image_size or 4 * config.vision.patch[1]
    media = {kind: testing.random_media(kind, config, batch=batch_size, image_size=image_size,
                                        spectrogram_frames=4 * config.audio.patch[0], seed=seed)
             for kind in ("image", "audio", "text")}
    labels = testing.random_labels(classes, batch=batch_size, seed=seed)

    with tf.GradientTape() as tape:
        image = model.encode("vision", model.tokenize("image", media["image"]), training=True)
        audio = model.encode("audio", model.tokenize("audio", media["audio"]), training=True)
        text = model.encode("text", model.tokenize("text", media["text"]), training=True)
        loss = (
            losses.contrastive_loss(model.project("vision", image["features_agg"], "text"),
                                    model.project("text", text["features_agg"], "vision"),
                                    model.temperature("vision", "text"))
            + losses.contrastive_loss(model.project("audio", audio["features_agg"], "text"),
                                      model.project("text", text["features_agg"], "audio"),
                                      model.temperature("audio", "text"))
            + losses.softmax_cross_entropy(model.classify(head, image["features_agg"]), labels)
            + image["aux_loss"] + audio["aux_loss"] + text["aux_loss"])
    grads = tape.gradient(loss, model.trainable_variables)
    grad_norm = tf.linalg.global_norm([g for g in grads if g is not None])
    return {"config": config_name, "params": int(model.count_params()),
            "loss": round(float(loss), 6), "grad_norm": round(float(grad_norm), 6),
            "seconds": round(time.time() - start, 3)}


def _main(args: argparse.Namespace) -> int:
    summary = run_smoke(args.config, batch_size=args.batch_size, image_size=args.image_size,
                        seed=args.seed)
    print(json.dumps(summary))
    return 0 if math.isfinite(summary["loss"]) and math.isfinite(summary["grad_norm"]) else 1


def register(subparsers, name: str) -> None:
    """Adds the `smoke` subcommand (see imp_tfx/cli.py)."""
    p = subparsers.add_parser(name, help="build a model and run one forward/backward pass",
                              description=__doc__.splitlines()[0])
    p.add_argument("--config", default="tiny", choices=sorted(CONFIGS), help="model preset")
    p.add_argument("--batch-size", type=int, default=2, help="examples per modality")
    p.add_argument("--image-size", type=int, default=None,
                   help="image side in pixels (default: 4 patches)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=_main)
