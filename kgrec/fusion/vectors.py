"""Building a :class:`~kgrec.fusion.state.ModelState`: from a trained forward pass, or from given vectors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from kgrec.fusion.config import RecommenderConfig
from kgrec.fusion.state import ARRAYS, HIST_COOC, INTERACTION_RECENT, ITEM_COOC, ITEM_ENCODING, USER_COOC, ModelState
from kgrec.graph.hetero import Vocabularies
from kgrec.graph.vocab import Vocab
from kgrec.loaders import schema as S
from kgrec.loaders.schema import Dataset


def tower_arrays(towers: Any) -> dict[str, np.ndarray]:
    """The saved arrays of a forward pass (recent-interest parts are zeros when the model has none)."""
    out = {}
    for name in ARRAYS:
        t = getattr(towers, name)
        out[name] = (torch.zeros_like(towers.user_struct) if t is None else t).detach().numpy().astype(np.float32)
    w = getattr(towers, "interaction_recent", None)
    if w is not None:
        out[INTERACTION_RECENT] = np.asarray(w, dtype=np.float32)
    enc = getattr(towers, "item_encoding", None)
    if enc is not None:  # user text vectors composed from these (model.user_text): a new user's are composed too
        out[ITEM_ENCODING] = np.asarray(enc, dtype=np.float32)
    uc, ic = getattr(towers, "user_cooc", None), getattr(towers, "item_cooc", None)
    if uc is not None and ic is not None:  # the co-occurrence part joins the fused vectors as an extra block
        out[USER_COOC] = uc.detach().numpy().astype(np.float32)
        out[ITEM_COOC] = ic.detach().numpy().astype(np.float32)
        hc = getattr(towers, "hist_cooc", None)
        if hc is not None and not torch.equal(hc, ic):  # the history side differs (EASE's zero diagonal)
            out[HIST_COOC] = hc.detach().numpy().astype(np.float32)
        out["users"] = np.ascontiguousarray(np.concatenate([out["users"], out[USER_COOC]], 1))
        out["items"] = np.ascontiguousarray(np.concatenate([out["items"], out[ITEM_COOC]], 1))
    return out


def connector_degrees(ds: Dataset) -> dict[str, dict[str, int]]:
    """Items per category / keyword / entity, and users per attribute value (id ``name=value``), for path
    specificity."""
    ua = ds.user_attributes
    ids = [S.attribute_id(a, v) for a, v in zip(ua[S.ATTRIBUTE], ua[S.VALUE], strict=True)]
    return {
        "category": ds.item_categories.groupby(S.CATEGORY)[S.ITEM].nunique().astype(int).to_dict(),
        "keyword": ds.item_keywords.groupby(S.KEYWORD)[S.ITEM].nunique().astype(int).to_dict(),
        "entity": ds.triples.groupby(S.ENTITY)[S.ITEM].nunique().astype(int).to_dict(),
        "attribute": ua[S.USER].groupby(ids).nunique().astype(int).to_dict() if len(ua) else {},
    }


def vocabs_from_ids(user_ids: Sequence[str], item_ids: Sequence[str]) -> Vocabularies:
    """Vocabularies of users and items only (no categories, keywords, entities)."""
    empty = Vocab("x", [])
    return Vocabularies(
        user=Vocab("user", user_ids),
        item=Vocab("item", item_ids),
        category=Vocab("category", []),
        keyword=Vocab("keyword", []),
        entity=Vocab("entity", []),
        relation=Vocab("relation", empty.to_list()),
    )


def state_from_vectors(
    config: RecommenderConfig,
    user_ids: Sequence[str],
    user_vectors: np.ndarray,
    item_ids: Sequence[str],
    item_vectors: np.ndarray,
    history: pd.DataFrame | None = None,
    titles: pd.DataFrame | None = None,
    model_version: str = "vectors",
    history_index: tuple[np.ndarray, np.ndarray] | None = None,
) -> ModelState:
    """A ranking-only state over given fused vectors (see :meth:`kgrec.fusion.recommender.Recommender.from_vectors`)."""
    uv = vocabs_from_ids(user_ids, item_ids)
    n_u, n_i = len(uv.user), len(uv.item)
    uo = np.argsort(np.asarray(user_ids, dtype=object).astype(str), kind="stable")
    io = np.argsort(np.asarray(item_ids, dtype=object).astype(str), kind="stable")
    U = np.ascontiguousarray(np.asarray(user_vectors, dtype=np.float32)[uo])
    It = np.ascontiguousarray(np.asarray(item_vectors, dtype=np.float32)[io])
    if U.shape[0] != n_u or It.shape[0] != n_i or U.shape[1] != It.shape[1]:
        raise ValueError(
            f"vectors {U.shape} / {It.shape} do not match {n_u} unique users / {n_i} unique items of one size"
        )
    none = np.zeros((0, U.shape[1]), np.float32)  # no towers: ranking only (attribution/explain need a trained model)
    if history_index is not None:
        u_rank = np.empty(n_u, dtype=np.int64)
        u_rank[uo] = np.arange(n_u)
        i_rank = np.empty(n_i, dtype=np.int64)
        i_rank[io] = np.arange(n_i)
        pu, pi = u_rank[np.asarray(history_index[0])], i_rank[np.asarray(history_index[1])]
    elif history is not None and len(history):
        pu = uv.user.numbers(history["user"].astype(str).to_numpy())
        pi = uv.item.numbers(history["item"].astype(str).to_numpy())
    else:
        pu = pi = np.empty(0, dtype=np.int64)
    items = titles if titles is not None else pd.DataFrame({S.ITEM: uv.item.ids, S.TITLE: "", S.DESCRIPTION: ""})
    return ModelState(
        config=config,
        vocabs=uv,
        arrays={"users": U, "items": It, **{k: none for k in ARRAYS if k not in ("users", "items")}},
        pos_users=pu,
        pos_items=pi,
        edge_norm=np.ones(len(pu), dtype=np.float32),
        items=items.astype(S.ITEMS_SCHEMA),
        degrees={"category": {}, "keyword": {}, "entity": {}},
        data_fingerprint="vectors",
        metrics={},
        model_version=model_version,
        state_dict={},
    )
