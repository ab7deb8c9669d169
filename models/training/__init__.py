"""AGD training of IMP: tasks, task sampler, per-task compiled steps, checkpoints, evaluation, run_fn.

Module map:
  tasks.py          `Task` (one dataset + objective + resolution) and YAML loading
  sampler.py        which task trains at each step (IMP interval schedule or weighted random)
  optimization.py   AdamW (decay on kernels only), pre-warmup + warmup + cosine schedule, clipping
  data.py           per-task tf.data input from transformed TFRecords
  mesh_model.py     building the model on one device or on a DTensor batch x expert mesh
  agd.py            one compiled train step per task, cached (never retraced)
  checkpointing.py  checkpoint of model + optimizer + sampler + step; `restore_unsharded`
  evaluation.py     zero-shot classification and retrieval recall@k
  summaries.py      TensorBoard per task, expert-usage plot
  trainer.py        the training loop (CLI and TFX `run_fn` both call it)
  run_fn.py         TFX Trainer `run_fn(fn_args)`
  cli.py            `imp-tfx train`
  testing.py        fixture writer (transformed tf.Examples in the ingest layout)
"""

import os as _os

_os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
