"""Beyond-accuracy measures of top-k lists: intra-list diversity, novelty, long-tail share, exposure Gini, coverage.

Definitions (``docs/evaluation.md``, section "Beyond accuracy"). ``top`` is ``[n_users, >= k]`` item
numbers, best first; places holding ``-1`` are empty (a user with fewer items left) and are skipped.
Popularity always comes from *fit* (the data the model was trained on), never from the held-out part.

- ``ild_categories@k``: mean over users of the mean over pairs ``(i, j)`` of the list of ``1 − Jaccard(C_i, C_j)``
  (``C_i``: item ``i``'s category set; two empty sets count as equal, distance 0);
- ``ild_vectors@k``: the same with ``1 − cos(v_i, v_j)`` of given item vectors;
- ``novelty@k``: mean over users and places of ``−log2((users_i + 1) / (n_users + 1))``, ``users_i`` the
  number of distinct users of item ``i`` in fit (add-one, so an item nobody used has a finite value);
- ``long_tail@k``: share of recommended places whose item is not in the *short head*: the most popular
  items (by interactions in fit, ties by item number) that together make up 80% of fit's interactions;
- ``gini@k``: Gini coefficient of the exposure counts (times recommended over all lists) of *all* items,
  ``Σ_r (2r − n − 1) x_(r) / (n Σ x)`` with ``x`` sorted ascending, ``r`` from 1 (0: equal exposure, → 1: one item);
- ``coverage@k``: share of all items in at least one list.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from kgrec.evaluation.split import Interactions
from kgrec.fusion.rerank import category_matrix  # noqa: F401 - re-exported: the benchmark and tests import it from here

#: share of fit's interactions the short head holds
SHORT_HEAD_SHARE = 0.8
#: the measures, by key (without ``@k``), in table order
MEASURES = ("ild_categories", "ild_vectors", "novelty", "long_tail", "gini", "coverage")


def _lists(top: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(top)[:, :k].astype(np.int64)
    return t, t >= 0


def _pairwise_mean(sim: torch.Tensor, valid: torch.Tensor) -> np.ndarray:
    """Per list: mean over its pairs of ``1 − sim`` (NaN for lists with fewer than 2 items)."""
    pair = valid.unsqueeze(2) & valid.unsqueeze(1)
    pair &= ~torch.eye(valid.shape[1], dtype=torch.bool).unsqueeze(0)
    n = pair.sum((1, 2)).double()
    tot = torch.where(pair, 1.0 - sim.double(), 0.0).sum((1, 2))
    return torch.where(n > 0, tot / n.clamp_min(1), torch.nan).numpy()


def ild_vectors(top: np.ndarray, vectors: np.ndarray, k: int = 20, chunk: int = 1024) -> float:
    """Mean intra-list distance ``1 − cos`` over the users' lists (vectors by item number)."""
    t, ok = _lists(top, k)
    v = torch.as_tensor(np.asarray(vectors, dtype=np.float32))
    v = v / v.norm(dim=1, keepdim=True).clamp_min(1e-12)
    per = []
    for s in range(0, len(t), chunk):
        x = v[torch.from_numpy(np.where(ok[s : s + chunk], t[s : s + chunk], 0))]
        per.append(_pairwise_mean(torch.bmm(x, x.transpose(1, 2)), torch.from_numpy(ok[s : s + chunk])))
    per_user = np.concatenate(per) if per else np.empty(0)
    return float(np.nanmean(per_user)) if np.isfinite(per_user).any() else float("nan")


def ild_categories(top: np.ndarray, categories: np.ndarray, k: int = 20, chunk: int = 1024) -> float:
    """Mean intra-list distance ``1 − Jaccard`` of the category sets (``categories``: :func:`category_matrix`)."""
    t, ok = _lists(top, k)
    c = torch.as_tensor(np.asarray(categories, dtype=np.float32))
    per = []
    for s in range(0, len(t), chunk):
        x = c[torch.from_numpy(np.where(ok[s : s + chunk], t[s : s + chunk], 0))]
        inter = torch.bmm(x, x.transpose(1, 2))
        size = x.sum(2)
        union = size.unsqueeze(2) + size.unsqueeze(1) - inter
        jac = torch.where(union > 0, inter / union.clamp_min(1e-12), 1.0)
        per.append(_pairwise_mean(jac, torch.from_numpy(ok[s : s + chunk])))
    per_user = np.concatenate(per) if per else np.empty(0)
    return float(np.nanmean(per_user)) if np.isfinite(per_user).any() else float("nan")


