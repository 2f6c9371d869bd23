"""Training inputs: the graph, the interaction order and the windows a forward pass reads, built once per data set.

:func:`build_inputs` turns a :class:`~kgrec.loaders.schema.Dataset` under fixed vocabularies into a
:class:`GraphInputs` (normalised adjacency, id mask, behaviour-text vectors, the interactions in canonical
order with their tie groups); :func:`interaction_recent_weights` reads the trained recent-interest weights
back onto the interactions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from kgrec.encoders.behaviour import user_texts
from kgrec.encoders.graph import GraphLayout
from kgrec.encoders.text import TextEncoder
from kgrec.fusion.config import RecommenderConfig
from kgrec.fusion.model import FusedModel
from kgrec.fusion.ties import Window, canonical_order, group_bounds, recency_weights, window
from kgrec.graph.hetero import Vocabularies, edge_arrays
from kgrec.loaders.schema import Dataset

__all__ = ["GraphInputs", "build_inputs", "interaction_recent_weights", "window_index"]


@dataclass
class GraphInputs:
    """Everything a forward pass needs for one set of interactions."""

    adj: torch.Tensor
    id_mask: torch.Tensor
    user_text: torch.Tensor
    pos_users: np.ndarray  # interaction user numbers
    pos_items: np.ndarray  # interaction item numbers
    edge_norm: np.ndarray  # normalised adjacency value of each interaction (u -> i)
    history: dict[int, np.ndarray] = field(default_factory=dict)  # user number -> item numbers
    # the interactions are in canonical order (user, time, item number: kgrec.fusion.ties), so row p of
    # pos_users/pos_items is place p of seq_items
    seq_items: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # item numbers by user, oldest first
    seq_start: np.ndarray = field(
        default_factory=lambda: np.empty(0, np.int64)
    )  # each interaction's user's first place
    seq_gs: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # first place of each one's tie group
    seq_ge: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # end of each one's tie group
    recent_idx: torch.Tensor | None = None  # [n_users, slots] each user's newest items, newest first
    recent_mask: torch.Tensor | None = None
    recent_span: tuple[torch.Tensor, torch.Tensor] | None = None  # (lo, hi) of the tie groups in recent_idx

    def prefix(self, rows: np.ndarray, size: int) -> Window:
        """The newest items strictly earlier than each interaction in ``rows`` (ties kept whole)."""
        return window(self.seq_items, self.seq_gs, self.seq_ge, self.seq_start[rows], self.seq_gs[rows], size)

    def recent_window(self, size: int, n_users: int) -> tuple[Window, np.ndarray]:
        """Every user's newest items (their whole history's end), and the user boundaries in seq_items."""
        bounds = np.searchsorted(self.pos_users, np.arange(n_users + 1))
        return window(self.seq_items, self.seq_gs, self.seq_ge, bounds[:-1], bounds[1:], size), bounds


def window_index(seq: np.ndarray, start: np.ndarray, end: np.ndarray, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``seq[end-1], seq[end-2], …`` down to ``start`` (at most ``window``), as padded index and mask tensors:
    one position per item, for sequences without ties (training uses the tie-aware :func:`kgrec.fusion.ties.window`)."""
    pos = end[:, None] - 1 - np.arange(window)[None, :]
    mask = pos >= start[:, None]
    idx = np.where(mask, seq[np.clip(pos, 0, None)] if len(seq) else 0, 0)
    return torch.from_numpy(idx.astype(np.int64)), torch.from_numpy(mask)


def build_inputs(
    ds: Dataset,
    vocabs: Vocabularies,
    cfg: RecommenderConfig,
    encoder: TextEncoder | None,
    text_dim: int,
    progress: bool = True,
) -> GraphInputs:
    """Adjacency, id mask and user behaviour-text vectors for ``ds`` under fixed vocabularies."""
    layout = GraphLayout(vocabs.sizes())
    edges = edge_arrays(ds, vocabs)
    key = ("user", "interacts", "item")
    # canonical order: neither the file order nor the spelling of ids reaches the model (kgrec.fusion.ties)
    canon = canonical_order(edges[key]["src"], edges[key]["time"], edges[key]["dst"])
    edges[key] = ui = {k: a[canon] for k, a in edges[key].items()}
    w = recency_weights(ui["src"], ui["time"], cfg.model.recency_half_life)
    r, c, v = layout.normalised_coo(edges, w)
    adj = layout.to_csr(r, c, v)
    # the normalised weight of each interaction edge (its value in adj), for explanations:
    # normalised_coo lists the user -> item edges first, in interaction order
    edge_norm = v[: len(ui["src"])].astype(np.float32)
    mask = np.zeros(layout.num_nodes, dtype=np.float32)
    mask[ui["src"] + layout.offsets["user"]] = 1.0
    mask[ui["dst"] + layout.offsets["item"]] = 1.0
    for t in ("category", "keyword", "entity", "attribute"):
        mask[layout.slice(t)] = 1.0
    tg = edges[("user", "tagged", "keyword")]["src"]
    mask[tg + layout.offsets["user"]] = 1.0
    if encoder is not None and cfg.model.use_text:
        utext = torch.from_numpy(
            encoder.encode(user_texts(ds, vocabs), progress=progress, desc="encoding user behaviour")
        )
    else:
        utext = torch.zeros(len(vocabs.user), text_dim)
    order = np.argsort(ui["src"], kind="stable")
    users_sorted, items_sorted = ui["src"][order], ui["dst"][order]
    splits = np.flatnonzero(np.diff(users_sorted)) + 1
    history = {
        int(us[0]): it
        for us, it in zip(np.split(users_sorted, splits), np.split(items_sorted, splits), strict=True)
        if len(us)
    }
    inp = GraphInputs(adj, torch.from_numpy(mask), utext, ui["src"], ui["dst"], edge_norm, history)
    # time order of every user's interactions, ties as groups (the rows are already in that order)
    n_users = len(vocabs.user)
    bounds = np.searchsorted(ui["src"], np.arange(n_users + 1))
    inp.seq_items = ui["dst"].astype(np.int64)
    inp.seq_start = bounds[ui["src"]]
    inp.seq_gs, inp.seq_ge = group_bounds(ui["src"], ui["time"])
    if cfg.model.recent_window > 0:
        win, _ = inp.recent_window(cfg.model.recent_window, n_users)
        inp.recent_idx, inp.recent_mask, inp.recent_span = win.idx, win.mask, (win.lo, win.hi)
    return inp


def interaction_recent_weights(model: FusedModel, inp: GraphInputs, n_users: int) -> np.ndarray:
    """The recent-interest weight of every interaction (aligned with ``inp.pos_users``; 0 outside the
    window, ties sharing their positions), as the trained model pools them."""
    out = np.zeros(len(inp.pos_users), dtype=np.float32)
    if model.recent is None or len(out) == 0:
        return out
    win, bounds = inp.recent_window(model.recent.window, n_users)
    with torch.no_grad():
        w = model.recent.weights(win.mask, win.lo, win.hi).numpy()
    m = win.mask.numpy()
    place = bounds[1:, None] - 1 - np.arange(m.shape[1])[None, :]
    out[place[m]] = w[m]
    return out
