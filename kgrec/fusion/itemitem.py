"""The co-occurrence part of the score: an item-item ridge model in closed form, kept low-rank.

``s_cooc(u, i) = alpha * sum_j x_uj S_ji`` over the user's history items ``j`` (``x_uj = 1``), with

    S = V_r diag(sigma^2 / (sigma^2 + l2)) V_r^T = E E^T,   E = V_r diag(sqrt(sigma^2 / (sigma^2 + l2)))

the rank-``r`` ridge regression of the user-item matrix ``X`` on itself (a linear autoencoder, the
closed form behind EASE without its zero-diagonal constraint; a user's own items never count, they are
never recommended): ``X ~ U diag(sigma) V^T`` is a truncated SVD (``torch.svd_lowrank``: seconds for
~12k items, where EASE's dense inverse takes minutes). Because ``S = E E^T``, the part is a dot product
``c_u · e_i`` with ``c_u = alpha * sum_j x_uj e_j``: it joins the fused vectors as an extra block, so
every ranking path (top-k, export, web) stays one dot product, and each contribution
``alpha * e_j · e_i`` belongs to one history item ``j`` (the co-occurrence explanation path).
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


def user_factors(x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """``X E``: each user's sum of their history items' factors (``[n_users, r]``)."""
    return torch.sparse.mm(x, e)
