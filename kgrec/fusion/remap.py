"""A model state on new vocabularies: rows kept by id, new ids get new rows, dropped ids leave no trace.

:func:`materialize` turns a state (a trained one, or the live state of :mod:`kgrec.fusion.live` with its rewritten
histories and grown users and items) into a plain :class:`~kgrec.fusion.state.ModelState` on sorted vocabularies
without the users in ``drop_users``: every per-user and per-item array, the node vectors, each node-indexed torch
weight (the GNN's id embedding) and the histories are rebuilt, so a saved copy holds nothing of a dropped user
(``kgrec forget``) and a warm start (:mod:`kgrec.fusion.warm`) finds a row for every user and item of the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import torch

from kgrec.encoders.graph import GraphLayout
from kgrec.fusion.persist import HIST_COOC, INTERACTION_RECENT, ITEM_COOC, ITEM_ENCODING, USER_COOC
from kgrec.fusion.state import ModelState
from kgrec.graph.hetero import NODE_TYPES, Vocabularies
from kgrec.graph.vocab import Vocab

__all__ = ["ITEM_ARRAYS", "USER_ARRAYS", "materialize", "node_take", "remap_rows", "remap_weights", "trained_node_ids"]

#: per-user arrays (one row per user) and per-item arrays of a state
USER_ARRAYS = ("users", "user_struct", "user_text", "user_gate", "user_recent_struct", "user_recent_text", USER_COOC)
ITEM_ARRAYS = ("items", "item_struct", "item_text", "item_gate", ITEM_COOC, HIST_COOC, ITEM_ENCODING)


def remap_rows(a: np.ndarray | torch.Tensor, take: np.ndarray) -> Any:
    """Rows ``take`` of ``a`` (``-1``: a new row of zeros)."""
    if isinstance(a, torch.Tensor):
        out_t = torch.zeros((len(take), *a.shape[1:]), dtype=a.dtype)
        keep_t = torch.from_numpy(take >= 0)
        out_t[keep_t] = a[torch.from_numpy(take[take >= 0])]
        return out_t
    out = np.zeros((len(take), *a.shape[1:]), dtype=a.dtype)
    out[take >= 0] = a[take[take >= 0]]
    return out


def materialize(
    state: ModelState,
    *,
    drop_users: Iterable[str] = (),
    data_fingerprint: str | None = None,
    model_version: str | None = None,
    metrics: dict[str, Any] | None = None,
) -> ModelState:
    """A plain state with ``state``'s rows and histories (as :meth:`ModelState.history` gives them) on sorted
    vocabularies, without ``drop_users``.

    Args:
        data_fingerprint: the fingerprint of the data it now stands for (default: unchanged).
        model_version: a new version stamp (default: unchanged).
        metrics: replaces the metrics (default: unchanged).
    """
    drop = set(map(str, drop_users))
    old_u, old_i = state.vocabs.user, state.vocabs.item
    users = Vocab("user", [u for u in old_u.to_list() if u not in drop])
    items = Vocab("item", old_i.to_list())
    up = old_u.numbers(users.to_list())  # old number of each new user number
    ip = old_i.numbers(items.to_list())
    inv_i = np.empty(len(old_i), dtype=np.int64)
    inv_i[ip] = np.arange(len(ip))
    vocabs = replace(state.vocabs, user=users, item=items)

    arrays = dict(state.arrays)
    for name in USER_ARRAYS:
        if name in arrays:
            arrays[name] = remap_rows(arrays[name], up)
    for name in ITEM_ARRAYS:
        if name in arrays:
            arrays[name] = remap_rows(arrays[name], ip)

    # node-indexed parts, by id: the layout the weights were trained with to the new one
    take = node_take(trained_node_ids(state), vocabs)
    new_layout = GraphLayout(vocabs.sizes())
    nodes = remap_rows(arrays["nodes"], take)
    ublk, iblk = new_layout.slice("user"), new_layout.slice("item")
    grown_u, grown_i = take[ublk] < 0, take[iblk] < 0
    nodes[ublk][grown_u] = arrays["user_struct"][grown_u]  # users and items new since training: their own vectors
    nodes[iblk][grown_i] = arrays["item_struct"][grown_i]
    arrays["nodes"] = nodes
    state_dict = remap_weights(state, vocabs)

    # histories, in the new numbers (each user's oldest first, as the state gives them)
    hist = [state.history(int(o)) for o in up.tolist()]
    recent = [state.recent_weights(int(o)) for o in up.tolist()]
    lens = np.array([len(h[0]) for h in hist], dtype=np.int64)
    pos_users = np.repeat(np.arange(len(users), dtype=np.int64), lens)
    cat = lambda parts, dt: np.concatenate(parts).astype(dt) if parts else np.empty(0, dt)  # noqa: E731 - local
    pos_items = inv_i[cat([h[0] for h in hist], np.int64)]
    edge_norm = cat([h[1] for h in hist], np.float32)
    arrays[INTERACTION_RECENT] = cat(recent, np.float32)
    return ModelState(
        config=state.config,
        vocabs=vocabs,
        arrays=arrays,
        pos_users=pos_users,
        pos_items=pos_items,
        edge_norm=edge_norm,
        items=state.items_table,
        degrees=state.degrees,
        data_fingerprint=data_fingerprint or state.data_fingerprint,
        metrics=state.metrics if metrics is None else metrics,
        model_version=model_version or state.model_version,
        state_dict=state_dict,
    )


def trained_node_ids(state: ModelState) -> dict[str, list[str]]:
    """The ids of the nodes the state's node vectors and weights were built with, per node type (a live state
    keeps its base's nodes: the first ids of its grown vocabularies)."""
    offs = state.node_offsets
    types = sorted(offs, key=lambda t: offs[t])
    total = len(state.arrays["nodes"])
    sizes = {t: (offs[types[n + 1]] if n + 1 < len(types) else total) - offs[t] for n, t in enumerate(types)}
    return {t: state.vocabs.of(t).to_list()[: sizes[t]] for t in NODE_TYPES}


def node_take(old_ids: Mapping[str, Sequence[str]], new: Vocabularies) -> np.ndarray:
    """For every node of ``new``'s layout, its row in the layout of ``old_ids`` (``-1``: a node it did not have)."""
    old = GraphLayout({t: len(old_ids[t]) for t in NODE_TYPES})
    lay = GraphLayout(new.sizes())
    take = np.full(lay.num_nodes, -1, dtype=np.int64)
    for t in NODE_TYPES:
        pos = pd.Index(list(old_ids[t]), dtype=object).get_indexer(new.of(t).to_list())
        take[lay.slice(t)] = np.where(pos >= 0, pos + old.offsets[t], -1)
    return take


def remap_weights(state: ModelState, vocabs: Vocabularies) -> dict[str, torch.Tensor]:
    """The state's torch weights for the node layout of ``vocabs``: every node-indexed tensor (the GNN's id
    embedding) keeps the rows of the ids it had, gets zero rows for new ids and loses those of dropped ids."""
    take = node_take(trained_node_ids(state), vocabs)
    n_old = len(state.arrays["nodes"])
    return {k: (remap_rows(v, take) if v.ndim and v.shape[0] == n_old else v) for k, v in state.state_dict.items()}
