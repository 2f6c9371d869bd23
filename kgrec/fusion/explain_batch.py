"""Explanations of many (user, item) rows at once: what ``kgrec export --explain`` writes.

Each row gets exactly what ``rec.explain(user, item, top=1, k=k, listed=listed)`` gives: the top path's sentence (or the message when
there is no path) and its nodes as JSON. Per chunk of rows: the state is refreshed once and every user's history
read once; the candidate paths of all rows come from one path index (:mod:`kgrec.graph.path_table`: the embedded
store's data, the fitted-on data, or a Neo4j store's neighbourhood of the chunk read in a few queries,
:mod:`kgrec.graph.neo4j_paths`); the path scores of :func:`kgrec.fusion.explain.score_paths` come from matrix
products over each user's rows (:mod:`kgrec.fusion.explain_bounds`), each with a bound on how far float rounding
can move it; only the top path is rendered.

Where the bounds do not settle which path is on top (a near tie), where a number cannot be bounded, and for rows
without any path (their message), the per-row code (:func:`kgrec.fusion.explain.explain`) answers the row: every
answer is the per-row answer, not an approximation of it.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from kgrec._arrays import ranges
from kgrec.fusion.explain import (
    KIND_INDEX,
    PathColumns,
    anchor_weights,
    explain,
    path_ids,
    path_sentence,
    render_path,
    score_columns,
)
from kgrec.fusion.explain_bounds import (
    U32,
    BatchLimits,
    ChunkParts,
    ChunkVectors,
    chunk_parts,
    co_interacted,
    cos_bound,
    gamma,
)
from kgrec.fusion.explanation import COOC
from kgrec.fusion.ranking import rank_in
from kgrec.fusion.state import ModelState
from kgrec.fusion.whynot import staff_sentence
from kgrec.graph.path_table import (
    ATTRIBUTE,
    CATEGORY,
    ENTITY,
    KEYWORD,
    KINDS_SORTED,
    TAG,
    Anchors,
    PathArrays,
    PathTable,
    path_arrays,
)
from kgrec.graph.paths import PathRow
from kgrec.messages import Messages, messages

if TYPE_CHECKING:
    import torch

    from kgrec.fusion.recommender import Recommender

__all__ = ["Explained", "explain_rows"]

log = logging.getLogger(__name__)

#: the path kinds read from the path index row by row (``user`` paths are summed per anchor, never listed)
DESCRIBING = ("attribute", "category", "entity", "keyword", "tag")
#: kinds whose score is the anchor's strength times the connector's specificity
ANCHORED = (CATEGORY, KEYWORD, ENTITY)
#: per kind code (shifted by one: -1 is "none"), whether it is one of :data:`ANCHORED`; per code, whether its path
#: starts from a history item (:data:`ANCHORED` and ``user``): lookups, not ``np.isin`` over millions of paths
IS_ANCHORED = np.isin(np.arange(-1, len(KINDS_SORTED)), ANCHORED)
HAS_ANCHOR = np.isin(np.arange(len(KINDS_SORTED)), (*ANCHORED, KINDS_SORTED.index("user")))
#: :data:`KIND_INDEX` code of each :data:`~kgrec.graph.path_table.KINDS_SORTED` code
KIND_OF_CODE = np.array([KIND_INDEX[k] for k in KINDS_SORTED], dtype=np.int64)
USER_CODE = KINDS_SORTED.index("user")
#: relative slack on every comparison (the float64 rounding of the scores themselves)
SLACK = 1e-12
#: extra places of the top list that tell which rows rank within k (without the export's own list)
RANK_SPARE = 30
EPS64 = 2.0**-53


@dataclass
class Explained:
    """The ``explanation`` and ``path`` columns of a chunk; how many rows had their paths scored one by one (the
    bounds left a doubt), and how many the per-row code answered whole (no path, or an item the user has)."""

    sentences: list[str]
    paths: list[str | None]
    one_by_one: int
    per_row: int


def explain_rows(
    rec: Recommender,
    users: Sequence[str],
    items: Sequence[str],
    *,
    lang: str | None = None,
    k: int = 10,
    listed: bool = False,
    limits: BatchLimits = BatchLimits(),
) -> Explained:
    """``rec.explain(users[r], items[r], top=1, k=k, lang=lang, listed=listed)``'s headline and top path (JSON
    nodes) of every row.

    Args:
        listed: the rows are a list given to the users (an export's, ``kgrec recommend``'s): every row is explained
            as a recommendation, and no rank is computed. Otherwise a row whose item ranks past ``k`` (by the
            per-row code's rank) is worded as a link to the history, the "why not" wording.
        limits: the sizes that choose how the chunk is computed (not the answers).
    """
    st = rec.fresh(list(dict.fromkeys(map(str, users))))
    return _Chunk(rec, st, list(map(str, users)), list(map(str, items)), k, lang, listed, limits).run()


class _Chunk:
    """One chunk's rows (see the module docstring). Arrays named per row are indexed by the row's position."""

    def __init__(
        self,
        rec: Recommender,
        st: ModelState,
        users: list[str],
        items: list[str],
        k: int,
        lang: str | None,
        listed: bool = False,
        limits: BatchLimits = BatchLimits(),
    ) -> None:
        self.rec, self.st, self.users, self.items, self.k, self.lang = rec, st, users, items, k, lang
        self.listed, self.limits = listed, limits
        self.m: Messages = messages(lang)
        self.verb = self.m.verb(st.config.explain.interaction_verb)
        n = len(users)
        self.u = _numbers(st, "user", users)
        self.i = _numbers(st, "item", items)
        if n and len(st.arrays["user_struct"]) == 0:
            st.attribution(int(self.u[0]), int(self.i[0]))  # the per-row error: a model built from vectors alone
        self.sentences: list[str] = [""] * n
        self.paths: list[str | None] = [None] * n
        #: rows the per-row code answers whole (an item the user has, no path at all)
        self.per_row = np.zeros(n, dtype=bool)
        #: rows whose paths are scored one by one, exactly as the per-row code scores them (score_columns)
        self.exact = np.zeros(n, dtype=bool)
        #: per row, its anchors (index codes): ``anchor_codes[anchor_start[r]:][:anchor_count[r]]``, unless ``every``
        self.anchor_start = np.zeros(n, dtype=np.int64)
        self.anchor_count = np.zeros(n, dtype=np.int64)
        self.anchor_codes = np.empty(0, dtype=np.int64)
        self.beyond = np.zeros(n, dtype=bool)  # rank > k
        #: each row's score f_u · f_i, and a bound on its difference from :meth:`ModelState.score` (float32 sums)
        self.score = np.zeros(n)
        self.score_err = np.zeros(n)
        # per row, from its user's pairs (explain_bounds.ChunkParts)
        self.every = np.zeros(n, dtype=bool)  # anchors: the whole history
        self.rest = np.zeros(n)
        self.rest_err = np.zeros(n)
        self.co = {name: np.zeros(n) for name in ("sum", "err", "top")}
        self.co_any = np.zeros(n, dtype=bool)
        self.cooc_seg = np.zeros((n, 2), dtype=np.int64)  # [start, end) into the co-occurrence candidates
        self.hist: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, float]] = {}
        self.mean_w = np.ones(n)
        # every user's strength matrix (h x m, row-major) flattened: row r's entry for history place j is at
        # at[r] + j * width[r] (at: where the user's matrix starts, plus the row's column)
        self.s_flat = np.empty(0)
        self.e_flat = np.empty(0)
        self.at = np.zeros(n, dtype=np.int64)
        self.width = np.ones(n, dtype=np.int64)
        self.rendered: dict[tuple[PathRow, str, bool], tuple[str, str, str]] = {}
        self.cooc_message: str | None = None  # the co-occurrence sentence's message in ``lang``
        #: rows sent to the per-row code, by reason (a row may count under several)
        self.why: dict[str, int] = {}

    # ------------------------------------------------------------------ the chunk
    def run(self) -> Explained:
        st, n = self.st, len(self.users)
        if n == 0:
            return Explained([], [], 0, 0)
        order = np.argsort(self.u, kind="stable")
        self.groups = np.split(order, np.flatnonzero(np.diff(self.u[order])) + 1)
        for g in self.groups:
            u = int(self.u[g[0]])
            hist, hist_w = st.history(u)
            weights = anchor_weights(st, u, hist_w)
            self.hist[u] = (hist, hist_w, weights, float(weights.mean()) if len(weights) else 1.0)
            self.mean_w[g] = self.hist[u][3]
            self.per_row[g[np.isin(self.i[g], hist)]] = True  # an item the user has: the per-row message
        self.beyond = np.zeros(n, dtype=bool) if self.listed else self._beyond()
        self._scores()
        arrays = self._arrays()
        cv = self.cv = ChunkVectors(st, arrays)
        item_code = cv.item_code
        me = self.me = arrays.user_codes(self.users)
        self.code_item = np.full(len(arrays.ids["items"]), -1, dtype=np.int64)  # index code -> item number
        self.code_item[item_code[item_code >= 0]] = np.flatnonzero(item_code >= 0)
        groups = [g[~self.per_row[g]] for g in self.groups]
        groups = [g for g in groups if len(g)]
        users = np.array([self.u[g[0]] for g in groups], dtype=np.int64)
        hists = [self.hist[int(u)][0] for u in users.tolist()]
        anchor_w = [self.hist[int(u)][2] for u in users.tolist()]
        rows_i, codes = [self.i[g] for g in groups], me[[g[0] for g in groups]]
        runs = chunk_parts(cv, users, hists, anchor_w, rows_i, codes, self.limits)
        self._rows_of(groups, runs)
        self._index_history()
        self.wait = np.zeros(n, dtype=bool)
        # the rows' paths are listed and decided in pieces of a few thousand rows: a piece's path table and every
        # temporary of its decision stay small, so the allocator reuses their memory from piece to piece
        for rows in _pieces(np.flatnonzero(~self.per_row & ~self.exact), self.limits.questions):
            table = arrays.table(me[rows], item_code[self.i[rows]], self._anchors(rows), DESCRIBING)
            again = (np.diff(table.ptr) == 0) & ~self.co_any[rows] & self._second_search(rows)
            self.exact[rows[again]] = True  # the per-row code's second search (whole history): rare, one by one
            self._decide(table, rows, ~again)
        for rows in _pieces(np.flatnonzero(self.wait), self.limits.questions):
            # rows whose collaborative paths may be on top: with those paths listed
            anchors = self._anchors(rows)
            users, items = me[rows], item_code[self.i[rows]]
            both = PathTable.concat(
                arrays.table(users, items, anchors, DESCRIBING), arrays.table(users, items, anchors, ("user",))
            )
            self._decide(both, rows, np.ones(len(rows), dtype=bool), listed=True)
        self._score_exactly(arrays, item_code, me, np.flatnonzero(self.exact & ~self.per_row))
        self._answer_per_row(arrays)
        done = int(self.per_row.sum())
        log.debug(
            "explained %d rows: %d scored one by one, %d by the per-row code (%s)",
            n,
            int(self.exact.sum()),
            done,
            self.why,
        )
        return Explained(self.sentences, self.paths, int((self.exact & ~self.per_row).sum()), done)

    def _scores(self) -> None:
        """Every row's score, per user one product in float64 of the float32 vectors, with a bound on its difference
        from the per-row code's float32 dot product (``γ_d Σ|u_k i_k|`` each, whatever the order of the sums)."""
        f_u, f_i = self.st.arrays["users"], self.st.arrays["items"]
        scale = 1.01 * (gamma(f_i.shape[1], U32) + gamma(f_i.shape[1], EPS64))
        for g in self.groups:
            u, items = int(self.u[g[0]]), f_i[self.i[g]]
            self.score[g] = items.astype(np.float64) @ f_u[u].astype(np.float64)
            self.score_err[g] = scale * (np.abs(items) @ np.abs(f_u[u])).astype(np.float64)

    def _second_search(self, rows: np.ndarray) -> np.ndarray:
        """Rows that search the whole history when their anchors give no path (the per-row code's second search)."""
        n_anchor = self.st.config.explain.anchors
        long = np.array([len(self.hist[int(self.u[r])][0]) > n_anchor for r in rows.tolist()], dtype=bool)
        return ~self.every[rows] & long

    def _index_history(self) -> None:
        """Sorted keys ``slot(user) * width + item number`` of every history entry, with their history places."""
        self.key_width = len(self.st.vocabs.item) + 1
        self.slot = np.zeros(len(self.u), dtype=np.int64)
        keys, places = [], []
        for n, g in enumerate(self.groups):
            self.slot[g] = n
            hist = self.hist[int(self.u[g[0]])][0]
            keys.append(n * self.key_width + hist.astype(np.int64))
            places.append(np.arange(len(hist), dtype=np.int64))
        k, p = np.concatenate(keys), np.concatenate(places)
        order = np.argsort(k, kind="stable")
        self.hist_keys, self.hist_pos = k[order], p[order]

    def _arrays(self) -> PathArrays:
        """The path index of this chunk: the data the per-row finder reads (:meth:`Recommender.path_finder`)."""
        from kgrec.graph.neo4j_store import Neo4jStore

        store = self.rec.store
        if store is None:
            return path_arrays(self.rec.dataset())
        if isinstance(store, Neo4jStore):
            from kgrec.graph.neo4j_paths import neighbourhood

            return PathArrays(neighbourhood(store, list(dict.fromkeys(self.users)), list(dict.fromkeys(self.items))))
        return path_arrays(store.dataset())

    def _beyond(self) -> np.ndarray:
        """Whether each row's item ranks beyond ``k`` (:meth:`ModelState.rank`): from a top list of the catalogue
        where the bound on its scores settles it, else from the user's scores as :meth:`ModelState.rank` computes
        them. A float32 dot product summed in two orders differs by at most ``2 γ_d Σ|u_k i_k|``."""
        st, k = self.st, self.k
        users = np.array([int(self.u[g[0]]) for g in self.groups], dtype=np.int64)
        top = st.topk(users, k + RANK_SPARE, seen=[self.hist[int(x)][0] for x in users.tolist()])
        f_u, f_i = st.arrays["users"], st.arrays["items"]
        eps = 2.02 * gamma(f_i.shape[1], U32)
        a_i = np.abs(f_i)
        n_i = np.linalg.norm(f_i, axis=1).astype(np.float64)
        col_max = a_i.max(0).astype(np.float64)
        out = np.zeros(len(self.u), dtype=bool)
        for r, (u, g) in enumerate(zip(users.tolist(), self.groups, strict=True)):
            valid = top.valid[r]
            its, sc = top.items[r][valid], top.scores[r][valid].astype(np.float64)
            if len(its) <= k:  # at most k items left for the user: every one ranks within k
                continue
            au = np.abs(f_u[u]).astype(np.float64)
            bound_all = eps * min(float(np.linalg.norm(f_u[u])) * float(n_i.max()), float(au @ col_max))
            # the rows' items: their scores and bounds (those not in the list: computed here)
            rows_i = self.i[g]
            s_row = (f_i[rows_i] @ f_u[u]).astype(np.float64)
            e_row = eps * (a_i[rows_i] @ au)
            s_list, e_list = sc, eps * (a_i[its] @ au)
            lo_row, hi_row = s_row - e_row, s_row + e_row
            # items certainly ahead of a row's item, and items that may be ahead (the list's, then the rest)
            ahead = ((s_list - e_list)[None, :] > hi_row[:, None]).sum(1)
            maybe = ((s_list + e_list)[None, :] >= lo_row[:, None]) & (its[None, :] != rows_i[:, None])
            rest_may = float(sc[-1]) + bound_all >= lo_row
            inside = (maybe.sum(1) <= k - 1) & ~rest_may
            beyond = ahead >= k
            out[g] = beyond
            unsure = ~inside & ~beyond
            if unsure.any():
                with _no_grad():
                    s = (st.users_t[u : u + 1] @ st.items_t.T)[0]
                out[g[unsure]] = [rank_in(s, int(i), self.hist[u][0]) > k for i in rows_i[unsure].tolist()]
        return out

    # ------------------------------------------------------------------ per row
    def _rows_of(self, groups: list[np.ndarray], runs: list[ChunkParts]) -> None:
        """Each row's anchors, co-occurrence rest and collaborative sums, from its user's pairs (``groups``: the
        chunk's rows of each user, ``runs``: their pairs, run after run in the same order)."""
        anchors: list[np.ndarray] = []
        cooc: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        s_flat, e_flat = [], []
        pairs = n_anchor = n_cooc = 0
        first = 0
        for p in runs:
            n_users = len(p.base)
            n_anchor, n_cooc = self._run_rows(
                groups[first : first + n_users], p, pairs, n_anchor, n_cooc, anchors, cooc
            )
            first += n_users
            pairs += len(p.pj)
            s_flat.append(p.strength)
            e_flat.append(p.strength_err)
        self.s_flat = np.concatenate(s_flat) if s_flat else np.empty(0)
        self.e_flat = np.concatenate(e_flat) if e_flat else np.empty(0)
        self.anchor_codes = np.concatenate(anchors) if anchors else np.empty(0, dtype=np.int64)
        got = [np.concatenate(x) for x in zip(*cooc, strict=True)] if cooc else []
        self.cooc_val = got[0] if got else np.empty(0)
        self.cooc_err = got[1] if got else np.empty(0)
        self.cooc_item = got[2].astype(np.int64, copy=False) if got else np.empty(0, dtype=np.int64)

    def _run_rows(
        self,
        groups: list[np.ndarray],
        p: ChunkParts,
        pairs: int,
        n_anchor: int,
        n_cooc: int,
        anchors: list[np.ndarray],
        cooc: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    ) -> tuple[int, int]:
        """:meth:`_rows_of` for one run (``pairs``, ``n_anchor``, ``n_cooc``: the entries of the runs before; the
        run's anchors and co-occurrence paths are appended to ``anchors`` and ``cooc``); the new entry counts."""
        rows = np.concatenate(groups)  # the chunk row of each column of p
        n_cols = len(rows)
        m = np.array([len(g) for g in groups], dtype=np.int64)
        h = np.diff(np.append(p.hoff, len(p.hist)))
        group = np.repeat(np.arange(len(groups)), m)
        self.at[rows] = pairs + p.base[group] + np.arange(n_cols) - p.roff[group]
        self.width[rows] = m[group]
        self.every[rows] = p.every
        s, e, pc, mk = p.strength, p.strength_err, p.pc, p.anchor
        raw = s * p.co_sum
        raw_err = e * (p.co_sum + p.co_sum_err) + s * p.co_sum_err
        has = (p.co_count > 0) & mk
        self.co["sum"][rows] = np.bincount(pc, weights=raw * mk, minlength=n_cols)
        self.co["err"][rows] = np.bincount(pc, weights=raw_err * mk, minlength=n_cols)
        self.co_any[rows] = np.bincount(pc[has], minlength=n_cols) > 0
        top_all = np.where(has, (s + e) * p.co_max[p.pj], 0.0)
        top = np.zeros(n_cols)
        start = np.zeros(n_cols, dtype=np.int64)
        count = np.zeros(n_cols, dtype=np.int64)
        hist_codes = self.cv.item_code[p.hist]
        with_cooc = p.cooc is not None and p.cooc_err is not None and p.cooc_path is not None
        c_start, c_count = np.zeros(n_cols, dtype=np.int64), np.zeros(n_cols, dtype=np.int64)
        for g in range(len(groups)):  # each user's h x m pairs as a matrix: by column, then history place
            hg, mg, b, r0 = int(h[g]), int(m[g]), int(p.base[g]), int(p.roff[g])
            if not hg * mg:
                continue
            at = slice(b, b + hg * mg)
            top[r0 : r0 + mg] = top_all[at].reshape(hg, mg).max(0)
            if not p.every[r0]:
                cc, jj = np.nonzero(mk[at].reshape(hg, mg).T)
                count[r0 : r0 + mg] = np.bincount(cc, minlength=mg)
                start[r0 : r0 + mg] = n_anchor + np.cumsum(count[r0 : r0 + mg]) - count[r0 : r0 + mg]
                anchors.append(hist_codes[int(p.hoff[g]) + jj])
                n_anchor += len(jj)
            if with_cooc:
                assert p.cooc is not None and p.cooc_err is not None and p.cooc_path is not None
                cc, jj = np.nonzero(p.cooc_path[at].reshape(hg, mg).T)
                c_count[r0 : r0 + mg] = np.bincount(cc, minlength=mg)
                c_start[r0 : r0 + mg] = n_cooc + np.cumsum(c_count[r0 : r0 + mg]) - c_count[r0 : r0 + mg]
                flat = b + jj * mg + cc
                cooc.append((p.cooc[flat], p.cooc_err[flat], p.hist[int(p.hoff[g]) + jj]))
                n_cooc += len(jj)
        self.co["top"][rows] = top
        self.anchor_start[rows], self.anchor_count[rows] = start, count
        if with_cooc:
            assert p.cooc is not None and p.cooc_err is not None
            some = np.repeat(h > 0, m)  # users with a history: the co-occurrence part speaks
            rest = self.score[rows] - np.bincount(pc, weights=p.cooc, minlength=n_cols)
            rest_err: np.ndarray = np.bincount(pc, weights=p.cooc_err, minlength=n_cols) + self.score_err[rows]
            rest_err += 4 * EPS64 * h[group] * np.bincount(pc, weights=np.abs(p.cooc), minlength=n_cols)
            self.rest[rows[some]], self.rest_err[rows[some]] = rest[some], rest_err[some]
            self.cooc_seg[rows, 0], self.cooc_seg[rows, 1] = c_start, c_start + c_count
        bad = rows[p.unsure]
        self.exact[bad] = True
        self.why["unsure numbers"] = self.why.get("unsure numbers", 0) + len(bad)
        return n_anchor, n_cooc

    def _anchors(self, rows: np.ndarray) -> Anchors:
        """The anchors of ``rows`` (the whole history where ``every``)."""
        counts = np.where(self.every[rows], 0, self.anchor_count[rows])
        ptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(counts, out=ptr[1:])
        return Anchors(ptr, self.anchor_codes[ranges(self.anchor_start[rows], counts)], self.every[rows].copy())

    # ------------------------------------------------------------------ the top path
    def _decide(self, tab: PathTable, rows: np.ndarray, use: np.ndarray, listed: bool = False) -> None:
        """The top path of the ``rows`` whose describing paths ``tab`` holds (question q is row ``rows[q]``; only
        where ``use``): written where the bounds settle it. A row whose collaborative paths may be on top waits for
        :meth:`_decide` with them ``listed`` in ``tab``; any other doubt sends it to :meth:`_score_exactly`."""
        nq = len(rows)
        counts = np.diff(tab.ptr)
        owner = np.repeat(np.arange(nq), counts)
        r_of = rows[owner]
        kinds = tab.kind.astype(np.int64)
        raw, err, spec, anchor, bad = self._describing_scores(tab, r_of, kinds)
        bad_q = np.bincount(owner[bad], minlength=nq) > 0
        co_any = np.zeros(nq, dtype=bool) if listed else self.co_any[rows]
        total = np.bincount(owner, weights=raw, minlength=nq) + (0.0 if listed else self.co["sum"][rows])
        total_err = np.bincount(owner, weights=err, minlength=nq) + (0.0 if listed else self.co["err"][rows])
        total_err += 4 * EPS64 * (counts + 1) * total
        t_lo, t_hi = total - total_err, total + total_err
        score_lo = self.score[rows] - self.score_err[rows]
        seg = self.cooc_seg[rows]
        n_cooc = seg[:, 1] - seg[:, 0]
        has_co = n_cooc > 0
        others = (counts > 0) | co_any
        # share of the score: rest * raw / total with co-occurrence paths, else (score > 0) raw itself
        lo, hi = raw - err, raw + err
        sh_lo, sh_hi = _share(
            (self.rest - self.rest_err)[r_of],
            (self.rest + self.rest_err)[r_of],
            np.maximum(lo, 0.0),
            hi,
            t_lo[owner],
            t_hi[owner],
        )
        co_row = has_co[owner]
        lo, hi = np.where(co_row, sh_lo, lo), np.where(co_row, sh_hi, hi)
        rest_hi = (self.rest + self.rest_err)[rows]
        user_hi = np.where(
            has_co,
            np.maximum(rest_hi, 0.0) * self.co["top"][rows] / np.where(t_lo > 0, t_lo, np.inf),
            self.co["top"][rows],
        )
        user_hi = np.where(co_any, user_hi, -np.inf)
        doubt = bad_q | np.where(has_co, others & (t_lo <= 0), (score_lo <= 0) | (t_lo <= 0))
        # the best candidate per question: describing rows first (their order), then co-occurrence paths
        best_d = _seg_max(lo, tab.ptr)
        c_idx = ranges(seg[:, 0], n_cooc)
        c_owner = np.repeat(np.arange(nq), n_cooc)
        c_lo = self.cooc_val[c_idx] - self.cooc_err[c_idx]
        c_hi = self.cooc_val[c_idx] + self.cooc_err[c_idx]
        best_c = _seg_max(c_lo, np.concatenate([[0], np.cumsum(n_cooc)]))
        best = np.maximum(best_d, best_c)
        floor = best - SLACK * np.maximum(np.abs(best), 1e-300)
        d_first = _seg_first(lo >= best[owner], tab.ptr)  # index of the describing winner, -1: none
        from_d = d_first >= 0
        c_first = _seg_first(c_lo >= best[c_owner], np.concatenate([[0], np.cumsum(n_cooc)]))
        # rivals: anything that may reach the winner, except rows equal to it by construction (same anchor, same
        # specificity: the same number in the per-row code too)
        w_anchor = np.where(from_d, anchor[np.maximum(d_first, 0)] if len(anchor) else -1, -2)
        w_spec = np.where(from_d, spec[np.maximum(d_first, 0)] if len(spec) else 0.0, np.nan)
        w_kind = np.where(from_d, kinds[np.maximum(d_first, 0)] if len(kinds) else -1, -1)
        w_anchored = IS_ANCHORED[w_kind + 1]  # -1: no describing winner
        twin = IS_ANCHORED[kinds + 1] & w_anchored[owner] & (anchor == w_anchor[owner])
        twin &= spec == w_spec[owner]
        is_best_d = np.zeros(len(lo), dtype=bool)
        is_best_d[d_first[from_d]] = True
        rival_d = (hi >= floor[owner]) & ~twin & ~is_best_d
        is_best_c = np.zeros(len(c_lo), dtype=bool)
        is_best_c[c_first[~from_d & (c_first >= 0)]] = True
        rival_c = (c_hi >= floor[c_owner]) & ~is_best_c
        rivals = np.bincount(owner[rival_d], minlength=nq) + np.bincount(c_owner[rival_c], minlength=nq)
        wait = co_any & (user_hi >= floor) & ~doubt & (rivals == 0) & np.isfinite(best) & use
        doubt |= (rivals > 0) | (user_hi >= floor) | ~np.isfinite(best)
        self.wait[rows[wait]] = True  # decided again with its collaborative paths listed
        for name, flag in (
            ("unscorable path", bad_q),
            ("no path", ~np.isfinite(best)),
            ("total", t_lo <= 0),
            ("near tie", rivals > 0),
            ("user paths", user_hi >= floor),
        ):
            self.why[name] = self.why.get(name, 0) + int((flag & use).sum())
        settled = use & ~wait & ~doubt
        self.exact[rows[use & ~wait & doubt]] = True
        for q in np.flatnonzero(settled & from_d).tolist():
            self._write(int(rows[q]), tab.row(int(d_first[q])))
        won = np.flatnonzero(settled & ~from_d)
        self._write_cooc(rows[won], self.cooc_item[c_idx[c_first[won]]])

    def _describing_scores(
        self, tab: PathTable, r_of: np.ndarray, kinds: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per describing path: its raw score and bound, specificity, anchor (item number; -1 for tag / attribute
        paths) and whether it cannot be scored here (an id the model does not know: the per-row code raises)."""
        st = self.st
        n = len(kinds)
        raw, err, spec = np.zeros(n), np.zeros(n), np.ones(n)
        anchor = np.full(n, -1, dtype=np.int64)
        bad = np.zeros(n, dtype=bool)
        if not n:
            return raw, err, spec, anchor, bad
        for kind, deg_key in ((CATEGORY, "category"), (KEYWORD, "keyword"), (TAG, "keyword"), (ENTITY, "entity")):
            sel = kinds == kind
            if sel.any():
                vias, inv = np.unique(tab.via[sel], return_inverse=True)
                deg, ids, n_items = st.degrees[deg_key], tab.via_ids(kind), len(st.vocabs.item)
                vals = [1.0 + math.log((1 + n_items) / (1 + deg.get(str(ids[v]), 0))) for v in vias.tolist()]
                spec[sel] = np.asarray(vals)[inv]
        sel = kinds == ATTRIBUTE
        if sel.any() and "attribute" in st.degrees:  # users per attribute value, as explain.score_columns
            vias, inv = np.unique(tab.via[sel], return_inverse=True)
            deg, ids, n_users = st.degrees["attribute"], tab.via_ids(ATTRIBUTE), len(st.vocabs.user)
            vals = [1.0 + math.log((1 + n_users) / (1 + deg.get(str(ids[v]), 0))) for v in vias.tolist()]
            spec[sel] = np.asarray(vals)[inv]
        item_num = self.code_item
        anc = HAS_ANCHOR[kinds]
        a = item_num[tab.anchor[anc]]
        ra = r_of[anc]
        # the anchor's place in its user's history, and its strength there
        key = self.slot[ra] * self.key_width + a
        pos = np.minimum(np.searchsorted(self.hist_keys, key), max(len(self.hist_keys) - 1, 0))
        hit = (self.hist_keys[pos] == key) if len(self.hist_keys) else np.zeros(len(key), dtype=bool)
        j = np.where(hit & (a >= 0), self.hist_pos[pos] if len(self.hist_pos) else 0, -1)
        found = j >= 0
        bad[anc] = ~found
        anchor[anc] = a
        ok = np.flatnonzero(anc)[found]
        rr = ra[found]
        flat = self.at[rr] + j[found] * self.width[rr]
        s_ok, e_ok = self.s_flat[flat], self.e_flat[flat]
        coll = kinds[ok] == USER_CODE
        if coll.any():  # collaborative paths: the similarity of the user and the other user is the specificity
            cv = self.cv
            vn = cv.user_of_code[tab.via[ok[coll]]]
            bad[ok[coll][vn < 0]] = True
            vn, un = np.maximum(vn, 0), self.u[rr[coll]]
            den = (cv.user_norms(vn) * cv.user_norms(un)).astype(np.float64)
            bad[ok[coll][(den > 0) & (den < 1e-6)]] = True
            dots = np.einsum("ij,ij->i", cv.users[vn], cv.users[un]).astype(np.float64)
            spec[ok[coll]] = np.maximum(dots / np.maximum(den, 1e-12), 0.0)
        raw[ok], err[ok] = s_ok * spec[ok], e_ok * spec[ok]
        if coll.any():
            d_u = cos_bound(self.cv.users.shape[1])
            err[ok[coll]] = e_ok[coll] * (spec[ok[coll]] + d_u) + s_ok[coll] * d_u
        node = np.flatnonzero(~anc)
        if len(node):
            z = st.arrays["nodes"]
            offs = st.node_offsets
            kw = st.vocabs.keyword.numbers(tab.ids["keywords"], missing="none") if len(tab.ids["keywords"]) else None
            at = (
                st.vocabs.attribute.numbers(tab.ids["attributes"], missing="none")
                if len(tab.ids["attributes"])
                else None
            )
            num = np.full(len(node), -1, dtype=np.int64)
            tag = kinds[node] == TAG
            if kw is not None:
                num[tag] = np.where(kw[tab.via[node[tag]]] >= 0, kw[tab.via[node[tag]]] + offs["keyword"], -1)
            if at is not None:
                num[~tag] = np.where(at[tab.via[node[~tag]]] >= 0, at[tab.via[node[~tag]]] + offs["attribute"], -1)
            known = num >= 0
            bad[node[~known]] = True
            zi = z[offs["item"] + self.i[r_of[node]]]
            za = z[np.maximum(num, 0)]
            den = np.linalg.norm(za, axis=1).astype(np.float64) * np.linalg.norm(zi, axis=1).astype(np.float64)
            bad[node[(den > 0) & (den < 1e-6)]] = True
            cos = np.einsum("ij,ij->i", za, zi).astype(np.float64) / np.maximum(den, 1e-12)
            mean_w = self.mean_w[r_of[node]]
            raw[node] = mean_w * np.maximum(cos, 0.0) * spec[node]
            err[node] = mean_w * cos_bound(z.shape[1]) * spec[node]
        return raw, err, spec, anchor, bad

    # ------------------------------------------------------------------ answers
    def _write(self, r: int, row: PathRow) -> None:
        """Row ``r``'s sentence and path JSON for its top path ``row`` (the same path of the same item reads the same
        for every user but for the user node, so its wording is made once)."""
        text, head, tail = self._rendered(r, row)
        self.sentences[r] = text
        self.paths[r] = head + _js(self.users[r]) + "]" + tail

    def _write_cooc(self, rows: np.ndarray, anchors: np.ndarray) -> None:
        """:meth:`_write` of ``rows`` whose top path is the co-occurrence path of history item number ``anchors[n]``:
        each distinct (anchor, item, wording) rendered once, the rows filled from it."""
        if not len(rows):
            return
        n_items = len(self.st.vocabs.item)
        key = (anchors.astype(np.int64) * n_items + self.i[rows]) * 2 + self.beyond[rows]
        first, inv = np.unique(key, return_index=True, return_inverse=True)[1:]
        ids = self.st.vocabs.item.ids[anchors[first]]
        got = [
            self._cooc_rendered(int(r), str(a))
            if not self.beyond[r]
            else self._rendered(int(r), (COOC, str(a), "", "", ""))
            for r, a in zip(rows[first].tolist(), ids, strict=True)
        ]
        users, sentences, paths = self.users, self.sentences, self.paths
        for r, n in zip(rows.tolist(), inv.tolist(), strict=True):
            text, head, tail = got[n]
            sentences[r] = text
            paths[r] = head + _js(users[r]) + "]" + tail

    def _cooc_rendered(self, r: int, anchor: str) -> tuple[str, str, str]:
        """:meth:`_rendered` of the co-occurrence path from history item ``anchor`` to row ``r``'s item, worded as a
        recommendation: the sentence :func:`~kgrec.fusion.explain.path_sentence` makes (its message filled in
        directly), the nodes user, anchor, item."""
        st, item = self.st, self.items[r]
        if self.cooc_message is None:
            self.cooc_message = self.m[f"path.{COOC}"]
        text = self.cooc_message.format(
            verb=self.verb, anchor=st.title(anchor), via="", item=st.title(item), via_name=""
        )
        return text, '[["user", ', f', ["item", {_js(anchor)}], ["item", {_js(item)}]]'

    def _rendered(self, r: int, row: PathRow) -> tuple[str, str, str]:
        """The sentence of top path ``row`` of row ``r`` and its path JSON around the user's id (made once per path,
        item and wording)."""
        key = (row, self.items[r], bool(self.beyond[r]))
        got = self.rendered.get(key)
        if got is None:
            user, item = self.users[r], self.items[r]
            if self.beyond[r]:  # worded as a link (whynot.staff_sentence), from the rendered path
                p = render_path(self.st, user, item, row, 0.0, self.verb, self.m)
                text = staff_sentence(p, self.verb, self.m, recommended=False)
            else:  # the sentence render_path writes, without making its nodes
                text = path_sentence(self.st, row, item, self.verb, self.m)
            nodes = path_ids(row, user, item)
            tail = "".join(f", [{_js(t)}, {_js(x)}]" for t, x in nodes[1:])
            got = self.rendered[key] = (text, f"[[{_js(nodes[0][0])}, ", tail + "]")
        return got

    def _score_exactly(self, arrays: PathArrays, item_code: np.ndarray, me: np.ndarray, rows: np.ndarray) -> None:
        """Rows the bounds left: every candidate path listed (the index's, with the same anchors and second search
        as the per-row code, then the co-occurrence paths) and scored by :func:`score_columns`, the per-row code's
        scoring itself."""
        if not len(rows):
            return
        st = self.st
        anchors = self._anchors(rows)
        users, items = me[rows], item_code[self.i[rows]]
        first = (arrays.table(users, items, anchors, DESCRIBING), arrays.table(users, items, anchors, ("user",)))
        found = np.diff(first[0].ptr) + np.diff(first[1].ptr)
        again = (found == 0) & self._second_search(rows)
        second = (
            arrays.table(users[again], items[again], None, DESCRIBING),
            arrays.table(users[again], items[again], None, ("user",)),
        )
        where2 = np.cumsum(again) - 1
        for q, r in enumerate(rows.tolist()):
            tabs, tq = (second, int(where2[q])) if again[q] else (first, q)
            u, i = int(self.u[r]), int(self.i[r])
            hist, _, weights, _ = self.hist[u]
            segs = [(t, int(t.ptr[tq]), int(t.ptr[tq + 1])) for t in tabs]
            cooc = self._cooc_paths(i, hist)
            if sum(b - a for _, a, b in segs) == 0 and not cooc:
                self.per_row[r] = True  # no path: the per-row message
                continue
            cols = self._columns(segs, cooc)
            scores = score_columns(st, u, i, hist, weights, cols, st.score(u, i))
            best = int(np.lexsort((np.arange(len(scores)), -scores))[0])
            for t, a, b in segs:
                if best < b - a:
                    self._write(r, t.row(a + best))
                    break
                best -= b - a
            else:
                self._write(r, cooc[best])

    def _cooc_paths(self, i: int, hist: np.ndarray) -> list[PathRow]:
        """The co-occurrence paths of item number ``i`` for a user with history ``hist``, as
        :func:`kgrec.fusion.explain.candidate_paths` lists them."""
        st = self.st
        if not (st.cooc_alpha and len(hist)):
            return []
        contrib = st.cooc_contributions(i, hist)
        ids = st.vocabs.item.ids[hist]
        real = co_interacted(self.cv, i, hist)
        return [(COOC, str(ids[r]), "", "", "") for r in np.lexsort((hist, -contrib)) if contrib[r] != 0 and real[r]]

    def _columns(self, segs: list[tuple[PathTable, int, int]], cooc: list[PathRow]) -> PathColumns:
        """One row's candidate paths as :class:`PathColumns`: the index's rows (in order), then the co-occurrence
        paths; the vias' numbers from the index's codes (looked up again, raising as the per-row code, when the
        model does not know one)."""
        st, cv = self.st, self.cv
        kinds, anchors, vias, nums = [], [], [], []
        for t, a, b in segs:
            k = t.kind[a:b].astype(np.int64)
            kinds.append(KIND_OF_CODE[k])
            anc = t.anchor[a:b]
            anchors.append(np.where(anc >= 0, t.ids["items"][np.maximum(anc, 0)], "").astype(object))
            via, v_id, v_num = t.via[a:b], np.empty(b - a, dtype=object), np.full(b - a, -1, dtype=np.int64)
            for code in np.unique(k).tolist():
                sel = k == code
                v_id[sel] = t.via_ids(code)[via[sel]]
                if code == USER_CODE:
                    v_num[sel] = cv.user_of_code[via[sel]]
                elif code == TAG:
                    v_num[sel] = st.vocabs.keyword.numbers(v_id[sel], missing="none")
                elif code == ATTRIBUTE:
                    v_num[sel] = st.vocabs.attribute.numbers(v_id[sel], missing="none")
            vias.append(v_id)
            nums.append(v_num)
        n_c = len(cooc)
        kinds.append(np.full(n_c, KIND_INDEX[COOC], dtype=np.int64))
        anchors.append(np.array([c[1] for c in cooc], dtype=object))
        vias.append(np.full(n_c, "", dtype=object))
        nums.append(np.full(n_c, -1, dtype=np.int64))
        kind, via_num = np.concatenate(kinds), np.concatenate(nums)
        cols = PathColumns(kind, np.concatenate(anchors), np.concatenate(vias), via_num)
        looked = np.isin(kind, [KIND_INDEX[x] for x in ("user", "tag", "attribute")])
        if (via_num[looked] < 0).any():
            return PathColumns(cols.kind, cols.anchor, cols.via)
        return cols

    def _answer_per_row(self, arrays: PathArrays) -> None:
        """The per-row code, whole, for the rows left: an item the user has, or no path at all."""
        st = self.st
        find = self.rec.path_finder() if self._neo4j() else _finder(arrays)
        for r in np.flatnonzero(self.per_row).tolist():
            user, item, u, i = self.users[r], self.items[r], int(self.u[r]), int(self.i[r])
            hist, hist_w, _, _ = self.hist[u]
            e = explain(st, find, user, item, u, i, hist, hist_w, top=1, k=self.k, lang=self.lang, listed=self.listed)
            self.sentences[r] = e.headline()
            self.paths[r] = (
                json.dumps([[n.type, n.id] for n in e.paths[0].nodes], ensure_ascii=False) if e.paths else None
            )

    def _neo4j(self) -> bool:
        from kgrec.graph.neo4j_store import Neo4jStore

        return isinstance(self.rec.store, Neo4jStore)


def _finder(arrays: PathArrays) -> Callable[[str, str, list[str] | None], list[PathRow]]:
    """A per-row path finder over ``arrays`` (the rows :class:`~kgrec.graph.paths.PathIndex` gives for the same data)."""

    def find(user: str, item: str, anchors: list[str] | None) -> list[PathRow]:
        a = None if anchors is None else Anchors.of([arrays.item_codes(anchors)])
        return arrays.table(arrays.user_codes([user]), arrays.item_codes([item]), a).rows(0)

    return find


@functools.lru_cache(maxsize=1 << 16)
def _js(text: str) -> str:
    """``json.dumps(text, ensure_ascii=False)`` (the path column's encoding of one string), remembered."""
    return json.dumps(text, ensure_ascii=False)


def _share(
    rest_lo: np.ndarray, rest_hi: np.ndarray, raw_lo: np.ndarray, raw_hi: np.ndarray, t_lo: np.ndarray, t_hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of ``rest * raw / total`` over the intervals (``raw >= 0``; where ``total`` may be 0: unbounded)."""
    a = np.minimum(rest_lo * raw_lo, rest_lo * raw_hi)
    b = np.maximum(rest_hi * raw_lo, rest_hi * raw_hi)
    with np.errstate(divide="ignore", invalid="ignore"):
        lo = np.where(a >= 0, a / t_hi, a / t_lo)
        hi = np.where(b >= 0, b / t_lo, b / t_hi)
    ok = t_lo > 0
    return np.where(ok, lo, -np.inf), np.where(ok, hi, np.inf)


def _pieces(rows: np.ndarray, size: int) -> list[np.ndarray]:
    """``rows`` in consecutive pieces of at most ``size``."""
    return [rows[a : a + size] for a in range(0, len(rows), max(size, 1))]


def _seg_max(x: np.ndarray, ptr: np.ndarray) -> np.ndarray:
    """Maximum of each segment ``x[ptr[q]:ptr[q + 1]]`` (-inf for an empty one)."""
    out = np.full(len(ptr) - 1, -np.inf)
    full = np.flatnonzero(np.diff(ptr) > 0)
    if len(full):
        out[full] = np.maximum.reduceat(x, ptr[full])
    return out


def _seg_first(flag: np.ndarray, ptr: np.ndarray) -> np.ndarray:
    """Index of the first true ``flag`` in each segment (-1: none)."""
    idx = np.where(flag, np.arange(len(flag)), len(flag))
    out = np.full(len(ptr) - 1, -1, dtype=np.int64)
    full = np.flatnonzero(np.diff(ptr) > 0)
    if len(full):
        first = np.minimum.reduceat(idx, ptr[full])
        out[full] = np.where(first < len(flag), first, -1)
    return out


def _numbers(st: ModelState, kind: str, ids: list[str]) -> np.ndarray:
    """Numbers of ``ids``; an unknown one raises what the per-row code raises for it."""
    vocab = st.vocabs.user if kind == "user" else st.vocabs.item
    nums = vocab.numbers(ids, missing="none") if ids else np.empty(0, dtype=np.int64)
    bad = np.flatnonzero(nums < 0)
    if len(bad):
        (st.user_number if kind == "user" else st.item_number)(ids[int(bad[0])])
    return nums


def _no_grad() -> torch.no_grad:
    import torch

    return torch.no_grad()
