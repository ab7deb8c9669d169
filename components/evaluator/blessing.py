"""The blessing decision: absolute thresholds on the candidate, then "not worse than the baseline".

Metrics are a flat `{name: value}` dict with `/`-separated names (`metrics.rename_metrics`):

    zero_shot/<task>/accuracy            zero-shot classification accuracy on `eval_<task>`
    retrieval/<task>/<a>_to_<b>/recall@K cross-modal retrieval recall@K (K = 1, 5, 10) on `eval_<task>`
    (plus informational ones: top-5 accuracy, the trained head's accuracy, median ranks)

Policies should only name metrics where higher is better (all the defaults do).

A `BlessingPolicy` names metrics by `fnmatch` patterns, so one rule covers every task:

* `lower_bounds`: every metric matching a pattern must be >= its bound, and every pattern must match at
  least one metric (a missing metric is a failed check, never a silent pass);
* `comparison_metrics`: the candidate's *score*, the mean of the metrics matching these patterns, must be
  >= the baseline's score (on the same eval data) minus `max_regression`. Comparing one mean instead of
  each metric keeps noise in one small eval split from blocking an otherwise better model.

The decision is a pure function of two metric dicts, so it is tested without models or TFX.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import math
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

Metrics = Mapping[str, float]

ZERO_SHOT_ACCURACY = "zero_shot/*/accuracy"
RECALL_AT_1 = "retrieval/*/recall@1"
RECALL_AT_5 = "retrieval/*/recall@5"
RECALL_AT_10 = "retrieval/*/recall@10"


@dataclasses.dataclass(frozen=True)
class BlessingPolicy:
    """When a candidate model is blessed.

    Attributes:
      lower_bounds: (metric pattern, minimum) pairs, checked on the candidate alone.
      comparison_metrics: metric patterns whose mean is compared with the baseline's.
      max_regression: how far (absolute) the candidate's score may fall below the baseline's.
    """

    lower_bounds: Tuple[Tuple[str, float], ...] = ((ZERO_SHOT_ACCURACY, 0.0),)
    comparison_metrics: Tuple[str, ...] = (ZERO_SHOT_ACCURACY, RECALL_AT_1, RECALL_AT_5, RECALL_AT_10)
    max_regression: float = 0.0

    def __post_init__(self):
        bounds = tuple((str(p), float(v)) for p, v in self.lower_bounds)
        object.__setattr__(self, "lower_bounds", bounds)
        object.__setattr__(self, "comparison_metrics", tuple(str(p) for p in self.comparison_metrics))
        for pattern, bound in bounds:
            if not pattern or not math.isfinite(bound):
                raise ValueError(f"bad lower bound {pattern!r}: {bound}")
        if not self.comparison_metrics:
            raise ValueError("comparison_metrics must name at least one metric pattern")
        if not (math.isfinite(self.max_regression) and self.max_regression >= 0.0):
            raise ValueError(f"max_regression must be >= 0, got {self.max_regression}")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "BlessingPolicy":
        data = json.loads(text)
        return cls(lower_bounds=tuple(tuple(b) for b in data.get("lower_bounds", ())),
                   comparison_metrics=tuple(data.get("comparison_metrics", cls.comparison_metrics)),
                   max_regression=float(data.get("max_regression", 0.0)))


@dataclasses.dataclass(frozen=True)
class Decision:
    """The outcome and why: one human-readable line per check, failed checks first."""

    blessed: bool
    score: float
    baseline_score: Optional[float]
    failures: Tuple[str, ...]
    passes: Tuple[str, ...]

    def to_dict(self) -> Dict[str, object]:
        return dataclasses.asdict(self)

    def explain(self) -> str:
        verdict = "BLESSED" if self.blessed else "NOT BLESSED"
        lines = [verdict] + [f"  FAIL {f}" for f in self.failures] + [f"  ok   {p}" for p in self.passes]
        return "\n".join(lines)


def matching(metrics: Metrics, pattern: str) -> Dict[str, float]:
    return {name: float(v) for name, v in metrics.items() if fnmatch.fnmatchcase(name, pattern)}


def score(metrics: Metrics, patterns: Sequence[str]) -> float:
    """Mean of the finite metrics matching any of `patterns` (NaN when none match)."""
    values = [float(v) for name, v in sorted(metrics.items())
              if any(fnmatch.fnmatchcase(name, p) for p in patterns) and math.isfinite(float(v))]
    return sum(values) / len(values) if values else float("nan")


def decide(candidate: Metrics, baseline: Optional[Metrics], policy: BlessingPolicy) -> Decision:
    """Blesses `candidate` iff every lower bound holds and (with a baseline) its score is not worse.

    Args:
      candidate: the new model's metrics.
      baseline: the last blessed model's metrics on the same eval data, or None (first model).
      policy: thresholds.
    """
    failures: List[str] = []
    passes: List[str] = []
    for pattern, bound in policy.lower_bounds:
        found = matching(candidate, pattern)
        if not found:
            failures.append(f"no metric matches {pattern!r} (lower bound {bound:g})")
        for name, value in sorted(found.items()):
            if math.isfinite(value) and value >= bound:
                passes.append(f"{name} = {value:.4f} >= {bound:g}")
            else:
                failures.append(f"{name} = {value:.4f} < {bound:g}")

    candidate_score = score(candidate, policy.comparison_metrics)
    baseline_score = None
    if not math.isfinite(candidate_score):
        failures.append(f"no finite metric matches {list(policy.comparison_metrics)}")
    elif baseline is not None:
        baseline_score = score(baseline, policy.comparison_metrics)
        if not math.isfinite(baseline_score):
            passes.append("baseline has no comparable metrics: compared on thresholds only")
            baseline_score = None
        elif candidate_score >= baseline_score - policy.max_regression:
            passes.append(f"score {candidate_score:.4f} >= baseline {baseline_score:.4f} "
                          f"- {policy.max_regression:g}")
        else:
            failures.append(f"score {candidate_score:.4f} < baseline {baseline_score:.4f} "
                            f"- {policy.max_regression:g}")
    return Decision(blessed=not failures, score=candidate_score, baseline_score=baseline_score,
                    failures=tuple(failures), passes=tuple(passes))
