"""The fused model: a graph tower and a text tower joined by a learned gate.

For every user and item::

    s = GNN(graph)[node]                    structural vector  (dim)
    t = MLP(BERT(text))                     text vector        (dim)
    g = sigmoid(W [s; t] + b)               learned, per dimension and per side (user / item)
    f = g * s + (1 - g) * t                 fused vector (items; the long-term part of users)
    r_u = P sum_k a_k f_(k-th newest item)  the user's recent interest: a learned recency
                                            profile a over their last ``recent_window`` items
    f_u = g_u * s_u + (1 - g_u) * t_u + r_u
    score(u, i) = f_u · f_i

Training predicts each interaction from the items *before* it (a causal prefix), so
the recent-interest part learns what tends to come next, not what is already there.

The score splits exactly into a structure part and a text part, because ``r_u`` is
linear in the item vectors, each of which splits into ``g s`` and ``(1-g) t``:
``f_u = [g_u s_u + P sum a g s] + [(1-g_u) t_u + P sum a (1-g) t]``;
:func:`attribution` averages the user-side and item-side splits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from kgrec.encoders.graph import GraphEncoder, GraphLayout
from kgrec.fusion.config import ModelConfig


@dataclass
class Towers:
    """Outputs of one forward pass (all ``[n, dim]``)."""

    nodes: torch.Tensor  # structural vectors of every node (shared index)
    user_struct: torch.Tensor
    user_text: torch.Tensor
    user_gate: torch.Tensor
    item_struct: torch.Tensor
    item_text: torch.Tensor
    item_gate: torch.Tensor
    user_recent_struct: torch.Tensor | None = None  # structural part of the recent interest r_u
    user_recent_text: torch.Tensor | None = None  # text part of r_u
    #: the recent-interest weight of each interaction (canonical order, numpy), set after training
    interaction_recent: object = None
    #: the co-occurrence part (kgrec.fusion.itemitem): ``user_cooc @ item_cooc.T``, set after training when chosen;
    #: ``hist_cooc`` is its history side (``user_cooc = alpha * X hist_cooc``), ``item_cooc`` its candidate side
    user_cooc: torch.Tensor | None = None
    item_cooc: torch.Tensor | None = None
    hist_cooc: torch.Tensor | None = None

    @property
    def user_base(self) -> torch.Tensor:
        """The long-term user vector ``g s + (1 - g) t`` (without recent interest)."""
        return self.user_gate * self.user_struct + (1 - self.user_gate) * self.user_text

    @property
    def users(self) -> torch.Tensor:
        f = self.user_base
        if self.user_recent_struct is not None and self.user_recent_text is not None:  # set together
            f = f + self.user_recent_struct + self.user_recent_text
        return f

    @property
    def item_struct_part(self) -> torch.Tensor:
        return self.item_gate * self.item_struct

    @property
    def item_text_part(self) -> torch.Tensor:
        return (1 - self.item_gate) * self.item_text

    @property
    def items(self) -> torch.Tensor:
        return self.item_gate * self.item_struct + (1 - self.item_gate) * self.item_text


class RecentInterest(nn.Module):
    """``r = P sum_k a_k v_k`` over the last ``window`` items ``v_k`` (k = 0 is the newest).

    ``a`` is a softmax over learned recency logits restricted to the positions a user has;
    ``P`` is a learned linear map. Linear in the item vectors, so it splits exactly.
    """

    def __init__(self, dim: int, window: int) -> None:
        super().__init__()
        self.window = window
        self.logits = nn.Parameter(-torch.arange(window, dtype=torch.float32) / max(1.0, window / 8))
        self.proj = nn.Linear(dim, dim, bias=False)
        nn.init.eye_(self.proj.weight)

    def weights(
        self, mask: torch.Tensor, lo: torch.Tensor | None = None, hi: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``[B, slots]`` weights (rows without any item are all zero).

        Without ``lo``/``hi`` slot ``k`` is newest-first position ``k``. With them (a tie-aware
        :class:`~kgrec.fusion.ties.Window`) the items of one tie group share the positions
        ``lo … hi-1`` they cover: the softmax weight of those positions is split equally among them.
        """
        if lo is None or hi is None:
            a = self.logits[: mask.shape[1]].unsqueeze(0).expand(mask.shape[0], -1).masked_fill(~mask, float("-inf"))
            return torch.nan_to_num(torch.softmax(a, 1), nan=0.0)
        n_pos = mask.sum(1, keepdim=True).clamp(max=self.window)
        pos_mask = torch.arange(self.window).unsqueeze(0) < n_pos
        a = self.logits.unsqueeze(0).expand(mask.shape[0], -1).masked_fill(~pos_mask, float("-inf"))
        p = torch.nan_to_num(torch.softmax(a, 1), nan=0.0)
        c = F.pad(torch.cumsum(p, 1), (1, 0))
        w = (c.gather(1, hi.clamp(max=self.window)) - c.gather(1, lo.clamp(max=self.window))) / (hi - lo).clamp(min=1)
        return torch.where(mask, w, torch.zeros_like(w))

    def forward(
        self,
        item_vecs: torch.Tensor,
        idx: torch.Tensor,
        mask: torch.Tensor,
        lo: torch.Tensor | None = None,
        hi: torch.Tensor | None = None,
    ) -> torch.Tensor:
        w = self.weights(mask, lo, hi)
        if idx.shape[1] == 0:
            return self.proj(torch.zeros(idx.shape[0], item_vecs.shape[1]))
        # sum_k w_k item_vecs[idx_k] without materialising [B, window, dim] (a third of a step's time)
        pooled = F.embedding_bag(idx, item_vecs, per_sample_weights=w, mode="sum")
        return self.proj(pooled)


