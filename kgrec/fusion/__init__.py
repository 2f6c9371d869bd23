"""Fusion of structural and text vectors, ranking, and explanation scoring."""

from kgrec.fusion.config import ExplainConfig, ModelConfig, RecommenderConfig, TrainConfig
from kgrec.fusion.explanation import Explanation, ExplanationPath
from kgrec.fusion.recommender import Recommender
from kgrec.fusion.state import ModelState

__all__ = [
    "ExplainConfig",
    "Explanation",
    "ExplanationPath",
    "ModelConfig",
    "ModelState",
    "Recommender",
    "RecommenderConfig",
    "TrainConfig",
]
