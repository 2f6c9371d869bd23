"""kgrec: a knowledge-graph hybrid recommender (GNN + BERT, fused, with explainable paths).

The library logs through :mod:`logging` and never prints or configures logging.
"""

from kgrec import loaders
from kgrec.errors import KgrecError
from kgrec.fusion import Explanation, Recommender, RecommenderConfig
from kgrec.graph import GraphStore, open_store

__version__ = "0.1.0"
__all__ = ["Explanation", "GraphStore", "KgrecError", "Recommender", "RecommenderConfig", "loaders", "open_store"]