class FusedModel(nn.Module):
    def __init__(self, layout: GraphLayout, cfg: ModelConfig, text_dim: int) -> None:
        super().__init__()
        if not (cfg.use_text or cfg.use_structure):
            raise ValueError("ModelConfig: use_text and use_structure cannot both be False")
        self.cfg = cfg
        self.layout = layout
        d = cfg.dim
        self.graph = GraphEncoder(
            layout, d, cfg.layers, text_dim if (cfg.item_text_in_gnn and cfg.use_structure) else 0
        )
        self.text_tower = nn.Sequential(nn.Linear(text_dim, d), nn.GELU(), nn.Linear(d, d))
        self.user_gate = nn.Linear(2 * d, d)
        self.item_gate = nn.Linear(2 * d, d)
        for g in (self.user_gate, self.item_gate):
            nn.init.zeros_(g.weight)
            nn.init.zeros_(g.bias)
        self.recent = RecentInterest(d, cfg.recent_window) if cfg.recent_window > 0 else None

    def text_vectors(self, encodings: torch.Tensor) -> torch.Tensor:
        """The text tower on ``[n, text_dim]`` encodings, with a zero vector for an all-zero encoding (an empty
        text: the encoder's vectors are unit length otherwise), not the tower's biases, which would be one
        vector shared by every user or item without text."""
        out = self.text_tower(encodings)
        empty = ~(encodings != 0).any(dim=1, keepdim=True)
        return out.masked_fill(empty, 0.0)

    def gate(self, layer: nn.Linear, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The fusion gate ``g`` of one side (``self.user_gate`` or ``self.item_gate``) for structural
        vectors ``s`` and text vectors ``t``: 1 without text, 0 without structure, 0.5 for ``fusion=mean``."""
        if not self.cfg.use_text:
            return torch.ones_like(s)
        if not self.cfg.use_structure:
            return torch.zeros_like(t)
        if self.cfg.fusion == "mean":
            return torch.full_like(s, 0.5)
        return torch.sigmoid(layer(torch.cat([s, t], 1)))

    def forward(
        self,
        adj: torch.Tensor,
        id_mask: torch.Tensor,
        item_text: torch.Tensor,
        user_text: torch.Tensor,
        recent_idx: torch.Tensor | None = None,
        recent_mask: torch.Tensor | None = None,
        recent_span: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> Towers:
        """All towers; with ``recent_idx``/``recent_mask`` (``[n_users, slots]``: each user's newest
        items, newest first) also every user's recent interest; ``recent_span`` = ``(lo, hi)`` of a
        tie-aware :class:`~kgrec.fusion.ties.Window` (ties share their positions)."""
        d = self.cfg.dim
        if self.cfg.use_structure:
            nodes = self.graph(adj, id_mask, item_text if self.graph.text_in is not None else None)
        else:
            nodes = torch.zeros(self.layout.num_nodes, d)
        us = nodes[self.layout.slice("user")]
        its = nodes[self.layout.slice("item")]
        ut = self.text_vectors(user_text) if self.cfg.use_text else torch.zeros_like(us)
        it = self.text_vectors(item_text) if self.cfg.use_text else torch.zeros_like(its)
        # a user with no behaviour text has a zero text vector; the gate sees it.
        # An item without interactions (a cold item: no id embedding, no users) is scored from its
        # text alone (gate 0), the content vector that training teaches to rank (content_dropout).
        item_gate = self.gate(self.item_gate, its, it)
        if self.cfg.use_text and self.cfg.use_structure:
            warm = id_mask[self.layout.slice("item")].unsqueeze(1) > 0
            item_gate = torch.where(warm, item_gate, torch.zeros_like(item_gate))
        towers = Towers(
            nodes=nodes,
            user_struct=us,
            user_text=ut,
            user_gate=self.gate(self.user_gate, us, ut),
            item_struct=its,
            item_text=it,
            item_gate=item_gate,
        )
        if self.recent is not None and recent_idx is not None and recent_mask is not None:
            lo, hi = recent_span if recent_span is not None else (None, None)
            towers.user_recent_struct = self.recent(towers.item_struct_part, recent_idx, recent_mask, lo, hi)
            towers.user_recent_text = self.recent(towers.item_text_part, recent_idx, recent_mask, lo, hi)
        return towers


def attribution(
    u_struct: torch.Tensor,
    u_text: torch.Tensor,
    u_gate: torch.Tensor,
    i_struct: torch.Tensor,
    i_text: torch.Tensor,
    i_gate: torch.Tensor,
    u_recent_struct: torch.Tensor | None = None,
    u_recent_text: torch.Tensor | None = None,
) -> tuple[float, float]:
    """Split ``f_u · f_i`` into (structure, text) parts that add up to the score exactly."""
    u_s = u_gate * u_struct
    fu = u_s + (1 - u_gate) * u_text
    if u_recent_struct is not None and u_recent_text is not None and len(u_recent_struct):
        u_s = u_s + u_recent_struct
        fu = fu + u_recent_struct + u_recent_text
    fi = i_gate * i_struct + (1 - i_gate) * i_text
    user_side_s = float(u_s @ fi)
    item_side_s = float(fu @ (i_gate * i_struct))
    score = float(fu @ fi)
    structure = 0.5 * (user_side_s + item_side_s)
    return structure, score - structure
