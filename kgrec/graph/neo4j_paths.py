"""The part of a Neo4j graph that the explanation paths of a batch of (user, item) questions can touch, read in a
few queries (batch explanations: one read per chunk of an export instead of one path query per row).

:func:`neighbourhood` returns it as a small :class:`~kgrec.loaders.schema.Dataset`: the users' interactions, tags
and attributes; for every item they interacted with and every asked item, its categories, keywords, facts and the
users who interacted with it (and those users' attributes when the database holds attributes). The paths that
:class:`~kgrec.graph.path_table.PathArrays` finds in it are the rows :data:`~kgrec.graph.neo4j_store.Q_PATHS`
returns for those questions: every path starts at the user and ends at the asked item within three hops, and the
neighbourhood holds every node and edge of such a path.

Only read queries run, through :meth:`GraphStore.cypher <kgrec.graph.store.GraphStore.cypher>`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from kgrec.graph.neo4j_schema import schema_flags
from kgrec.loaders import schema as S
from kgrec.loaders.schema import Dataset

if TYPE_CHECKING:
    from kgrec.graph.store import GraphStore

__all__ = ["neighbourhood"]

#: ids per query (the lists travel as one parameter)
BATCH = 20_000

R_USERS_AROUND = """
UNWIND $ids AS id
MATCH (u:User {id: id})
CALL (u) { MATCH (u)-[:INTERACTED]->(j:Item) RETURN collect(j.id) AS items }
CALL (u) { MATCH (u)-[:TAGGED]->(k:Keyword) RETURN collect(DISTINCT k.id) AS tags }
RETURN u.id AS user, items, tags
"""
R_ITEMS_AROUND = """
UNWIND $ids AS id
MATCH (i:Item {id: id})
CALL (i) { MATCH (i)<-[:INTERACTED]-(v:User) RETURN collect(v.id) AS users }
CALL (i) { MATCH (i)-[:IN_CATEGORY]->(c:Category) RETURN collect(c.id) AS categories }
CALL (i) { MATCH (i)-[:HAS_KEYWORD]->(k:Keyword) RETURN collect(k.id) AS keywords }
CALL (i) { MATCH (i)-[r:RELATED_TO]->(e:Entity) RETURN collect([e.id, r.relation]) AS facts }
RETURN i.id AS item, users, categories, keywords, facts
"""
# asked only of a database that holds attributes (the server warns of an unknown relationship type)
R_ATTRIBUTES_AROUND = """
UNWIND $ids AS id
MATCH (u:User {id: id})-[:HAS_ATTRIBUTE]->(a:Attribute)
RETURN u.id AS user, collect(a.id) AS attributes
"""


def _read(store: GraphStore, query: str, ids: Iterable[str]) -> pd.DataFrame:
    ids = sorted(set(map(str, ids)))
    frames = [store.cypher(query, ids=ids[s : s + BATCH]) for s in range(0, len(ids), BATCH)]
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _pairs(df: pd.DataFrame, key: str, col: str) -> tuple[np.ndarray, np.ndarray]:
    """``(key, value)`` pairs of a frame whose ``col`` holds lists."""
    if df.empty:
        return np.empty(0, dtype=object), np.empty(0, dtype=object)
    lists = df[col].tolist()
    keys = np.repeat(df[key].to_numpy(dtype=object), [len(x) for x in lists])
    vals = np.array([x for xs in lists for x in xs], dtype=object)
    return keys, vals


def neighbourhood(store: GraphStore, users: Sequence[str], items: Sequence[str]) -> Dataset:
    """What the candidate paths from ``users`` to ``items`` (any pairing of them) can touch, read from the Neo4j
    ``store`` in three or four queries (more for very large batches: :data:`BATCH` ids per query)."""
    around_u = _read(store, R_USERS_AROUND, users)
    hu, hi = _pairs(around_u, "user", "items")
    around_i = _read(store, R_ITEMS_AROUND, [*hi.tolist(), *map(str, items)])
    iu_items, iu_users = _pairs(around_i, "item", "users")
    inter = pd.DataFrame(
        {S.USER: np.concatenate([hu, iu_users]), S.ITEM: np.concatenate([hi, iu_items])}, dtype=object
    ).drop_duplicates()
    tu, tk = _pairs(around_u, "user", "tags")
    ci, cc = _pairs(around_i, "item", "categories")
    ki, kk = _pairs(around_i, "item", "keywords")
    fi, ff = _pairs(around_i, "item", "facts")
    facts = np.array([list(f) for f in ff.tolist()], dtype=object).reshape(-1, 2)
    ua = S.empty_table("user_attributes")
    if schema_flags(store.cypher)["attributes"]:  # attribute paths: the users' attributes and the askers' neighbours'
        asked = np.isin(iu_items, np.asarray(list(map(str, items)), dtype=object))
        around_a = _read(store, R_ATTRIBUTES_AROUND, [*map(str, users), *iu_users[asked].tolist()])
        au, aa = _pairs(around_a, "user", "attributes")
        name_value = [S.split_attribute_id(a) for a in aa.tolist()]
        ua = pd.DataFrame(
            {S.USER: au, S.ATTRIBUTE: [n for n, _ in name_value], S.VALUE: [v for _, v in name_value]}, dtype=object
        )
    item_ids = around_i["item"].to_numpy(dtype=object) if not around_i.empty else np.empty(0, dtype=object)
    return Dataset(
        interactions=inter,
        items=pd.DataFrame({S.ITEM: item_ids}, dtype=object),
        item_categories=pd.DataFrame({S.ITEM: ci, S.CATEGORY: cc}, dtype=object),
        item_keywords=pd.DataFrame({S.ITEM: ki, S.KEYWORD: kk}, dtype=object),
        triples=pd.DataFrame({S.ITEM: fi, S.RELATION: facts[:, 1], S.ENTITY: facts[:, 0]}, dtype=object),
        tags=pd.DataFrame({S.USER: tu, S.ITEM: np.full(len(tu), "", dtype=object), S.TAG: tk}, dtype=object),
        user_attributes=ua,
        name="neo4j-neighbourhood",
    )
