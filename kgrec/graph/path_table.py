"""Candidate paths of many (user, item) questions at once, as integer arrays (batch explanations).

:class:`PathTable` holds the rows of many questions: row ``r`` of question ``q`` lies in
``ptr[q]:ptr[q + 1]``, in the canonical order of :func:`kgrec.graph.paths.canonical_rows`, with every id
a number into a sorted id array (so comparing numbers compares ids, and the canonical order is an integer sort).
:meth:`PathTable.rows` gives one question's rows back as the :data:`~kgrec.graph.paths.PathRow` tuples
that :meth:`PathIndex.paths <kgrec.graph.paths.PathIndex.paths>` and the stores return; the tests hold the two equal.

:class:`PathArrays` is :class:`~kgrec.graph.paths.PathIndex` as sorted adjacency arrays (CSR): it answers a whole
batch of questions with array operations instead of Python sets, one question's rows never depending on another's.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kgrec._arrays import distinct, member
from kgrec.graph.paths import PATH_KINDS, PathRow
from kgrec.loaders import schema as S
from kgrec.loaders.schema import Dataset

__all__ = ["KIND_CODES", "KINDS_SORTED", "Anchors", "PathArrays", "PathTable", "path_arrays"]

#: path kinds in the order their names sort (the canonical order of rows sorts by kind first)
KINDS_SORTED: tuple[str, ...] = tuple(sorted(PATH_KINDS))
KIND_CODES: dict[str, int] = {k: n for n, k in enumerate(KINDS_SORTED)}
ATTRIBUTE, CATEGORY, ENTITY, KEYWORD, TAG, USER = (KIND_CODES[k] for k in KINDS_SORTED)
#: the id namespace of each kind's ``via``
VIA_SPACE = {"attribute": "attributes", "category": "categories", "entity": "entities", "keyword": "keywords"}
VIA_SPACE.update(tag="keywords", user="users")
#: the most expanded entries one step of :meth:`PathArrays.table` holds at once (memory stays bounded)
STEP = 4_000_000


@dataclass(frozen=True)
class Anchors:
    """Per question, the history items its paths may start from: ``items[ptr[q]:ptr[q + 1]]`` (numbers of
    :meth:`PathArrays.item_codes`, any order), or the whole history where ``every[q]``."""

    ptr: np.ndarray
    items: np.ndarray
    every: np.ndarray

    @classmethod
    def everything(cls, n: int) -> Anchors:
        return cls(np.zeros(n + 1, dtype=np.int64), np.empty(0, dtype=np.int64), np.ones(n, dtype=bool))

    @classmethod
    def of(cls, lists: Sequence[np.ndarray | None]) -> Anchors:
        """From one array of item numbers per question (None: the whole history)."""
        counts = np.array([0 if a is None else len(a) for a in lists], dtype=np.int64)
        ptr = np.zeros(len(lists) + 1, dtype=np.int64)
        np.cumsum(counts, out=ptr[1:])
        got = [np.asarray(a, dtype=np.int64) for a in lists if a is not None]
        items = np.concatenate(got) if got else np.empty(0, dtype=np.int64)
        return cls(ptr, items, np.array([a is None for a in lists], dtype=bool))

    def slice(self, lo: int, hi: int) -> Anchors:
        p = self.ptr[lo : hi + 1]
        return Anchors(p - p[0], self.items[p[0] : p[-1]], self.every[lo:hi])


@dataclass(frozen=True)
class PathTable:
    """Candidate paths of many questions (see the module docstring); ``-1`` is an empty id ("")."""

    ptr: np.ndarray
    kind: np.ndarray
    anchor: np.ndarray
    via: np.ndarray
    rel_a: np.ndarray
    rel_b: np.ndarray
    #: sorted id arrays by namespace: items, users, categories, keywords, entities, relations, attributes
    ids: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.ptr) - 1

    def via_ids(self, kind: int) -> np.ndarray:
        return self.ids[VIA_SPACE[KINDS_SORTED[kind]]]

    def rows(self, q: int) -> list[PathRow]:
        """Question ``q``'s rows as ``(kind, anchor, via, rel_a, rel_b)`` strings."""
        return [self.row(r) for r in range(int(self.ptr[q]), int(self.ptr[q + 1]))]

    def row(self, r: int) -> PathRow:
        k = int(self.kind[r])

        def name(arr: np.ndarray, n: int) -> str:
            return "" if n < 0 else str(arr[n])

        rel = self.ids["relations"]
        return (
            KINDS_SORTED[k],
            name(self.ids["items"], int(self.anchor[r])),
            name(self.via_ids(k), int(self.via[r])),
            name(rel, int(self.rel_a[r])),
            name(rel, int(self.rel_b[r])),
        )

    @classmethod
    def concat(cls, a: PathTable, b: PathTable) -> PathTable:
        """Each question's rows of ``a`` then of ``b`` (tables of the same questions from one :class:`PathArrays`;
        canonical when every kind of ``b`` sorts after those of ``a``)."""
        n = len(a)
        ca, cb = np.diff(a.ptr), np.diff(b.ptr)
        q = np.concatenate([np.repeat(np.arange(n), ca), np.repeat(np.arange(n), cb)])
        order = np.argsort(q, kind="stable")
        ptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(ca + cb, out=ptr[1:])

        def col(name: str) -> np.ndarray:
            return np.concatenate([getattr(a, name), getattr(b, name)])[order]

        return cls(ptr, col("kind"), col("anchor"), col("via"), col("rel_a"), col("rel_b"), a.ids)

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence[PathRow]]) -> PathTable:
        """A table of string rows (one list per question, each in canonical order), e.g. a store's answers."""
        flat = [r for rs in rows for r in rs]
        counts = np.array([len(rs) for rs in rows], dtype=np.int64)
        ptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(counts, out=ptr[1:])
        kind = np.array([KIND_CODES[r[0]] for r in flat], dtype=np.int8)
        spaces = {
            "items": {r[1] for r in flat if r[1]},
            "relations": {x for r in flat for x in (r[3], r[4]) if x},
        }
        for k in KINDS_SORTED:
            spaces.setdefault(VIA_SPACE[k], set()).update(r[2] for r in flat if r[0] == k and r[2])
        ids = {s: np.array(sorted(v), dtype=object) for s, v in spaces.items()}
        ids.setdefault("users", np.empty(0, dtype=object))
        lookup = {s: {x: n for n, x in enumerate(a.tolist())} for s, a in ids.items()}

        def codes(space: str, col: int, sel: list[PathRow]) -> np.ndarray:
            d = lookup[space]
            return np.array([d[r[col]] if r[col] else -1 for r in sel], dtype=np.int64)

        via = np.array([lookup[VIA_SPACE[r[0]]].get(r[2], -1) if r[2] else -1 for r in flat], dtype=np.int64)
        return cls(
            ptr,
            kind,
            codes("items", 1, flat),
            via,
            codes("relations", 3, flat),
            codes("relations", 4, flat),
            ids,
        )


