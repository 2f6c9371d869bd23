"""Small subgraphs and paths as networkx graphs."""

from __future__ import annotations

from collections.abc import Iterable

import networkx as nx
import pandas as pd

from kgrec.loaders import schema as S
from kgrec.loaders.schema import Dataset


def node_key(node_type: str, ident: str) -> str:
    return f"{node_type}:{ident}"


def neighbourhood(ds: Dataset, user: str, hops: int, max_nodes: int) -> nx.Graph:
    """Breadth-first neighbourhood of a user over all edge types (capped at ``max_nodes``)."""
    g = full_graph(ds)
    start = node_key("user", user)
    keep = set(nx.single_source_shortest_path_length(g, start, cutoff=hops))
    if len(keep) > max_nodes:
        dist = nx.single_source_shortest_path_length(g, start, cutoff=hops)
        keep = set(sorted(dist, key=lambda n: (dist[n], n))[:max_nodes])
    return g.subgraph(keep).copy()


def full_graph(ds: Dataset) -> nx.Graph:
    g = nx.Graph()
    titles = dict(zip(ds.items[S.ITEM].tolist(), ds.items[S.TITLE].tolist()))
    for u in set(ds.interactions[S.USER].tolist()) | set(ds.tags[S.USER].tolist()):
        g.add_node(node_key("user", u), type="user", id=u, name=f"user {u}")
    for i in ds.items[S.ITEM].tolist():
        g.add_node(node_key("item", i), type="item", id=i, name=titles.get(i) or i)

    def add(
        df: pd.DataFrame, a_type: str, a_col: str, b_type: str, b_col: str, rel: str, attrs: Iterable[str] = ()
    ) -> None:
        for row in df.itertuples(index=False):
            a, b = getattr(row, a_col), getattr(row, b_col)
            for t, x in ((a_type, a), (b_type, b)):
                if not g.has_node(node_key(t, x)):
                    g.add_node(node_key(t, x), type=t, id=x, name=x)
            g.add_edge(node_key(a_type, a), node_key(b_type, b), type=rel, **{k: getattr(row, k) for k in attrs})

    add(ds.interactions, "user", S.USER, "item", S.ITEM, "INTERACTED", (S.TIMESTAMP,))
    add(ds.item_categories, "item", S.ITEM, "category", S.CATEGORY, "IN_CATEGORY")
    add(ds.item_keywords, "item", S.ITEM, "keyword", S.KEYWORD, "HAS_KEYWORD")
    add(ds.tags, "user", S.USER, "keyword", S.TAG, "TAGGED")
    add(ds.triples, "item", S.ITEM, "entity", S.ENTITY, "RELATED_TO", (S.RELATION,))
    return g
