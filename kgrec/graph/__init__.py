"""Graph stores (embedded default and Neo4j), graph building and path queries."""

from kgrec.graph.hetero import EDGE_TYPES, NODE_TYPES, Vocabularies, to_hetero_data
from kgrec.graph.paths import PATH_COLUMNS, PATH_KINDS
from kgrec.graph.store import GraphStore, IngestReport, open_store
from kgrec.graph.vocab import Vocab

__all__ = [
    "EDGE_TYPES",
    "NODE_TYPES",
    "PATH_COLUMNS",
    "PATH_KINDS",
    "GraphStore",
    "IngestReport",
    "Vocab",
    "Vocabularies",
    "open_store",
    "to_hetero_data",
]
