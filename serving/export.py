"""SavedModel export of a training checkpoint for TF Serving.

    imp-tfx export --checkpoint RUN_DIR --base BASE --name NAME [--version V] [--transform-graph DIR]

writes `BASE/NAME/<version>/` (saved_model.pb, variables/, assets/{text_wordpiece_vocab, labels},
assets.extra/tf_serving_warmup_requests) plus `BASE/models.config` and `BASE/batching.config`, and prints
the version directory as its last stdout line.

The model is rebuilt WITHOUT a DTensor mesh and the (possibly sharded) checkpoint restored into it
(`models.training.checkpointing.restore_unsharded`): a traced DTensor relayout would make the SavedModel
unloadable outside DTensor (ENGINEERING_NOTES D.4). The graph holds core TensorFlow and tensorflow-text
ops only; the signatures are described in `serving/signatures.py`.
"""

from __future__ import annotations

import argparse
import logging
import os
import pathlib
import re
import shutil
import sys
import tempfile
from typing import Mapping, Optional, Sequence, Tuple, Union

import tensorflow as tf

from models import features as F
from serving import deploy_files, signatures, warmup

PathLike = Union[str, pathlib.Path]
TRANSFORM_ASSETS_SUBDIR = os.path.join("transform_fn", "assets")
DEFAULT_MODEL_NAME = "imp"

log = logging.getLogger(__name__)


# -- inputs: checkpoint, vocabularies, prompts -------------------------------------------------------------


def _run_dir(checkpoint_dir: PathLike) -> pathlib.Path:
    """The directory holding the trainer's `config.json` (the run dir, or the parent of `checkpoints/`)."""
    from models.training import checkpointing

    path = pathlib.Path(checkpoint_dir)
    for candidate in (path, path.parent):
        if (candidate / checkpointing.RUN_CONFIG_NAME).exists():
            return candidate
    raise FileNotFoundError(f"no {checkpointing.RUN_CONFIG_NAME} in {path} or its parent: give the "
                            "training run directory (the trainer writes the model config there)")


def load_model(checkpoint_dir: PathLike):
    """(unsharded built ImpModel with the latest checkpoint's weights, MediaConfig of the run)."""
    from models.training import checkpointing

    run_dir = _run_dir(checkpoint_dir)
    prefix = checkpointing.latest_checkpoint(checkpoint_dir)
    model = checkpointing.restore_unsharded(run_dir, checkpoint=prefix)
    _, _, media, _ = checkpointing.read_run_config(run_dir)
    return model, media


def find_transform_assets(transform_graph_dir: Optional[PathLike] = None,
                          search_from: Optional[PathLike] = None) -> pathlib.Path:
    """The folder holding `text_wordpiece_vocab` (and `labels`).

    Args:
      transform_graph_dir: a Transform output (`transform_graph/`, holding `transform_fn/assets`) or the
        assets folder itself.
      search_from: without `transform_graph_dir`, the checkpoint directory: its run dir and up to three
        ancestors are searched for `transform_graph/transform_fn/assets` (the `imp-tfx ingest` layout).
    """
    def assets_in(path: pathlib.Path) -> Optional[pathlib.Path]:
        for candidate in (path, path / TRANSFORM_ASSETS_SUBDIR, path / "transform_graph" / TRANSFORM_ASSETS_SUBDIR):
            if (candidate / F.TEXT_VOCAB_NAME).is_file():
                return candidate
        return None

    if transform_graph_dir is not None:
        found = assets_in(pathlib.Path(transform_graph_dir))
        if found is None:
            raise FileNotFoundError(f"no {F.TEXT_VOCAB_NAME} under {transform_graph_dir} "
                                    f"(looked in ., {TRANSFORM_ASSETS_SUBDIR})")
        return found
    if search_from is not None:
        start = pathlib.Path(search_from).resolve()
        for path in [start, *list(start.parents)[:3]]:
            found = assets_in(path)
            if found is not None:
                return found
    raise FileNotFoundError(f"cannot find the Transform vocabulary {F.TEXT_VOCAB_NAME} near "
                            f"{search_from}; pass --transform-graph DIR (the Transform output)")


def prompt_templates() -> Mapping[str, Sequence[str]]:
    """Zero-shot prompt templates per media kind: the same ones the trainer's evaluation uses."""
    from models.prompts import PROMPT_TEMPLATES
    return PROMPT_TEMPLATES


# -- writing -----------------------------------------------------------------------------------------------


