"""One user's explanation scores for all their rows at once, each with a bound on its rounding error.

:func:`kgrec.fusion.explain.score_paths` computes every number of one (user, item) pair with its own BLAS calls;
the batch computes the same numbers for all the user's rows with one matrix product each (history × rows), which
sums in another order. The two agree up to float rounding, and every number here carries a bound on the
difference: two float sums of the same ``d`` products differ by at most ``2 γ_d Σ|a_k b_k|``, with
``γ_d = d u / (1 - d u)`` and ``u`` the unit roundoff, whatever the order. :mod:`kgrec.fusion.explain_batch` takes a
row's top path from these numbers only where the bounds settle it.

Per user, with ``H`` the history (``h`` items) and ``I`` the items of the user's rows (``m``), :func:`user_parts`
gives ``h × m`` matrices of anchor strengths, co-occurrence terms, "somebody chose both" flags and collaborative
sums (the ``user`` paths of an anchor, summed without listing them), and each row's anchors: the strongest
``explain.anchors`` history items, exactly as :func:`kgrec.fusion.explain.candidate_paths` picks them.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from kgrec.fusion.explain import anchor_strengths
from kgrec.fusion.persist import ITEM_COOC
from kgrec.fusion.state import ModelState
from kgrec.graph.path_table import PathArrays

__all__ = ["ChunkVectors", "UserParts", "co_interacted", "cos_bound", "gamma", "user_parts"]

U32 = 2.0**-24
U64 = 2.0**-53
#: largest item x user incidence held dense for the collaborative sums (entries; float32)
DENSE = 16_000_000


def gamma(d: int, u: float) -> float:
    """``γ_d`` of a float sum of ``d`` products at unit roundoff ``u``."""
    return d * u / (1.0 - d * u)


def cos_bound(d: int) -> float:
    """A bound on the difference of two float32 computations of one cosine of ``d``-vectors (the dot product in
    another order, the norms in another order): ``2 γ_d`` for the dot, the norms and the division on top."""
    return 4.0 * gamma(d, U32) + 16.0 * U32


class ChunkVectors:
    """What every user of a chunk shares: the state's vectors, their norms, the path index and its id maps."""

    def __init__(self, state: ModelState, arrays: PathArrays) -> None:
        self.state, self.arrays = state, arrays
        a = state.arrays
        self.items = a["items"]
        self.item_norm = np.linalg.norm(self.items, axis=1)
        self.users = a["users"]
        self.user_norm = np.linalg.norm(self.users, axis=1)
        self.delta = cos_bound(self.items.shape[1])
        self.alpha = state.cooc_alpha
        self.cooc = a.get(ITEM_COOC) if self.alpha else None
        #: the history side of the co-occurrence part (the candidate side is ``cooc``; one factor in older models)
        self.cooc_hist = state.cooc_history if self.cooc is not None else None
        self.one_side = self.cooc_hist is self.cooc
        #: the co-occurrence block is the items' last columns: one product gives both
        self.split = 0
        if self.cooc is not None and self.cooc_hist is not None:
            w = self.cooc.shape[1]
            self.cooc_norm = np.linalg.norm(self.cooc, axis=1).astype(np.float64)
            self.hist_norm = (
                self.cooc_norm if self.one_side else np.linalg.norm(self.cooc_hist, axis=1).astype(np.float64)
            )
            if self.items.shape[1] > w and np.array_equal(self.items[:, -w:], self.cooc):
                self.split = self.items.shape[1] - w
        self.item_code = arrays.item_codes(state.vocabs.item.ids)
        self.user_of_code = state.vocabs.user.numbers(arrays.ids["users"], missing="none")
        self.train = _train_csr(state)
        self.same_edges = _same_edges(state, arrays, self.item_code, self.train)
        #: item x user incidence of the index (a last row of zeros for items it does not hold), when small
        self.dense: np.ndarray | None = None
        n_i, n_u = len(arrays.ids["items"]), len(arrays.ids["users"])
        if (n_i + 1) * n_u <= DENSE:
            ptr, users = arrays.item_users
            self.dense = np.zeros((n_i + 1, n_u), dtype=np.float32)
            self.dense[np.repeat(np.arange(n_i), np.diff(ptr)), users] = 1.0
            self.unknown = self.user_of_code < 0


@dataclass
class UserParts:
    """One user's numbers for their ``m`` rows (columns) and ``h`` history items (rows of the matrices)."""

    #: anchor strength ``w_j max(0, cos(f_j, f_i))`` and its error bound
    strength: np.ndarray
    strength_err: np.ndarray
    #: per column: the anchors (a mask over the history); None: every history item (``h <= explain.anchors``)
    anchors: np.ndarray | None
    #: per column: a number cannot be bounded (tiny vectors, a store history unlike the model's, a co-occurrence
    #: term too close to 0): that row's paths are scored one by one
    unsure: np.ndarray
    #: co-occurrence term ``alpha e_j · e_i``, its bound, and whether it is a path (certainly non-zero, and somebody
    #: in the training data chose both); None without a co-occurrence part
    cooc: np.ndarray | None
    cooc_err: np.ndarray | None
    cooc_path: np.ndarray | None
    #: collaborative (``user``) paths of each (anchor j, column): how many, the sum of their similarities
    #: ``max(0, cos(f_u, f_v))`` (with its bound) and, per j, an upper bound of the largest similarity
    co_count: np.ndarray
    co_sum: np.ndarray
    co_sum_err: np.ndarray
    co_max: np.ndarray


