"""Recommendations for a user the model has never seen (from behaviour text, items and/or attributes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from kgrec.encoders.behaviour import behaviour_text
from kgrec.encoders.compose import compose
from kgrec.encoders.text import TextEncoder
from kgrec.errors import KgrecError
from kgrec.fusion.model import FusedModel
from kgrec.fusion.ranking import TopK, topk_scores
from kgrec.fusion.state import ITEM_ENCODING, ModelState
from kgrec.fusion.ties import group_bounds, window, window_share
from kgrec.loaders import schema as S
from kgrec.loaders.schema import Dataset
from kgrec.loaders.tables import band_of


class NewUsers:
    """Scores new users with a trained state; the text encoder and the torch model rebuilt from the
    weights are built on the first call and kept."""

    def __init__(self, state: ModelState, encoder: TextEncoder | None = None) -> None:
        self.state = state
        self.encoder = encoder
        self.model: FusedModel | None = None

    def attribute_numbers(self, attributes: Mapping[str, object]) -> np.ndarray:
        """Attribute node numbers of ``{name: value}`` (a number is put in its band of that attribute;
        values the model has never seen are ignored)."""
        vocab = self.state.vocabs.attribute
        out = []
        for name, value in attributes.items():
            if value is None or str(value).strip() == "":
                continue
            n = vocab.number(S.attribute_id(str(name), str(value).strip()), missing="none")
            if n is None and isinstance(value, (int, float)) and not isinstance(value, bool):
                prefix = f"{name}="
                labels = [x[len(prefix) :] for x in vocab.to_list() if x.startswith(prefix)]
                band = band_of(float(value), labels)
                n = None if band is None else vocab.number(S.attribute_id(str(name), band), missing="none")
            if n is not None:
                out.append(n)
        return np.unique(np.array(out, dtype=np.int64))

    def torch_model(self) -> FusedModel:
        """The torch model rebuilt from the state's weights (built once)."""
        if self.model is None:
            self.model = self.state.build_model(self.text_encoder().dim)
        return self.model

    def text_encoder(self) -> TextEncoder:
        """The text encoder of the state's config (built once, unless given)."""
        if self.encoder is None:
            self.encoder = TextEncoder(self.state.config.text)
        return self.encoder

    def text_vectors(self, texts: Sequence[str]) -> torch.Tensor:
        """``[n, dim]`` text-tower vectors of ``texts`` (zeros for a model without text, and for empty texts)."""
        cfg = self.state.config.model
        if not cfg.use_text or not texts:
            return torch.zeros(len(texts), cfg.dim)
        with torch.no_grad():
            return self.torch_model().text_vectors(
                torch.from_numpy(self.text_encoder().encode(list(texts), progress=False))
            )

    @property
    def composes(self) -> bool:
        """Whether the model's user text vectors are composed from item text vectors (``model.user_text``)."""
        return ITEM_ENCODING in self.state.arrays and self.state.config.model.use_text

    def composed_text_vector(self, text: str, nums: np.ndarray, times: np.ndarray | None = None) -> torch.Tensor:
        """``[1, dim]`` text-tower vector of a user with own ``text`` and items ``nums`` (oldest first; ``times``:
        their timestamps, so that tie groups share their window positions as in training), composed as in training
        (:func:`kgrec.encoders.compose.compose`)."""
        st = self.state
        size = st.config.model.compose_window
        enc = st.arrays[ITEM_ENCODING]
        nums = np.asarray(nums, dtype=np.int64)
        t = np.arange(len(nums), dtype=np.int64) if times is None else np.asarray(times, dtype=np.int64)
        gs, ge = group_bounds(np.zeros(len(nums), dtype=np.int64), t)
        win = window(nums, gs, ge, np.zeros(1, np.int64), np.full(1, len(nums), np.int64), size)
        own = np.zeros((1, enc.shape[1]), dtype=np.float32)
        if text.strip():
            own[0] = self.text_encoder().encode([text], progress=False)[0]
        chars = np.array([len(st.titles.get(i) or "") + 2 for i in st.vocabs.item.to_list()], dtype=np.float32)
        raw = compose(enc, win.idx.numpy(), window_share(win, size), chars, own, np.array([len(text)], np.float32))
        with torch.no_grad():
            return self.torch_model().text_vectors(torch.from_numpy(raw))

    def long_term(
        self, text: str, nums: np.ndarray, attrs: np.ndarray, times: np.ndarray | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(s, t, g)`` of a user known by behaviour ``text``, item numbers ``nums`` (oldest first; ``times``: their
        timestamps, for a model that composes user text vectors) and attribute numbers ``attrs``: the structural
        vector (mean of the items' and attributes' structural vectors), the text vector and the gate. A model that
        composes its user text vectors composes this one too, with ``text`` as the user's own text."""
        st = self.state
        model = self.torch_model()
        t = self.composed_text_vector(text, nums, times) if self.composes else self.text_vectors([text])
        parts = []
        if len(nums):
            parts.append(st.arrays["item_struct"][nums].mean(0, keepdims=True))
        if len(attrs):  # what one propagation step gives a user linked only to these attribute nodes
            parts.append(st.arrays["nodes"][attrs + st.node_offsets["attribute"]].mean(0, keepdims=True))
        s = torch.from_numpy(np.mean(parts, 0).astype(np.float32)) if parts else torch.zeros_like(t)
        with torch.no_grad():
            g = model.gate(model.user_gate, s, t)
        return s, t, g

    def fused(self, text: str, nums: np.ndarray, attrs: np.ndarray) -> torch.Tensor:
        """The long-term fused vector ``g s + (1 - g) t`` (``[1, dim]``) of :meth:`long_term`."""
        s, t, g = self.long_term(text, nums, attrs)
        return g * s + (1 - g) * t

    def recommend(
        self, text: str = "", history: Sequence[str] = (), k: int = 10, attributes: Mapping[str, object] | None = None
    ) -> pd.DataFrame:
        """See :meth:`kgrec.fusion.recommender.Recommender.recommend_new_user`."""
        st = self.state
        known = [st.vocabs.item.number(str(i), missing="none") for i in history]
        nums = np.array([n for n in known if n is not None], dtype=np.int64)
        attrs = self.attribute_numbers(attributes or {})
        if not text.strip() and len(nums) == 0 and len(attrs) == 0:
            raise KgrecError(
                "a new user needs behaviour text, at least one known item or at least one known attribute "
                "value to be recommended anything"
            )
        if not text.strip() and len(nums) and not self.composes:
            titles = (st.titles.get(st.vocabs.item.id(int(n))) for n in nums[::-1])
            text = behaviour_text([t for t in titles if t])
        f = self.fused(text, nums, attrs)
        model = self.torch_model()
        with torch.no_grad():
            if model.recent is not None and len(nums):
                last = torch.from_numpy(nums[::-1][: model.recent.window].copy()).unsqueeze(0)
                f = f + model.recent(
                    st.items_t[:, : st.config.model.dim], last, torch.ones_like(last, dtype=torch.bool)
                )
            f = torch.cat([f, torch.from_numpy(st.cooc_user(nums))], 1)  # the co-occurrence block (empty without one)
            scores, top = topk_scores(f, st.items_t, k, {0: nums})
        _, ranks, inums, vals = TopK(scores.numpy(), top.numpy()).flat()
        return pd.DataFrame(
            {"item": st.vocabs.item.ids[inums], "rank": ranks, "score": vals.astype(np.float64)}
        ).astype({"item": "string"})


def attribute_reasons(
    state: ModelState, ds: Dataset, item: str, numbers: np.ndarray, lang: str | None = None
) -> pd.DataFrame:
    """Why ``item`` suits a new user with attribute node ``numbers``: per attribute value that at least one user who
    chose the item holds, how many such users there are and the sentence of an ``attribute`` path, strongest first.

    The strength is the attribute path's raw weight in :mod:`kgrec.fusion.explain` for a user without history:
    ``max(0, cos(z_a, z_i)) * (1 + log((1 + U) / (1 + n_a)))``, the GNN's structural vectors of the value and the item
    times the value's specificity (``n_a`` of the model's ``U`` users hold it), so a value nearly everybody shares
    (a gender) does not come first because many of its holders chose a popular item.

    Returns:
        DataFrame ``attribute, value, users, strength, sentence`` (strength descending, then users).
    """
    import math

    from kgrec.fusion.explanation import sentence
    from kgrec.messages import messages

    chose = set(ds.interactions.loc[ds.interactions[S.ITEM] == str(item), S.USER].tolist())
    ua = ds.user_attributes
    m = messages(lang)
    verb = m.verb(state.config.explain.interaction_verb)
    nodes, off = state.arrays["nodes"], state.node_offsets
    z_i = nodes[off["item"] + state.item_number(str(item))]
    degrees, n_users = state.degrees.get("attribute", {}), len(state.vocabs.user)
    rows = []
    for num, ident in zip(numbers.tolist(), state.vocabs.attribute.ids[numbers].tolist(), strict=True):
        name, value = S.split_attribute_id(ident)
        holders = ua.loc[(ua[S.ATTRIBUTE] == name) & (ua[S.VALUE] == value), S.USER]
        n = int(holders.isin(chose).sum())
        if n:
            z_a = nodes[off["attribute"] + num]
            cos = float(z_a @ z_i) / max(float(np.linalg.norm(z_a) * np.linalg.norm(z_i)), 1e-12)
            spec = 1.0 + math.log((1 + n_users) / (1 + degrees.get(ident, 0)))
            text = sentence("attribute", verb, "", ident, state.title(str(item)), lang=m.lang)
            rows.append((name, value, n, max(cos, 0.0) * spec, text))
    df = pd.DataFrame(rows, columns=["attribute", "value", "users", "strength", "sentence"])
    return df.sort_values(
        ["strength", "users", "attribute"], ascending=[False, False, True], kind="stable"
    ).reset_index(drop=True)
