"""Which task trains at each AGD step.

Two samplers behind one interface:

* `IntervalSampler`: IMP's released schedule, a deterministic weighted round robin. Every round visits
  the tasks in order, bumps the task's own counter and trains it when `counter % interval == 0`
  (spec 2.1; counters are per task, not per dataset name, which avoids the reference code's collision).
* `RandomSampler`: the paper's "randomly sampled at each step": a categorical draw with probabilities
  `weight / sum(weight)`, seeded by `(seed, global step)`, so it is stateless and resumable.

Both expose their state as int64 numpy arrays (`get_state` / `set_state`); the trainer mirrors it into
checkpointed variables, so a resumed run continues the exact same task sequence.
"""

from __future__ import annotations

import abc
from typing import Dict, Sequence

import numpy as np

from models.training.tasks import Task


class TaskSampler(abc.ABC):
    """Picks the index of the task to train at a global step."""

    def __init__(self, tasks: Sequence[Task]):
        self.tasks = tuple(tasks)
        self.names = tuple(t.name for t in tasks)

    @abc.abstractmethod
    def next_task(self, step: int) -> int:
        """Index into `tasks` of the task trained at global step `step` (advances the state)."""

    def get_state(self) -> np.ndarray:
        """int64 [state_size]; empty for stateless samplers."""
        return np.zeros([0], np.int64)

    def set_state(self, state: np.ndarray) -> None:
        if np.size(state):
            raise ValueError(f"{type(self).__name__} is stateless, got state {state}")

    @property
    def state_size(self) -> int:
        return int(self.get_state().size)

    def expected_shares(self, steps: int = 10_000) -> Dict[str, float]:
        """Fraction of steps per task over `steps` steps from a fresh state (for logs and tests)."""
        fresh = type(self)(**self._init_kwargs())
        counts = np.zeros(len(self.tasks))
        for step in range(steps):
            counts[fresh.next_task(step)] += 1
        return dict(zip(self.names, (counts / steps).tolist()))

    @abc.abstractmethod
    def _init_kwargs(self) -> dict:
        ...


class IntervalSampler(TaskSampler):
    """Deterministic weighted round robin: task i trains once every `tasks[i].interval` rounds."""

    def __init__(self, tasks: Sequence[Task]):
        super().__init__(tasks)
        self._intervals = np.array([t.interval for t in self.tasks], np.int64)
        self._counters = np.zeros(len(self.tasks), np.int64)  # rounds visited, per task
        self._cursor = 0  # position inside the current round

    def next_task(self, step: int) -> int:
        del step  # the schedule depends on the counters only
        while True:
            index = self._cursor
            self._cursor = (self._cursor + 1) % len(self.tasks)
            self._counters[index] += 1
            if self._counters[index] % self._intervals[index] == 0:
                return index

    def get_state(self) -> np.ndarray:
        return np.concatenate([self._counters, [self._cursor]]).astype(np.int64)

    def set_state(self, state: np.ndarray) -> None:
        state = np.asarray(state, np.int64)
        if state.shape != (len(self.tasks) + 1,):
            raise ValueError(f"interval sampler state must have {len(self.tasks) + 1} entries, "
                             f"got shape {state.shape}")
        self._counters = state[:-1].copy()
        self._cursor = int(state[-1])

    def _init_kwargs(self) -> dict:
        return {"tasks": self.tasks}


class RandomSampler(TaskSampler):
    """Categorical draw per step with p = weight / sum(weights), a pure function of (seed, step)."""

    def __init__(self, tasks: Sequence[Task], seed: int = 0):
        super().__init__(tasks)
        weights = np.array([t.weight for t in self.tasks], np.float64)
        self._probabilities = weights / weights.sum()
        self._seed = int(seed)

    def next_task(self, step: int) -> int:
        rng = np.random.default_rng([self._seed, int(step)])
        return int(rng.choice(len(self.tasks), p=self._probabilities))

    def _init_kwargs(self) -> dict:
        return {"tasks": self.tasks, "seed": self._seed}


SAMPLERS = {"interval": IntervalSampler, "random": RandomSampler}


def make_sampler(kind: str, tasks: Sequence[Task], seed: int = 0) -> TaskSampler:
    if kind == "interval":
        return IntervalSampler(tasks)
    if kind == "random":
        return RandomSampler(tasks, seed=seed)
    raise ValueError(f"unknown sampler {kind!r}; choose one of {sorted(SAMPLERS)}")
