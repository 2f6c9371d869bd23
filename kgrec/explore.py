"""Tables and write-back for exploring a trained model from Python or Jupyter.

- :func:`score_split`: recommendations with each score split into its structure
  (GNN) and text (BERT) parts;
- :func:`explanation_paths`: the explanation paths of many recommendations as one table;
- :func:`write_to_neo4j`: fused vectors (with their vector indexes) and top-k
  recommendations written to a Neo4j store, as ``kgrec train`` and
  ``kgrec export --to-neo4j`` do, so the queries of ``docs/queries.md`` answer.

This module sits above :mod:`kgrec.fusion` (it uses a trained
:class:`~kgrec.fusion.recommender.Recommender`); nothing in the package imports it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import pandas as pd

from kgrec.errors import KgrecError
from kgrec.fusion.recommender import Recommender

if TYPE_CHECKING:
    from kgrec.graph.store import GraphStore

log = logging.getLogger(__name__)

SPLIT_COLUMNS = ["user", "item", "title", "rank", "score", "structure", "text", "cooccurrence", "text_share"]
PATH_TABLE_COLUMNS = ["user", "item", "title", "rank", "score", "path", "path_score", "kind", "sentence"]


def score_split(rec: Recommender, recs: pd.DataFrame) -> pd.DataFrame:
    """Each recommendation's score split into a structure and a text part.

    Args:
        rec: a trained recommender.
        recs: rows with ``user`` and ``item`` (e.g. ``rec.recommend(users, k)``);
            ``rank`` and ``score`` are computed when absent.

    Returns:
        DataFrame :data:`SPLIT_COLUMNS`: ``structure + text + cooccurrence == score`` on every row (``cooccurrence``
        is 0 for a model without that part);
        ``text_share`` is ``text / (|structure| + |text|)``, between -1 and 1.

    Raises:
        UnknownIdError: a user or item the model does not know.
        KgrecError: a recommender built from vectors alone (no towers to split).
    """
    missing = [c for c in ("user", "item") if c not in recs.columns]
    if missing:
        raise KgrecError(f"recs: missing column {missing[0]!r}; expected the user and item columns of rec.recommend()")
    rows = []
    for r in recs.itertuples(index=False):
        user, item = str(r.user), str(r.item)
        att = rec.attribution(user, item)
        score = float(getattr(r, "score", rec.score(user, item)))
        rank = int(getattr(r, "rank", rec.rank(user, item)))
        denom = abs(att["structure"]) + abs(att["text"])
        rows.append(
            {
                "user": user,
                "item": item,
                "title": rec.title(item),
                "rank": rank,
                "score": score,
                "structure": att["structure"],
                "text": att["text"],
                "cooccurrence": att.get("cooccurrence", 0.0),
                "text_share": att["text"] / denom if denom > 0 else 0.0,
            }
        )
    out = pd.DataFrame(rows, columns=SPLIT_COLUMNS)
    return out.astype(
        {
            "user": "string",
            "item": "string",
            "title": "string",
            "rank": "int64",
            "score": "float64",
            "structure": "float64",
            "text": "float64",
            "cooccurrence": "float64",
            "text_share": "float64",
        }
    )


def explanation_paths(
    rec: Recommender, users: str | Sequence[str], k: int = 5, *, top: int = 3, store: GraphStore | None = None
) -> pd.DataFrame:
    """The top ``top`` explanation paths of each user's top-``k`` recommendations.

    Args:
        rec: a trained recommender.
        users: a user id or several.
        k: recommendations per user.
        top: paths per recommendation.
        store: where paths are looked up (default: the data the model was fitted on,
            or the store given to ``fit``/``load``).

    Returns:
        DataFrame :data:`PATH_TABLE_COLUMNS`, one row per path (``path`` counts from
        1 within a recommendation); a recommendation without any path has one row
        with ``path`` 0, ``kind`` ``""`` and the explanation's message as ``sentence``.
    """
    recs = rec.recommend(users, k)
    rows = []
    for r in recs.itertuples(index=False):
        e = rec.explain(r.user, r.item, store, top=top, k=k, listed=True)  # a row of the list: no rank to compute
        base = {"user": r.user, "item": r.item, "title": e.title, "rank": int(r.rank), "score": float(r.score)}
        if not e.paths:
            rows.append({**base, "path": 0, "path_score": 0.0, "kind": "", "sentence": e.message})
        for n, p in enumerate(e.paths, 1):
            rows.append({**base, "path": n, "path_score": p.score, "kind": p.kind, "sentence": p.sentence})
    out = pd.DataFrame(rows, columns=PATH_TABLE_COLUMNS)
    return out.astype(
        {
            "user": "string",
            "item": "string",
            "title": "string",
            "rank": "int64",
            "score": "float64",
            "path": "int64",
            "path_score": "float64",
            "kind": "string",
            "sentence": "string",
        }
    )


class WriteBack(NamedTuple):
    """What :func:`write_to_neo4j` wrote."""

    #: vector index name per kind: ``{"user": "kgrec_user_embedding", "item": "kgrec_item_embedding"}``
    indexes: dict[str, str]
    #: vectors written per kind
    vectors: dict[str, int]
    #: ``RECOMMENDED`` relationships written
    recommendations: int


def write_to_neo4j(rec: Recommender, store: GraphStore, k: int = 10, *, explain: bool = True) -> WriteBack:
    """Write fused vectors, vector indexes and top-``k`` recommendations into Neo4j.

    The same write-back as ``kgrec train`` (``embedding`` properties on ``User`` and
    ``Item`` nodes, cosine vector indexes ``kgrec_user_embedding`` and
    ``kgrec_item_embedding``) followed by ``kgrec export --k K --explain --to-neo4j``
    (``RECOMMENDED {rank, score, model_version, explanation}`` per user, replacing
    the user's previous ones). Idempotent.

    Args:
        rec: a model trained on the data in ``store`` (checked by fingerprint).
        store: a Neo4j store (``kgrec.open_store("bolt://…")``).
        k: recommendations written per user.
        explain: store the top path's sentence as ``explanation`` (one explanation
            query per recommendation: slower).

    Raises:
        KgrecError: ``store`` is not a Neo4j store.
        ModelMismatchError: the store holds other data than the model was trained on.
    """
    from kgrec.fusion.export import recommend_chunk
    from kgrec.fusion.writeback import write_vectors

    if not store.supports_write_back:
        raise KgrecError(f"{store.location}: write-back needs a Neo4j store (bolt:// or neo4j:// URI)")
    rec.check_store(store)
    written_vectors = write_vectors(rec, store)
    indexes = {kind: idx for kind, (idx, _) in written_vectors.items()}
    vectors = {kind: n for kind, (_, n) in written_vectors.items()}
    recs = recommend_chunk(rec, rec.vocabs.user.to_list(), k, explain=explain)
    written = store.write_recommendations(recs)
    log.info(
        "wrote %d user and %d item vectors and %d recommendations to %s",
        vectors["user"],
        vectors["item"],
        written,
        store.location,
    )
    return WriteBack(indexes, vectors, written)
