"""Choosing the co-occurrence part on the internal validation split (inside ``fit``, never on test data).

:func:`select_cooccurrence` scores every (weight, l2) of the configured grids with the fused towers trained on
the fit part; the weight is relative to the spread of the fused scores (:func:`score_spread_ratio`).
"""

from __future__ import annotations

import numpy as np
import torch

from kgrec.fusion.config import RecommenderConfig
from kgrec.fusion.inputs import GraphInputs
from kgrec.fusion.itemitem import binary_matrix, item_factors, spectrum, user_factors
from kgrec.fusion.model import Towers
from kgrec.fusion.ranking import ranking_metrics, topk_scores

__all__ = ["SCALE_USERS", "score_spread_ratio", "select_cooccurrence"]

#: users sampled to measure the spread of the fused and co-occurrence scores (their ratio scales the weight)
SCALE_USERS = 512


def score_spread_ratio(u_f: torch.Tensor, i_f: torch.Tensor, u_c: torch.Tensor, i_c: torch.Tensor, seed: int) -> float:
    """``std(fused scores) / std(co-occurrence scores)`` over a fixed sample of users and all items."""
    g = np.random.default_rng(seed)
    rows = torch.from_numpy(np.sort(g.choice(len(u_f), min(SCALE_USERS, len(u_f)), replace=False)))
    sf = float((u_f[rows] @ i_f.T).std())
    sc = float((u_c[rows] @ i_c.T).std())
    return sf / sc if sc > 0 else 0.0


def select_cooccurrence(
    towers: Towers,
    inp: GraphInputs,
    targets: list[np.ndarray],
    cfg: RecommenderConfig,
    n_users: int,
    n_items: int,
) -> tuple[list[dict[str, float]], dict[str, float]]:
    """Every (weight, l2) of the co-occurrence grids scored on the internal validation split, with the
    fused towers trained on the fit part; returns ``(rows, best)`` (best by NDCG@20, ties: the smaller weight)."""
    m = cfg.model
    users = np.array([u for u, t in enumerate(targets) if len(t)], dtype=np.int64)
    x = binary_matrix(inp.pos_users, inp.pos_items, n_users, n_items)
    sigma, v = spectrum(x, m.cooc_rank, cfg.train.seed)
    u_f, i_f = towers.users.detach(), towers.items.detach()
    exclude = {r: inp.history.get(int(u), np.empty(0, dtype=np.int64)) for r, u in enumerate(users)}
    tg = [targets[u] for u in users]
    ut = torch.from_numpy(users)
    rows: list[dict[str, float]] = []

    def measure(uv: torch.Tensor, iv: torch.Tensor, w: float, l2: float) -> None:
        _, top = topk_scores(uv, iv, 20, exclude)
        r = ranking_metrics(top.numpy(), tg, 20)
        rows.append({"cooc_weight": w, "cooc_l2": l2, "val_ndcg@20": r["ndcg@20"], "val_recall@20": r["recall@20"]})

    if 0.0 in m.cooc_weights:
        measure(u_f[ut], i_f, 0.0, 0.0)  # the fused towers alone
    for l2 in m.cooc_l2:
        e = item_factors(sigma, v, l2)
        c = user_factors(x, e)
        ratio = score_spread_ratio(u_f, i_f, c, e, cfg.train.seed)
        for w in sorted(set(m.cooc_weights) - {0.0}):
            measure(torch.cat([u_f[ut], (w * ratio) * c[ut]], 1), torch.cat([i_f, e], 1), w, l2)
    best = max(rows, key=lambda r: (r["val_ndcg@20"], -r["cooc_weight"]))
    return rows, best
