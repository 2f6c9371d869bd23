"""Chronological splits; the top-k and Recall/NDCG live in :mod:`kgrec.fusion.ranking` (re-exported here).

Protocol (``docs/evaluation.md``): implicit feedback; for each user with at
least ``min_interactions`` interactions, sort by time and hold out the last
``test_fraction`` as test; validation is the last ``val_fraction`` of the rest.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kgrec.fusion.ranking import ranking_metrics, recall_ndcg, topk_scores
from kgrec.loaders import schema as S

__all__ = ["chronological_split", "holdout_last", "ranking_metrics", "recall_ndcg", "topk_scores"]


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
