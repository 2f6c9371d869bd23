"""Training inputs: the graph, the interaction order and the windows a forward pass reads, built once per data set.

:func:`build_inputs` turns a :class:`~kgrec.loaders.schema.Dataset` under fixed vocabularies into a
:class:`GraphInputs` (normalised adjacency, id mask, behaviour-text vectors, the interactions in canonical
order with their tie groups); :func:`interaction_recent_weights` reads the trained recent-interest weights
back onto the interactions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from kgrec.encoders.behaviour import behaviour_text, item_texts, own_texts, user_texts
from kgrec.encoders.compose import compose
from kgrec.encoders.finetune import Pairs
from kgrec.encoders.graph import GraphLayout
from kgrec.encoders.text import TextEncoder
from kgrec.fusion.config import RecommenderConfig, user_text_mode
from kgrec.fusion.model import FusedModel
from kgrec.fusion.ties import Window, canonical_order, group_bounds, recency_weights, window, window_share
from kgrec.graph.hetero import Vocabularies, edge_arrays
from kgrec.loaders import schema as S
from kgrec.loaders.schema import Dataset

__all__ = ["GraphInputs", "build_inputs", "finetune_pairs", "interaction_recent_weights", "window_index"]


@dataclass
class GraphInputs:
    """Everything a forward pass needs for one set of interactions."""

    adj: torch.Tensor
    id_mask: torch.Tensor
    user_text: torch.Tensor
    pos_users: np.ndarray  # interaction user numbers
    pos_items: np.ndarray  # interaction item numbers
    edge_norm: np.ndarray  # normalised adjacency value of each interaction (u -> i)
    # the interactions are in canonical order (user, time, item number: kgrec.fusion.ties), so row p of
    # pos_users/pos_items is place p of seq_items
    seq_items: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # item numbers by user, oldest first
    seq_start: np.ndarray = field(
        default_factory=lambda: np.empty(0, np.int64)
    )  # each interaction's user's first place
    # user u's places in seq_items are user_ptr[u]:user_ptr[u + 1] (CSR: no Python object per user)
    user_ptr: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    seq_gs: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # first place of each one's tie group
    seq_ge: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # end of each one's tie group
    recent_idx: torch.Tensor | None = None  # [n_users, slots] each user's newest items, newest first
    recent_mask: torch.Tensor | None = None
    recent_span: tuple[torch.Tensor, torch.Tensor] | None = None  # (lo, hi) of the tie groups in recent_idx

    def seen(self, user: int) -> np.ndarray:
        """The item numbers of ``user``'s interactions (a view; empty for a user number without any)."""
        if user + 1 >= len(self.user_ptr):
            return self.seq_items[:0]
        return self.seq_items[self.user_ptr[user] : self.user_ptr[user + 1]]

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
    item_text: np.ndarray | torch.Tensor | None = None,
) -> GraphInputs:
    """Adjacency, id mask and user behaviour-text vectors for ``ds`` under fixed vocabularies (``item_text``: the
    item text encodings, which a composed user text vector is made of; ``model.user_text``)."""
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
    inp = GraphInputs(
        adj, torch.from_numpy(mask), torch.zeros(len(vocabs.user), text_dim), ui["src"], ui["dst"], edge_norm
    )
    # time order of every user's interactions, ties as groups (the rows are already in that order)
    n_users = len(vocabs.user)
    bounds = np.searchsorted(ui["src"], np.arange(n_users + 1))
    inp.seq_items = ui["dst"].astype(np.int64)
    inp.seq_start = bounds[ui["src"]]
    inp.user_ptr = bounds.astype(np.int64)
    inp.seq_gs, inp.seq_ge = group_bounds(ui["src"], ui["time"])
    if encoder is not None and cfg.model.use_text:
        if user_text_mode(cfg.model, n_users) == "compose":
            if item_text is None:
                raise ValueError("model.user_text='compose' needs the item text encodings (build_inputs item_text=)")
            inp.user_text = torch.from_numpy(composed_user_text(ds, vocabs, cfg, encoder, inp, item_text, progress))
        else:
            texts = user_texts(ds, vocabs)
            inp.user_text = torch.from_numpy(encoder.encode(texts, progress=progress, desc="encoding user behaviour"))
    if cfg.model.recent_window > 0:
        win, _ = inp.recent_window(cfg.model.recent_window, n_users)
        inp.recent_idx, inp.recent_mask, inp.recent_span = win.idx, win.mask, (win.lo, win.hi)
    return inp


def item_title_chars(ds: Dataset, vocabs: Vocabularies) -> np.ndarray:
    """``[n_items]`` characters each item takes in a behaviour text: its title and the ``"; "`` after it."""
    titles = dict(zip(ds.items[S.ITEM].tolist(), ds.items[S.TITLE].tolist(), strict=True))
    return np.array([len(titles.get(i) or "") + 2 for i in vocabs.item.to_list()], dtype=np.float32)


