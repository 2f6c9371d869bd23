"""The fused model: a graph tower and a text tower joined by a learned gate.

For every user and item::

    s = GNN(graph)[node]                    structural vector  (dim)
    t = MLP(BERT(text))                     text vector        (dim)
    g = sigmoid(W [s; t] + b)               learned, per dimension and per side (user / item)
    f = g * s + (1 - g) * t                 fused vector
    score(u, i) = f_u · f_i

The score splits exactly into a structure part and a text part:
``f_u · f_i = (g_u s_u) · f_i + ((1-g_u) t_u) · f_i``, and the same on the
item side; :meth:`FusedModel.attribution` averages the two sides.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
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

    @property
    def users(self) -> torch.Tensor:
        return self.user_gate * self.user_struct + (1 - self.user_gate) * self.user_text

    @property
    def items(self) -> torch.Tensor:
        return self.item_gate * self.item_struct + (1 - self.item_gate) * self.item_text


class FusedModel(nn.Module):
    def __init__(self, layout: GraphLayout, cfg: ModelConfig, text_dim: int) -> None:
        super().__init__()
        if not (cfg.use_text or cfg.use_structure):
            raise ValueError("ModelConfig: use_text and use_structure cannot both be False")
        self.cfg = cfg
        self.layout = layout
        d = cfg.dim
        self.graph = GraphEncoder(layout, d, cfg.layers, text_dim if (cfg.item_text_in_gnn and cfg.use_structure) else 0)
        self.text_tower = nn.Sequential(nn.Linear(text_dim, d), nn.GELU(), nn.Linear(d, d))
        self.user_gate = nn.Linear(2 * d, d)
        self.item_gate = nn.Linear(2 * d, d)
        for g in (self.user_gate, self.item_gate):
            nn.init.zeros_(g.weight)
            nn.init.zeros_(g.bias)

    def _gate(self, layer: nn.Linear, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if not self.cfg.use_text:
            return torch.ones_like(s)
        if not self.cfg.use_structure:
            return torch.zeros_like(t)
        return torch.sigmoid(layer(torch.cat([s, t], 1)))

    def forward(
        self, adj: torch.Tensor, id_mask: torch.Tensor, item_text: torch.Tensor, user_text: torch.Tensor
    ) -> Towers:
        d = self.cfg.dim
        if self.cfg.use_structure:
            nodes = self.graph(adj, id_mask, item_text if self.graph.text_in is not None else None)
        else:
            nodes = torch.zeros(self.layout.num_nodes, d)
        us = nodes[self.layout.slice("user")]
        its = nodes[self.layout.slice("item")]
        ut = self.text_tower(user_text) if self.cfg.use_text else torch.zeros_like(us)
        it = self.text_tower(item_text) if self.cfg.use_text else torch.zeros_like(its)
        # a user with no behaviour text has a zero text vector; the gate sees it
        return Towers(
            nodes=nodes,
            user_struct=us,
            user_text=ut,
            user_gate=self._gate(self.user_gate, us, ut),
            item_struct=its,
            item_text=it,
            item_gate=self._gate(self.item_gate, its, it),
        )


def attribution(
    u_struct: torch.Tensor, u_text: torch.Tensor, u_gate: torch.Tensor,
    i_struct: torch.Tensor, i_text: torch.Tensor, i_gate: torch.Tensor,
) -> tuple[float, float]:
    """Split ``f_u · f_i`` into (structure, text) parts that add up to the score exactly."""
    fu = u_gate * u_struct + (1 - u_gate) * u_text
    fi = i_gate * i_struct + (1 - i_gate) * i_text
    user_side_s = float((u_gate * u_struct) @ fi)
    item_side_s = float(fu @ (i_gate * i_struct))
    score = float(fu @ fi)
    structure = 0.5 * (user_side_s + item_side_s)
    return structure, score - structure