def _sorted_ids(*cols: pd.Series) -> np.ndarray:
    vals = [c.astype(object).to_numpy() for c in cols if len(c)]
    if not vals:
        return np.empty(0, dtype=object)
    return np.unique(np.concatenate(vals).astype(str).astype(object))


def _codes(ids: np.ndarray, col: pd.Series) -> np.ndarray:
    return pd.Index(ids).get_indexer(col.astype(object).to_numpy().astype(str)).astype(np.int64)


def _csr(keys: np.ndarray, vals: np.ndarray, n: int, *more: np.ndarray) -> tuple[np.ndarray, ...]:
    """Distinct (key, value...) pairs sorted by key then values, as ``(ptr, values...)``."""
    order = np.lexsort((*reversed(more), vals, keys))
    k, cols = keys[order], [c[order] for c in (vals, *more)]
    keep = np.ones(len(k), dtype=bool)
    if len(k):
        diff = k[1:] != k[:-1]
        for c in cols:
            diff |= c[1:] != c[:-1]
        keep[1:] = diff
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(k[keep], minlength=n), out=ptr[1:])
    return (ptr, *(c[keep] for c in cols))


def _expand(ptr: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For CSR ``ptr`` and ``keys`` (>= 0): ``(owner, position)``: each key's neighbour positions, in order."""
    lo = ptr[keys]
    n = ptr[keys + 1] - lo
    owner = np.repeat(np.arange(len(keys), dtype=np.int64), n)
    start = np.cumsum(n) - n
    pos = np.arange(int(n.sum()), dtype=np.int64) - np.repeat(start - lo, n)
    return owner, pos


def _neighbours(csr: tuple[np.ndarray, ...], q: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, ...]:
    """``(question, owner position, neighbour columns...)`` of every neighbour of ``keys`` (asked by ``q``)."""
    o, p = _expand(csr[0], keys)
    return (q[o], o, *(c[p] for c in csr[1:]))


class PathArrays:
    """The path index of a data set as sorted CSR arrays over numbers (see the module docstring)."""

    def __init__(self, ds: Dataset) -> None:
        it, ua = ds.interactions, ds.user_attributes
        attr = pd.Series(
            [S.attribute_id(a, v) for a, v in zip(ua[S.ATTRIBUTE].tolist(), ua[S.VALUE].tolist(), strict=True)],
            dtype=object,
        )
        items = _sorted_ids(
            ds.items[S.ITEM], it[S.ITEM], ds.item_categories[S.ITEM], ds.item_keywords[S.ITEM], ds.triples[S.ITEM]
        )
        ids = {
            "items": items,
            "users": _sorted_ids(it[S.USER], ds.tags[S.USER], ua[S.USER]),
            "categories": _sorted_ids(ds.item_categories[S.CATEGORY]),
            "keywords": _sorted_ids(ds.item_keywords[S.KEYWORD], ds.tags[S.TAG]),
            "entities": _sorted_ids(ds.triples[S.ENTITY]),
            "relations": _sorted_ids(ds.triples[S.RELATION]),
            "attributes": _sorted_ids(attr),
        }
        self.ids = ids
        self._users, self._items = pd.Index(ids["users"]), pd.Index(items)
        n_u, n_i = len(ids["users"]), len(ids["items"])
        iu, ii = _codes(ids["users"], it[S.USER]), _codes(items, it[S.ITEM])
        self.hist = _csr(iu, ii, n_u)
        self.item_users = _csr(ii, iu, n_i)
        ic = ds.item_categories
        self.item_cats = _csr(_codes(items, ic[S.ITEM]), _codes(ids["categories"], ic[S.CATEGORY]), n_i)
        kw = ds.item_keywords
        self.item_kws = _csr(_codes(items, kw[S.ITEM]), _codes(ids["keywords"], kw[S.KEYWORD]), n_i)
        self.user_tags = _csr(_codes(ids["users"], ds.tags[S.USER]), _codes(ids["keywords"], ds.tags[S.TAG]), n_u)
        tr = ds.triples
        self.facts = _csr(
            _codes(items, tr[S.ITEM]),
            _codes(ids["entities"], tr[S.ENTITY]),
            n_i,
            _codes(ids["relations"], tr[S.RELATION]),
        )
        au, aa = _codes(ids["users"], ua[S.USER]), _codes(ids["attributes"], attr)
        self.user_attrs = _csr(au, aa, n_u)
        self.attr_users = _csr(aa, au, len(ids["attributes"]))

    def user_codes(self, users: Sequence[str] | np.ndarray) -> np.ndarray:
        """Numbers of user ids here (-1: not in the data)."""
        return self._users.get_indexer(np.asarray(users, dtype=object)).astype(np.int64)

    def item_codes(self, items: Sequence[str] | np.ndarray) -> np.ndarray:
        """Numbers of item ids here (-1: not in the data)."""
        return self._items.get_indexer(np.asarray(items, dtype=object)).astype(np.int64)

    def table(
        self,
        users: np.ndarray,
        items: np.ndarray,
        anchors: Anchors | None = None,
        kinds: Sequence[str] = PATH_KINDS,
    ) -> PathTable:
        """The candidate paths of questions ``(users[q], items[q])`` (numbers from :meth:`user_codes` /
        :meth:`item_codes`, -1 for ids not in the data), as :meth:`PathIndex.paths` gives them.

        Args:
            anchors: per question, the history items to search through (None: all the history, every question).
            kinds: path kinds to look for.
        """
        users, items = np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)
        if anchors is None:
            anchors = Anchors.everything(len(users))
        parts: list[list[np.ndarray]] = []
        for lo, hi in self._steps(users, anchors):
            for part in self._table(users[lo:hi], items[lo:hi], anchors.slice(lo, hi), set(kinds)):
                part[0] = part[0] + lo
                parts.append(part)
        return self._assemble(parts, len(users))

    def _steps(self, users: np.ndarray, anchors: Anchors) -> list[tuple[int, int]]:
        """Question ranges whose collaborative expansion (the users of the anchors) stays near :data:`STEP`."""
        u_ptr = self.hist[0]
        known = np.maximum(users, 0)
        h = np.where(users >= 0, u_ptr[known + 1] - u_ptr[known], 0)
        h = np.where(anchors.every, h, np.minimum(h, np.diff(anchors.ptr)))
        deg = np.diff(self.item_users[0]).astype(np.float64)
        per_anchor = float((deg**2).sum() / deg.sum()) if deg.sum() else 1.0  # anchors are popular items
        cost = np.cumsum(h * per_anchor + 16.0)
        out, lo = [], 0
        while lo < len(users):
            hi = max(lo + 1, int(np.searchsorted(cost, (cost[lo - 1] if lo else 0.0) + STEP, side="right")))
            out.append((lo, min(hi, len(users))))
            lo = hi
        return out

    def _table(
        self,
        users: np.ndarray,
        items: np.ndarray,
        anchors: Anchors,
        kinds: set[str],
    ) -> list[list[np.ndarray]]:
        n_q = len(users)
        qs = np.arange(n_q, dtype=np.int64)
        ok_u, ok_i = users >= 0, items >= 0
        # the anchors of each question: its history (within the given anchors), the item itself left out
        h_ptr, h_idx = self.hist
        owner, pos = _expand(h_ptr, users[ok_u])
        aq, aj = qs[ok_u][owner], h_idx[pos]
        if not anchors.every.all():
            width = len(self.ids["items"]) + 1
            g_owner, g_pos = _expand(anchors.ptr, qs)
            given = distinct(g_owner * width + anchors.items[g_pos])
            keep = anchors.every[aq] | member(aq * width + aj, given, n_q * width)
            aq, aj = aq[keep], aj[keep]
        keep = aj != items[aq]
        aq, aj = aq[keep], aj[keep]
        out: list[list[np.ndarray]] = []

        neighbours = _neighbours

        def of_items(csr: tuple[np.ndarray, ...], width: int) -> np.ndarray:
            """Sorted keys ``q * width + value`` of each question's item's neighbours."""
            tq, _, tv, *_ = neighbours(csr, qs[ok_i], items[ok_i])
            return tq * width + tv

        for code, csr, space in ((CATEGORY, self.item_cats, "categories"), (KEYWORD, self.item_kws, "keywords")):
            if KINDS_SORTED[code] not in kinds:
                continue
            width = len(self.ids[space]) + 1
            q, o, v = neighbours(csr, aq, aj)
            m = member(q * width + v, of_items(csr, width), n_q * width)
            out.append(self._rows(code, q[m], aj[o[m]], v[m]))
        if "tag" in kinds:
            width = len(self.ids["keywords"]) + 1
            q, _, v = neighbours(self.user_tags, qs[ok_u], users[ok_u])
            m = member(q * width + v, of_items(self.item_kws, width), n_q * width)
            out.append(self._rows(TAG, q[m], np.full(int(m.sum()), -1), v[m]))
        if "entity" in kinds:
            out.append(self._entity_rows(qs, items, ok_i, aq, aj))
        if "user" in kinds:
            width = len(self.ids["users"]) + 1
            q, o, v = neighbours(self.item_users, aq, aj)
            m = member(q * width + v, of_items(self.item_users, width), n_q * width) & (v != users[q])
            out.append(self._rows(USER, q[m], aj[o[m]], v[m]))
        if "attribute" in kinds:
            out.append(self._attribute_rows(qs, users, items, ok_u, ok_i))
        return out

    def _entity_rows(
        self, qs: np.ndarray, items: np.ndarray, ok_i: np.ndarray, aq: np.ndarray, aj: np.ndarray
    ) -> list[np.ndarray]:
        """``entity`` rows: anchor -[ra]-> entity <-[rb]- item, every (ra, rb) pair."""
        neighbours = _neighbours
        width = len(self.ids["entities"]) + 1
        tq, _, te, tr = neighbours(self.facts, qs[ok_i], items[ok_i])
        target = tq * width + te  # sorted: questions in order, facts by (entity, relation)
        q, o, e, ra = neighbours(self.facts, aq, aj)
        key = q * width + e
        lo, hi = np.searchsorted(target, key, "left"), np.searchsorted(target, key, "right")
        cum = np.concatenate([[0], np.cumsum(hi - lo)])
        ro, rp = _expand(cum, np.arange(len(key)))
        at = lo[ro] + rp - cum[ro]  # the item's facts with the same entity: every rb for this (anchor, entity, ra)
        return self._rows(ENTITY, q[ro], aj[o[ro]], e[ro], ra[ro], tr[at])

    def _attribute_rows(
        self, qs: np.ndarray, users: np.ndarray, items: np.ndarray, ok_u: np.ndarray, ok_i: np.ndarray
    ) -> list[np.ndarray]:
        """``attribute`` rows: an attribute value of the user that another user who chose the item holds."""
        neighbours = _neighbours
        width = len(self.ids["attributes"]) + 1
        cq, _, v = neighbours(self.item_users, qs[ok_i], items[ok_i])
        keep = v != users[cq]
        hq, _, ha = neighbours(self.user_attrs, cq[keep], v[keep])
        held = distinct(hq * width + ha)
        q, _, a = neighbours(self.user_attrs, qs[ok_u], users[ok_u])
        m = member(q * width + a, held, len(qs) * width)
        return self._rows(ATTRIBUTE, q[m], np.full(int(m.sum()), -1), a[m])

    @staticmethod
    def _rows(code: int, q: np.ndarray, anchor: np.ndarray, via: np.ndarray, *rels: np.ndarray) -> list[np.ndarray]:
        n = len(q)
        ra = rels[0] if rels else np.full(n, -1, dtype=np.int64)
        rb = rels[1] if len(rels) > 1 else np.full(n, -1, dtype=np.int64)
        return [q.astype(np.int64), np.full(n, code, dtype=np.int8), anchor, via, ra, rb]

    def _assemble(self, parts: list[list[np.ndarray]], n_q: int) -> PathTable:
        """Rows of every kind and step in canonical order: by question, then kind. Each part holds one kind, its rows
        sorted by question (the parts of one kind cover disjoint questions): every row goes straight to its place,
        the start of its (question, kind) block plus its place among the part's rows of that question."""
        dtypes = (np.int8, np.int64, np.int64, np.int64, np.int64)  # kind, anchor, via, ra, rb (the question: ptr)
        n_k = len(KINDS_SORTED)
        blocks = np.zeros(n_q * n_k + 1, dtype=np.int64)
        keys = [p[0] * n_k + int(p[1][0]) for p in parts if len(p[0])]
        if keys:
            blocks[1:] = np.bincount(np.concatenate(keys), minlength=n_q * n_k)
        np.cumsum(blocks, out=blocks)
        total = int(blocks[-1])
        cols = [np.empty(total, dtype=t) for t in dtypes]
        for p in parts:
            q = p[0]
            if not len(q):
                continue
            if (q[1:] < q[:-1]).any():  # not by question (no part is built so): sorted first, stably
                order = np.argsort(q, kind="stable")
                p = [c[order] for c in p]
                q = p[0]
            idx = np.arange(len(q), dtype=np.int64)
            first = np.ones(len(q), dtype=bool)
            first[1:] = q[1:] != q[:-1]
            run = np.maximum.accumulate(np.where(first, idx, 0))  # where the rows of each question start
            at = blocks[q * n_k + int(p[1][0])] + idx - run
            for c in range(5):
                cols[c][at] = p[c + 1]
        kind, anchor, via, ra, rb = cols
        ptr = np.zeros(n_q + 1, dtype=np.int64)
        ptr[1:] = blocks[n_k::n_k]
        return PathTable(ptr, kind, anchor, via, ra, rb, self.ids)


_LAST: list[tuple[weakref.ref[Dataset], PathArrays]] = []


def path_arrays(ds: Dataset) -> PathArrays:
    """The :class:`PathArrays` of ``ds``, built once per data set object: a store hands out the same object until
    its data change (a new snapshot), so the chunks of one export share one index. Only the last one is kept."""
    if _LAST and _LAST[0][0]() is ds:
        return _LAST[0][1]
    arrays = PathArrays(ds)
    _LAST[:] = [(weakref.ref(ds), arrays)]
    return arrays
