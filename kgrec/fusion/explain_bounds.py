"""The explanation scores of all the users of a chunk for all their rows at once, each with a bound on its rounding
error.

:func:`kgrec.fusion.explain.score_paths` computes every number of one (user, item) pair with its own BLAS calls;
the batch computes the same numbers for all the rows of a user with one matrix product (history × rows), which sums
in another order. The two agree up to float rounding, and every number here carries a bound on the difference: two
float sums of the same ``d`` products differ by at most ``2 γ_d Σ|a_k b_k|``, with ``γ_d = d u / (1 - d u)`` and
``u`` the unit roundoff, whatever the order. :mod:`kgrec.fusion.explain_batch` takes a row's top path from these
numbers only where the bounds settle it.

Per user, with ``H`` the history (``h`` items) and ``I`` the items of the user's rows (``m``), :func:`chunk_parts`
gives the ``h × m`` pairs' anchor strengths, co-occurrence terms, "somebody chose both" flags and collaborative sums
(the ``user`` paths of an anchor, summed without listing them: one join of the chunk's co-users, or one product
per user over the dense incidence of a small index), and each row's anchors: the strongest ``explain.anchors``
history items, exactly as :func:`kgrec.fusion.explain.candidate_paths` picks them. The pairs of consecutive users lie
in flat arrays, one :class:`ChunkParts` per run of at most :attr:`BatchLimits.pairs` pairs, so that everything but
the matrix products and the anchors' partial sorts is one numpy operation per run.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from kgrec._arrays import BITMAP, distinct, member, ranges
from kgrec.fusion.explain import anchor_strengths
from kgrec.fusion.persist import ITEM_COOC
from kgrec.fusion.state import ModelState
from kgrec.graph.path_table import PathArrays

__all__ = ["BatchLimits", "ChunkParts", "ChunkVectors", "chunk_parts", "co_interacted", "cos_bound", "gamma"]

U32 = 2.0**-24
U64 = 2.0**-53


@dataclass(frozen=True)
class BatchLimits:
    """Sizes that choose how a chunk is computed (the answers are the same whichever way)."""

    #: most (history item, row) pairs computed at once: a chunk's users are taken in runs of at most this many
    pairs: int = 1 << 20
    #: largest item × user incidence of the path index held dense for the collaborative sums (entries; float32);
    #: a larger index is joined
    dense: int = 16_000_000
    #: largest (user, other user) key space of the join marked in a bitmap (bytes); past it, binary searches
    bitmap: int = BITMAP
    #: most rows whose candidate paths are listed and decided at once (tens of paths each: the arrays of a piece stay
    #: a few megabytes, which the allocator reuses, where fresh arrays of a whole chunk's paths are paged in anew)
    questions: int = 4096


def gamma(d: int, u: float) -> float:
    """``γ_d`` of a float sum of ``d`` products at unit roundoff ``u``."""
    return d * u / (1.0 - d * u)


def cos_bound(d: int) -> float:
    """A bound on the difference of two float32 computations of one cosine of ``d``-vectors (the dot product in
    another order, the norms in another order): ``2 γ_d`` for the dot, the norms and the division on top."""
    return 4.0 * gamma(d, U32) + 16.0 * U32


class ChunkVectors:
    """What every user of a chunk shares: the state's vectors, the items' norms, the path index and its id maps.

    The items' norms are computed once per item array (:func:`_item_norms`: an export's chunks share them); the
    users' norms where they are needed (:meth:`user_norms`: a live model rewrites user rows in place)."""

    def __init__(self, state: ModelState, arrays: PathArrays) -> None:
        self.state, self.arrays = state, arrays
        a = state.arrays
        self.items = a["items"]
        self.users = a["users"]
        self.delta = cos_bound(self.items.shape[1])
        self.alpha = state.cooc_alpha
        self.cooc = a.get(ITEM_COOC) if self.alpha else None
        #: the history side of the co-occurrence part (the candidate side is ``cooc``; one factor in older models)
        self.cooc_hist = state.cooc_history if self.cooc is not None else None
        self.one_side = self.cooc_hist is self.cooc
        #: norms of the items' vectors and of the co-occurrence sides; ``split``: the co-occurrence block is the
        #: items' last columns from there (one product gives both), else 0
        self.item_norm, self.cooc_norm, self.hist_norm, self.split = _item_norms(self.items, self.cooc, self.cooc_hist)
        self.item_code = arrays.item_codes(state.vocabs.item.ids)
        self.user_of_code = state.vocabs.user.numbers(arrays.ids["users"], missing="none")
        self.train = _train_csr(state)
        self.same_edges = _same_edges(state, arrays, self.item_code, self.train)

    def user_norms(self, users: np.ndarray) -> np.ndarray:
        """Norms of the vectors of user numbers ``users`` (float32, each row as a norm over all users gives it)."""
        return np.linalg.norm(self.users[users], axis=1)


