"""Evaluation hooks: zero-shot classification with prompt templates and retrieval recall@k.

* Zero-shot (spec 4): each class name becomes text prompts ("a photo of a {}." for images, "a video of
  a {}." for videos, "the sound of a {}." for audio); their text->target embeddings, averaged over the
  templates when `prompt_ensemble` (then re-normalized), are the class keys; queries are the media's
  target->text embeddings; prediction = argmax cosine (no learned scale). Reports top-1 and top-5.
* Retrieval: cosine similarity between the two kinds of a contrastive task over the eval split;
  recall@1/5/10 and median rank in both directions (example i's positive is example i).
"""

from __future__ import annotations

import pathlib
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from models.configs import INPUT_KINDS, ImpConfig
from models.features import DEFAULT_MEDIA, MediaConfig
from models.layers.heads import l2_normalize
from models.training import data, mesh_model
from models.prompts import PROMPT_TEMPLATES, prompts  # noqa: F401  (re-exported)
from models.training.tasks import Task

RECALL_AT = (1, 5, 10)

TextTokenizer = Callable[[List[str]], tf.Tensor]  # strings -> int64 ids [N, L]


# -- metrics (numpy) ----------------------------------------------------------------------------------


def retrieval_metrics(similarity: np.ndarray, at: Sequence[int] = RECALL_AT) -> Dict[str, float]:
    """Query i's positive is key i. similarity float [Q, K] -> recall@k and median rank (1-based)."""
    similarity = np.asarray(similarity, np.float64)
    positives = similarity[np.arange(len(similarity)), np.arange(len(similarity))]
    # rank = number of keys scoring strictly higher than the positive (ties favour the positive)
    ranks = (similarity > positives[:, None]).sum(axis=1)
    out = {f"recall@{k}": float(np.mean(ranks < k)) for k in at}
    out["median_rank"] = float(np.median(ranks + 1))
    return out


def zero_shot_accuracy(queries: np.ndarray, class_keys: np.ndarray, labels: np.ndarray,
                       top: Sequence[int] = (1, 5)) -> Dict[str, float]:
    """queries [N, D], class_keys [C, D] (both L2-normalized), labels int [N] -> top-k accuracy."""
    scores = np.asarray(queries) @ np.asarray(class_keys).T
    order = np.argsort(-scores, axis=1)
    labels = np.asarray(labels)
    return {f"top{k}": float(np.mean([label in row[:k] for label, row in zip(labels, order)]))
            for k in top}


# -- model side ---------------------------------------------------------------------------------------


def wordpiece_tokenizer(transform_assets, max_length: int) -> TextTokenizer:
    """Tokenizes prompts exactly like Transform does (the learned WordPiece vocabulary)."""
    from models import features as F
    from models import preprocessing

    vocab = str(pathlib.Path(transform_assets) / F.TEXT_VOCAB_NAME)
    tokenizer = preprocessing.make_wordpiece_tokenizer(vocab)
    return lambda texts: preprocessing.tokenize_text(tf.constant(texts), tokenizer, max_length)


def _embed(model, kind: str, inputs, target_kind: str, mesh=None) -> np.ndarray:
    """Encoder inputs of `kind` -> L2-normalized embeddings [B, d_common] towards `target_kind`."""
    batch = _leading(inputs)
    padded = _pad_for_mesh(inputs, batch, mesh)
    out = model.encode(INPUT_KINDS[kind], mesh_model.place_batch(padded, mesh))
    z = l2_normalize(model.project(INPUT_KINDS[kind], out["features_agg"], INPUT_KINDS[target_kind]))
    return np.asarray(mesh_model.to_numpy(z, mesh))[:batch]


def _leading(inputs) -> int:
    return int(tf.nest.flatten(inputs)[0].shape[0])


def _pad_for_mesh(inputs, batch: int, mesh):
    """Repeats the last rows so the batch divides over the mesh (outputs are sliced back)."""
    if mesh is None:
        return inputs
    from models import sharding
    shards = int(mesh.dim_size(sharding.BATCH_AXIS))
    extra = (-batch) % shards
    if not extra:
        return inputs
    return tf.nest.map_structure(lambda t: tf.concat([t, tf.repeat(t[-1:], extra, axis=0)], 0), inputs)


