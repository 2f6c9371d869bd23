"""Chronological splits and top-K metrics (Recall@K, NDCG@K, coverage).

Protocol (``docs/evaluation.md``): implicit feedback; for each user with at
least ``min_interactions`` interactions, sort by time and hold out the last
``test_fraction`` as test; validation is the last ``val_fraction`` of the rest.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch

from kgrec.loaders import schema as S


def holdout_last(
    interactions: pd.DataFrame, fraction: float, min_interactions: int = 5
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split each user's time-ordered history: the last ``fraction`` (at least one) held out.

    Users with fewer than ``min_interactions`` interactions keep everything.
    Ties in time are broken by item id, so the split is deterministic.
    Returns ``(kept, held_out)``.
    """
    if fraction <= 0 or interactions.empty:
        return interactions, interactions.iloc[:0]
    df = interactions.sort_values([S.USER, S.TIMESTAMP, S.ITEM], kind="stable")
    n = df.groupby(S.USER, sort=False)[S.ITEM].transform("size").to_numpy()
    pos = df.groupby(S.USER, sort=False).cumcount().to_numpy()
    n_out = np.maximum(1, np.round(n * fraction)).astype(int)
    out = (n >= min_interactions) & (pos >= n - n_out)
    return df[~out].reset_index(drop=True), df[out].reset_index(drop=True)


def chronological_split(
    interactions: pd.DataFrame, test_fraction: float = 0.2, val_fraction: float = 0.1, min_interactions: int = 5
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``(train, validation, test)`` per the protocol above."""
    rest, test = holdout_last(interactions, test_fraction, min_interactions)
    train, val = holdout_last(rest, val_fraction, max(2, min_interactions - 1))
    return train, val, test


def topk_scores(
    user_vecs: torch.Tensor,
    item_vecs: torch.Tensor,
    k: int,
    exclude: Mapping[int, np.ndarray] | None = None,
    candidates: torch.Tensor | None = None,
    chunk: int = 2048,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` items per user by dot product, excluding each user's ``exclude`` items.

    Returns ``(scores [n, k], item numbers [n, k])``.
    """
    n_items = item_vecs.shape[0]
    k = min(k, n_items)
    all_s, all_i = [], []
    for start in range(0, user_vecs.shape[0], chunk):
        s = user_vecs[start : start + chunk] @ item_vecs.T
        if candidates is not None:
            mask = torch.full((n_items,), float("-inf"))
            mask[candidates] = 0.0
            s = s + mask
        if exclude:
            rows, cols = [], []
            for r in range(s.shape[0]):
                ex = exclude.get(start + r)
                if ex is not None and len(ex):
                    rows.append(np.full(len(ex), r))
                    cols.append(ex)
            if rows:
                s[torch.from_numpy(np.concatenate(rows)), torch.from_numpy(np.concatenate(cols))] = float("-inf")
        v, i = torch.topk(s, k, dim=1)
        all_s.append(v)
        all_i.append(i)
    return torch.cat(all_s), torch.cat(all_i)


def ranking_metrics(topk: np.ndarray, targets: list[np.ndarray], k: int) -> dict[str, float]:
    """Mean Recall@k and NDCG@k (binary relevance, ideal DCG over min(|targets|, k)).

    Args:
        topk: ``[n_users, >=k]`` recommended item numbers.
        targets: per user the held-out item numbers (users with none are skipped).
    """
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    rec, ndcg = [], []
    for row, tgt in zip(topk[:, :k], targets):
        if len(tgt) == 0:
            continue
        hit = np.isin(row, tgt)
        rec.append(hit.sum() / len(tgt))
        ideal = disc[: min(len(tgt), k)].sum()
        ndcg.append((hit * disc[: len(row)]).sum() / ideal)
    if not rec:
        return {f"recall@{k}": float("nan"), f"ndcg@{k}": float("nan"), "users": 0}
    return {f"recall@{k}": float(np.mean(rec)), f"ndcg@{k}": float(np.mean(ndcg)), "users": len(rec)}