_NORMS: list[tuple[tuple[weakref.ref[np.ndarray] | None, ...], tuple[np.ndarray, np.ndarray, np.ndarray, int]]] = []


def _item_norms(
    items: np.ndarray, cooc: np.ndarray | None, hist: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Norms of the items' vectors (float32), of the co-occurrence candidate and history sides (float64; empty
    without them) and where the co-occurrence block starts among the items' columns (0: not there), computed once
    per set of arrays (only the last one is kept; the arrays are never written in place, a live state copies them)."""
    key = tuple(None if x is None else weakref.ref(x) for x in (items, cooc, hist))
    if _NORMS and all(
        (a is None and b is None) or (a is not None and b is not None and a() is b())
        for a, b in zip(_NORMS[0][0], key, strict=True)
    ):
        return _NORMS[0][1]
    item_norm = np.linalg.norm(items, axis=1)
    cooc_norm = hist_norm = np.empty(0)
    split = 0
    if cooc is not None and hist is not None:
        w = cooc.shape[1]
        cooc_norm = np.linalg.norm(cooc, axis=1).astype(np.float64)
        hist_norm = cooc_norm if hist is cooc else np.linalg.norm(hist, axis=1).astype(np.float64)
        if items.shape[1] > w and np.array_equal(items[:, -w:], cooc):
            split = items.shape[1] - w
    got = (item_norm, cooc_norm, hist_norm, split)
    _NORMS[:] = [(key, got)]
    return got


@dataclass
class ChunkParts:
    """Every user's numbers for their rows, flat. User ``n`` of the chunk (history ``h[n]`` items, ``m[n]`` rows)
    holds the pairs ``base[n] + j * m[n] + c`` (history place ``j``, column ``c``: row-major ``h × m``); history
    places are numbered across the chunk as ``hoff[n] + j``, columns as ``roff[n] + c``."""

    base: np.ndarray
    hoff: np.ndarray
    roff: np.ndarray
    #: per pair: its history place and its column, across the chunk
    pj: np.ndarray
    pc: np.ndarray
    #: per history place: the item number
    hist: np.ndarray
    #: per pair: anchor strength ``w_j max(0, cos(f_j, f_i))`` and its error bound
    strength: np.ndarray
    strength_err: np.ndarray
    #: per pair: the history item is one of the column's anchors
    anchor: np.ndarray
    #: per column: its anchors are the whole history (``h <= explain.anchors``)
    every: np.ndarray
    #: per column: a number cannot be bounded (tiny vectors, a store history unlike the model's, a co-occurrence
    #: term too close to 0): that row's paths are scored one by one
    unsure: np.ndarray
    #: per pair: co-occurrence term ``alpha e_j · e_i``, its bound, and whether it is a path (certainly non-zero,
    #: and somebody in the training data chose both); None without a co-occurrence part
    cooc: np.ndarray | None
    cooc_err: np.ndarray | None
    cooc_path: np.ndarray | None
    #: per pair: the collaborative (``user``) paths of (anchor j, column): how many, the sum of their similarities
    #: ``max(0, cos(f_u, f_v))`` and its bound; per history place an upper bound of the largest similarity
    co_count: np.ndarray
    co_sum: np.ndarray
    co_sum_err: np.ndarray
    co_max: np.ndarray


def chunk_parts(
    cv: ChunkVectors,
    users: np.ndarray,
    hists: list[np.ndarray],
    weights: list[np.ndarray],
    items: list[np.ndarray],
    me: np.ndarray,
    limits: BatchLimits = BatchLimits(),
) -> list[ChunkParts]:
    """The numbers of the user numbers ``users`` (each with its history, the history's anchor weights, the item
    numbers of its rows and its code ``me`` in the path index; -1: none) for all their rows at once, in runs of
    consecutive users of at most ``limits.pairs`` pairs each (the temporaries stay small)."""
    size = np.array([len(a) * len(b) for a, b in zip(hists, items, strict=True)], dtype=np.int64)
    cuts = [0]
    total = 0
    for g, x in enumerate(size.tolist()):
        if total and total + x > limits.pairs:
            cuts.append(g)
            total = 0
        total += x
    cuts.append(len(size))
    return [
        _chunk_parts(cv, _Users(users[a:b], hists[a:b], weights[a:b], items[a:b], me[a:b]), limits)
        for a, b in zip(cuts[:-1], cuts[1:], strict=True)
        if b > a
    ]


class _Users(NamedTuple):
    """Users of a run and their rows, as :func:`chunk_parts` takes them."""

    users: np.ndarray
    hists: list[np.ndarray]
    weights: list[np.ndarray]
    items: list[np.ndarray]
    me: np.ndarray


def _chunk_parts(cv: ChunkVectors, run: _Users, limits: BatchLimits) -> ChunkParts:
    """The numbers of one run of users (:func:`chunk_parts`)."""
    users, hists, weights, items, me = run
    st = cv.state
    h = np.array([len(x) for x in hists], dtype=np.int64)
    m = np.array([len(x) for x in items], dtype=np.int64)
    size = h * m
    base, hoff, roff = _starts(size), _starts(h), _starts(m)
    hist = _cat(hists, np.int64)
    w = _cat(weights, np.float64)
    cols = _cat(items, np.int64)
    owner = np.repeat(np.arange(len(h)), size)
    within = np.arange(int(size.sum()), dtype=np.int64) - base[owner]
    width = m[owner]
    j = within // np.maximum(width, 1)
    pj, pc = hoff[owner] + j, roff[owner] + within - j * width
    dots, term = _dots(cv, hists, items, base, size)
    den = cv.item_norm[hist[pj]] * cv.item_norm[cols[pc]]
    cos = dots / np.maximum(den, 1e-12)
    wj = w[pj]
    strength = wj * np.maximum(cos, 0.0)
    err = wj * cv.delta
    n_cols = int(m.sum())
    unsure = np.bincount(pc, weights=(den < 1e-6) & (den > 0) & (wj > 0), minlength=n_cols) > 0
    long = h > st.config.explain.anchors
    every = np.repeat(~long, m)
    anchor = _anchors(cv, hists, weights, cols, long, h, m, base, roff, cos, strength, err, wj)
    co, bad = _collaborative(cv, _Run(users, hists, cols, me, h, m, base, hoff, roff), limits)
    unsure |= np.repeat(bad, m)
    parts = ChunkParts(base, hoff, roff, pj, pc, hist, strength, err, anchor, every, unsure, None, None, None, *co)
    if cv.cooc is not None and len(pj):
        both = co[0] > 0 if cv.same_edges else _co_interacted_all(cv, hists, items, base, size)
        parts.cooc, parts.cooc_err, parts.cooc_path, unsure_c = _cooc(cv, hist[pj], cols[pc], pc, n_cols, term, both)
        parts.unsure |= unsure_c
    return parts


def _starts(counts: np.ndarray) -> np.ndarray:
    """Exclusive running sums: where each segment of ``counts`` starts."""
    return np.cumsum(counts) - counts


def _cat(arrays: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(arrays).astype(dtype, copy=False) if arrays else np.empty(0, dtype=dtype)


def _dots(
    cv: ChunkVectors, hists: list[np.ndarray], items: list[np.ndarray], base: np.ndarray, size: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """Per pair, the fused vectors' dot product (float32, one matrix product per user) and the co-occurrence
    product (float32 summed, as float64; None without a co-occurrence part). With the co-occurrence block among
    the items' last columns, one product gives both."""
    n = int(size.sum())
    dots = np.empty(n, dtype=np.float32)
    term = np.empty(n) if cv.cooc is not None else None
    s = cv.split
    for g in np.flatnonzero(size).tolist():
        hs, its = hists[g], items[g]
        fh, fi = cv.items[hs], cv.items[its]
        at = slice(int(base[g]), int(base[g] + size[g]))
        if s:  # fused part and co-occurrence part: the second is also the co-occurrence term (one factor)
            part = fh[:, s:] @ fi[:, s:].T
            dots[at] = (fh[:, :s] @ fi[:, :s].T + part).ravel()
            if term is not None and cv.one_side:
                term[at] = part.ravel()
                continue
        else:
            dots[at] = (fh @ fi.T).ravel()
        if term is not None:
            assert cv.cooc is not None and cv.cooc_hist is not None
            term[at] = (cv.cooc_hist[hs] @ cv.cooc[its].T).ravel()
    return dots, term


