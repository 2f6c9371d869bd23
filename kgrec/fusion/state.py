"""The trained model state: everything a fitted model knows, at the level of numbers.

:class:`ModelState` holds the vocabularies, the saved vectors, each user's history (CSR), the
weights, the items table, connector degrees, metrics and the data fingerprint, and saves and
loads them. Its methods take user and item *numbers*: ids become numbers once, at the edge
(:class:`kgrec.fusion.recommender.Recommender`, the export, the web service), and everything
behind it (ranking, explanations, faithfulness) reads this public interface.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from kgrec.encoders.graph import GraphLayout
from kgrec.errors import KgrecError, UnknownIdError
from kgrec.fusion.config import RecommenderConfig
from kgrec.fusion.model import FusedModel, attribution
from kgrec.fusion.persist import (
    ARRAYS,
    CHECKSUMS,
    FORMAT_VERSION,
    HIST_COOC,
    INTERACTION_RECENT,
    ITEM_COOC,
    ITEM_ENCODING,
    OPTIONAL_ARRAYS,
    USER_COOC,
    read_model_dir,
    verify,
    write_model_dir,
)
from kgrec.fusion.ranking import TopK, rank_in, topk_scores
from kgrec.graph.hetero import Vocabularies
from kgrec.loaders import schema as S

__all__ = [
    "ARRAYS",
    "CHECKSUMS",
    "FORMAT_VERSION",
    "HIST_COOC",
    "INTERACTION_RECENT",
    "ITEM_COOC",
    "ITEM_ENCODING",
    "OPTIONAL_ARRAYS",
    "USER_COOC",
    "ModelState",
    "similarity_vectors",
]


def similarity_vectors(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """The item vectors "alike" is measured with (the re-ranker's MMR by vectors, ILD by vectors): the fused item
    vectors ``v_i``, i.e. ``arrays["items"]`` without the co-occurrence block :data:`ITEM_COOC` that scoring appends
    (a view, no copy). That block is the item-item ridge factor ``e_i`` of the score's co-occurrence part, not the
    item's representation; in a cosine over the joined vector it adds a small, data-dependent share (on the MovieLens
    demo model the plain top-20's ILD by vectors is 0.394 with it, 0.378 without) and 8 of 9 columns of the products
    (512 of 576). A vector-only model (``Recommender.from_vectors``) has no block: its whole vectors."""
    items = arrays["items"]
    cooc = arrays.get(ITEM_COOC)
    if cooc is None or cooc.shape[1] == 0 or cooc.shape[1] >= items.shape[1]:
        return items
    return items[:, : items.shape[1] - cooc.shape[1]]


class ModelState:
    """A trained (or vector-only) model, read by ranking, explanation, export, faithfulness and the web."""

    def __init__(
        self,
        *,
        config: RecommenderConfig,
        vocabs: Vocabularies,
        arrays: dict[str, np.ndarray],
        pos_users: np.ndarray,
        pos_items: np.ndarray,
        edge_norm: np.ndarray,
        items: pd.DataFrame,
        degrees: dict[str, dict[str, int]],
        data_fingerprint: str,
        metrics: dict[str, Any],
        model_version: str,
        state_dict: dict[str, torch.Tensor],
    ) -> None:
        self.config = config
        self.vocabs = vocabs
        self.arrays = arrays
        self.pos_users = pos_users
        self.pos_items = pos_items
        self.edge_norm = edge_norm
        self.items_table = items
        self.degrees = degrees
        self.data_fingerprint = data_fingerprint
        self.metrics = metrics
        self.model_version = model_version
        self.state_dict = state_dict
        # each user's history as CSR slices (views, no per-user arrays: millions of users stay cheap)
        order = np.argsort(pos_users, kind="stable")
        self.hist_items: np.ndarray = pos_items[order]
        self.hist_w: np.ndarray = edge_norm[order]
        ir = arrays.get(INTERACTION_RECENT)
        self.hist_recent: np.ndarray | None = None if ir is None or len(ir) != len(pos_users) else ir[order]
        self.hist_ptr = np.zeros(len(vocabs.user) + 1, dtype=np.int64)
        np.cumsum(np.bincount(pos_users, minlength=len(vocabs.user)), out=self.hist_ptr[1:])
        del order
        self._item_users: tuple[np.ndarray, np.ndarray] | None = (
            None  # who interacted with each item, built on first use
        )
        self.titles: dict[str, str] = dict(zip(items[S.ITEM].tolist(), items[S.TITLE].tolist(), strict=True))
        self.users_t = torch.from_numpy(arrays["users"])
        self.items_t = torch.from_numpy(arrays["items"])
        #: first node index of each node type in ``arrays["nodes"]``
        self.node_offsets: dict[str, int] = GraphLayout(vocabs.sizes()).offsets
        self._arrow_ids: tuple[pa.Array, pa.Array] | None = None

    # ------------------------------------------------------------------ ids <-> numbers (the edge)
    def user_number(self, user: str) -> int:
        n = self.vocabs.user.number(str(user), missing="none")
        if n is None:
            raise UnknownIdError("user", user, "not in the training data of this model")
        return n

    def item_number(self, item: str) -> int:
        n = self.vocabs.item.number(str(item), missing="none")
        if n is None:
            raise UnknownIdError("item", item, "not in the training data of this model")
        return n

    def known_items(self, ids: Any) -> np.ndarray | None:
        """Numbers of the known ids among ``ids`` (unknown ones ignored, sorted, unique); None stays None."""
        if ids is None:
            return None
        n = self.vocabs.item.numbers(list(map(str, ids)), missing="none")
        return np.unique(n[n >= 0])

    def title(self, item: str) -> str:
        return self.titles.get(str(item)) or str(item)

    def arrow_ids(self) -> tuple[pa.Array, pa.Array]:
        """User and item ids as Arrow string arrays (built once; the export ``take``s from them)."""
        if self._arrow_ids is None:
            self._arrow_ids = (
                pa.array(self.vocabs.user.to_list(), pa.string()),
                pa.array(self.vocabs.item.to_list(), pa.string()),
            )
        return self._arrow_ids

    # ------------------------------------------------------------------ per user
    def history(self, u: int) -> tuple[np.ndarray, np.ndarray]:
        """(item numbers, normalised edge weights) of user number ``u``'s interactions."""
        lo, hi = self.hist_ptr[u], self.hist_ptr[u + 1]
        return self.hist_items[lo:hi], self.hist_w[lo:hi]

    def has_interactions(self, i: int) -> bool:
        """Whether anybody interacted with item number ``i`` in the training data."""
        return bool(np.any(self.hist_items == i))

    def recent_weights(self, u: int) -> np.ndarray:
        """The recent-interest weights of user number ``u``'s history items (aligned with :meth:`history`,
        oldest first; 0 outside the newest ``recent_window``; all 0 for a model without that part)."""
        n = int(self.hist_ptr[u + 1] - self.hist_ptr[u])
        if self.hist_recent is not None:
            return self.hist_recent[self.hist_ptr[u] : self.hist_ptr[u + 1]].astype(np.float64)
        out = np.zeros(n)
        logits = self.state_dict.get("recent.logits") if self.state_dict else None
        if logits is None or n == 0:
            return out
        m = min(n, len(logits))
        a = logits[:m].detach().numpy().astype(np.float64)
        a = np.exp(a - a.max())
        out[n - m :] = (a / a.sum())[::-1]  # history is oldest first; logits are newest first
        return out

    # ------------------------------------------------------------------ scores
    def score(self, u: int, i: int) -> float:
        return float(self.arrays["users"][u] @ self.arrays["items"][i])

    def topk(
        self,
        users: np.ndarray,
        k: int,
        *,
        exclude_seen: bool = True,
        candidates: np.ndarray | None = None,
        exclude: np.ndarray | None = None,
        seen: list[np.ndarray] | None = None,
    ) -> TopK:
        """Top-``k`` of user numbers ``users`` (one tie rule: lower item number first).

        Args:
            exclude_seen: leave out each user's history (``seen``: the histories, when the caller has them).
            candidates: item numbers to rank among (None: all).
            exclude: item numbers never to recommend.
        """
        extra = exclude if exclude is not None else np.empty(0, dtype=np.int64)
        excl = {}
        for r, u in enumerate(users.tolist()):
            parts = [extra]
            if exclude_seen:
                parts.append(seen[r] if seen is not None else self.history(u)[0])
            excl[r] = np.concatenate(parts)
        cand = None if candidates is None else torch.from_numpy(candidates)
        with torch.no_grad():
            s, t = topk_scores(self.users_t[torch.from_numpy(users)], self.items_t, k, excl, cand)
        return TopK(s.numpy(), t.numpy())

    def rank(self, u: int, i: int, seen: np.ndarray | None = None) -> int:
        """Rank (from 1) of item ``i`` among the items user ``u`` has not interacted with; the place
        :meth:`topk` gives it (same scores, same tie rule)."""
        with torch.no_grad():
            s = (self.users_t[u : u + 1] @ self.items_t.T)[0]
        return rank_in(s, i, self.history(u)[0] if seen is None else seen)

    def attribution(self, u: int, i: int) -> dict[str, float]:
        """The score split into a ``structure`` and a ``text`` part (they add up to it)."""
        if len(self.arrays["user_struct"]) == 0:
            raise KgrecError(
                "this recommender was built from vectors alone; attributions and explanations need a trained model"
            )
        a = {k: torch.from_numpy(v) for k, v in self.arrays.items() if k != "nodes"}
        st, tx = attribution(
            a["user_struct"][u],
            a["user_text"][u],
            a["user_gate"][u],
            a["item_struct"][i],
            a["item_text"][i],
            a["item_gate"][i],
            a["user_recent_struct"][u],
            a["user_recent_text"][u],
        )
        if USER_COOC not in a:
            return {"structure": st, "text": tx}
        return {"structure": st, "text": tx, "cooccurrence": float(a[USER_COOC][u] @ a[ITEM_COOC][i])}

    @property
    def cooc_alpha(self) -> float:
        """The weight of the co-occurrence part (0 for a model without one)."""
        chosen = self.metrics.get("chosen") or {}
        return float(chosen.get("cooc_alpha", 0.0)) if ITEM_COOC in self.arrays else 0.0

    @property
    def cooc_history(self) -> np.ndarray | None:
        """The history side ``e_j`` of the co-occurrence part (``[n_items, r]``; the candidate side is
        :data:`ITEM_COOC`); a model saved before the two sides differed has one factor for both."""
        return self.arrays.get(HIST_COOC, self.arrays.get(ITEM_COOC))

    def cooc_contributions(self, i: int, hist_items: np.ndarray) -> np.ndarray:
        """``alpha * e_j · f_i`` of each history item ``j`` (history side ``e``, candidate side ``f``; the
        co-occurrence part of the score of item number ``i`` is their sum); zeros for a model without that part."""
        h = self.cooc_history
        if h is None or len(hist_items) == 0:
            return np.zeros(len(hist_items))
        f = self.arrays[ITEM_COOC]
        return self.cooc_alpha * (h[hist_items].astype(np.float64) @ f[i].astype(np.float64))

    def co_interacted(self, i: int, items: np.ndarray) -> np.ndarray:
        """For each item number in ``items``: whether some user in the training data interacted with it and with
        item number ``i`` (what a "people who interacted with j also interacted with i" sentence claims)."""
        if self._item_users is None:
            order = np.argsort(self.pos_items, kind="stable")
            ptr = np.zeros(len(self.vocabs.item) + 1, dtype=np.int64)
            np.cumsum(np.bincount(self.pos_items, minlength=len(self.vocabs.item)), out=ptr[1:])
            self._item_users = (self.pos_users[order], ptr)
        users, ptr = self._item_users
        mark = np.zeros(len(self.vocabs.user), dtype=bool)
        mark[users[ptr[i] : ptr[i + 1]]] = True
        return np.array([bool(mark[users[ptr[j] : ptr[j + 1]]].any()) for j in np.asarray(items).tolist()], dtype=bool)

    def cooc_user(self, hist_items: np.ndarray) -> np.ndarray:
        """The co-occurrence block of a user with history ``hist_items`` (``[1, r]``; ``[1, 0]`` without the part)."""
        h = self.cooc_history
        if h is None:
            return np.zeros((1, 0), dtype=np.float32)
        return (self.cooc_alpha * h[np.unique(hist_items)].sum(0, keepdims=True)).astype(np.float32)

    def similar(self, i: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` item numbers most like item number ``i`` by cosine of the fused vectors (``i`` left out; equal
        cosines by the lower number) and their cosines."""
        v = self.arrays["items"].astype(np.float64)
        v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        cos = v @ v[i]
        cos[i] = -np.inf
        order = np.lexsort((np.arange(len(cos)), -cos))[: min(k, len(cos) - 1)]
        return order, cos[order]

    def embeddings(self, kind: str = "item", part: str = "fused") -> pd.DataFrame:
        """Vectors as a DataFrame (``id`` column + ``d0..dN``) of ``kind`` user/item and ``part`` fused/struct/text."""
        if kind not in {"user", "item"}:
            raise ValueError(f"kind={kind!r}: expected 'user' or 'item'")
        name = {"fused": f"{kind}s", "struct": f"{kind}_struct", "text": f"{kind}_text"}.get(part)
        if name is None:
            raise ValueError(f"part={part!r}: expected 'fused', 'struct' or 'text'")
        arr = self.arrays[name]
        df = pd.DataFrame(arr, columns=[f"d{j}" for j in range(arr.shape[1])])
        df.insert(0, "id", self.vocabs.of(kind).ids)
        return df

    def build_model(self, text_dim: int) -> FusedModel:
        """The torch model rebuilt from the saved weights (eval mode), for new users and the deletion test."""
        model = FusedModel(GraphLayout(self.vocabs.sizes()), self.config.model, text_dim)
        model.load_state_dict(self.state_dict)
        model.eval()
        return model

    # ------------------------------------------------------------------ persistence (kgrec.fusion.persist)
    def save(self, path: str | Path) -> Path:
        """Write the model directory atomically (weights, config, vocabularies, metrics, fingerprint, checksums)."""
        return write_model_dir(
            Path(path),
            config=self.config,
            vocabs=self.vocabs,
            metrics=self.metrics,
            meta={
                "format_version": FORMAT_VERSION,
                "model_version": self.model_version,
                "data_fingerprint": self.data_fingerprint,
                "degrees": self.degrees,
            },
            state_dict=self.state_dict,
            vectors={
                "pos_users": self.pos_users,
                "pos_items": self.pos_items,
                "edge_norm": self.edge_norm,
                **self.arrays,
            },
            items=self.items_table,
        )

    @staticmethod
    def verify(path: str | Path) -> None:
        """Check the files of a model directory against its ``checksums.json`` (see :func:`kgrec.fusion.persist.verify`)."""
        verify(path)

    @classmethod
    def load(cls, path: str | Path) -> ModelState:
        """Read a model directory written by :meth:`save`."""
        return cls(**read_model_dir(path))
