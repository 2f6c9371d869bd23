"""Recommendations for a user the model has never seen (from behaviour text and/or items)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from kgrec.encoders.behaviour import behaviour_text
from kgrec.encoders.text import TextEncoder
from kgrec.errors import KgrecError
from kgrec.fusion.model import FusedModel
from kgrec.fusion.ranking import TopK, topk_scores
from kgrec.fusion.state import ModelState


class NewUsers:
    """Scores new users with a trained state; the text encoder and the torch model rebuilt from the
    weights are built on the first call and kept."""

    def __init__(self, state: ModelState, encoder: TextEncoder | None = None) -> None:
        self.state = state
        self.encoder = encoder
        self.model: FusedModel | None = None

    def recommend(self, text: str = "", history: Sequence[str] = (), k: int = 10) -> pd.DataFrame:
        """See :meth:`kgrec.fusion.recommender.Recommender.recommend_new_user`."""
        st = self.state
        known = [st.vocabs.item.number(str(i), missing="none") for i in history]
        nums = np.array([n for n in known if n is not None], dtype=np.int64)
        if not text.strip() and len(nums) == 0:
            raise KgrecError("a new user needs behaviour text or at least one known item to be recommended anything")
        if not text.strip() and len(nums):
            titles = (st.titles.get(st.vocabs.item.id(int(n))) for n in nums[::-1])
            text = behaviour_text([t for t in titles if t])
        if self.encoder is None:
            self.encoder = TextEncoder(st.config.text)
        enc = self.encoder
        if self.model is None:
            self.model = st.build_model(enc.dim)
        model = self.model
        cfg = st.config.model
        with torch.no_grad():
            t = model.text_tower(torch.from_numpy(enc.encode([text], progress=False))) if cfg.use_text else torch.zeros(1, cfg.dim)
            if text.strip() == "":
                t = torch.zeros_like(t)
            s = torch.from_numpy(st.arrays["item_struct"][nums].mean(0, keepdims=True)) if len(nums) else torch.zeros_like(t)
            g = model.gate(model.user_gate, s, t)
            f = g * s + (1 - g) * t
            if model.recent is not None and len(nums):
                last = torch.from_numpy(nums[::-1][: model.recent.window].copy()).unsqueeze(0)
                f = f + model.recent(st.items_t, last, torch.ones_like(last, dtype=torch.bool))
            scores, top = topk_scores(f, st.items_t, k, {0: nums})
        _, ranks, inums, vals = TopK(scores.numpy(), top.numpy()).flat()
        return pd.DataFrame(
            {"item": st.vocabs.item.ids[inums], "rank": ranks, "score": vals.astype(np.float64)}
        ).astype({"item": "string"})