def class_keys(model, class_names: Sequence[str], kind: str, tokenize: TextTokenizer,
               prompt_ensemble: bool = True, mesh=None) -> np.ndarray:
    """Class embeddings [C, d_common] from prompts (mean over templates when ensembling)."""
    per_class = [prompts(kind, name, prompt_ensemble) for name in class_names]  # [C][templates]
    per_template = []
    for texts in zip(*per_class):
        ids = tokenize(list(texts))
        per_template.append(_embed(model, "text", {"ids": ids}, kind, mesh))
    keys = np.mean(per_template, axis=0)
    return keys / (np.linalg.norm(keys, axis=-1, keepdims=True) + 1e-6)


def evaluate_files(model, tasks: Sequence[Task], files_by_split: Mapping[str, Sequence[str]],
                   config: ImpConfig, media: MediaConfig = DEFAULT_MEDIA, transform_assets=None,
                   max_examples: Optional[int] = 256, tokenize: Optional[TextTokenizer] = None,
                   prompt_ensemble: bool = True, batch_size: int = 32, mesh=None) -> Dict[str, float]:
    """`{"<task>/<metric>": value}` over the tasks' eval splits.

    Contrastive tasks: `<a>_to_<b>/recall@k` for every pair, both directions.
    Classification: `accuracy` of the trained head and, when a text tokenizer is available,
    `zero_shot_top1` / `zero_shot_top5` from prompts of the class names.
    """
    if tokenize is None and transform_assets is not None:
        try:
            tokenize = wordpiece_tokenizer(transform_assets, media.text_max_length)
        except Exception:  # no usable vocab (e.g. fixtures without tf.text): skip zero-shot
            tokenize = None
    names = data.label_names(transform_assets) if transform_assets is not None else None
    metrics: Dict[str, float] = {}
    for task in tasks:
        files = files_by_split.get(task.eval_split)
        if not files:
            continue
        embeddings: Dict[tuple, List[np.ndarray]] = {}
        labels, logits = [], []
        for batch in data.eval_dataset(task, files, config, media, batch_size, max_examples):
            if task.objective == "contrastive":
                for a, b in task.pairs:
                    embeddings.setdefault((a, b), []).append(_embed(model, a, batch[a], b, mesh))
                    embeddings.setdefault((b, a), []).append(_embed(model, b, batch[b], a, mesh))
            else:
                (kind,) = task.inputs
                n = _leading(batch[kind])
                inputs = mesh_model.place_batch(_pad_for_mesh(batch[kind], n, mesh), mesh)
                out = model.encode(INPUT_KINDS[kind], inputs)
                logits.append(np.asarray(mesh_model.to_numpy(
                    model.classify(task.label_set, out["features_agg"]), mesh))[:n])
                labels.append(batch["label"].numpy())
                if tokenize is not None and names:
                    embeddings.setdefault((kind, "text"), []).append(
                        _embed(model, kind, batch[kind], "text", mesh))
        if task.objective == "contrastive":
            for a, b in task.pairs:
                za, zb = np.concatenate(embeddings[(a, b)]), np.concatenate(embeddings[(b, a)])
                sim = za @ zb.T
                for direction, s in ((f"{a}_to_{b}", sim), (f"{b}_to_{a}", sim.T)):
                    for key, value in retrieval_metrics(s).items():
                        metrics[f"{task.name}/{direction}/{key}"] = value
        else:
            labels_np, logits_np = np.concatenate(labels), np.concatenate(logits)
            metrics[f"{task.name}/accuracy"] = float(np.mean(logits_np.argmax(-1) == labels_np))
            if (task.inputs[0], "text") in embeddings:
                keys = class_keys(model, names, task.inputs[0], tokenize, prompt_ensemble, mesh)
                top5 = min(5, len(names))  # with fewer than 5 classes "top5" is top-all
                zs = zero_shot_accuracy(np.concatenate(embeddings[(task.inputs[0], "text")]), keys,
                                        labels_np, top=(1, top5))
                metrics[f"{task.name}/zero_shot_top1"] = zs["top1"]
                metrics[f"{task.name}/zero_shot_top5"] = zs[f"top{top5}"]
    return metrics


def evaluate(model, tasks: Sequence[Task], data_dir, media: MediaConfig = DEFAULT_MEDIA,
             max_examples: Optional[int] = 256, **kwargs) -> Dict[str, float]:
    """Metrics of `model` on an ingest output's eval splits (see `evaluate_files`)."""
    files = {}
    for task in tasks:
        try:
            files[task.eval_split] = data.split_files(data_dir, task.eval_split)
        except FileNotFoundError:
            continue
    return evaluate_files(model, tasks, files, model.imp_config, media, data.assets_dir(data_dir),
                          max_examples=max_examples, **kwargs)
