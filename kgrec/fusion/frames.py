"""DataFrames at the edge: the result tables of :class:`~kgrec.fusion.recommender.Recommender`, built from numbers.

Every list has the columns ``<who>, item, title, rank, score`` (string ids, rank from 1, best first).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from kgrec.fusion.ranking import TopK
from kgrec.fusion.state import ModelState

__all__ = ["label_frame", "similar_frame", "topk_frame"]


def _titles(state: ModelState, items: pd.Series) -> pd.api.extensions.ExtensionArray:
    return pd.array([state.title(i) for i in items.tolist()], dtype="string")


def topk_frame(
    state: ModelState, user_ids: Sequence[str], top: TopK, promoted: np.ndarray | None = None
) -> pd.DataFrame:
    """``user, item, title, rank, score`` of ``top`` (rows in the order of ``user_ids``); with ``promoted`` (the
    re-ranker's ``[n_users, w]`` flags) a boolean column ``promoted`` too."""
    rows, ranks, inums, scores = top.flat()
    df = pd.DataFrame(
        {
            "user": np.array(list(user_ids), dtype=object)[rows],
            "item": state.vocabs.item.ids[inums],
            "rank": ranks,
            "score": scores.astype(np.float64),
        }
    ).astype({"user": "string", "item": "string"})
    df.insert(2, "title", _titles(state, df["item"]))
    if promoted is not None:
        df["promoted"] = promoted[top.valid]
    return df


def label_frame(state: ModelState, items: pd.DataFrame, user: str | None) -> pd.DataFrame:
    """An ``item, rank, score`` frame with a constant ``user`` label (``<NA>`` for None) and the titles added."""
    df = items[["item", "rank", "score"]].copy()
    df.insert(0, "user", pd.array([user] * len(df), dtype="string"))
    df.insert(2, "title", _titles(state, df["item"]))
    return df


def similar_frame(state: ModelState, item: str, order: np.ndarray, cos: np.ndarray) -> pd.DataFrame:
    """``similar_to, item, title, rank, score`` of the item numbers ``order`` with their cosines ``cos``."""
    ids = state.vocabs.item.ids[order]
    n = len(order)
    df = pd.DataFrame(
        {
            "similar_to": pd.array([item] * n, dtype="string"),
            "item": pd.array(ids, dtype="string"),
            "rank": np.arange(1, n + 1, dtype=np.int64),
            "score": cos,
        }
    )
    df.insert(2, "title", _titles(state, df["item"]))
    return df