def _anchors(
    cv: ChunkVectors,
    hists: list[np.ndarray],
    weights: list[np.ndarray],
    cols: np.ndarray,
    long: np.ndarray,
    h: np.ndarray,
    m: np.ndarray,
    base: np.ndarray,
    roff: np.ndarray,
    cos: np.ndarray,
    strength: np.ndarray,
    err: np.ndarray,
    wj: np.ndarray,
) -> np.ndarray:
    """Per pair, whether its history item is among the column's ``explain.anchors`` strongest (ties: lower item
    number), as :func:`kgrec.fusion.explain.candidate_paths` picks them; every pair of a user with a short history.
    A column the bounds do not settle (a near tie at the boundary, or the boundary among strengths that may be 0)
    is computed with the per-row code's expression."""
    st = cv.state
    n_anchor = st.config.explain.anchors
    anchor = np.ones(len(strength), dtype=bool)
    lo_all = np.maximum(strength - err, 0.0)
    hi_all = np.where((wj == 0) | (cos + cv.delta < 0), 0.0, strength + err)
    for g in np.flatnonzero(long & (m > 0)).tolist():  # one partial sort per user: O(h m), not a sort of all pairs
        hg, mg = int(h[g]), int(m[g])
        at = slice(int(base[g]), int(base[g] + hg * mg))
        s_g = strength[at].reshape(hg, mg)
        top = np.argpartition(-s_g, n_anchor - 1, axis=0)[:n_anchor]
        mask = np.zeros((hg, mg), dtype=bool)
        np.put_along_axis(mask, top, True, axis=0)
        lo, hi = lo_all[at].reshape(hg, mg), hi_all[at].reshape(hg, mg)
        min_in = np.where(mask, lo, np.inf).min(0)
        max_out = np.where(mask, -np.inf, hi).max(0)
        hist = hists[g]
        for c in np.flatnonzero(~(min_in > max_out)).tolist():  # min_in > 0 follows: max_out >= 0
            exact = anchor_strengths(st, hist, weights[g], int(cols[roff[g] + c]))
            mask[:, c] = False
            mask[np.lexsort((hist, -exact))[:n_anchor], c] = True
        anchor[at] = mask.ravel()
    return anchor