def user_parts(
    cv: ChunkVectors, u: int, hist: np.ndarray, weights: np.ndarray, items: np.ndarray, me: int
) -> UserParts:
    """The numbers of user number ``u`` (history ``hist``, its anchor ``weights``, code ``me`` in the path index)
    for the item numbers ``items``."""
    st = cv.state
    fh, fi = cv.items[hist], cv.items[items]
    den = np.outer(cv.item_norm[hist], cv.item_norm[items])
    term = None
    if cv.split:  # fused part and co-occurrence part: the second is also the co-occurrence term (one factor)
        s = cv.split
        part = fh[:, s:] @ fi[:, s:].T
        dots = fh[:, :s] @ fi[:, :s].T + part
        term = part.astype(np.float64) if cv.one_side else None
    else:
        dots = fh @ fi.T
    cos = dots / np.maximum(den, 1e-12)
    tiny = (den < 1e-6) & (den > 0)
    strength = weights[:, None] * np.maximum(cos, 0.0)
    err = np.repeat(weights[:, None] * cv.delta, len(items), axis=1)
    unsure: np.ndarray = np.asarray((tiny & (weights[:, None] > 0)).any(0), dtype=bool)
    anchors = None
    if len(hist) > st.config.explain.anchors:
        anchors = _anchors(st, hist, weights, items, cos, strength, err, cv.delta)
    rows = np.arange(len(hist)) if anchors is None else np.flatnonzero(anchors.any(1))  # anchors of some row
    co = _collaborative(cv, u, hist, items, me, rows)
    if co is None:
        unsure[:] = True
        h, m = strength.shape
        co = (np.zeros((h, m)), np.zeros((h, m)), np.zeros((h, m)), np.zeros(h))
    cooc = cooc_err = cooc_path = None
    if cv.cooc is not None and len(hist):
        both = co[0] > 0 if cv.same_edges else _co_interacted(cv, hist, items)
        cooc, cooc_err, cooc_path, unsure_c = _cooc(cv, hist, items, term, both)
        unsure |= unsure_c
    return UserParts(strength, err, anchors, unsure, cooc, cooc_err, cooc_path, *co)


def _anchors(
    state: ModelState,
    hist: np.ndarray,
    weights: np.ndarray,
    items: np.ndarray,
    cos: np.ndarray,
    strength: np.ndarray,
    err: np.ndarray,
    delta: float,
) -> np.ndarray:
    """Per column, the mask of the ``explain.anchors`` strongest history items (ties: lower item number), as
    :func:`kgrec.fusion.explain.candidate_paths` picks them. A column the bounds do not settle (a near tie at the
    boundary, or the boundary among strengths that may be 0) is computed with the per-row code's expression."""
    n_anchor = state.config.explain.anchors
    h, m = strength.shape
    top = np.argpartition(-strength, n_anchor - 1, axis=0)[:n_anchor]
    mask = np.zeros((h, m), dtype=bool)
    np.put_along_axis(mask, top, True, axis=0)
    lo = np.maximum(strength - err, 0.0)
    hi = np.where((weights[:, None] == 0) | (cos + delta < 0), 0.0, strength + err)
    min_in = np.where(mask, lo, np.inf).min(0)
    max_out = np.where(mask, -np.inf, hi).max(0)
    for c in np.flatnonzero(~(min_in > max_out)):  # min_in > 0 follows: max_out >= 0
        exact = anchor_strengths(state, hist, weights, int(items[c]))
        mask[:, c] = False
        mask[np.lexsort((hist, -exact))[:n_anchor], c] = True
    return mask


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


def _co_interacted(cv: ChunkVectors, hist: np.ndarray, items: np.ndarray) -> np.ndarray:
    """:meth:`ModelState.co_interacted` for every (history item, column): somebody in the training data chose both."""
    ptr, users = cv.train
    v = np.unique(np.concatenate([users[ptr[i] : ptr[i + 1]] for i in items]))
    n = len(cv.state.vocabs.user)
    return (_incidence(ptr, users, hist, v, n) @ _incidence(ptr, users, items, v, n).T) > 0


