"""Choosing the co-occurrence part on the internal validation split (inside ``fit``, never on test data).

:func:`select_cooccurrence` scores every (weight, l2) of the configured grids with the fused towers trained on
the fit part; the weight is relative to the spread of the fused scores (:func:`score_spread_ratio`).
"""

from __future__ import annotations

import numpy as np
import torch

from kgrec.fusion.config import RecommenderConfig
from kgrec.fusion.inputs import GraphInputs
from kgrec.fusion.itemitem import binary_matrix, candidate_factors, item_factors, spectrum, user_factors
from kgrec.fusion.model import Towers
from kgrec.fusion.ranking import mask_items, ranking_metrics, top_items

__all__ = [
    "SCALE_USERS",
    "score_rows",
    "score_spread_ratio",
    "select_cooccurrence",
    "selection_split",
    "validation_users",
]

#: users sampled to measure the spread of the fused and co-occurrence scores (their ratio scales the weight)
SCALE_USERS = 512
#: floats in one matrix of scores (users x all items) while validating: 64 M floats = 256 MB
SCORE_BUDGET = 1 << 26


def score_spread_ratio(u_f: torch.Tensor, i_f: torch.Tensor, u_c: torch.Tensor, i_c: torch.Tensor, seed: int) -> float:
    """``std(fused scores) / std(co-occurrence scores)`` over a fixed sample of users and all items."""
    g = np.random.default_rng(seed)
    rows = torch.from_numpy(np.sort(g.choice(len(u_f), min(SCALE_USERS, len(u_f)), replace=False)))
    sf = float((u_f[rows] @ i_f.T).std())
    sc = float((u_c[rows] @ i_c.T).std())
    return sf / sc if sc > 0 else 0.0


def validation_users(targets: list[np.ndarray], cap: int | None, seed: int) -> np.ndarray:
    """The user numbers validation scores: those with held-out items, at most ``cap`` of them (a sample fixed by
    ``seed``, in ascending order; every one when ``cap`` is None or not smaller)."""
    users = np.array([u for u, t in enumerate(targets) if len(t)], dtype=np.int64)
    if cap is None or len(users) <= cap:
        return users
    return np.sort(np.random.default_rng(seed).choice(users, cap, replace=False))


def selection_split(
    targets: list[np.ndarray], share: float, seed: int, min_users: int = 1
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``(stopping, selection)``: the held-out items of ``targets`` split by user, a seeded ``share`` of the users
    with held-out items for the selection, the others for early stopping (each list empty for the other's users).

    Early stopping picks the towers' epoch by their validation NDCG, which makes that figure optimistic on the users
    it was picked on; a grid that weighs the towers against the co-occurrence part (not tuned there) on the same
    users then gives the towers too much weight. Disjoint users remove that bias. ``share = 0``, or a part with fewer
    than ``min_users`` users (too noisy a measure on its own): both lists are ``targets``."""
    users = np.array([u for u, t in enumerate(targets) if len(t)], dtype=np.int64)
    n_sel = int(round(share * len(users)))
    if share <= 0 or min(n_sel, len(users) - n_sel) < max(1, min_users):
        return targets, targets
    pick = np.zeros(len(targets), dtype=bool)
    pick[np.random.default_rng(seed + 7919).choice(users, n_sel, replace=False)] = True
    empty = np.empty(0, dtype=np.int64)
    stop = [empty if pick[u] else t for u, t in enumerate(targets)]
    sel = [t if pick[u] else empty for u, t in enumerate(targets)]
    return stop, sel


def score_rows(n_items: int, budget: int = SCORE_BUDGET) -> int:
    """Users scored against all ``n_items`` at a time, so that one score matrix holds at most ``budget`` floats."""
    return max(1, min(2048, budget // max(n_items, 1)))


def select_cooccurrence(
    towers: Towers,
    inp: GraphInputs,
    targets: list[np.ndarray],
    cfg: RecommenderConfig,
    n_users: int,
    n_items: int,
) -> tuple[list[dict[str, float]], dict[str, float]]:
    """Every (weight, l2, form) of the co-occurrence grids scored on the internal validation split, with the
    fused towers trained on the fit part; returns ``(rows, best)`` (best by NDCG@20; ties: the smaller weight,
    then the form listed first in ``model.cooc_zero_diagonal``).

    The score of a grid point is ``u_f . i_f + w * ratio * (c_u . f_i)`` (``f_i``: the candidate side of the form):
    per chunk of users the fused scores are computed once and the co-occurrence scores once per (l2, form), each
    weight only adds them (not one product over the joined vectors per grid point, which cost as many full products
    as there are grid points)."""
    m = cfg.model
    users = validation_users(targets, cfg.train.val_users, cfg.train.seed)
    x = binary_matrix(inp.pos_users, inp.pos_items, n_users, n_items)
    sigma, v = spectrum(x, m.cooc_rank, cfg.train.seed)
    u_f, i_f = towers.users.detach(), towers.items.detach()
    forms = list(dict.fromkeys(m.cooc_zero_diagonal))
    parts = []  # per (l2, form): (l2, form, candidate factors, user factors of the sample, spread ratio)
    for l2 in m.cooc_l2:
        e = item_factors(sigma, v, l2)
        c = user_factors(x, e)
        c_s = c[torch.from_numpy(users)]
        for zero in forms:
            f = candidate_factors(e, zero)
            parts.append((l2, zero, f, c_s, score_spread_ratio(u_f, i_f, c, f, cfg.train.seed)))
    weights = sorted(set(m.cooc_weights) - {0.0})
    off: list[tuple[float, float, bool]] = [(0.0, 0.0, forms[0])] if 0.0 in m.cooc_weights else []
    grid = off + [(w, l2, zero) for l2, zero, *_ in parts for w in weights]
    tops: dict[tuple[float, float, bool], list[torch.Tensor]] = {g: [] for g in grid}
    step = score_rows(n_items)
    for start in range(0, len(users), step):
        rows_u = users[start : start + step]
        base = u_f[torch.from_numpy(rows_u)] @ i_f.T
        mask_items(base, [inp.seen(int(u)) for u in rows_u])  # -inf at every grid point: -inf + finite is -inf
        for g in off:
            tops[g].append(top_items(base, 20)[1])  # the fused towers alone
        for l2, zero, f, c_s, ratio in parts:
            sc = c_s[start : start + step] @ f.T
            for w in weights:
                tops[(w, l2, zero)].append(top_items(base + (w * ratio) * sc, 20)[1])
    tg = [targets[u] for u in users]
    rows: list[dict[str, float]] = []
    for g in grid:
        w, l2, zero = g
        top = torch.cat(tops[g]) if tops[g] else torch.zeros((0, 20), dtype=torch.long)
        met = ranking_metrics(top.numpy(), tg, 20)
        rows.append(
            {
                "cooc_weight": w,
                "cooc_l2": l2,
                "cooc_zero_diagonal": zero,
                "val_ndcg@20": met["ndcg@20"],
                "val_recall@20": met["recall@20"],
            }
        )
    best = max(rows, key=lambda r: (r["val_ndcg@20"], -r["cooc_weight"], -forms.index(bool(r["cooc_zero_diagonal"]))))
    return rows, best