def item_users(fit: Interactions) -> np.ndarray:
    """Distinct users of each item in ``fit``."""
    pairs = np.unique(np.stack([fit.users, fit.items]), axis=1) if len(fit) else np.zeros((2, 0), dtype=np.int64)
    return np.bincount(pairs[1], minlength=fit.n_items)


def novelty(top: np.ndarray, fit: Interactions, k: int = 20) -> float:
    """Mean self-information ``−log2((users_i + 1) / (n_users + 1))`` of the recommended places."""
    t, ok = _lists(top, k)
    if not ok.any():
        return float("nan")
    info = -np.log2((item_users(fit) + 1.0) / (fit.n_users + 1.0))
    return float(info[t[ok]].mean())


def short_head(fit: Interactions, share: float = SHORT_HEAD_SHARE) -> np.ndarray:
    """Boolean mask of the most popular items (interactions in ``fit``, ties by item number) that together
    hold ``share`` of fit's interactions (the item that crosses the line included)."""
    counts = np.bincount(fit.items, minlength=fit.n_items)
    head = np.zeros(fit.n_items, dtype=bool)
    total = counts.sum()
    if total == 0:
        return head
    order = np.lexsort((np.arange(fit.n_items), -counts))
    cum = np.cumsum(counts[order])
    n_head = int(np.searchsorted(cum, share * total, side="left")) + 1
    head[order[:n_head]] = True
    return head


def long_tail_share(top: np.ndarray, fit: Interactions, k: int = 20) -> float:
    """Share of recommended places holding an item outside :func:`short_head`."""
    t, ok = _lists(top, k)
    if not ok.any():
        return float("nan")
    return float((~short_head(fit)[t[ok]]).mean())


def exposure_gini(top: np.ndarray, n_items: int, k: int = 20) -> float:
    """Gini coefficient of how often each of the ``n_items`` items is recommended (items never shown count as 0)."""
    t, ok = _lists(top, k)
    x = np.sort(np.bincount(t[ok], minlength=n_items).astype(np.float64))
    if x.sum() == 0 or n_items == 0:
        return float("nan")
    r = np.arange(1, n_items + 1)
    return float(((2 * r - n_items - 1) * x).sum() / (n_items * x.sum()))


def coverage(top: np.ndarray, n_items: int, k: int = 20) -> float:
    """Share of the ``n_items`` items that appear in at least one list."""
    t, ok = _lists(top, k)
    return float(len(np.unique(t[ok])) / n_items) if n_items else float("nan")


def beyond_accuracy(
    top: np.ndarray,
    fit: Interactions,
    k: int = 20,
    *,
    categories: np.ndarray | None = None,
    vectors: np.ndarray | None = None,
) -> dict[str, float]:
    """All measures of the lists ``top`` as ``{"<measure>@k": value}``; NaN for a measure whose input is missing."""
    return {
        f"ild_categories@{k}": ild_categories(top, categories, k) if categories is not None else float("nan"),
        f"ild_vectors@{k}": ild_vectors(top, vectors, k) if vectors is not None else float("nan"),
        f"novelty@{k}": novelty(top, fit, k),
        f"long_tail@{k}": long_tail_share(top, fit, k),
        f"gini@{k}": exposure_gini(top, fit.n_items, k),
        f"coverage@{k}": coverage(top, fit.n_items, k),
    }


def beyond_table(summary: pd.DataFrame, k: int = 20) -> pd.DataFrame:
    """One row per model of a benchmark summary (``BenchmarkResult.summary()``): the measures' means as text."""
    out = pd.DataFrame({"model": summary["model"]})
    for m in ("ndcg", *MEASURES):
        col = f"{m}@{k}_mean"
        if col in summary.columns:
            out[f"{m}@{k}"] = summary[col].map(lambda v: "" if not np.isfinite(v) else f"{v:.3f}")
    return out