def save_serving_model(model, media: F.MediaConfig, assets_dir: PathLike, export_dir: PathLike,
                       model_name: str = DEFAULT_MODEL_NAME, text_target: str = "vision",
                       warmup_batch_sizes: Sequence[int] = warmup.WARMUP_BATCH_SIZES) -> str:
    """Saves `model` (unsharded, built) with its serving signatures and warmup requests into export_dir."""
    assets_dir = pathlib.Path(assets_dir)
    labels = assets_dir / F.LABEL_VOCAB_NAME
    module = signatures.ImpServingModule(
        model, media, str(assets_dir / F.TEXT_VOCAB_NAME),
        labels_path=str(labels) if labels.is_file() else None,
        prompt_templates=prompt_templates(), text_target=text_target)
    tf.saved_model.save(module, str(export_dir), signatures=module.signatures(),
                        options=tf.saved_model.SaveOptions(save_debug_info=False))
    if warmup_batch_sizes:
        warmup.write_warmup(str(export_dir), model_name, media, warmup_batch_sizes)
    return str(export_dir)


def existing_versions(model_dir: PathLike) -> Tuple[int, ...]:
    """Integer version subdirectories of `BASE/NAME` (sorted)."""
    path = pathlib.Path(model_dir)
    if not path.is_dir():
        return ()
    return tuple(sorted(int(p.name) for p in path.iterdir() if p.is_dir() and re.fullmatch(r"\d+", p.name)))


def next_version(model_dir: PathLike) -> int:
    versions = existing_versions(model_dir)
    return versions[-1] + 1 if versions else 1


def export_model(model, media: F.MediaConfig, assets_dir: PathLike, base_path: PathLike,
                 model_name: str, version: Optional[int] = None, **save_kwargs) -> str:
    """Writes `BASE/NAME/VERSION/` atomically plus `BASE/models.config` and `BASE/batching.config`."""
    model_dir = pathlib.Path(base_path) / model_name
    model_dir.mkdir(parents=True, exist_ok=True)
    version = next_version(model_dir) if version is None else int(version)
    if version < 1:
        raise ValueError(f"TF Serving versions are positive integers, got {version}")
    target = model_dir / str(version)
    if target.exists():
        raise FileExistsError(f"{target} exists; versions are immutable (omit --version for the next one)")
    # A dot-prefixed staging dir beside the target, then one rename: the server's file-system poller
    # never sees a half-written version.
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{version}-", dir=model_dir))
    try:
        save_serving_model(model, media, assets_dir, staging, model_name, **save_kwargs)
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    deploy_files.write_model_config(base_path, model_name)
    deploy_files.write_batching_config(base_path)
    return str(target)


def export_serving_model(checkpoint_dir: PathLike, base_path: PathLike, model_name: str,
                         transform_graph_dir: Optional[PathLike] = None,
                         version: Optional[int] = None, text_target: str = "vision") -> str:
    """Exports the latest checkpoint of a training run as `BASE/NAME/VERSION`; returns that directory.

    Args:
      checkpoint_dir: the trainer's run directory (or its `checkpoints/` subfolder).
      base_path: the serving base directory (TF Serving's `--model_config_file` lives there).
      model_name: the served model name (a folder of BASE).
      transform_graph_dir: Transform output with the vocabularies (default: searched near the checkpoint).
      version: integer version (default: one more than the newest existing one, 1 for the first).
      text_target: space of `embed_text`, "vision" (default) or "audio".
    """
    assets_dir = find_transform_assets(transform_graph_dir, search_from=checkpoint_dir)
    model, media = load_model(checkpoint_dir)
    return export_model(model, media, assets_dir, base_path, model_name, version, text_target=text_target)


def export_for_pusher(checkpoint_dir: PathLike, serving_model_dir: PathLike,
                      transform_graph_dir: PathLike, model_name: str = DEFAULT_MODEL_NAME) -> str:
    """Writes the SavedModel directly into a TFX Trainer's `serving_model_dir` (Pusher versions it)."""
    assets_dir = find_transform_assets(transform_graph_dir)
    model, media = load_model(checkpoint_dir)
    tf.io.gfile.makedirs(str(serving_model_dir))
    return save_serving_model(model, media, assets_dir, serving_model_dir, model_name)


def trainer_export_fn(transform_graph_dir: PathLike, model_name: str = DEFAULT_MODEL_NAME):
    """An `export_fn` for `models.training.trainer.train(export_dir=serving_model_dir, export_fn=...)`.

    The trainer copies its final checkpoint and `config.json` into `export_dir` first; the returned
    function ignores the in-memory (possibly mesh-sharded) model and exports an unsharded rebuild from
    that checkpoint into the same directory, which is what a TFX Trainer's `serving_model_dir` needs.
    """
    def export_fn(export_dir, model=None, result=None) -> str:
        del model, result
        return export_for_pusher(export_dir, export_dir, transform_graph_dir, model_name)

    return export_fn


def run_export_command(args: argparse.Namespace) -> int:
    """`imp-tfx export` handler (`serving/cli.py` registers --checkpoint, --base, --name; --version and
    --transform-graph are read when present)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s] %(message)s")
    try:
        path = export_serving_model(args.checkpoint, args.base, args.name,
                                    transform_graph_dir=getattr(args, "transform_graph", None),
                                    version=getattr(args, "version", None))
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"imp-tfx export: {e}", file=sys.stderr)
        return 1
    print(path)
    return 0