def composed_user_text(
    ds: Dataset,
    vocabs: Vocabularies,
    cfg: RecommenderConfig,
    encoder: TextEncoder,
    inp: GraphInputs,
    item_text: np.ndarray | torch.Tensor,
    progress: bool = True,
) -> np.ndarray:
    """``[n_users, text_dim]`` user text vectors composed (:func:`kgrec.encoders.compose.compose`) from the item text
    encodings of each user's newest ``model.compose_window`` items (tie groups sharing their positions) and the
    encoding of the user's own text (:func:`kgrec.encoders.behaviour.own_texts`; encoded only where there is one)."""
    size = cfg.model.compose_window
    win, _ = inp.recent_window(size, len(vocabs.user))
    own = own_texts(ds, vocabs)
    has_own = [r for r, t in enumerate(own) if t.strip()]
    enc = np.asarray(item_text, dtype=np.float32)
    own_vec = np.zeros((len(own), enc.shape[1]), dtype=np.float32)
    if has_own:
        own_vec[has_own] = encoder.encode([own[r] for r in has_own], progress=progress, desc="encoding users' own text")
    own_chars = np.array([len(t) for t in own], dtype=np.float32)
    return compose(enc, win.idx.numpy(), window_share(win, size), item_title_chars(ds, vocabs), own_vec, own_chars)


def finetune_pairs(ds: Dataset, vocabs: Vocabularies, n: int, seed: int, max_chars: int = 1500) -> Pairs:
    """Up to ``n`` interactions of ``ds`` drawn at random, each as (the user's behaviour text before it, the item's
    text), for fine-tuning the text encoder (:mod:`kgrec.encoders.finetune`).

    The behaviour text is the one :func:`kgrec.encoders.behaviour.user_texts` builds (profile, tags, titles with any
    interaction text, newest first, cut at ``max_chars``), from the interactions with a strictly earlier timestamp
    only (ties in time are no order, :mod:`kgrec.fusion.ties`) and the tags the user put on those items. An
    interaction with no text before it (a user's first timestamp, and no profile) is not drawn; a drawn one whose
    behaviour or item text is empty (items without a title or description) is left out.
    """
    it = ds.interactions
    items = item_texts(ds, vocabs)
    none = np.empty(0, np.int64)
    if it.empty or n <= 0:
        return Pairs([], items, none, none, 0)
    titles = dict(zip(ds.items[S.ITEM].tolist(), ds.items[S.TITLE].tolist(), strict=True))
    u = vocabs.user.numbers(it[S.USER]).astype(np.int64)
    i = vocabs.item.numbers(it[S.ITEM]).astype(np.int64)
    t = it[S.TIMESTAMP].to_numpy(np.int64)
    pieces = []
    for item, txt in zip(it[S.ITEM].tolist(), it[S.TEXT].tolist(), strict=True):
        piece = titles.get(item) or ""
        if isinstance(txt, str) and txt:
            piece = f"{piece}: {txt}" if piece else txt
        pieces.append(piece)
    # newest first, ties in title order, as user_texts reads a history
    nf = pd.DataFrame(
        {"u": u, "t": t, "title": [titles.get(x) or "" for x in it[S.ITEM].tolist()], "id": it[S.ITEM].to_numpy()}
    )
    nf = nf.sort_values(["u", "t", "title", "id"], ascending=[True, False, True, True], kind="stable").index.to_numpy()
    nf_u, nf_i = u[nf], i[nf]
    nf_piece = [pieces[r] for r in nf]
    last = np.searchsorted(nf_u, np.arange(len(vocabs.user)), side="right")
    profiles = {
        int(vocabs.user.number(str(us))): str(p)
        for us, p in zip(ds.users[S.USER].tolist(), ds.users[S.PROFILE].tolist(), strict=True)
        if p and str(us) in vocabs.user
    }
    user_tags: dict[int, list[tuple[int, str]]] = {}
    if len(ds.tags):
        tu = vocabs.user.numbers(ds.tags[S.USER], missing="none")
        ti = vocabs.item.numbers(ds.tags[S.ITEM], missing="none")
        for a, b, tag in zip(tu.tolist(), ti.tolist(), ds.tags[S.TAG].tolist(), strict=True):
            if a >= 0 and b >= 0:
                user_tags.setdefault(a, []).append((b, str(tag)))
    # where each interaction's strictly earlier history starts in its user's newest-first rows
    order = canonical_order(u, t, i)
    cu, ct = u[order], t[order]
    gs, _ = group_bounds(cu, ct)
    before = gs - np.searchsorted(cu, cu, side="left")  # interactions with an earlier timestamp
    cut = last[cu] - before  # newest-first index of the newest of them
    has_profile = np.array([int(x) in profiles for x in cu], dtype=bool)
    eligible = np.flatnonzero((before > 0) | has_profile)
    rng = np.random.default_rng(seed)
    drawn = np.sort(rng.choice(eligible, size=n, replace=False)) if len(eligible) > n else eligible
    keys: dict[tuple[int, int], int] = {}
    queries: list[str] = []
    q = np.empty(len(drawn), np.int64)
    span = max_chars // 3 + 1  # pieces that can fit: each takes at least 3 characters with its separator
    for p, row in enumerate(drawn.tolist()):
        user, k = int(cu[row]), int(cut[row])
        key = (user, k)
        if key not in keys:
            end = last[user]
            seen = set(nf_i[k:end].tolist())
            tags = ", ".join(dict.fromkeys(tag for item, tag in user_tags.get(user, []) if item in seen))
            piece_list = [x for x in nf_piece[k : min(end, k + span)] if x]
            keys[key] = len(queries)
            queries.append(behaviour_text(piece_list, tags, max_chars, profile=profiles.get(user, "")))
        q[p] = keys[key]
    target = i[order][drawn].astype(np.int64)
    ok = np.array([bool(queries[a].strip()) and bool(items[b].strip()) for a, b in zip(q, target, strict=True)], bool)
    return Pairs(queries, items, q[ok], target[ok], len(eligible))


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
