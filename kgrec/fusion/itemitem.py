"""The co-occurrence part of the score: EASE's item-item model in closed form, kept low-rank.

``s_cooc(u, i) = alpha * sum_j x_uj B_ji`` over the user's history items ``j`` (``x_uj = 1``). EASE (Steck 2019)
is the ridge regression of the user-item matrix ``X`` on itself with a zero diagonal:
``B = I - P diag(1 / diag(P))``, ``P = (X^T X + l2 I)^-1``. With a truncated SVD ``X ~ U diag(sigma) V_r^T``
(``torch.svd_lowrank``: seconds for ~12k items, where the dense inverse takes minutes and does not fit at 100k),

    P ~ (I - S) / l2,   S = V_r diag(sigma^2 / (sigma^2 + l2)) V_r^T = E E^T,   E = V_r diag(sqrt(sigma^2 / (sigma^2 + l2)))

(exact for the kept directions; a dropped direction with ``sigma^2 << l2`` adds nothing to ``S``), so off the
diagonal

    B_ji ~ S_ji / (1 - S_ii) = e_j · (d_i e_i),   d_i = 1 / (1 - |e_i|^2).

``S`` alone is the plain linear autoencoder; the zero-diagonal constraint is the scale ``d_i`` of the candidate
(measured on two data sets: it closes the gap to the exact EASE, docs/benchmarks.md). The diagonal itself never
counts: a user's own items are never recommended. The part is a dot product ``c_u · f_i`` with
``c_u = alpha * sum_j x_uj e_j`` (the history side) and ``f_i = d_i e_i`` (the candidate side): it joins the fused
vectors as an extra block, so every ranking path (top-k, export, web) stays one dot product, and each contribution
``alpha * e_j · f_i`` belongs to one history item ``j`` (the co-occurrence explanation path).
"""

from __future__ import annotations

import numpy as np
import torch


def binary_matrix(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> torch.Tensor:
    """The sparse ``[n_users, n_items]`` 0/1 matrix of the interactions (duplicates count once)."""
    idx = torch.from_numpy(np.unique(np.stack([users, items]).astype(np.int64), axis=1))
    return torch.sparse_coo_tensor(idx, torch.ones(idx.shape[1]), (n_users, n_items), check_invariants=True).coalesce()


def spectrum(x: torch.Tensor, rank: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sigma, V)`` of a rank-``rank`` truncated SVD of the sparse matrix ``x`` (deterministic for a seed)."""
    q = max(1, min(rank, *x.shape))
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        _, s, v = torch.svd_lowrank(x, q=q, niter=4)
    finally:
        torch.random.set_rng_state(gen_state)
    return s, v


def item_factors(sigma: torch.Tensor, v: torch.Tensor, l2: float) -> torch.Tensor:
    """``E = V diag(sqrt(sigma^2 / (sigma^2 + l2)))`` (``[n_items, r]``), so that ``S = E E^T``."""
    s2 = sigma.square()
    return v * (s2 / (s2 + l2)).sqrt().unsqueeze(0)


def candidate_factors(e: torch.Tensor, zero_diagonal: bool = True) -> torch.Tensor:
    """``F = diag(d) E`` with ``d_i = 1 / (1 - |e_i|^2)``: the candidate side of ``B ~ E F^T`` (``E`` itself when
    ``zero_diagonal`` is False: the plain autoencoder ``S = E E^T``). ``|e_i|^2 < 1`` always (each kept direction
    is shrunk by ``sigma^2 / (sigma^2 + l2) < 1``); it is kept at most ``1 - 1e-6`` against rounding."""
    if not zero_diagonal:
        return e
    s_ii = e.double().square().sum(1).clamp(max=1.0 - 1e-6)
    return (e.double() / (1.0 - s_ii).unsqueeze(1)).to(e.dtype)


def user_factors(x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """``X E``: each user's sum of their history items' factors (``[n_users, r]``)."""
    return torch.sparse.mm(x, e)
