"""TensorBoard summaries per task and the expert-usage-per-modality plot.

Scalars go to `OUT/tensorboard/<task>/` (one TensorBoard run per task, so curves of different tasks
overlay by tag): loss, objective, aux_loss, temperature per pair, learning rate, gradient norm,
accuracy, fraction of tokens dropped by the router and per-expert usage per input kind and MoE layer.
"""

from __future__ import annotations

import collections
import pathlib
from typing import Dict, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

# The per-expert router metric that `accumulate_usage` averages and `plot_expert_usage` draws.
PLOTTED_METRIC = "expert_weight_share"


class TaskSummaries:
    """One `tf.summary` writer per task plus running expert-usage statistics."""

    def __init__(self, log_dir, task_names: Sequence[str]):
        self.log_dir = pathlib.Path(log_dir)
        self._writers = {name: tf.summary.create_file_writer(str(self.log_dir / name))
                         for name in task_names}
        # (kind, layer) -> [sum of usage vectors, count]
        self._usage: Dict[tuple, list] = collections.defaultdict(lambda: [0.0, 0])

    def write(self, task_name: str, step: int, metrics: Mapping[str, np.ndarray]) -> None:
        with self._writers[task_name].as_default(step=step):
            for key, value in metrics.items():
                value = np.asarray(value)
                if value.ndim == 0:
                    tf.summary.scalar(key, float(value))
                else:  # expert_usage/<kind>/<layer>: one scalar per expert
                    for index, v in enumerate(value.ravel()):
                        tf.summary.scalar(f"{key}/expert_{index}", float(v))

    def accumulate_usage(self, metrics: Mapping[str, np.ndarray]) -> None:
        for key, value in metrics.items():
            # Under experts-choose every expert fills its slots, so slot counts are flat; the share of
            # combine weight is what differs between modalities.
            if key.startswith(PLOTTED_METRIC + "/"):
                _, kind, layer = key.split("/", 2)
                entry = self._usage[(kind, layer)]
                entry[0] = entry[0] + np.asarray(value, np.float64)
                entry[1] += 1

    def mean_usage(self) -> Dict[str, Dict[str, np.ndarray]]:
        """{layer: {kind: mean usage [E]}} over every step seen."""
        out: Dict[str, Dict[str, np.ndarray]] = collections.defaultdict(dict)
        for (kind, layer), (total, count) in sorted(self._usage.items()):
            out[layer][kind] = np.asarray(total) / max(count, 1)
        return dict(out)

    def flush(self) -> None:
        for writer in self._writers.values():
            writer.flush()

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()


def plot_expert_usage(usage: Mapping[str, Mapping[str, np.ndarray]], path) -> Optional[pathlib.Path]:
    """Heatmaps (one per MoE layer) of each expert's mean share of the combine weight (how much each
    expert contributes to each input kind's outputs), rows = input kinds, columns = experts.

    Returns the PNG path, or None when there is nothing to plot (dense model).
    """
    if not usage:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = sorted(usage)
    fig, axes = plt.subplots(1, len(layers), figsize=(4.5 * len(layers), 3.2), squeeze=False)
    for ax, layer in zip(axes[0], layers):
        kinds = sorted(usage[layer])
        grid = np.stack([usage[layer][k] for k in kinds])
        image = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0.0)
        ax.set_yticks(range(len(kinds)), kinds)
        ax.set_xticks(range(grid.shape[1]))
        ax.set_xlabel("expert")
        ax.set_title(f"share of combine weight, {layer}")
        fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
