"""The Neo4j schema of the canonical tables: the Cypher that writes a :class:`~kgrec.loaders.schema.Dataset`
as nodes and relationships, and the Cypher that reads it back as canonical tables.

Shared by :mod:`kgrec.graph.neo4j_store` (ingest, reads) and :mod:`kgrec.graph.neo4j_live` (append and
forget, inside one transaction). Every write is an ``UNWIND $rows … MERGE`` with values passed as
parameters; labels and relationship types are fixed strings here, never taken from input.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd

from kgrec.errors import StoreError
from kgrec.loaders import schema as S
from kgrec.loaders.schema import Dataset
from kgrec.loaders.tables import canonical, merge

#: runs one read query with parameters and returns its rows as a DataFrame (a driver call, or ``tx.run``)
Reader = Callable[..., pd.DataFrame]

BATCH = 5000
LABELS = ("User", "Item", "Category", "Keyword", "Entity", "Attribute")

#: uniqueness of ``id`` per label; KgrecMeta's makes concurrent writers MERGE one bookkeeping node, never two
CONSTRAINTS = [
    f"CREATE CONSTRAINT kgrec_{lab.lower()}_id IF NOT EXISTS FOR (n:{lab}) REQUIRE n.id IS UNIQUE"
    for lab in (*LABELS, "KgrecMeta")
]

Q_NODES = {
    "User": "UNWIND $rows AS id MERGE (:User {id: id})",
    "Category": "UNWIND $rows AS id MERGE (:Category {id: id})",
    "Keyword": "UNWIND $rows AS id MERGE (:Keyword {id: id})",
    "Entity": "UNWIND $rows AS id MERGE (:Entity {id: id})",
}
Q_ITEMS = "UNWIND $rows AS row MERGE (i:Item {id: row.item}) SET i.title = row.title, i.description = row.description"
Q_INTERACTIONS = """
UNWIND $rows AS row
MATCH (u:User {id: row.user}), (i:Item {id: row.item})
MERGE (u)-[r:INTERACTED]->(i)
WITH r, row
WHERE r.timestamp IS NULL OR row.timestamp > r.timestamp
   OR (row.timestamp = r.timestamp AND row.weight >= r.weight)
SET r.timestamp = row.timestamp, r.rating = row.rating, r.text = row.text, r.weight = row.weight
"""
Q_CATEGORIES = """
UNWIND $rows AS row
MATCH (i:Item {id: row.item}), (c:Category {id: row.category})
MERGE (i)-[:IN_CATEGORY]->(c)
"""
Q_KEYWORDS = """
UNWIND $rows AS row
MATCH (i:Item {id: row.item}), (k:Keyword {id: row.keyword})
MERGE (i)-[:HAS_KEYWORD]->(k)
"""
Q_TAGS = """
UNWIND $rows AS row
MATCH (u:User {id: row.user}), (k:Keyword {id: row.tag})
MERGE (u)-[:TAGGED {item: row.item}]->(k)
"""
Q_TRIPLES = """
UNWIND $rows AS row
MATCH (i:Item {id: row.item}), (e:Entity {id: row.entity})
MERGE (i)-[:RELATED_TO {relation: row.relation}]->(e)
"""
Q_USER_PROFILES = "UNWIND $rows AS row MERGE (u:User {id: row.user}) SET u.profile = row.profile"
# a user listed again in a users file gets the new attributes: the old links go first
Q_USER_ATTRIBUTES_CLEAR = "UNWIND $rows AS id MATCH (:User {id: id})-[r:HAS_ATTRIBUTE]->(:Attribute) DELETE r"
Q_ATTRIBUTES = "UNWIND $rows AS row MERGE (a:Attribute {id: row.id}) SET a.name = row.name, a.value = row.value"
Q_USER_ATTRIBUTES = """
UNWIND $rows AS row
MATCH (u:User {id: row.user}), (a:Attribute {id: row.id})
MERGE (u)-[:HAS_ATTRIBUTE]->(a)
"""

# interactions come as one record per user holding their rows as lists: the driver decodes a few large records
# far faster than one per row (2.4 s instead of 6 s for MovieLens latest-small's 100,836)
R_INTERACTIONS = """
MATCH (u:User)-[r:INTERACTED]->(i:Item)
WITH u, collect([i.id, r.timestamp, r.rating, r.text, r.weight]) AS rows
RETURN u.id AS user, rows
"""
R_ITEMS = "MATCH (i:Item) RETURN i.id AS item, i.title AS title, i.description AS description"
R_CATEGORIES = "MATCH (i:Item)-[:IN_CATEGORY]->(c:Category) RETURN i.id AS item, c.id AS category"
R_KEYWORDS = "MATCH (i:Item)-[:HAS_KEYWORD]->(k:Keyword) RETURN i.id AS item, k.id AS keyword"
R_TRIPLES = "MATCH (i:Item)-[r:RELATED_TO]->(e:Entity) RETURN i.id AS item, r.relation AS relation, e.id AS entity"
R_TAGS = "MATCH (u:User)-[r:TAGGED]->(k:Keyword) RETURN u.id AS user, r.item AS item, k.id AS tag"
R_USERS = "MATCH (u:User) WHERE u.profile IS NOT NULL RETURN u.id AS user, u.profile AS profile"
R_USER_ATTRIBUTES = (
    "MATCH (u:User)-[:HAS_ATTRIBUTE]->(a:Attribute) RETURN u.id AS user, a.name AS attribute, a.value AS value"
)

R_HISTORY = """
MATCH (u:User {id: $user})-[r:INTERACTED]->(i:Item)
WITH u, collect([i.id, r.timestamp, r.rating, r.text, r.weight]) AS rows
RETURN u.id AS user, rows
"""
R_ITEM_IDS = "MATCH (i:Item) RETURN i.id AS item"

Q_HAS_PROFILES = (
    "CALL db.propertyKeys() YIELD propertyKey WITH collect(propertyKey) AS keys RETURN 'profile' IN keys AS has"
)
Q_REL_TYPES = "CALL db.relationshipTypes() YIELD relationshipType RETURN collect(relationshipType) AS types"


def batches(rows: list[Any], size: int = BATCH) -> Iterable[list[Any]]:
    """``rows`` in slices of ``size``."""
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain Python values; NaN becomes null (an absent property)."""
    out = df.astype(object).where(df.notna(), None).to_dict(orient="records")
    return [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in r.items()} for r in out]


