"""The quality benchmark: the evaluation split, metrics, baselines and the runner.

See ``docs/evaluation.md``. Imports go one way: loaders → graph → encoders → fusion → evaluation.
"""

from kgrec.evaluation.benchmark import BenchmarkResult, ModelSpec, default_models, run_benchmark
from kgrec.evaluation.metrics import evaluate_topk, full_ranking_topk
from kgrec.evaluation.split import EvalSplit, Interactions, assert_no_leak, make_split

__all__ = [
    "BenchmarkResult",
    "EvalSplit",
    "Interactions",
    "ModelSpec",
    "assert_no_leak",
    "default_models",
    "evaluate_topk",
    "full_ranking_topk",
    "make_split",
    "run_benchmark",
]
