"""Top-K metrics of the quality benchmark: overall, cold items, activity buckets, coverage.

The top-k and the per-user Recall/NDCG are the ones of :mod:`kgrec.fusion.ranking` (one tie rule,
one formula for training, ``kgrec demo`` and the benchmark); this module adds the benchmark's views.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from kgrec.evaluation.split import Interactions
from kgrec.fusion.ranking import recall_ndcg, top_items

#: user-activity buckets: number of interactions a user has in the data the model was fit on
ACTIVITY_BUCKETS: tuple[tuple[int, int], ...] = ((0, 20), (20, 50), (50, 150), (150, 10**12))


def bucket_name(lo: int, hi: int) -> str:
    return f"{lo}+" if hi >= 10**12 else f"{lo}-{hi - 1}"


def targets_by_user(held_out: Interactions) -> list[np.ndarray]:
    """Held-out item numbers per user (empty arrays for users with none)."""
    out: list[list[int]] = [[] for _ in range(held_out.n_users)]
    for u, i in zip(held_out.users.tolist(), held_out.items.tolist(), strict=True):
        out[u].append(i)
    return [np.asarray(t, dtype=np.int64) for t in out]


def full_ranking_topk(
    score_fn: Callable[[np.ndarray], torch.Tensor],
    users: np.ndarray,
    seen: Sequence[np.ndarray],
    k: int = 20,
    chunk: int = 1024,
    candidates: np.ndarray | None = None,
) -> np.ndarray:
    """Top-``k`` item numbers per user over all items, each user's ``seen`` items excluded.

    ``score_fn(user_numbers)`` returns ``[len(users), n_items]`` scores. Ties are broken by item
    number (lowest first), so equal scores (e.g. unseen items of an ID model) never favour a target.
    ``candidates`` (a boolean mask over items) restricts the ranking to those items; with fewer
    than ``k`` of them the rows are padded with excluded items, which can never be hits.
    """
    tops = []
    blocked = None if candidates is None else torch.from_numpy(~np.asarray(candidates, dtype=bool))
    for s in range(0, len(users), chunk):
        batch = users[s : s + chunk]
        scores = score_fn(batch).float().clone()
        if blocked is not None:
            scores[:, blocked] = float("-inf")
        rows = np.concatenate([np.full(len(seen[u]), r) for r, u in enumerate(batch)]) if len(batch) else np.empty(0)
        cols = np.concatenate([seen[u] for u in batch]) if len(batch) else np.empty(0)
        if len(rows):
            scores[torch.from_numpy(rows.astype(np.int64)), torch.from_numpy(cols.astype(np.int64))] = float("-inf")
        tops.append(top_items(scores, k)[1].numpy())  # the one top-k: ties by lower item number
    return np.concatenate(tops) if tops else np.empty((0, k), dtype=np.int64)


def evaluate_topk(
    top: np.ndarray, users: np.ndarray, fit: Interactions, held_out: Interactions, k: int = 20
) -> dict[str, float]:
    """All benchmark metrics of the lists ``top`` (rows for ``users``) against ``held_out``.

    - ``recall@k`` / ``ndcg@k``: binary relevance, ideal DCG over ``min(|held out|, k)``, mean over users
      with at least one held-out interaction;
    - ``cold_recall@k`` / ``cold_ndcg@k``: the same, counting only held-out items that never appear in
      ``fit`` (users with at least one such item);
    - ``ndcg@k[a-b]``: NDCG by the user's number of interactions in ``fit``;
    - ``coverage@k``: share of all items that appear in at least one list.
    """
    tg = targets_by_user(held_out)
    targets = [tg[u] for u in users]
    rec, ndcg = recall_ndcg(top, targets, k)
    out: dict[str, float] = {
        f"recall@{k}": float(np.nanmean(rec)),
        f"ndcg@{k}": float(np.nanmean(ndcg)),
        "users": int(np.sum(~np.isnan(rec))),
    }
    cold = cold_items(fit)
    cold_targets = [t[cold[t]] for t in targets]
    crec, cndcg = recall_ndcg(top, cold_targets, k)
    has = ~np.isnan(crec)
    out[f"cold_recall@{k}"] = float(np.nanmean(crec)) if has.any() else float("nan")
    out[f"cold_ndcg@{k}"] = float(np.nanmean(cndcg)) if has.any() else float("nan")
    out["cold_users"] = int(has.sum())
    activity = np.bincount(fit.users, minlength=fit.n_users)[users]
    for lo, hi in ACTIVITY_BUCKETS:
        sel = (activity >= lo) & (activity < hi) & ~np.isnan(ndcg)
        out[f"ndcg@{k}[{bucket_name(lo, hi)}]"] = float(np.mean(ndcg[sel])) if sel.any() else float("nan")
        out[f"users[{bucket_name(lo, hi)}]"] = int(sel.sum())
    out[f"coverage@{k}"] = float(len(np.unique(top[:, :k])) / fit.n_items)
    return out


def cold_items(fit: Interactions) -> np.ndarray:
    """Boolean mask of the items with no interaction in ``fit`` (what a model has only content for)."""
    known = np.zeros(fit.n_items, dtype=bool)
    known[fit.items] = True
    return ~known


def evaluate_cold_only(
    score_fn: Callable[[np.ndarray], torch.Tensor], fit: Interactions, held_out: Interactions, k: int = 20
) -> dict[str, float]:
    """Recall/NDCG@k of a "new arrivals" list: each user's ranking over the cold items only.

    Users with at least one held-out cold item are scored on those items. The full-ranking cold
    metrics of :func:`evaluate_topk` ask whether a cold item beats every warm one; this asks whether the
    model ranks the right cold items first, which is what content (text, categories, keywords)
    can know about an item nobody has used. ``cold_only_random_recall@k`` is the expectation of a
    random order over the same candidates, the level an ID-only model sits at.
    """
    cold = cold_items(fit)
    tg = targets_by_user(held_out)
    users = np.array([u for u in range(held_out.n_users) if len(tg[u]) and cold[tg[u]].any()], dtype=np.int64)
    n_cold = int(cold.sum())
    if len(users) == 0 or n_cold == 0:
        return {
            f"cold_only_recall@{k}": float("nan"),
            f"cold_only_ndcg@{k}": float("nan"),
            f"cold_only_random_recall@{k}": float("nan"),
            "cold_only_users": 0,
            "cold_items": n_cold,
        }
    seen = [np.empty(0, dtype=np.int64)] * held_out.n_users  # cold items are unseen by definition
    top = full_ranking_topk(score_fn, users, seen, k, candidates=cold)
    targets = [tg[u][cold[tg[u]]] for u in users]
    rec, ndcg = recall_ndcg(top, targets, k)
    return {
        f"cold_only_recall@{k}": float(np.mean(rec)),
        f"cold_only_ndcg@{k}": float(np.mean(ndcg)),
        f"cold_only_random_recall@{k}": min(k, n_cold) / n_cold,
        "cold_only_users": len(users),
        "cold_items": n_cold,
    }
