"""ImpEvaluator: zero-shot classification and retrieval metrics, blessing against the last blessed model."""

from components.evaluator.blessing import BlessingPolicy
from components.evaluator.blessing import Decision
from components.evaluator.blessing import decide
from components.evaluator.component import ImpEvaluator

__all__ = ["BlessingPolicy", "Decision", "ImpEvaluator", "decide"]
