"""The canonical tables every loader produces, and the :class:`Dataset` holding them.

Ids are strings ("external ids"); positions in tensors are called *numbers* and
live in :mod:`kgrec.graph.vocab`. Column names are constants so that code never
spells them twice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import pandas as pd

USER = "user"
ITEM = "item"
TIMESTAMP = "timestamp"
RATING = "rating"
TEXT = "text"
WEIGHT = "weight"
TITLE = "title"
DESCRIPTION = "description"
CATEGORIES = "categories"
KEYWORDS = "keywords"
CATEGORY = "category"
KEYWORD = "keyword"
RELATION = "relation"
ENTITY = "entity"
TAG = "tag"

#: separator of multi-valued cells (categories, keywords) in the bring-your-own format
MULTI_SEP = "|"

# ---- limits of the bring-your-own format (docs/data-format.md, "Limits"); checked at ingest,
# before any store sees the data, so that both stores get the same data

#: longest id (user, item, category, keyword, entity, relation, tag) in UTF-8 bytes: an error above it
#: (Neo4j cannot index a property value of about 8 KB, and an id is a key, not text)
MAX_ID_BYTES = 1024
#: longest title in characters: an error above it (a title this long is a wrong column or a stray quote)
MAX_TITLE_CHARS = 2000
#: longest description in characters: longer ones are cut to this length with a logged warning
MAX_DESCRIPTION_CHARS = 10_000
#: longest interaction text in characters: longer ones are cut to this length with a logged warning
MAX_TEXT_CHARS = 10_000
#: most categories, and most keywords, in one item row: an error above it
MAX_VALUES_PER_ITEM = 1000
#: allowed timestamps, in seconds since 1970-01-01T00:00:00Z (0) to 9999-12-31T23:59:59Z
TIMESTAMP_MIN = 0
TIMESTAMP_MAX = 253_402_300_799

#: column -> pandas dtype of each canonical table, in order
INTERACTIONS_SCHEMA: dict[str, str] = {
    USER: "string",
    ITEM: "string",
    TIMESTAMP: "int64",
    RATING: "float64",
    TEXT: "string",
    WEIGHT: "float64",
}
ITEMS_SCHEMA: dict[str, str] = {ITEM: "string", TITLE: "string", DESCRIPTION: "string"}
ITEM_CATEGORIES_SCHEMA: dict[str, str] = {ITEM: "string", CATEGORY: "string"}
ITEM_KEYWORDS_SCHEMA: dict[str, str] = {ITEM: "string", KEYWORD: "string"}
TRIPLES_SCHEMA: dict[str, str] = {ITEM: "string", RELATION: "string", ENTITY: "string"}
TAGS_SCHEMA: dict[str, str] = {USER: "string", ITEM: "string", TAG: "string"}

#: table name -> schema; the order is the order tables are written and hashed in
TABLES: dict[str, dict[str, str]] = {
    "interactions": INTERACTIONS_SCHEMA,
    "items": ITEMS_SCHEMA,
    "item_categories": ITEM_CATEGORIES_SCHEMA,
    "item_keywords": ITEM_KEYWORDS_SCHEMA,
    "triples": TRIPLES_SCHEMA,
    "tags": TAGS_SCHEMA,
}


def empty_table(name: str) -> pd.DataFrame:
    """An empty canonical table with the right columns and dtypes."""
    schema = TABLES[name]
    return pd.DataFrame({c: pd.Series([], dtype=t) for c, t in schema.items()})


def table_fingerprint(df: pd.DataFrame) -> str:
    """A sha256 of a table's content (column names, dtypes and values, in order)."""
    h = hashlib.sha256()
    h.update(repr([(c, str(df[c].dtype)) for c in df.columns]).encode())
    if len(df):
        h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class Dataset:
    """One data set as canonical tables (see ``docs/data-format.md``).

    Attributes:
        interactions: ``user, item, timestamp, rating, text, weight``; one row per
            (user, item) pair, sorted by ``user, timestamp, item``.
        items: ``item, title, description``; one row per item, sorted by ``item``.
        item_categories: ``item, category`` links.
        item_keywords: ``item, keyword`` links (the items' own keywords plus the
            tags users applied to them).
        triples: ``item, relation, entity`` knowledge-graph facts.
        tags: ``user, item, tag``: a user applying a keyword to an item.
        name: a short name used in logs and manifests.
    """

    interactions: pd.DataFrame
    items: pd.DataFrame
    item_categories: pd.DataFrame = field(default_factory=lambda: empty_table("item_categories"))
    item_keywords: pd.DataFrame = field(default_factory=lambda: empty_table("item_keywords"))
    triples: pd.DataFrame = field(default_factory=lambda: empty_table("triples"))
    tags: pd.DataFrame = field(default_factory=lambda: empty_table("tags"))
    name: str = "dataset"

    def tables(self) -> dict[str, pd.DataFrame]:
        """The canonical tables by name, in :data:`TABLES` order."""
        return {name: getattr(self, name) for name in TABLES}

    def fingerprint(self) -> str:
        """A sha256 over all tables: equal data give equal fingerprints."""
        h = hashlib.sha256()
        for name, df in self.tables().items():
            h.update(name.encode())
            h.update(table_fingerprint(df).encode())
        return h.hexdigest()

    def counts(self) -> dict[str, int]:
        """Row counts per table plus distinct users and items."""
        out = {name: int(len(df)) for name, df in self.tables().items()}
        users = pd.concat([self.interactions[USER], self.tags[USER]]).nunique()
        out["users"] = int(users)
        out["categories"] = int(self.item_categories[CATEGORY].nunique())
        out["keywords"] = int(
            pd.concat([self.item_keywords[KEYWORD], self.tags[TAG]]).nunique()
        )
        out["entities"] = int(self.triples[ENTITY].nunique())
        return out

    def __repr__(self) -> str:
        c = self.counts()
        return (
            f"Dataset({self.name!r}, users={c['users']}, items={c['items']}, "
            f"interactions={c['interactions']}, categories={c['categories']}, "
            f"keywords={c['keywords']}, entities={c['entities']})"
        )
