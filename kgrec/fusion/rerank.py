"""A re-ranker on top of the one top-k: maximal marginal relevance (``diversity`` λ) and a popularity
penalty (``long_tail`` β), exact within a candidate pool and vectorised over a chunk of users.

For each user the pool is the model's own top ``pool`` items (:func:`kgrec.fusion.ranking.top_items`,
seen/excluded items already out). Within the pool, with ``s`` the model scores:

- relevance ``rel_i = (s_i − min s) / (max s − min s)`` over the user's pool (1 when all are equal);
- long-tail adjustment ``a_i = rel_i − β · z_i``, where ``z_i`` is the z-score, over the whole catalogue,
  of ``log(1 + users_i)`` (``users_i``: interactions of item ``i`` in the training data);
- greedy MMR (Carbonell & Goldstein, 1998): the next item is
  ``argmax_{i ∉ S} (1 − λ) · a_i − λ · max_{j ∈ S} sim(i, j)``, with ``sim`` the cosine of the fused
  item vectors ``v_i`` (``by="vectors"``; :func:`kgrec.fusion.state.similarity_vectors`: without the
  co-occurrence block the score appends), the Jaccard index of the category sets (``by="categories"``), or
  their mean (``by="both"``). The first pick has no ``S``: it is the best ``a_i``.

Ties go to the earlier pool place, i.e. the top-k's own tie rule (higher score, then lower item number).
``λ = 0, β = 0`` returns the plain top-k unchanged (same items, order and scores); ``λ = 0, β > 0``
is a sort by ``a``; ``λ > 0`` runs ``k`` greedy steps over a chunk of users at once, no per-user loop: the
value of a candidate after the choices ``S`` is ``min_{j ∈ S} (1 − λ)·a_i − λ·sim(i, j)``, so a step needs only the
similarity row of the item just chosen (one gather and one element-wise minimum). The cosines come from batched
matrix products over the pools' vectors, a few users at a time: the rows of the first ``k`` places, and the pairs
among the places after them (the rest by symmetry); the Jaccard row is looked up in a table of the distinct category
sets (built once per re-ranker). The steps themselves run in NumPy. The order is the one the full ``[P, P]``
similarity matrix gives, ties included (``tests/test_rerank.py`` checks both against a written-out MMR).
The score shown for a re-ranked item stays the model's score; only the order changes.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
import torch

from kgrec.errors import ConfigError
from kgrec.fusion.ranking import TopK
from kgrec.fusion.state import similarity_vectors
from kgrec.graph.hetero import Vocabularies
from kgrec.loaders import schema as S

if TYPE_CHECKING:
    from kgrec.fusion.state import ModelState

Similarity = Literal["vectors", "categories", "both"]
SIMILARITIES: tuple[str, ...] = ("vectors", "categories", "both")
#: most candidates per user the re-ranker looks at
MAX_POOL = 5000
#: users re-ranked at once, at most (measured: 64-128 is the fastest on MovieLens, 2x faster than 256)
USER_CHUNK = 128
#: pool pairs held at once (users × pool² similarities, 4 bytes each: 64 MB)
PAIR_BUDGET = 16_000_000
#: users whose pool vectors are gathered and multiplied at once (8 × 150 × 576 floats: 2.8 MB, about one L2 cache)
GATHER_USERS = 8
#: most entries of the Jaccard table of the distinct category sets (4 bytes each: 64 MB); past it, computed per step
TABLE_BUDGET = 16_000_000
#: the note of an item the re-ranker moved up
VARIETY_NOTE = "added for variety: it is less like the items ranked above it than the ones it moved past"
CATEGORY_NOTE = (
    "added for variety: its categories differ more from the items ranked above it than the ones it moved past"
)
LONG_TAIL_NOTE = "moved up by the long-tail option: fewer people have it than the ones it moved past"


def check_options(diversity: float | None, long_tail: float | None, *, where: str = "") -> tuple[float, float]:
    """``(diversity, long_tail)`` as floats (None → 0), or ConfigError naming the field and its range."""
    pre = f"{where}: " if where else ""
    d = 0.0 if diversity is None else diversity
    b = 0.0 if long_tail is None else long_tail
    try:
        d, b = float(d), float(b)
    except (TypeError, ValueError):
        raise ConfigError(f"{pre}diversity={diversity!r}, long_tail={long_tail!r}: expected numbers") from None
    if not (math.isfinite(d) and 0.0 <= d <= 1.0):
        raise ConfigError(f"{pre}diversity={diversity!r}: expected a number in [0, 1] (0 = off, 1 = only variety)")
    if not (math.isfinite(b) and b >= 0.0):
        raise ConfigError(f"{pre}long_tail={long_tail!r}: expected a number >= 0 (0 = off; 0.1-0.5 is a mild push)")
    return d, b


def pool_size(k: int, n_items: int, diversity: float, long_tail: float) -> int:
    """Candidates per user: ``k`` when the re-ranker is off, else ``max(1.5k, 50)`` up to :data:`MAX_POOL`.

    By vectors the greedy costs about ``k·pool + (pool − k)²`` products of the ``v_i`` (k = 100: 17,500 per user, of
    64 columns for a trained model against the plain scoring's 9,742 of 576 on MovieLens). Measured on the MovieLens
    demo model at k = 100 on the 2-core machine, the re-ranked export runs at 0.67-0.78 of the plain export's speed
    by vectors (λ = 0.3), 0.70-0.75 by categories, 0.50-0.68 by both, 0.86-0.97 with β = 0.3 alone
    (``benchmarks/tradeoff.py --throughput-only``; docs/benchmarks.md, "Beyond accuracy")."""
    if diversity == 0.0 and long_tail == 0.0:
        return min(k, n_items)
    return min(n_items, max(k, min(MAX_POOL, max(k + k // 2, 50))))


def popularity_z(counts: np.ndarray) -> np.ndarray:
    """z-score over the catalogue of ``log(1 + counts)`` (all 0 when every item has the same count)."""
    lp = np.log1p(np.asarray(counts, dtype=np.float64))
    sd = lp.std()
    return ((lp - lp.mean()) / sd if sd > 0 else np.zeros_like(lp)).astype(np.float32)


@dataclass
class Reranked:
    """A re-ranked top-k: ``top`` (scores are the model's, order the re-ranker's) and, per place,
    whether the item moved up from its plain place (``promoted``) and that place (``plain_rank``, from 1)."""

    top: TopK
    promoted: np.ndarray
    plain_rank: np.ndarray


class Reranker:
    """The item-level inputs of the re-ranker, built once per model.

    Args:
        item_vectors: ``[n_items, d]`` (fused) item vectors; normalised here for the cosine.
        popularity: interactions per item in the training data (``[n_items]``).
        categories: optional ``[n_items, n_categories]`` 0/1 matrix, for ``by="categories"|"both"``.
    """

    def __init__(self, item_vectors: np.ndarray, popularity: np.ndarray, categories: np.ndarray | None = None) -> None:
        v = torch.as_tensor(np.asarray(item_vectors, dtype=np.float32))
        self.vectors = v / v.norm(dim=1, keepdim=True).clamp_min(1e-12)
        self._vectors_np = self.vectors.numpy()  # NumPy's row gather is about 2x torch's index_select here
        self.z = torch.from_numpy(popularity_z(popularity))
        self.categories = None if categories is None else torch.as_tensor(np.asarray(categories, dtype=np.float32))
        self._table: tuple[np.ndarray, np.ndarray] | Literal[False] | None = None  # built on first use
        if len(self.z) != len(self.vectors) or (
            self.categories is not None and len(self.categories) != len(self.vectors)
        ):
            raise ValueError(
                f"item_vectors ({len(self.vectors)} rows), popularity ({len(self.z)}) and categories "
                f"({None if self.categories is None else len(self.categories)} rows) must cover the same items"
            )

    @property
    def n_items(self) -> int:
        return len(self.vectors)

    def rerank(
        self, pool: TopK, k: int, diversity: float = 0.0, long_tail: float = 0.0, by: Similarity = "vectors"
    ) -> Reranked:
        """The best ``min(k, pool width)`` of each row of ``pool`` (the plain top-``pool`` of each user, best first)."""
        diversity, long_tail = check_options(diversity, long_tail)
        if by not in SIMILARITIES:
            raise ConfigError(f"by={by!r}: expected one of {', '.join(SIMILARITIES)}")
        if by != "vectors" and self.categories is None:
            raise ConfigError(f"by={by!r} needs the items' categories; this re-ranker was built without them")
        w = min(k, pool.items.shape[1])
        if diversity == 0.0 and long_tail == 0.0:
            n = pool.items.shape[0]
            return Reranked(
                TopK(pool.scores[:, :w], pool.items[:, :w]),
                np.zeros((n, w), dtype=bool),
                np.tile(np.arange(1, w + 1), (n, 1)),
            )
        orders = []
        step = max(1, min(USER_CHUNK, PAIR_BUDGET // max(1, pool.items.shape[1] ** 2)))
        for s in range(0, pool.items.shape[0], step):
            o = self._order(
                torch.from_numpy(np.ascontiguousarray(pool.scores[s : s + step], dtype=np.float32)),
                torch.from_numpy(pool.items[s : s + step]),
                w,
                diversity,
                long_tail,
                by,
            ).numpy()
            orders.append(o)
        order = np.concatenate(orders) if orders else np.zeros((0, w), dtype=np.int64)
        scores = np.take_along_axis(pool.scores, order, 1)
        items = np.take_along_axis(pool.items, order, 1)
        promoted = np.isfinite(scores) & (order > np.arange(w))  # placed higher than its plain place
        return Reranked(TopK(scores, items), promoted, order + 1)

    def _order(
        self, scores: torch.Tensor, items: torch.Tensor, w: int, lam: float, beta: float, by: str
    ) -> torch.Tensor:
        """Pool places ``[B, w]`` in re-ranked order."""
        valid = torch.isfinite(scores)
        fs = torch.where(valid, scores, torch.nan)
        lo = torch.where(valid, scores, torch.inf).min(1, keepdim=True).values
        hi = torch.where(valid, scores, -torch.inf).max(1, keepdim=True).values
        span = hi - lo
        rel = torch.where(span > 0, (fs - lo) / torch.where(span > 0, span, 1.0), 1.0)
        adj = rel - beta * self.z[items] if beta else rel
        invalid_value = torch.tensor(-1e30)
        if lam == 0.0:
            key = torch.where(valid, adj, invalid_value)
            return torch.argsort(key, dim=1, descending=True, stable=True)[:, :w]
        B, P = scores.shape
        if w == 0:
            return torch.empty((B, 0), dtype=torch.long)
        base = torch.where(valid, (1.0 - lam) * adj, invalid_value).numpy()  # empty places: after every real item
        # The value of candidate i after the choices S is min over j ∈ S of h(j, i) = (1 − λ)·a_i − λ·sim(i, j)
        # (max_sim only grows), so each step needs one row h(j, ·) of the item j just chosen, no more. The steps
        # run in NumPy: on rows this small its argmax and gathers cost a fraction of torch's per call.
        cos = self._cosines(items, w) if by in ("vectors", "both") else None
        cats = self._category_rows(items) if by in ("categories", "both") else None
        rows = np.arange(B)
        neg = np.float32(-lam)
        val = base
        out = np.empty((B, w), dtype=np.int64)
        for t in range(w):
            j = val.argmax(axis=1)  # first maximum: the earlier pool place
            out[:, t] = j
            if t == w - 1:
                break
            if cos is not None:
                row = cos.row(rows, j)
                if cats is not None:
                    row += cats.jaccard(rows, j)
                    row /= np.float32(2)
            elif cats is not None:
                row = cats.jaccard(rows, j)
            else:
                raise ConfigError(f"by={by!r}: expected one of {', '.join(SIMILARITIES)}")
            row *= neg
            row += base
            if t == 0:
                val = row  # the first choice alone: max over S is its similarity, negative ones included
            else:
                np.minimum(val, row, out=val)
            val[rows, j] = -np.inf  # taken
        return torch.from_numpy(out)

    def _cosines(self, items: torch.Tensor, w: int) -> _Cosines:
        """The cosines of each row of ``items`` (``[B, P]`` pools) that a greedy of ``w`` steps may read (see
        :class:`_Cosines`): gathered and multiplied a few users at a time (:data:`GATHER_USERS`), so that the gathered
        vectors are still in the cache when the products read them."""
        B, P = items.shape
        m = min(w, P)
        head = torch.empty((B, m, P), dtype=torch.float32)
        tail = torch.empty((B, P - m, P - m), dtype=torch.float32)
        flat = items.numpy().reshape(-1)
        for s in range(0, B, GATHER_USERS):
            n = min(GATHER_USERS, B - s)
            vec = torch.from_numpy(self._vectors_np[flat[s * P : (s + n) * P]]).view(n, P, -1)
            torch.bmm(vec[:, :m], vec.transpose(1, 2), out=head[s : s + n])
            if m < P:
                rest = vec[:, m:]
                torch.bmm(rest, rest.transpose(1, 2), out=tail[s : s + n])
        return _Cosines(head.numpy(), tail.numpy())

    def _category_rows(self, items: torch.Tensor) -> _Categories:
        """The chunk's categories: set numbers for the table of the distinct category sets when it fits, else rows."""
        if self.categories is None:
            raise ConfigError("by='categories' needs the items' categories; this re-ranker was built without them")
        if self._table is None:
            self._table = _jaccard_table(self.categories)
        if self._table is not False:
            set_of, table = self._table
            return _Categories(sets=set_of[items.numpy()], table=table)
        return _Categories(cat=self.categories.index_select(0, items.reshape(-1)).view(*items.shape, -1).numpy())


class _Cosines:
    """The cosine of a chosen pool place with each place of its pool, one ``[B, P]`` row per greedy step, from the rows
    of the first ``m`` places (``head``: ``[B, m, P]``, one batched product) and the pairs among the other places
    (``tail``: ``[B, P − m, P − m]``); the row of a later place ``j`` starts with column ``j`` of ``head`` (a
    product of vectors with themselves is symmetric to the bit with MKL, which the tests' comparison with the
    full-matrix greedy relies on). With ``m = w`` (the list length) a greedy that mostly picks the plain top-``w``
    reads ``head`` nearly always, and the ``(P − m)·m`` products of the later places with the first ones, which the
    full ``[P, P]`` product repeats, are not computed twice: 1/5 of the products at k = 100, P = 150, but only about
    5% of the time, the small ``tail`` product being slower per product."""

    def __init__(self, head: np.ndarray, tail: np.ndarray) -> None:
        self.head, self.tail = head, tail
        self.m = head.shape[1]
        self.flat = head.reshape(-1, head.shape[2])

    def row(self, rows: np.ndarray, j: np.ndarray) -> np.ndarray:
        m = self.m
        out = self.flat[rows * m + np.minimum(j, m - 1)]
        later = np.flatnonzero(j >= m)
        if len(later):
            jl = j[later]
            out[later, :m] = self.head[later, :, jl]
            out[later, m:] = self.tail[later, jl - m]
        return out


def _jaccard(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Jaccard index of 0/1 rows ``a [n, C]`` with rows ``b [m, C]``: ``[n, m]`` (1 for two empty sets). The counts
    are whole numbers (exact in float32), so the one division gives the same bits however they were summed."""
    inter = a @ b.T
    union = a.sum(1).unsqueeze(1) + b.sum(1).unsqueeze(0) - inter
    return torch.where(union > 0, inter / union.clamp_min(1e-12), 1.0)


def _jaccard_table(categories: torch.Tensor) -> tuple[np.ndarray, np.ndarray] | Literal[False]:
    """``(set number per item, flat [n_sets × n_sets] Jaccard table)`` of the distinct category sets (MovieLens:
    951 sets for 9,742 items, a 3.6 MB table), or False when the table would pass :data:`TABLE_BUDGET` entries."""
    sets, set_of = torch.unique(categories, dim=0, return_inverse=True)
    if len(sets) ** 2 > TABLE_BUDGET:
        return False
    return set_of.reshape(-1).numpy(), _jaccard(sets, sets).reshape(-1).numpy()


class _Categories:
    """The Jaccard index of one chosen pool place per user with the user's whole pool, one ``[B, P]`` row per greedy
    step: looked up in the flat table of the distinct category sets (``sets``: ``[B, P]`` set numbers), or computed
    from the pools' 0/1 category rows ``cat`` (``[B, P, C]``)."""

    def __init__(
        self, *, sets: np.ndarray | None = None, table: np.ndarray | None = None, cat: np.ndarray | None = None
    ) -> None:
        self.sets, self.table, self.cat = sets, table, cat
        if sets is not None and table is not None:
            n_sets = math.isqrt(len(table))
            self.scaled = sets * n_sets  # where each place's row starts in the flat table
        elif cat is not None:
            self.size = cat.sum(2)
        else:
            raise ValueError("_Categories needs sets and table, or cat")

    def jaccard(self, rows: np.ndarray, j: np.ndarray) -> np.ndarray:
        if self.sets is not None and self.table is not None:
            return self.table[self.scaled[rows, j][:, None] + self.sets]
        cat = self.cat
        assert cat is not None  # checked in __init__
        inter = np.matmul(cat, cat[rows, j][:, :, None])[:, :, 0]
        union = self.size + self.size[rows, j][:, None] - inter
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(union > 0, inter / np.maximum(union, np.float32(1e-12)), np.float32(1.0))


#: per model state: the plain re-ranker, and the one with categories with the matrix it was built from
_CACHE: weakref.WeakKeyDictionary[ModelState, Reranker] = weakref.WeakKeyDictionary()
_WITH_CATEGORIES: weakref.WeakKeyDictionary[ModelState, tuple[np.ndarray, Reranker]] = weakref.WeakKeyDictionary()


def check_by(by: str, *, where: str = "diversity_by") -> Similarity:
    """``by`` as a :data:`Similarity`, or a ConfigError naming ``where`` and the choices."""
    if by not in SIMILARITIES:
        raise ConfigError(f"{where}={by!r}: expected one of {', '.join(SIMILARITIES)}")
    return by  # type: ignore[return-value]  # checked against SIMILARITIES, the values of the Literal


def category_matrix(item_categories: pd.DataFrame, vocabs: Vocabularies) -> np.ndarray:
    """``[n_items, n_categories]`` 0/1 matrix (float32) of the items' categories, rows by item number; items
    outside ``vocabs`` are left out, items without a category get an empty row."""
    cats = pd.Index(sorted(item_categories[S.CATEGORY].astype(str).unique()))
    out = np.zeros((len(vocabs.item), len(cats)), dtype=np.float32)
    if len(item_categories):
        rows = vocabs.item.numbers(item_categories[S.ITEM].astype(str), missing="none")
        cols = cats.get_indexer(item_categories[S.CATEGORY].astype(str))
        ok = rows >= 0
        out[rows[ok], cols[ok]] = 1.0
    return out


def reranker_of(state: ModelState, categories: np.ndarray | None = None) -> Reranker:
    """The :class:`Reranker` of a model (fused item vectors, training popularity; with ``categories``, also the
    items' category matrix for ``by="categories"|"both"``), built once per state (and per category matrix)."""
    if categories is not None:
        hit = _WITH_CATEGORIES.get(state)
        if hit is None or hit[0] is not categories:
            counts = np.bincount(state.pos_items, minlength=len(state.vocabs.item))
            hit = (categories, Reranker(similarity_vectors(state.arrays), counts, categories))
            _WITH_CATEGORIES[state] = hit
        return hit[1]
    r = _CACHE.get(state)
    if r is None:
        counts = np.bincount(state.pos_items, minlength=len(state.vocabs.item))
        r = Reranker(similarity_vectors(state.arrays), counts)
        _CACHE[state] = r
    return r


def reranked_topk(
    state: ModelState,
    users: np.ndarray,
    k: int,
    *,
    diversity: float = 0.0,
    long_tail: float = 0.0,
    exclude_seen: bool = True,
    candidates: np.ndarray | None = None,
    exclude: np.ndarray | None = None,
    by: Similarity = "vectors",
    categories: np.ndarray | None = None,
) -> Reranked:
    """:meth:`ModelState.topk` of user numbers ``users``, re-ranked (``diversity`` λ, ``long_tail`` β; MMR
    similarity ``by`` the fused item vectors, the ``categories`` matrix (:func:`category_matrix`) or both).

    With both 0 this is exactly ``state.topk(users, k, ...)``.
    """
    diversity, long_tail = check_options(diversity, long_tail)
    by = check_by(by)
    if by != "vectors" and categories is None:
        raise ConfigError(f"diversity_by={by!r} needs the items' categories (the model's store or data set)")
    pool = state.topk(
        users,
        pool_size(k, len(state.vocabs.item), diversity, long_tail),
        exclude_seen=exclude_seen,
        candidates=candidates,
        exclude=exclude,
    )
    return reranker_of(state, categories if by != "vectors" else None).rerank(pool, k, diversity, long_tail, by)


def note(promoted: bool, diversity: float, long_tail: float, by: str = "vectors") -> str | None:
    """Why the re-ranker moved an item up (None when it did not): variety first (by categories: a different
    category mix), else the long tail."""
    if not promoted:
        return None
    if diversity > 0:
        return CATEGORY_NOTE if by == "categories" else VARIETY_NOTE
    if long_tail > 0:
        return LONG_TAIL_NOTE
    return None
