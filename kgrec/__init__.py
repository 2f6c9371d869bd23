"""kgrec: a knowledge-graph hybrid recommender (GNN + BERT, fused, with explainable paths).

The library logs through :mod:`logging` and never prints or configures logging.
The Python API is described in ``docs/api.md``.

Names are imported on first use (PEP 562), so ``import kgrec.errors`` or ``kgrec --help`` do not
pay for torch, torch-geometric and transformers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> module that defines it (a module itself when the name is a subpackage)
_LAZY = {
    "ConfigError": "kgrec.errors",
    "KgrecError": "kgrec.errors",
    "Explanation": "kgrec.fusion",
    "Recommender": "kgrec.fusion",
    "RecommenderConfig": "kgrec.fusion",
    "GraphStore": "kgrec.graph",
    "open_store": "kgrec.graph",
    "config_fields": "kgrec.config_tools",
    "make_config": "kgrec.config_tools",
    "explore": "kgrec.explore",
    "graph": "kgrec.graph",
    "loaders": "kgrec.loaders",
}
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

if TYPE_CHECKING:
    from kgrec import explore, graph, loaders
    from kgrec.config_tools import config_fields, make_config
    from kgrec.errors import ConfigError, KgrecError
    from kgrec.fusion import Explanation, Recommender, RecommenderConfig
    from kgrec.graph import GraphStore, open_store


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kgrec' has no attribute {name!r}")
    mod = importlib.import_module(module)
    value = mod if module == f"kgrec.{name}" else getattr(mod, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
