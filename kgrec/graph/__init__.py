"""Graph stores (embedded default and Neo4j), graph building and path queries."""

from kgrec.graph.draw import draw_explanation, draw_graph, explanation_graph
from kgrec.graph.hetero import EDGE_TYPES, NODE_TYPES, Vocabularies, to_hetero_data
from kgrec.graph.paths import PATH_COLUMNS, PATH_KINDS
from kgrec.graph.queries import (
    DocumentedQuery,
    documented_queries,
    run_documented_queries,
)
from kgrec.graph.store import GraphStore, IngestReport, open_store
from kgrec.graph.vocab import Vocab

__all__ = [
    "EDGE_TYPES",
    "NODE_TYPES",
    "PATH_COLUMNS",
    "PATH_KINDS",
    "DocumentedQuery",
    "GraphStore",
    "IngestReport",
    "Vocab",
    "Vocabularies",
    "documented_queries",
    "draw_explanation",
    "draw_graph",
    "explanation_graph",
    "open_store",
    "run_documented_queries",
    "to_hetero_data",
]