class _Run(NamedTuple):
    """One run's users (their numbers, histories, path-index codes ``me``), its columns' items ``cols``, and where
    each user's pairs (``base``), history places (``hoff``) and columns (``roff``) start (``h``, ``m``: how many)."""

    users: np.ndarray
    hists: list[np.ndarray]
    cols: np.ndarray
    me: np.ndarray
    h: np.ndarray
    m: np.ndarray
    base: np.ndarray
    hoff: np.ndarray
    roff: np.ndarray


def _without(
    bad: np.ndarray,
    h: np.ndarray,
    m: np.ndarray,
    count: np.ndarray,
    total: np.ndarray,
    err: np.ndarray,
    top: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The collaborative numbers with those of the ``bad`` users zeroed (their rows are scored one by one)."""
    dead = np.repeat(bad, h * m)
    for x in (count, total, err):
        x[dead] = 0.0
    top[np.repeat(bad, h)] = 0.0
    return count, total, err, top


def _collaborative(
    cv: ChunkVectors, r: _Run, limits: BatchLimits
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """The ``user`` paths of each (history item j, column i) summed: their count, the sum of the similarities
    ``max(0, cos(f_u, f_v))`` over the other users v who chose j and i (bound), and per history place an upper bound
    of the largest similarity among those users; and per user whether the numbers cannot be trusted (all 0 then):
    the index's history of the user is not the model's, or a user who chose one of the user's history items and one
    of the rows' items is unknown to the model (the per-row code raises for it) or has a vector too small to bound.

    One join over the chunk: the users of each row's item (other than the user) against the users of each history
    item, keyed by (user of the chunk, other user); every match is one path, added to its pair. An index whose item ×
    user incidence fits ``limits.dense`` takes :func:`_collaborative_dense` instead."""
    users, hists, cols, me, h, m, base, hoff, roff = r
    arrays = cv.arrays
    n_pairs, n_places = int((h * m).sum()), int(h.sum())
    bad = ~_own_history(cv, hists, me)
    dense = _dense_incidence(arrays, limits.dense)
    if dense is not None:
        return _collaborative_dense(cv, dense, r, bad)
    i_ptr, i_users = arrays.item_users
    n_codes = len(arrays.ids["users"]) + 1
    # the history side: (user of the chunk, other user) keys of the users of every history item (but the user),
    # and the rows' side likewise; matched on the keys both have
    place_group = np.repeat(np.arange(len(h)), h)
    a_place, a_v = _neighbours(i_ptr, i_users, cv.item_code[_cat(hists, np.int64)], ~bad[place_group])
    a_group = place_group[a_place]
    other = a_v != me[a_group]
    a_place, a_v, a_group = a_place[other], a_v[other], a_group[other]
    a_key = a_group * n_codes + a_v
    col_group = np.repeat(np.arange(len(h)), m)
    b_col, b_v = _neighbours(i_ptr, i_users, cv.item_code[cols], ~bad[col_group])
    b_key = col_group[b_col] * n_codes + b_v
    size = len(h) * n_codes
    both = member(b_key, distinct(a_key), size, limits.bitmap)
    b_col, b_key = b_col[both], b_key[both]
    order = np.argsort(b_key, kind="stable")  # by key, then column
    b_key, b_col = b_key[order], b_col[order]
    first = np.ones(len(b_key), dtype=bool)
    first[1:] = b_key[1:] != b_key[:-1]
    keys, b_start = b_key[first], np.flatnonzero(first)
    b_count = np.diff(np.append(b_start, len(b_key)))
    hit = member(a_key, keys, size, limits.bitmap)
    a_place, a_v, a_group, a_key = a_place[hit], a_v[hit], a_group[hit], a_key[hit]
    at = np.searchsorted(keys, a_key)
    # the similarity of each matched (user, other user), one matrix-vector product per user (keys ascend by user)
    vnum = cv.user_of_code[a_v]
    bad |= np.bincount(a_group, weights=vnum < 0, minlength=len(h)) > 0
    k_group = keys // n_codes
    k_num = np.maximum(cv.user_of_code[keys % n_codes], 0)
    seen, where = np.unique(k_num, return_inverse=True)
    den = cv.user_norms(seen)[where] * cv.user_norms(users)[k_group]
    bad |= np.bincount(k_group[(den > 0) & (den < 1e-6)], minlength=len(h)) > 0
    sim = np.zeros(len(keys), dtype=np.float32)
    bounds = np.searchsorted(k_group, np.arange(len(h) + 1))
    for g in np.flatnonzero(np.diff(bounds) > 0).tolist():
        if not bad[g]:
            lo, hi = int(bounds[g]), int(bounds[g + 1])
            sim[lo:hi] = cv.users[k_num[lo:hi]] @ cv.users[int(users[g])]
    c = np.maximum(sim / np.maximum(den, 1e-12), 0.0)[at]
    keep = ~bad[a_group]
    a_place, a_group, at, c = a_place[keep], a_group[keep], at[keep], c[keep]
    count, total = np.zeros(n_pairs), np.zeros(n_pairs)
    # every match of a history place's user with the rows of the same (user, other user) key: one path
    reps = b_count[at]
    step = 1 << 22
    ends = np.searchsorted(np.cumsum(reps), np.arange(step, int(reps.sum()) + step, step), side="right")
    lo = 0
    for hi in np.unique(np.append(ends, len(reps))).tolist():
        if hi <= lo:
            continue
        n_rep = reps[lo:hi]
        src = np.repeat(np.arange(lo, hi), n_rep)
        col = b_col[ranges(b_start[at[lo:hi]], n_rep)]
        g = a_group[src]
        flat = base[g] + (a_place[src] - hoff[g]) * m[g] + (col - roff[g])
        count += np.bincount(flat, minlength=n_pairs)
        total += np.bincount(flat, weights=c[src], minlength=n_pairs)
        lo = hi
    d_u = cos_bound(cv.users.shape[1])
    # a sum of `count` similarities: float64 here, each within d_u of the per-row code's
    err = count * d_u + 1.02 * (count * U32 / (1.0 - count * U32)) * total
    top = np.zeros(n_places)
    np.maximum.at(top, a_place, c.astype(np.float64))
    top += d_u
    return _without(bad, h, m, count, total, err, top), bad


def _collaborative_dense(
    cv: ChunkVectors, dense: np.ndarray, r: _Run, bad: np.ndarray
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """:func:`_collaborative` over the dense item × user incidence of a small index, one matrix product per user
    (every user of the index a column; the user's own column drops out). On dense data (MovieLens: 610 users with
    long histories) the join's matches run to tens of millions where these products are a few BLAS calls."""
    users, hists, cols, me, h, m, base, hoff, roff = r
    n_pairs, n_places = int((h * m).sum()), int(h.sum())
    count, total, top = np.zeros(n_pairs), np.zeros(n_pairs), np.zeros(n_places)
    unknown = cv.user_of_code < 0
    nums = np.where(unknown, 0, cv.user_of_code)
    f_all = cv.users[nums]
    norms = cv.user_norms(nums)
    for g in np.flatnonzero((h * m > 0) & ~bad).tolist():
        xh = dense[cv.item_code[hists[g]]]
        xi = dense[cv.item_code[cols[roff[g] : roff[g] + m[g]]]]  # -1: the zero row
        if unknown.any() and (xi[:, unknown].any() and xh[:, unknown].any()):
            bad[g] = True
            continue
        u = int(users[g])
        den = norms * cv.user_norms(np.array([u]))[0]
        if ((den > 0) & (den < 1e-6)).any():
            bad[g] = True
            continue
        c = np.maximum((f_all @ cv.users[u]) / np.maximum(den, 1e-12), 0.0).astype(np.float32)
        c[unknown] = 0.0
        if me[g] >= 0:
            c[me[g]] = 0.0
        both = (xh @ np.concatenate([xi, xi * c[None, :]]).T).astype(np.float64)
        at = slice(int(base[g]), int(base[g] + h[g] * m[g]))
        count[at], total[at] = both[:, : m[g]].ravel(), both[:, m[g] :].ravel()
        if len(c):
            top[hoff[g] : hoff[g] + h[g]] = (xh * c[None, :]).max(1)
    d_u = cos_bound(cv.users.shape[1])
    err = count * d_u + 1.02 * gamma(max(1, len(nums)), U32) * total  # float32 sums over every user of the index
    top += d_u
    return _without(bad, h, m, count, total, err, top), bad


_DENSE: list[tuple[weakref.ref[PathArrays], int, np.ndarray | None]] = []


def _dense_incidence(arrays: PathArrays, limit: int) -> np.ndarray | None:
    """The index's item × user incidence as a float32 matrix with a last row of zeros (items it does not hold), when
    it has at most ``limit`` entries; built once per index (only the last one is kept)."""
    if _DENSE and _DENSE[0][0]() is arrays and _DENSE[0][1] == limit:
        return _DENSE[0][2]
    n_i, n_u = len(arrays.ids["items"]), len(arrays.ids["users"])
    out = None
    if (n_i + 1) * n_u <= limit:
        ptr, users = arrays.item_users
        out = np.zeros((n_i + 1, n_u), dtype=np.float32)
        out[np.repeat(np.arange(n_i), np.diff(ptr)), users] = 1.0
    _DENSE[:] = [(weakref.ref(arrays), limit, out)]
    return out


def _own_history(cv: ChunkVectors, hists: list[np.ndarray], me: np.ndarray) -> np.ndarray:
    """Per user: the path index holds the model's history of the user (the same items)."""
    h_ptr, h_idx = cv.arrays.hist
    n = len(hists)
    width = len(cv.arrays.ids["items"]) + 1  # codes + 1: 0 (not in the index) to width - 1
    model = np.array([len(x) for x in hists], dtype=np.int64)
    start = h_ptr[np.maximum(me, 0)]
    own = np.where(me >= 0, h_ptr[np.maximum(me, 0) + 1] - start, 0)
    ok = own == model
    group = np.repeat(np.arange(n), np.where(ok, model, 0))  # both sides, sorted by user then item
    a = np.sort(group * width + 1 + cv.item_code[_cat([x for x, y in zip(hists, ok, strict=True) if y], np.int64)])
    b = np.sort(group * width + 1 + h_idx[ranges(start[ok], own[ok])])
    return ok & (np.bincount(group[a != b], minlength=n) == 0)


def _neighbours(ptr: np.ndarray, idx: np.ndarray, rows: np.ndarray, use: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (position, neighbour) of the CSR ``(ptr, idx)`` rows ``rows`` (-1: none) where ``use``."""
    pos = np.flatnonzero(use & (rows >= 0))
    r = rows[pos]
    cnt = ptr[r + 1] - ptr[r]
    return np.repeat(pos, cnt), idx[ranges(ptr[r], cnt)].astype(np.int64)


def _incidence(ptr: np.ndarray, idx: np.ndarray, rows: np.ndarray, cols: np.ndarray, n: int) -> np.ndarray:
    """``len(rows) × len(cols)`` 0/1 float32 matrix: entry (r, c) is 1 when ``cols[c]`` is a neighbour of ``rows[r]``
    in the CSR ``(ptr, idx)`` (``rows`` -1: no neighbours; ``n``: the size of the neighbour id space)."""
    where = np.full(n + 1, -1, dtype=np.int64)
    where[cols] = np.arange(len(cols))
    out = np.zeros((len(rows), len(cols)), dtype=np.float32)
    ok = rows >= 0
    r = rows[ok]
    lo = ptr[r]
    cnt = ptr[r + 1] - lo
    owner = np.repeat(np.flatnonzero(ok), cnt)
    pos = np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt - lo, cnt)
    c = where[idx[pos]]
    hit = c >= 0
    out[owner[hit], c[hit]] = 1.0
    return out


def co_interacted(cv: ChunkVectors, i: int, hist: np.ndarray) -> np.ndarray:
    """:meth:`ModelState.co_interacted` of item number ``i`` and ``hist`` (the same answer, from the chunk's CSR)."""
    ptr, users = cv.train
    mark = np.zeros(len(cv.state.vocabs.user), dtype=bool)
    mark[users[ptr[i] : ptr[i + 1]]] = True
    cnt = ptr[hist + 1] - ptr[hist]
    pos = np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt - ptr[hist], cnt)
    hits = np.bincount(np.repeat(np.arange(len(hist)), cnt), weights=mark[users[pos]], minlength=len(hist))
    return hits > 0


def _co_interacted_all(
    cv: ChunkVectors, hists: list[np.ndarray], items: list[np.ndarray], base: np.ndarray, size: np.ndarray
) -> np.ndarray:
    """Per pair, :meth:`ModelState.co_interacted`: somebody in the training data chose both (the path index is not
    the training data: a store that took events since)."""
    ptr, users = cv.train
    n = len(cv.state.vocabs.user)
    out = np.zeros(int(size.sum()), dtype=bool)
    for g in np.flatnonzero(size).tolist():
        hist, its = hists[g], items[g]
        v = np.unique(np.concatenate([users[ptr[i] : ptr[i + 1]] for i in its]))
        both = (_incidence(ptr, users, hist, v, n) @ _incidence(ptr, users, its, v, n).T) > 0
        out[int(base[g]) : int(base[g] + size[g])] = both.ravel()
    return out


def _cooc(
    cv: ChunkVectors,
    hist: np.ndarray,
    items: np.ndarray,
    pc: np.ndarray,
    n_cols: int,
    term: np.ndarray | None,
    both: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per pair (its history item ``hist`` and column item ``items``), the co-occurrence term (a float32 product; the
    per-row code sums in float64), its bound, and which are paths; per column, whether a term is too close to 0 to
    tell."""
    assert cv.cooc is not None and cv.cooc_hist is not None and term is not None
    e, alpha = cv.cooc, cv.alpha
    term = alpha * term
    nh, ni = cv.hist_norm[hist], cv.cooc_norm[items]
    d = e.shape[1]
    err = alpha * (gamma(d, U32) + gamma(d, U64)) * 1.02 * (nh * ni) + 4 * U64 * np.abs(term)
    zero = (nh == 0) | (ni == 0)  # every product 0: exactly 0 in any order
    term[zero] = 0.0
    err[zero] = 0.0
    near = np.flatnonzero(both & ~zero & (np.abs(term) <= err))
    if len(near):  # too close to 0 for the float32 bound: again in float64, as the per-row code sums
        a, b = cv.cooc_hist[hist[near]].astype(np.float64), e[items[near]].astype(np.float64)
        term[near] = alpha * np.einsum("ij,ij->i", a, b)
        err[near] = alpha * 2.02 * gamma(d, U64) * np.einsum("ij,ij->i", np.abs(a), np.abs(b))
        err[near] += 4 * U64 * np.abs(term[near])
    nonzero = ~zero & (np.abs(term) > err)
    unsure = np.bincount(pc, weights=both & ~zero & ~nonzero, minlength=n_cols) > 0
    return term, err, both & nonzero, unsure


_TRAIN: list[tuple[weakref.ref[np.ndarray], int, tuple[np.ndarray, np.ndarray]]] = []
_SAME: list[tuple[weakref.ref[np.ndarray], weakref.ref[PathArrays], bool]] = []


def _train_csr(st: ModelState) -> tuple[np.ndarray, np.ndarray]:
    """The training interactions as item number -> user numbers (what :meth:`ModelState.co_interacted` reads),
    built once per state's arrays (only the last one is kept)."""
    n = len(st.vocabs.item)
    if _TRAIN and _TRAIN[0][0]() is st.pos_items and _TRAIN[0][1] == n:
        return _TRAIN[0][2]
    order = np.argsort(st.pos_items, kind="stable")
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(st.pos_items, minlength=n), out=ptr[1:])
    csr = (ptr, st.pos_users[order].astype(np.int64))
    _TRAIN[:] = [(weakref.ref(st.pos_items), n, csr)]
    return csr


def _same_edges(
    st: ModelState, arrays: PathArrays, item_code: np.ndarray, train: tuple[np.ndarray, np.ndarray]
) -> bool:
    """Whether the path index holds exactly the training interactions (then "somebody chose both" is "some other
    user chose both", which the collaborative counts say, the user never having chosen the row's item)."""
    if _SAME and _SAME[0][0]() is st.pos_items and _SAME[0][1]() is arrays:
        return _SAME[0][2]
    i_ptr, i_users = arrays.item_users
    same = len(i_users) == len(st.pos_items)
    if same:
        ptr, users = train
        # the index's edges in model numbers: item (by its code), user (by its code)
        code_item = np.full(len(arrays.ids["items"]), -1, dtype=np.int64)
        known = item_code >= 0
        code_item[item_code[known]] = np.flatnonzero(known)
        user_num = st.vocabs.user.numbers(arrays.ids["users"], missing="none")
        a_items = np.repeat(code_item, np.diff(i_ptr))
        a_users = user_num[i_users]
        t_items = np.repeat(np.arange(len(ptr) - 1), np.diff(ptr))
        n_u = len(st.vocabs.user) + 1
        same = bool((a_items >= 0).all() and (a_users >= 0).all()) and np.array_equal(
            np.sort(a_items * n_u + a_users), np.sort(t_items * n_u + users)
        )
    _SAME[:] = [(weakref.ref(st.pos_items), weakref.ref(arrays), same)]
    return same
