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
ATTRIBUTE = "attribute"
VALUE = "value"
PROFILE = "profile"

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
#: most attribute columns in a users file: an error above it
MAX_ATTRIBUTE_COLUMNS = 200
#: longest profile text (free-text attribute columns joined) in characters: longer ones are cut with a logged warning
MAX_PROFILE_CHARS = 10_000
#: bands a numeric attribute column is cut into (quantile bands over the users file's values)
NUMERIC_BANDS = 5
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
#: the users named in a users file, with their free-text profile ("" when none)
USERS_SCHEMA: dict[str, str] = {USER: "string", PROFILE: "string"}
#: one row per (user, attribute, value): categorical values, and numeric values as their band's label
USER_ATTRIBUTES_SCHEMA: dict[str, str] = {USER: "string", ATTRIBUTE: "string", VALUE: "string"}

#: table name -> schema; the order is the order tables are written and hashed in
TABLES: dict[str, dict[str, str]] = {
    "interactions": INTERACTIONS_SCHEMA,
    "items": ITEMS_SCHEMA,
    "item_categories": ITEM_CATEGORIES_SCHEMA,
    "item_keywords": ITEM_KEYWORDS_SCHEMA,
    "triples": TRIPLES_SCHEMA,
    "tags": TAGS_SCHEMA,
    "users": USERS_SCHEMA,
    "user_attributes": USER_ATTRIBUTES_SCHEMA,
}
#: tables that are hashed into a fingerprint only when they hold rows, so that data without a users
#: file keep the fingerprints (and store snapshots, and model checks) they had before users files existed
OPTIONAL_TABLES = ("users", "user_attributes")


def attribute_id(attribute: str, value: str) -> str:
    """The id of an attribute node: ``name=value`` (attribute names never hold ``=``)."""
    return f"{attribute}={value}"


def split_attribute_id(ident: str) -> tuple[str, str]:
    """``(name, value)`` of an attribute node id made by :func:`attribute_id`."""
    name, _, value = str(ident).partition("=")
    return name, value


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
        users: ``user, profile``: the users of a users file (some may have no
            interactions yet) and their free-text profile.
        user_attributes: ``user, attribute, value``: categorical attributes and
            the bands of numeric ones (graph nodes ``attribute=value``).
    """

    interactions: pd.DataFrame
    items: pd.DataFrame
    item_categories: pd.DataFrame = field(default_factory=lambda: empty_table("item_categories"))
    item_keywords: pd.DataFrame = field(default_factory=lambda: empty_table("item_keywords"))
    triples: pd.DataFrame = field(default_factory=lambda: empty_table("triples"))
    tags: pd.DataFrame = field(default_factory=lambda: empty_table("tags"))
    name: str = "dataset"
    users: pd.DataFrame = field(default_factory=lambda: empty_table("users"))
    user_attributes: pd.DataFrame = field(default_factory=lambda: empty_table("user_attributes"))

    def tables(self) -> dict[str, pd.DataFrame]:
        """The canonical tables by name, in :data:`TABLES` order."""
        return {name: getattr(self, name) for name in TABLES}

    def fingerprint(self) -> str:
        """A sha256 over all tables: equal data give equal fingerprints."""
        h = hashlib.sha256()
        for name, df in self.tables().items():
            if name in OPTIONAL_TABLES and df.empty:
                continue
            h.update(name.encode())
            h.update(table_fingerprint(df).encode())
        return h.hexdigest()

    def counts(self) -> dict[str, int]:
        """Row counts per table plus distinct users and items."""
        out = {name: int(len(df)) for name, df in self.tables().items()}
        users = pd.concat(
            [self.interactions[USER], self.tags[USER], self.users[USER], self.user_attributes[USER]]
        ).nunique()
        out["users"] = int(users)
        out["categories"] = int(self.item_categories[CATEGORY].nunique())
        out["keywords"] = int(pd.concat([self.item_keywords[KEYWORD], self.tags[TAG]]).nunique())
        out["entities"] = int(self.triples[ENTITY].nunique())
        out["attributes"] = int(len(self.user_attributes[[ATTRIBUTE, VALUE]].drop_duplicates()))
        return out

    def __repr__(self) -> str:
        c = self.counts()
        return (
            f"Dataset({self.name!r}, users={c['users']}, items={c['items']}, "
            f"interactions={c['interactions']}, categories={c['categories']}, "
            f"keywords={c['keywords']}, entities={c['entities']})"
        )
