"""Explanation path shapes and the in-memory path finder of the embedded store.

A candidate path is one row of a DataFrame with :data:`PATH_COLUMNS`:

============  ================================================  ===========================
kind          nodes (user ... item)                             relations
============  ================================================  ===========================
category      user → anchor item → category ← item              INTERACTED, IN_CATEGORY, IN_CATEGORY
keyword       user → anchor item → keyword ← item               INTERACTED, HAS_KEYWORD, HAS_KEYWORD
tag           user → keyword (tagged) ← item                    TAGGED, HAS_KEYWORD
entity        user → anchor item → entity ← item                INTERACTED, <relation a>, <relation b>
user          user → anchor item ← similar user → item          INTERACTED, INTERACTED, INTERACTED
attribute     user → attribute ← other users → item             HAS_ATTRIBUTE, HAS_ATTRIBUTE, INTERACTED
============  ================================================  ===========================

An ``attribute`` path (from the users file) says that other users who share one of the
user's attribute values (``via`` = ``name=value``) interacted with the item; it needs
no history, so a cold-start user known only by attributes has these paths.

``anchor`` is the user's history item (empty for ``tag`` paths), ``via`` the
connecting category/keyword/entity/user id, ``rel_a``/``rel_b`` the relation
names of entity facts. Both stores return exactly these rows; scoring and
wording live in :mod:`kgrec.fusion.explain`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

import pandas as pd

from kgrec.loaders import schema as S

PATH_KINDS = ("category", "keyword", "tag", "entity", "user", "attribute")
PATH_COLUMNS = ["kind", "anchor", "via", "rel_a", "rel_b"]
#: node types along each path kind, user first and item last
KIND_NODES: dict[str, tuple[str, ...]] = {
    "category": ("user", "item", "category", "item"),
    "keyword": ("user", "item", "keyword", "item"),
    "tag": ("user", "keyword", "item"),
    "entity": ("user", "item", "entity", "item"),
    "user": ("user", "item", "user", "item"),
    "attribute": ("user", "attribute", "item"),
}
KIND_RELATIONS: dict[str, tuple[str, ...]] = {
    "category": ("INTERACTED", "IN_CATEGORY", "IN_CATEGORY"),
    "keyword": ("INTERACTED", "HAS_KEYWORD", "HAS_KEYWORD"),
    "tag": ("TAGGED", "HAS_KEYWORD"),
    "entity": ("INTERACTED", "RELATED_TO", "RELATED_TO"),
    "user": ("INTERACTED", "INTERACTED", "INTERACTED"),
    "attribute": ("HAS_ATTRIBUTE", "SHARED_BY_USERS_WHO_INTERACTED"),
}


PathRow = tuple[str, str, str, str, str]


def canonical_rows(rows: Iterable[Sequence[object]]) -> list[PathRow]:
    """Distinct rows in a canonical order (None becomes ""), so both stores agree exactly."""
    return sorted({tuple("" if x is None else str(x) for x in r) for r in rows})  # type: ignore[misc]  # the tuples are PathRow-shaped (5 strings); mypy cannot see a generator's length


def paths_frame(rows: list[PathRow]) -> pd.DataFrame:
    """Rows as a DataFrame with :data:`PATH_COLUMNS` (string dtype)."""
    return pd.DataFrame(rows, columns=PATH_COLUMNS, dtype=object).astype("string")


class PathIndex:
    """Adjacency sets of a dataset for fast path enumeration in memory."""

    def __init__(self, ds: S.Dataset) -> None:
        def sets(df: pd.DataFrame, key: str, val: str) -> dict[str, set[str]]:
            d: dict[str, set[str]] = defaultdict(set)
            for k, v in zip(df[key].tolist(), df[val].tolist()):
                d[k].add(v)
            return d

        it = ds.interactions
        self.history = sets(it, S.USER, S.ITEM)
        self.item_users = sets(it, S.ITEM, S.USER)
        self.categories = sets(ds.item_categories, S.ITEM, S.CATEGORY)
        self.keywords = sets(ds.item_keywords, S.ITEM, S.KEYWORD)
        self.user_tags = sets(ds.tags, S.USER, S.TAG)
        ua = ds.user_attributes
        attr_ids = [S.attribute_id(a, v) for a, v in zip(ua[S.ATTRIBUTE].tolist(), ua[S.VALUE].tolist(), strict=True)]
        self.user_attrs: dict[str, set[str]] = defaultdict(set)
        self.attr_users: dict[str, set[str]] = defaultdict(set)
        for u, a in zip(ua[S.USER].tolist(), attr_ids, strict=True):
            self.user_attrs[u].add(a)
            self.attr_users[a].add(u)
        self.facts: dict[str, set[tuple[str, str]]] = defaultdict(set)
        for i, r, e in zip(ds.triples[S.ITEM].tolist(), ds.triples[S.RELATION].tolist(), ds.triples[S.ENTITY].tolist()):
            self.facts[i].add((e, r))

    def paths(
        self, user: str, item: str, anchors: Iterable[str] | None = None, kinds: Sequence[str] = PATH_KINDS
    ) -> list[PathRow]:
        """All candidate paths from ``user`` to ``item`` (at most 3 hops).

        Args:
            anchors: restrict history items to these (all history when None).
            kinds: path kinds to look for.
        """
        hist = self.history.get(user, set())
        anc = hist if anchors is None else hist.intersection(anchors)
        rows: list[tuple[str, str, str, str, str]] = []
        if "category" in kinds:
            cats = self.categories.get(item, set())
            if cats:
                rows += [
                    ("category", j, c, "", "")
                    for j in anc
                    if j != item
                    for c in self.categories.get(j, ())
                    if c in cats
                ]
        if "keyword" in kinds:
            kws = self.keywords.get(item, set())
            if kws:
                rows += [
                    ("keyword", j, k, "", "") for j in anc if j != item for k in self.keywords.get(j, ()) if k in kws
                ]
        if "tag" in kinds:
            kws = self.keywords.get(item, set())
            rows += [("tag", "", k, "", "") for k in self.user_tags.get(user, ()) if k in kws]
        if "entity" in kinds:
            facts = self.facts.get(item, set())
            if facts:
                by_entity: dict[str, list[str]] = defaultdict(list)
                for e, r in facts:
                    by_entity[e].append(r)
                rows += [
                    ("entity", j, e, ra, rb)
                    for j in anc
                    if j != item
                    for e, ra in self.facts.get(j, ())
                    for rb in by_entity.get(e, ())
                ]
        if "user" in kinds:
            for v in self.item_users.get(item, ()):
                if v == user:
                    continue
                common = anc.intersection(self.history.get(v, ()))
                common.discard(item)
                rows += [("user", j, v, "", "") for j in common]
        if "attribute" in kinds:
            chose = self.item_users.get(item, set())
            for a in self.user_attrs.get(user, ()):
                holders = self.attr_users[a]
                small, big = (holders, chose) if len(holders) < len(chose) else (chose, holders)
                if any(v != user and v in big for v in small):
                    rows.append(("attribute", "", a, "", ""))
        return canonical_rows(rows)
