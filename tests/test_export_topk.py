"""Issue 19, defect 1: one heavy user must not shorten anybody else's list.

Every user gets ``min(k, items not seen, not excluded and among the candidates)`` rows, in the
order of a per-user brute-force reference (numpy: score descending, ties by the lower item
number), in ``export`` and in ``recommend``, whatever the other users of the chunk have seen.
Scores are dot products of small integer vectors, so they are exact (no float noise between
numpy and torch) and ties are frequent: the tie rule is checked too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kgrec.fusion.export import export
from kgrec.fusion.recommender import Recommender

N_ITEMS = 500


@pytest.fixture(scope="module")
def uneven() -> tuple[Recommender, np.ndarray, np.ndarray, list[str], list[str], dict[str, set[int]]]:
    """300 users with a few seen items, some with none or hundreds, and one who has seen 497 of 500."""
    rng = np.random.default_rng(19)
    users = [f"u{n:03d}" for n in range(300)] + ["power"]
    items = [f"i{n:03d}" for n in range(N_ITEMS)]
    U = rng.integers(-3, 4, size=(len(users), 8)).astype(np.float32)
    V = rng.integers(-3, 4, size=(N_ITEMS, 8)).astype(np.float32)
    seen: dict[str, set[int]] = {}
    for n, u in enumerate(users[:-1]):
        size = 0 if n % 50 == 0 else (250 if n % 97 == 0 else int(rng.integers(1, 6)))
        seen[u] = set(rng.choice(N_ITEMS, size, replace=False).tolist())
    seen["power"] = set(rng.choice(N_ITEMS, 497, replace=False).tolist())
    hu = np.array([users.index(u) for u in users for _ in seen[u]], dtype=np.int64)
    hi = np.array([i for u in users for i in sorted(seen[u])], dtype=np.int64)
    rec = Recommender.from_vectors(users, U, items, V, history_index=(hu, hi), model_version="uneven")
    return rec, U, V, users, items, seen


def reference(U: np.ndarray, V: np.ndarray, users: list[str], items: list[str], seen: dict[str, set[int]], k: int,
              candidates: set[int] | None = None, exclude: set[int] = frozenset()) -> pd.DataFrame:  # type: ignore[assignment]
    """Per-user brute force: every allowed item's score, sorted by score descending then item number."""
    rows = []
    for n, u in enumerate(users):
        s = V.astype(np.float64) @ U[n].astype(np.float64)
        allowed = np.array([i not in seen[u] and i not in exclude and (candidates is None or i in candidates)
                            for i in range(len(items))])
        idx = np.flatnonzero(allowed)
        order = idx[np.lexsort((idx, -s[idx]))][:k]
        rows += [(u, items[i], r, float(s[i])) for r, i in enumerate(order, 1)]
    return pd.DataFrame(rows, columns=["user", "item", "rank", "score"])


def _frame(df: pd.DataFrame) -> pd.DataFrame:
    out = df[["user", "item", "rank", "score"]].astype({"user": str, "item": str, "rank": "int64", "score": "float64"})
    return out.sort_values(["user", "rank"]).reset_index(drop=True)


@pytest.mark.parametrize("k", [10, 100000])
@pytest.mark.parametrize("restrict", ["none", "candidates", "exclude", "both"])
def test_every_user_gets_their_own_full_list(uneven, tmp_path: Path, k: int, restrict: str) -> None:
    rec, U, V, users, items, seen = uneven
    rng = np.random.default_rng(k + len(restrict))
    cand = set(rng.choice(N_ITEMS, 300, replace=False).tolist()) if restrict in ("candidates", "both") else None
    excl = set(rng.choice(N_ITEMS, 40, replace=False).tolist()) if restrict in ("exclude", "both") else set()
    cand_ids = None if cand is None else [items[i] for i in sorted(cand)] + ["not-an-item"]
    excl_ids = [items[i] for i in sorted(excl)] if excl else None
    want = _frame(reference(U, V, users, items, seen, k, cand, excl))
    # what the issue measured: a 4-item user must get 496 rows with k=100000, every user 10 with k=10
    counts = want.groupby("user").size().reindex(users, fill_value=0)
    assert counts["power"] <= 3 and counts.max() >= min(k, 250)

    out = tmp_path / "recs.parquet"
    for chunk in (1024, 64):  # all users in one chunk, and chunks of 64
        stats = export(rec, out, k, items=cand_ids, exclude=excl_ids, chunk_size=chunk, progress=False)
        got = _frame(pd.read_parquet(out))
        assert stats["rows"] == len(want)
        assert got.groupby("user").size().reindex(users, fill_value=0).tolist() == counts.tolist()
        pd.testing.assert_frame_equal(got, want)

    got = _frame(rec.recommend(users, k, items=cand_ids, exclude=excl_ids))
    pd.testing.assert_frame_equal(got, want)
    # a user asked for together with the power user keeps their whole list (kgrec recommend --user u001 --user power)
    pair = _frame(rec.recommend(["u001", "power"], k, items=cand_ids, exclude=excl_ids))
    pd.testing.assert_frame_equal(pair, want[want["user"].isin(["u001", "power"])].reset_index(drop=True))


def test_rank_agrees_with_the_top_k(uneven) -> None:
    """``rank`` of every item of a user's full list is its place in that list (same tie rule)."""
    rec, *_ = uneven
    for user in ("u001", "u097", "power"):
        full = rec.recommend(user, N_ITEMS)
        assert [rec.rank(user, i) for i in full["item"]] == full["rank"].tolist()


def test_top_items_is_a_stable_full_sort_cut_at_k() -> None:
    """The one top-k equals a stable descending sort of each whole row (ties: lower item number; -inf
    places last), on tie-heavy random scores, for k below, at and above the number of items."""
    import torch

    from kgrec.fusion.ranking import top_items

    g = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    for _ in range(200):
        n, m = int(rng.integers(1, 20)), int(rng.integers(1, 40))
        s = torch.randint(0, 5, (n, m), generator=g).float()
        s[torch.rand(n, m, generator=g) < 0.3] = float("-inf")
        k = int(rng.integers(1, 45))
        v, i = top_items(s, k)
        ref = torch.argsort(s, dim=1, descending=True, stable=True)[:, :k]
        assert torch.equal(i, ref) and torch.equal(v, s.gather(1, ref))
