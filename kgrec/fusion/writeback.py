"""Write a trained model's fused vectors back to a store that supports it (Neo4j: node properties + vector indexes)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kgrec.fusion.recommender import Recommender
    from kgrec.graph.store import GraphStore


def write_vectors(rec: Recommender, store: GraphStore) -> dict[str, tuple[str, int]]:
    """Write every user's and item's fused vector to ``store``.

    Returns:
        ``{"user": (vector index name, vectors written), "item": (…)}``.

    Raises:
        StoreError: the store does not support write-back (see ``GraphStore.supports_write_back``).
    """
    out: dict[str, tuple[str, int]] = {}
    for kind in ("user", "item"):
        emb = rec.embeddings(kind)
        index = store.write_embeddings(kind, emb["id"].tolist(), emb.drop(columns="id").to_numpy(), rec.model_version)
        out[kind] = (index, len(emb))
    return out