def write_steps(ds: Dataset) -> list[tuple[str, str, list[Any]]]:
    """``(description, query, rows)`` that MERGE ``ds`` into the graph, nodes first, in the order to run them."""
    users = sorted(
        set(ds.interactions[S.USER]) | set(ds.tags[S.USER]) | set(ds.users[S.USER]) | set(ds.user_attributes[S.USER])
    )
    ua = ds.user_attributes
    attr_rows = [
        {"user": u, "id": S.attribute_id(a, v), "name": a, "value": v}
        for u, a, v in zip(ua[S.USER].tolist(), ua[S.ATTRIBUTE].tolist(), ua[S.VALUE].tolist(), strict=True)
    ]
    attr_nodes = sorted({r["id"]: r for r in attr_rows}.values(), key=lambda r: r["id"])
    return [
        ("users", Q_NODES["User"], users),
        ("items", Q_ITEMS, records(ds.items)),
        ("categories", Q_NODES["Category"], sorted(set(ds.item_categories[S.CATEGORY]))),
        ("keywords", Q_NODES["Keyword"], sorted(set(ds.item_keywords[S.KEYWORD]) | set(ds.tags[S.TAG]))),
        ("entities", Q_NODES["Entity"], sorted(set(ds.triples[S.ENTITY]))),
        ("interactions", Q_INTERACTIONS, records(ds.interactions)),
        ("item categories", Q_CATEGORIES, records(ds.item_categories)),
        ("item keywords", Q_KEYWORDS, records(ds.item_keywords)),
        ("tags", Q_TAGS, records(ds.tags)),
        ("facts", Q_TRIPLES, records(ds.triples)),
        ("user profiles", Q_USER_PROFILES, records(ds.users)),
        ("old user attributes", Q_USER_ATTRIBUTES_CLEAR, sorted(set(ds.users[S.USER]))),
        ("attributes", Q_ATTRIBUTES, attr_nodes),
        ("user attributes", Q_USER_ATTRIBUTES, attr_rows),
    ]


def schema_flags(read: Reader) -> dict[str, bool]:
    """Which optional parts the database has ever held: user ``profiles``, ``attributes`` (HAS_ATTRIBUTE) and
    ``recommended`` (RECOMMENDED). The server warns of unknown property keys and relationship types in a query,
    so those are not asked blind."""
    types = set(read(Q_REL_TYPES)["types"].iloc[0])
    return {
        "profiles": bool(read(Q_HAS_PROFILES)["has"].iloc[0]),
        "attributes": "HAS_ATTRIBUTE" in types,
        "recommended": "RECOMMENDED" in types,
    }


def interactions_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The records of :data:`R_INTERACTIONS` / :data:`R_HISTORY` (``user, rows``) as interaction rows in the
    canonical dtypes (``rating`` null: NaN; ``text`` absent: ""), not yet sorted."""
    if df.empty:
        return S.empty_table("interactions")
    per_user = [list(r) for r in df["rows"].tolist()]
    flat = [row for rows in per_user for row in rows]
    out = pd.DataFrame(flat, columns=[S.ITEM, S.TIMESTAMP, S.RATING, S.TEXT, S.WEIGHT])
    out.insert(0, S.USER, np.repeat(df["user"].to_numpy(dtype=object), [len(r) for r in per_user]))
    out[S.RATING] = pd.to_numeric(out[S.RATING], errors="coerce")
    out[S.TEXT] = out[S.TEXT].fillna("")
    return canonical(out, "interactions")


def read_dataset(read: Reader, flags: dict[str, bool], name: str, where: str, uri: str) -> Dataset:
    """Every table read back with ``read``, in the canonical order the loaders give (equal to the embedded store's
    tables for equal data).

    Raises:
        StoreError: the database holds no kgrec data (no item and no interaction); ``where`` names it, ``uri``
            goes into the ``kgrec ingest`` to run.
    """
    t = {
        "interactions": read(R_INTERACTIONS),
        "items": read(R_ITEMS),
        "item_categories": read(R_CATEGORIES),
        "item_keywords": read(R_KEYWORDS),
        "triples": read(R_TRIPLES),
        "tags": read(R_TAGS),
    }
    t["users"] = read(R_USERS) if flags["profiles"] else S.empty_table("users")
    t["user_attributes"] = read(R_USER_ATTRIBUTES) if flags["attributes"] else S.empty_table("user_attributes")
    if t["items"].empty and t["interactions"].empty:
        raise StoreError(f"{where} holds no kgrec data; run `kgrec ingest --store {uri} ...`")
    for table, df in t.items():
        if df.empty:
            t[table] = S.empty_table(table)
        elif table == "interactions":
            t[table] = interactions_frame(df)
        else:
            if table == "items":
                df = df.fillna({"title": "", "description": ""})
            t[table] = canonical(df[list(S.TABLES[table])], table)
    # the same canonical order as loaders produce (merge with nothing sorts and dedupes)
    empty = Dataset(**{n: S.empty_table(n) for n in S.TABLES}, name="dataset")
    return merge(empty, Dataset(**t, name=name))
