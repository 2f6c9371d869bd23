"""Live answers: a trained model on a store that has taken appends since training, without a training step.

A model is fit on one snapshot of a store. Appends (``kgrec ingest --append``, ``POST /api/events``,
``store.append``) move the store on; :class:`LiveModel` keeps answering from the store's current data:

- the store must still descend from the model's snapshot: its :meth:`~kgrec.graph.store.GraphStore.lineage`
  holds the model's data fingerprint (else :class:`~kgrec.errors.ModelMismatchError`: retrain);
- items new since training get their text-only vector ``(1 - g) t`` (``t``: the text tower on the item's text,
  ``g``: the item gate with no structural vector); they have no co-occurrence part;
- a user whose history in the store differs from the model's gets, from that history (oldest first, ties in
  time by item number, as in training): the new items excluded as seen; the recent-interest part
  ``r_u = P sum_k a_k f_k`` recomputed over their newest items (it is linear in the item vectors, so no
  training is needed); the co-occurrence block summed over their items; their long-term part ``g s + (1-g) t``
  kept (a known user) or built as for a new user (:class:`~kgrec.fusion.coldstart.NewUsers`: structural vector
  from their items, text vector from their behaviour text);
- explanation paths read the store, so they can cite the new interactions (anchors: the live history).

Users are refreshed one at a time, when asked for (:meth:`LiveModel.refresh_users`: one ``user_history`` read per
user, the web's per-request path), or all at once (:meth:`LiveModel.refresh_all`: one read of the whole store,
for exports). The base model is never changed; the live rows live in a :class:`LiveState`, a copy-on-write
:class:`~kgrec.fusion.state.ModelState`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from kgrec.encoders.behaviour import behaviour_text, item_texts
from kgrec.encoders.text import TextEncoder
from kgrec.errors import ModelMismatchError
from kgrec.fusion.coldstart import NewUsers
from kgrec.fusion.livestate import LiveState
from kgrec.fusion.persist import ITEM_COOC, ITEM_ENCODING, USER_COOC
from kgrec.fusion.state import ModelState
from kgrec.fusion.ties import group_bounds, window
from kgrec.graph.vocab import Vocab
from kgrec.loaders import schema as S

if TYPE_CHECKING:
    from kgrec.graph.store import GraphStore

__all__ = ["LiveModel", "LiveState", "history_digest"]  # LiveState: kgrec.fusion.livestate

log = logging.getLogger(__name__)


def history_digest(items: Sequence[str], times: Sequence[int]) -> str:
    """A short digest of a history (item ids and timestamps, in the given order)."""
    h = hashlib.sha256()
    for i, t in zip(items, times, strict=True):
        h.update(f"{i}\0{int(t)}\n".encode())
    return h.hexdigest()[:16]


class LiveModel:
    """Fresh answers of a trained model on a store that has moved on by appends (see the module docstring)."""

    def __init__(self, base: ModelState, store: GraphStore, encoder: TextEncoder | None = None) -> None:
        self.base = base
        self.store = store
        self.newcomers = NewUsers(base, encoder)
        self.state: ModelState = base
        self._fingerprint: str | None = None
        self._applied: dict[str, str] = {}  # user id -> digest of the store history applied to their row
        self._pinned = False
        # one writer at a time: the web answers from several threads, and a refresh rewrites rows and grows arrays
        self._lock = threading.RLock()

    @contextlib.contextmanager
    def pinned(self) -> Iterator[ModelState]:
        """Bring every user up to date once (:meth:`refresh_all`) and answer from that state, without reading the
        store again, until the block ends: one consistent snapshot for a whole export."""
        st = self.refresh_all()
        self._pinned = True
        try:
            yield st
        finally:
            self._pinned = False

    @property
    def fingerprint(self) -> str:
        """The fingerprint of the store data the live state answers from (the model's until :meth:`sync`)."""
        return self._fingerprint or self.base.data_fingerprint

    # ------------------------------------------------------------------ the store
    def _sync_unlocked(self) -> ModelState:
        """Check the store against the model and pick up items new since training; returns the live state.

        Raises:
            ModelMismatchError: the store no longer descends from the model's data (re-ingested, forgotten
                users, another data set): retrain.
        """
        if self._pinned:
            return self.state
        fp = self.store.fingerprint()
        if fp == self._fingerprint:
            return self.state
        want = self.base.data_fingerprint
        if fp != want and want not in self.store.lineage():
            raise ModelMismatchError(
                f"the model {self.base.model_version} was trained on data {want[:12]}, but the store at "
                f"{self.store.location} holds data {fp[:12]}, which does not descend from it by appends; retrain "
                f"with `kgrec train --store {self.store.location}`"
            )
        if fp == want:
            self.state, self._applied = self.base, {}
        elif int(self.store.counts().get("items", 0)) > len(self.state.vocabs.item):
            self._add_items()
        self._fingerprint = fp
        return self.state

    def sync(self) -> ModelState:
        """Check the store against the model and pick up items new since training; returns the live state.

        Raises:
            ModelMismatchError: the store no longer descends from the model's data (re-ingested, forgotten
                users, another data set): retrain.
        """
        with self._lock:
            return self._sync_unlocked()

    def refresh_users(self, users: Iterable[str]) -> ModelState:
        """Bring the rows of ``users`` up to date with the store (one history read each); returns the live state."""
        with self._lock:
            return self._refresh_users_unlocked(users)

    def refresh_all(self) -> ModelState:
        """Bring every user's row up to date with one read of the whole store; returns the live state."""
        with self._lock:
            return self._refresh_all_unlocked()

    @property
    def moved(self) -> bool:
        """Whether the store holds data the model was not trained on (after :meth:`sync`)."""
        return self._fingerprint is not None and self._fingerprint != self.base.data_fingerprint

    def key(self, user: str) -> str:
        """A string that changes whenever ``user``'s answers may change (for caches): the model version, and
        once the store has moved on, the catalogue size and a digest of the user's history in the store."""
        self.sync()
        if not self.moved:
            return self.base.model_version
        h = self.store.user_history(str(user))
        return (
            f"{self.base.model_version}:{len(self.state.vocabs.item)}:"
            f"{history_digest(h[S.ITEM].tolist(), h[S.TIMESTAMP].tolist())}"
        )

    def _live(self) -> LiveState:
        if not isinstance(self.state, LiveState):
            self.state = LiveState.of(self.base)
        return self.state

    def _add_items(self) -> None:
        ds = self.store.dataset()
        st = self._live()
        new = ds.items.loc[~ds.items[S.ITEM].isin(st.vocabs.item.to_list())].sort_values(S.ITEM, kind="stable")
        if new.empty:
            return
        ids = new[S.ITEM].tolist()
        texts = item_texts(ds, replace(st.vocabs, item=Vocab("item", ids)))
        model = self.newcomers.torch_model()
        raw = self.newcomers.text_encoder().encode(texts, progress=False) if st.config.model.use_text else None
        if raw is None:
            t = torch.zeros(len(texts), st.config.model.dim)
        else:
            with torch.no_grad():
                t = model.text_vectors(torch.from_numpy(raw))
        with torch.no_grad():
            s = torch.zeros_like(t)
            g = model.gate(model.item_gate, s, t)
            fused = (1 - g) * t
        cooc = st.arrays.get(ITEM_COOC)
        width = 0 if cooc is None else cooc.shape[1]
        rows = {
            "items": torch.cat([fused, torch.zeros(len(ids), width)], 1).numpy(),
            "item_text": t.numpy(),
            "item_gate": g.numpy(),
        }
        if ITEM_ENCODING in st.arrays and raw is not None:  # a composed user text vector may pool them
            rows[ITEM_ENCODING] = raw
        st.grow("item", ids, rows)
        st.titles.update(zip(ids, new[S.TITLE].tolist(), strict=True))
        st.items_table = pd.concat([st.items_table, new], ignore_index=True)
        log.info("live: %d items new since training get text-only vectors", len(ids))

    # ------------------------------------------------------------------ users
    def _refresh_users_unlocked(self, users: Iterable[str]) -> ModelState:
        """Bring the rows of ``users`` up to date with the store (one history read each); returns the live state."""
        st = self.sync()
        if not self.moved or self._pinned:
            return st
        for user in dict.fromkeys(map(str, users)):
            if self.base.vocabs.user.number(user, missing="none") is None and not self.store.has_user(user):
                continue  # unknown everywhere: the caller's error handling names it
            self._apply(user, self.store.user_history(user))
        return self.state

    def _refresh_all_unlocked(self) -> ModelState:
        """Bring every user's row up to date with one read of the whole store; returns the live state."""
        st = self.sync()
        if not self.moved:
            return st
        inter = self.store.dataset().interactions
        for user, h in inter.groupby(S.USER, sort=True):
            self._apply(str(user), h)
        return self.state

    def _apply(self, user: str, hist: pd.DataFrame) -> None:
        ids, times = hist[S.ITEM].astype(str).tolist(), hist[S.TIMESTAMP].astype("int64").tolist()
        digest = history_digest(ids, times)
        u = self.base.vocabs.user.number(user, missing="none")
        if self._applied.get(user) == digest:
            return
        if u is not None and self._applied.get(user) is None and self._same_as_base(u, ids):
            self._applied[user] = digest
            return
        st = self._live()
        if any(i not in st.vocabs.item for i in ids):
            self._add_items()
        nums = st.vocabs.item.numbers(ids)
        t = np.asarray(times, dtype=np.int64)
        order = np.lexsort((nums, t))
        seq, t = nums[order], t[order]
        rows = self._user_rows(user, u, seq, t)
        lu = st.vocabs.user.number(user, missing="none")
        if lu is None:
            lu = int(st.grow("user", [user], rows)[0])
        else:
            for name, row in rows.items():
                if name in st.arrays:
                    st.arrays[name][lu] = row[0]
        st.hist_override[lu] = (seq, self._edge_weights(u, seq), rows["_recent_weights"][0])
        self._applied[user] = digest

    def _same_as_base(self, u: int, ids: Sequence[str]) -> bool:
        base_items, _ = self.base.history(u)
        if len(base_items) != len(ids):
            return False
        return bool(np.array_equal(np.sort(base_items), np.sort(self.base.vocabs.item.numbers(list(ids)))))

    def _edge_weights(self, u: int | None, seq: np.ndarray) -> np.ndarray:
        """Graph-edge weights of the live history (explanation anchors): the model's weight of an interaction it was
        trained on, and the user's largest one (their newest behaviour) for a new one; ``1/n`` for a new user."""
        if u is None or u >= len(self.base.vocabs.user):
            return np.full(len(seq), 1.0 / max(1, len(seq)), dtype=np.float32)
        items, w = self.base.history(u)
        known = dict(zip(items.tolist(), w.tolist(), strict=True))
        top = max(known.values(), default=1.0 / max(1, len(seq)))
        return np.array([known.get(int(i), top) for i in seq.tolist()], dtype=np.float32)

    def _user_rows(self, user: str, u: int | None, seq: np.ndarray, times: np.ndarray) -> dict[str, np.ndarray]:
        """Every per-user array row of ``user`` with live history ``seq`` (item numbers, oldest first)."""
        st = self.state
        keep = seq < len(self.base.vocabs.item)
        known = seq[keep]
        if u is not None and u < len(self.base.vocabs.user):
            s = torch.from_numpy(self.base.arrays["user_struct"][u : u + 1])
            tx = torch.from_numpy(self.base.arrays["user_text"][u : u + 1])
            g = torch.from_numpy(self.base.arrays["user_gate"][u : u + 1])
        else:
            if self.newcomers.composes:  # the items' part is composed from their text vectors, ties as in training
                s, tx, g = self.newcomers.long_term("", known, np.empty(0, np.int64), times=np.asarray(times)[keep])
            else:
                titles = [st.titles.get(st.vocabs.item.id(int(n))) for n in seq[::-1]]
                text = behaviour_text([x for x in titles if x])
                s, tx, g = self.newcomers.long_term(text, known, np.empty(0, np.int64))
        rs, rt, w = self.recent_parts(seq, times)
        fused = g * s + (1 - g) * tx + rs + rt
        rows = {
            "user_struct": s.numpy(),
            "user_text": tx.numpy(),
            "user_gate": g.numpy(),
            "user_recent_struct": rs.numpy(),
            "user_recent_text": rt.numpy(),
            "_recent_weights": w[None, :],
        }
        cooc = self.base.cooc_user(known)
        rows["users"] = np.concatenate([fused.numpy(), cooc], 1).astype(np.float32)
        if USER_COOC in st.arrays:
            rows[USER_COOC] = cooc
        return rows

    def recent_parts(self, seq: np.ndarray, times: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """The structural and text parts of the recent interest over ``seq`` (the tie-aware window of training),
        and each history item's weight in it."""
        st = self.state
        dim = st.config.model.dim
        zero = torch.zeros(1, dim)
        model = self.newcomers.torch_model()
        if model.recent is None or len(seq) == 0:
            return zero, zero.clone(), np.zeros(len(seq))
        gs, ge = group_bounds(np.zeros(len(seq), np.int64), times)
        win = window(seq.astype(np.int64), gs, ge, np.array([0]), np.array([len(seq)]), model.recent.window)
        a = st.arrays
        struct_part = torch.from_numpy(a["item_gate"] * a["item_struct"])
        text_part = torch.from_numpy((1 - a["item_gate"]) * a["item_text"])
        with torch.no_grad():
            rs = model.recent(struct_part, win.idx, win.mask, win.lo, win.hi)
            rt = model.recent(text_part, win.idx, win.mask, win.lo, win.hi)
            wk = model.recent.weights(win.mask, win.lo, win.hi)[0].numpy()
        m = win.mask[0].numpy()
        # slot k holds the k-th newest place: place = len - 1 - k for the masked slots
        out = np.zeros(len(seq))
        places = len(seq) - 1 - np.flatnonzero(m)
        out[places] = wk[m]
        return rs, rt, out
