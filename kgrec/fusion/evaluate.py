"""Chronological splits; the top-k and Recall/NDCG live in :mod:`kgrec.fusion.ranking` (re-exported here).

Protocol (``docs/evaluation.md``): implicit feedback; for each user with at
least ``min_interactions`` interactions, sort by time and hold out the last
``test_fraction`` as test; validation is the last ``val_fraction`` of the rest.
Interactions of one user that share a timestamp (a *tie group*, e.g. one basket
or one month) are never cut: a group is held out whole or kept whole
(:func:`kgrec.fusion.ties.holdout_newest_groups`), so no split treats the order
of tied rows (by item id or by file order) as time.
"""

from __future__ import annotations

import pandas as pd

from kgrec.fusion.ranking import ranking_metrics, recall_ndcg, topk_scores
from kgrec.fusion.ties import holdout_newest_groups

__all__ = ["chronological_split", "holdout_last", "ranking_metrics", "recall_ndcg", "topk_scores"]


def holdout_last(
    interactions: pd.DataFrame, fraction: float, min_interactions: int = 5
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split each user's time-ordered history: about the last ``fraction`` held out, whole tie groups only.

    A tie group (one user's interactions at one timestamp) is held out when more than half of it lies among
    the user's newest ``max(1, round(n * fraction))`` interactions; a user keeps at least one group, and users
    with fewer than ``min_interactions`` interactions keep everything. The result does not depend on the row
    order or on how ids sort. Returns ``(kept, held_out)``.
    """
    return holdout_newest_groups(interactions, fraction, min_interactions)


def chronological_split(
    interactions: pd.DataFrame, test_fraction: float = 0.2, val_fraction: float = 0.1, min_interactions: int = 5
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``(train, validation, test)`` per the protocol above."""
    rest, test = holdout_last(interactions, test_fraction, min_interactions)
    train, val = holdout_last(rest, val_fraction, max(2, min_interactions - 1))
    return train, val, test
