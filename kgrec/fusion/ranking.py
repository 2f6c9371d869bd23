"""One top-k with one tie rule, the rank that agrees with it, and Recall/NDCG.

Every ranking in kgrec goes through :func:`top_items`: recommendations, the batch export,
an explanation's rank and gap to the k-th item, validation during training and the quality
benchmark (``kgrec.evaluation.metrics`` calls it and :func:`recall_ndcg`). Ties (equal
scores) are broken by the lower item number; excluded items score ``-inf`` and come last,
so a caller that wants only real recommendations keeps the finite scores of each row
(:class:`TopK` does, per user).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch


def top_items(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``min(k, n_items)`` best columns of every row of ``scores``, best first.

    Equal scores are ordered by the lower column (item number), as a stable descending sort
    of the whole row would order them, at the cost of one ``torch.topk`` of ``k + 1`` (rows with a
    tie across the k-th place are sorted in full).

    Returns:
        ``(values, item numbers)``, both ``[n_rows, min(k, n_items)]``.
    """
    n_rows, n_items = scores.shape
    k = min(k, n_items)
    if k <= 0 or n_rows == 0:
        return scores[:, :0], torch.zeros((n_rows, 0), dtype=torch.long)
    v1 = i1 = None
    if k < n_items:
        v1, i1 = torch.topk(scores, k + 1, dim=1)  # NaN ranks above everything, so a NaN row shows here
    if v1 is None or i1 is None or bool(torch.isnan(v1).any()):
        idx = torch.argsort(scores, dim=1, descending=True, stable=True)[:, :k]
        return scores.gather(1, idx), idx
    # where the (k+1)-th score is below the k-th, topk's set of k is the answer; where they are
    # equal (a tie across the boundary, e.g. -inf padding), that row is sorted in full
    v, i = v1[:, :k], i1[:, :k]
    order = torch.argsort(i, dim=1)  # within the set: score descending, then the lower item number
    v, i = v.gather(1, order), i.gather(1, order)
    order = torch.argsort(v, dim=1, descending=True, stable=True)
    v, i = v.gather(1, order), i.gather(1, order)
    crowded = torch.nonzero(v1[:, k - 1] == v1[:, k]).squeeze(1)
    if len(crowded):
        idx = torch.argsort(scores[crowded], dim=1, descending=True, stable=True)[:, :k]
        v, i = v.clone(), i.clone()
        v[crowded], i[crowded] = scores[crowded].gather(1, idx), idx
    return v, i


def rank_in(scores: np.ndarray | torch.Tensor, item: int, seen: np.ndarray) -> int:
    """Rank (from 1) of ``item`` in one user's ``scores`` among the items not ``seen`` (``item`` itself
    always counts), with :func:`top_items`' tie rule: an equal score of a lower item number ranks first."""
    s = scores.numpy() if isinstance(scores, torch.Tensor) else np.asarray(scores)
    mask = np.ones(len(s), dtype=bool)
    mask[seen] = False
    mask[item] = True
    si = s[item]
    ahead = (s > si) | ((s == si) & (np.arange(len(s)) < item))
    return int((ahead & mask).sum() + 1)


@dataclass
class TopK:
    """Top-k of several users: ``[n_users, w]`` scores and item numbers, best first.

    A row holds fewer than ``w`` real recommendations when the user has fewer items left
    (seen, excluded or outside the candidates): those places score ``-inf``. :meth:`flat`
    keeps each user's real ones only, so no user's list depends on another's.
    """

    scores: np.ndarray
    items: np.ndarray

    @property
    def valid(self) -> np.ndarray:
        return np.isfinite(self.scores)

    @property
    def counts(self) -> np.ndarray:
        """Real recommendations per user."""
        return self.valid.sum(1)

    def flat(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(row, rank from 1, item number, score)`` of every real recommendation, users in order."""
        v = self.valid
        rows = np.nonzero(v)[0]
        ranks = np.cumsum(v, axis=1)[v]
        return rows, ranks.astype(np.int64), self.items[v], self.scores[v]


def mask_items(scores: torch.Tensor, items_per_row: Sequence[np.ndarray | None]) -> None:
    """Set ``scores[r, items_per_row[r]]`` to ``-inf`` in place, for every row ``r`` (None or empty: nothing): a
    user's own (seen / excluded) items, which no ranking may return. ``-inf`` plus a finite score stays ``-inf``, so
    a masked base score stays masked when other parts are added to it."""
    lens = [0 if x is None else len(x) for x in items_per_row]
    if not sum(lens):
        return
    rows = np.repeat(np.arange(len(lens)), lens)
    cols = np.concatenate([np.asarray(x, dtype=np.int64) for x in items_per_row if x is not None and len(x)])
    scores[torch.from_numpy(rows), torch.from_numpy(cols)] = float("-inf")


def topk_scores(
    user_vecs: torch.Tensor,
    item_vecs: torch.Tensor,
    k: int,
    exclude: Mapping[int, np.ndarray] | None = None,
    candidates: torch.Tensor | None = None,
    chunk: int = 2048,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` items per user by dot product, excluding each user's ``exclude`` items (rows keyed
    by position) and, with ``candidates`` (item numbers), every other item. Excluded places
    score ``-inf``.

    Returns ``(scores [n, min(k, n_items)], item numbers [n, min(k, n_items)])``.
    """
    n_items = item_vecs.shape[0]
    all_s, all_i = [], []
    for start in range(0, user_vecs.shape[0], chunk):
        s = user_vecs[start : start + chunk] @ item_vecs.T
        if candidates is not None:
            mask = torch.full((n_items,), float("-inf"))
            mask[candidates] = 0.0
            s = s + mask
        if exclude:
            mask_items(s, [exclude.get(start + r) for r in range(s.shape[0])])
        v, i = top_items(s, k)
        all_s.append(v)
        all_i.append(i)
    if not all_s:
        return torch.zeros((0, min(k, n_items))), torch.zeros((0, min(k, n_items)), dtype=torch.long)
    return torch.cat(all_s), torch.cat(all_i)


def recall_ndcg(top: np.ndarray, targets: Sequence[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-user Recall@k and NDCG@k (binary relevance, ideal DCG over ``min(|targets|, k)``);
    NaN for a user without targets. ``top`` rows are the users' lists (at least ``k`` long or
    shorter), aligned with ``targets``."""
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    rec = np.full(len(targets), np.nan)
    ndcg = np.full(len(targets), np.nan)
    for r, (row, tgt) in enumerate(zip(top[:, :k], targets, strict=False)):
        if len(tgt) == 0:
            continue
        hit = np.isin(row, tgt)
        rec[r] = hit.sum() / len(tgt)
        ndcg[r] = (hit * disc[: len(row)]).sum() / disc[: min(len(tgt), k)].sum()
    return rec, ndcg


def ranking_metrics(topk: np.ndarray, targets: list[np.ndarray], k: int) -> dict[str, float]:
    """Mean Recall@k and NDCG@k over the users with targets (see :func:`recall_ndcg`).

    Args:
        topk: ``[n_users, >=k]`` recommended item numbers (or ids).
        targets: per user the held-out item numbers (users with none are skipped).
    """
    rec, ndcg = recall_ndcg(topk, targets, k)
    has = ~np.isnan(rec)
    if not has.any():
        return {f"recall@{k}": float("nan"), f"ndcg@{k}": float("nan"), "users": 0}
    return {f"recall@{k}": float(np.mean(rec[has])), f"ndcg@{k}": float(np.mean(ndcg[has])), "users": int(has.sum())}
