"""kgrec: a knowledge-graph hybrid recommender (GNN + BERT, fused, with explainable paths).

The library logs through :mod:`logging` and never prints or configures logging.
The Python API is described in ``docs/api.md``.
"""

from kgrec import explore, graph, loaders
from kgrec.config_tools import config_fields, make_config
from kgrec.errors import ConfigError, KgrecError
from kgrec.fusion import Explanation, Recommender, RecommenderConfig
from kgrec.graph import GraphStore, open_store

__version__ = "0.1.0"
__all__ = [
    "ConfigError",
    "Explanation",
    "GraphStore",
    "KgrecError",
    "Recommender",
    "RecommenderConfig",
    "config_fields",
    "explore",
    "graph",
    "loaders",
    "make_config",
    "open_store",
]