def _cooc(
    cv: ChunkVectors, hist: np.ndarray, items: np.ndarray, term: np.ndarray | None, both: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Co-occurrence terms (a float32 product; the per-row code sums in float64), their bounds, which are paths,
    and the columns with a term too close to 0 to tell."""
    assert cv.cooc is not None and cv.cooc_hist is not None
    e, alpha = cv.cooc, cv.alpha
    eh, ei = cv.cooc_hist[hist], e[items]
    term = alpha * (term if term is not None else (eh @ ei.T).astype(np.float64))
    nh, ni = cv.hist_norm[hist], cv.cooc_norm[items]
    d = e.shape[1]
    err = alpha * (gamma(d, U32) + gamma(d, U64)) * 1.02 * np.outer(nh, ni) + 4 * U64 * np.abs(term)
    zero = (nh == 0)[:, None] | (ni == 0)[None, :]  # every product 0: exactly 0 in any order
    term[zero] = 0.0
    err[zero] = 0.0
    near = both & ~zero & (np.abs(term) <= err)
    if near.any():  # too close to 0 for the float32 bound: again in float64, as the per-row code sums
        jj, cc = np.nonzero(near)
        a, b = eh[jj].astype(np.float64), ei[cc].astype(np.float64)
        term[jj, cc] = alpha * np.einsum("ij,ij->i", a, b)
        err[jj, cc] = alpha * 2.02 * gamma(d, U64) * np.einsum("ij,ij->i", np.abs(a), np.abs(b))
        err[jj, cc] += 4 * U64 * np.abs(term[jj, cc])
    nonzero = ~zero & (np.abs(term) > err)
    return term, err, both & nonzero, (both & ~zero & ~nonzero).any(0)


def _collaborative(
    cv: ChunkVectors, u: int, hist: np.ndarray, items: np.ndarray, me: int, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """The ``user`` paths of each (history item j, column i) summed: their count, the sum of the similarities
    ``max(0, cos(f_u, f_v))`` over the other users v who chose j and i (bound), and per j an upper bound of the
    largest similarity among the users who chose j (only for the history places ``rows``: the anchors; 0 elsewhere).
    None when the numbers cannot be trusted: the index's history of the user is not the model's, or a co-user is
    unknown to the model (the per-row code raises for it)."""
    arrays = cv.arrays
    h_ptr, h_idx = arrays.hist
    own = np.sort(h_idx[h_ptr[me] : h_ptr[me + 1]]) if me >= 0 else np.empty(0, np.int64)
    if not np.array_equal(own, np.sort(cv.item_code[hist])):
        return None
    i_ptr, i_users = arrays.item_users
    codes_i = cv.item_code[items]
    if cv.dense is not None:
        return _collaborative_dense(cv, u, hist, codes_i, me, rows)
    got = [i_users[i_ptr[c] : i_ptr[c + 1]] for c in codes_i if c >= 0]
    v = np.unique(np.concatenate(got)) if got else np.empty(0, np.int64)
    v = v[v != me]
    vnum = cv.user_of_code[v]
    if (vnum < 0).any():
        return None
    n_codes = len(arrays.ids["users"])
    xh = _incidence(i_ptr, i_users, cv.item_code[hist], v, n_codes)
    xi = _incidence(i_ptr, i_users, codes_i, v, n_codes)
    den = cv.user_norm[vnum] * cv.user_norm[u]
    if ((den > 0) & (den < 1e-6)).any():
        return None
    c = np.maximum((cv.users[vnum] @ cv.users[u]) / np.maximum(den, 1e-12), 0.0).astype(np.float32)
    return _sums(xh, xi, c, rows, cos_bound(cv.users.shape[1]))


def _collaborative_dense(
    cv: ChunkVectors, u: int, hist: np.ndarray, codes_i: np.ndarray, me: int, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """:func:`_collaborative` over the dense incidence (every user of the index a column; the user's own column
    drops out: they chose every history item and none of the rows' items)."""
    assert cv.dense is not None
    xh = cv.dense[cv.item_code[hist]]
    xi = cv.dense[codes_i]  # -1: the zero row
    if cv.unknown.any() and (xi[:, cv.unknown].any() and xh[:, cv.unknown].any()):
        return None
    nums = np.where(cv.unknown, 0, cv.user_of_code)
    den = cv.user_norm[nums] * cv.user_norm[u]
    if ((den > 0) & (den < 1e-6)).any():
        return None
    c = np.maximum((cv.users[nums] @ cv.users[u]) / np.maximum(den, 1e-12), 0.0).astype(np.float32)
    c[cv.unknown] = 0.0
    if me >= 0:
        c[me] = 0.0
    return _sums(xh, xi, c, rows, cos_bound(cv.users.shape[1]))


def _sums(
    xh: np.ndarray, xi: np.ndarray, c: np.ndarray, rows: np.ndarray, delta: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Counts and similarity sums of the co-users (one product for both), their bound, and the largest similarity
    per anchor (``rows`` only) plus the bound."""
    m = len(xi)
    both = (xh @ np.concatenate([xi, xi * c[None, :]]).T).astype(np.float64)
    count, total = both[:, :m], both[:, m:]
    err = count * delta + 1.02 * gamma(max(1, len(c)), U32) * total
    top = np.zeros(len(xh))
    if len(c) and len(rows):
        top[rows] = (xh[rows] * c[None, :]).max(1)
    return count, total, err, top + delta


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
