"""Training: inputs from a dataset, sampled-softmax ranking loss, early stopping.

``fit_model`` trains on the interactions of a data set with early stopping on a
chronological validation hold-out taken from those interactions (the last
``val_fraction`` of each user's history), then refits on all of them
(``refit="continue"``: the best model trains on for half its epoch count,
validation interactions included, at half the learning rate). Nothing outside the given data is
read: the caller's test set never reaches this module.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from kgrec.encoders.behaviour import user_texts
from kgrec.encoders.graph import GraphLayout, recency_weights
from kgrec.encoders.text import TextEncoder
from kgrec.fusion.config import RecommenderConfig
from kgrec.fusion.evaluate import holdout_last
from kgrec.fusion.model import FusedModel, Towers
from kgrec.fusion.ranking import ranking_metrics, topk_scores
from kgrec.fusion.stopping import EarlyStopping
from kgrec.graph.hetero import Vocabularies, edge_arrays
from kgrec.loaders import schema as S
from kgrec.loaders.schema import Dataset

log = logging.getLogger(__name__)


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
    seq_items: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # item numbers by user, oldest first
    seq_pos: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # each interaction's place in seq_items
    seq_start: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # each interaction's user's first place
    recent_idx: torch.Tensor | None = None  # [n_users, window] each user's newest items, newest first
    recent_mask: torch.Tensor | None = None

    def prefix(self, rows: np.ndarray, window: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``window`` items before each interaction in ``rows`` (newest first) and their mask."""
        return window_index(self.seq_items, self.seq_start[rows], self.seq_pos[rows], window)


def window_index(seq: np.ndarray, start: np.ndarray, end: np.ndarray, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``seq[end-1], seq[end-2], …`` down to ``start`` (at most ``window``), as padded index and mask tensors."""
    pos = end[:, None] - 1 - np.arange(window)[None, :]
    mask = pos >= start[:, None]
    idx = np.where(mask, seq[np.clip(pos, 0, None)] if len(seq) else 0, 0)
    return torch.from_numpy(idx.astype(np.int64)), torch.from_numpy(mask)


def build_inputs(
    ds: Dataset, vocabs: Vocabularies, cfg: RecommenderConfig, encoder: TextEncoder | None, text_dim: int,
    progress: bool = True,
) -> GraphInputs:
    """Adjacency, id mask and user behaviour-text vectors for ``ds`` under fixed vocabularies."""
    layout = GraphLayout(vocabs.sizes())
    edges = edge_arrays(ds, vocabs)
    ui = edges[("user", "interacts", "item")]
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
        utext = torch.from_numpy(encoder.encode(user_texts(ds, vocabs), progress=progress, desc="encoding user behaviour"))
    else:
        utext = torch.zeros(len(vocabs.user), text_dim)
    order = np.argsort(ui["src"], kind="stable")
    users_sorted, items_sorted = ui["src"][order], ui["dst"][order]
    splits = np.flatnonzero(np.diff(users_sorted)) + 1
    history = {int(us[0]): it for us, it in zip(np.split(users_sorted, splits), np.split(items_sorted, splits), strict=True) if len(us)}
    inp = GraphInputs(adj, torch.from_numpy(mask), utext, ui["src"], ui["dst"], edge_norm, history)
    # time order of every user's interactions (ties keep the data set's order), for the recent-interest part
    chron = np.lexsort((np.arange(len(ui["src"])), ui["time"], ui["src"]))
    n_users = len(vocabs.user)
    bounds = np.searchsorted(ui["src"][chron], np.arange(n_users + 1))
    inp.seq_items = ui["dst"][chron].astype(np.int64)
    inp.seq_pos = np.empty(len(chron), dtype=np.int64)
    inp.seq_pos[chron] = np.arange(len(chron))
    inp.seq_start = bounds[ui["src"]]
    if cfg.model.recent_window > 0:
        inp.recent_idx, inp.recent_mask = window_index(inp.seq_items, bounds[:-1], bounds[1:], cfg.model.recent_window)
    return inp


@dataclass
class TrainResult:
    model: FusedModel
    towers: Towers
    inputs: GraphInputs
    metrics: dict[str, object]


def effective_batch_size(n: int, batch_size: int, min_steps: int = 8, floor: int = 64) -> int:
    """``batch_size``, shrunk so that small data sets still take ``min_steps`` steps per epoch."""
    return max(1, min(batch_size, max(floor, -(-n // min_steps))))


def full_softmax(tc: object, n_items: int) -> bool:
    """Whether the loss normalises over every item (exact softmax) rather than sampled negatives."""
    limit = getattr(tc, "full_softmax_items", 0)
    return n_items <= limit


def _epoch(
    model: FusedModel, opt: torch.optim.Optimizer, inp: GraphInputs, item_text: torch.Tensor,
    cfg: RecommenderConfig, rng: np.random.Generator,
) -> float:
    model.train()
    tc = cfg.train
    n = len(inp.pos_users)
    perm = rng.permutation(n)
    n_items = item_text.shape[0]
    total = 0.0
    bs = effective_batch_size(n, tc.batch_size)
    for start in range(0, n, bs):
        b = perm[start : start + bs]
        towers = model(inp.adj, inp.id_mask, item_text, inp.user_text)
        user_vecs, item_vecs = towers.user_base, towers.items
        p = cfg.model.content_dropout
        if p > 0 and cfg.model.use_text and cfg.model.use_structure:
            # score a random share of items from their text alone, as cold items are scored
            drop = torch.from_numpy(rng.random(n_items) < p).unsqueeze(1)
            item_vecs = torch.where(drop, towers.item_text, item_vecs)
        u = user_vecs[torch.from_numpy(inp.pos_users[b])]
        if model.recent is not None:
            # causal: each interaction is predicted from the items before it
            idx, m = inp.prefix(b, model.recent.window)
            u = u + model.recent(towers.items, idx, m)
        pos = item_vecs[torch.from_numpy(inp.pos_items[b])]
        if full_softmax(tc, n_items):
            logits = u @ item_vecs.T
            if tc.temperature != 1.0:
                logits = logits / tc.temperature
            loss = F.cross_entropy(logits, torch.from_numpy(inp.pos_items[b]))
        else:
            neg_idx = torch.from_numpy(rng.integers(0, n_items, tc.negatives))
            neg = item_vecs[neg_idx]
            pos_logit = (u * pos).sum(1, keepdim=True)
            neg_logit = u @ neg.T
            # a sampled negative equal to the positive is not a negative
            neg_logit = neg_logit.masked_fill(neg_idx.unsqueeze(0) == torch.from_numpy(inp.pos_items[b]).unsqueeze(1), float("-inf"))
            logits = torch.cat([pos_logit, neg_logit], 1)
            if tc.temperature != 1.0:
                logits = logits / tc.temperature
            loss = F.cross_entropy(logits, torch.zeros(len(b), dtype=torch.long))
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item() * len(b)
    return total / max(n, 1)


def _evaluate(model: FusedModel, inp: GraphInputs, item_text: torch.Tensor, targets: list[np.ndarray], k: int = 20) -> dict[str, float]:
    model.eval()
    with torch.no_grad():
        towers = model(inp.adj, inp.id_mask, item_text, inp.user_text, inp.recent_idx, inp.recent_mask)
    users = np.array([u for u, t in enumerate(targets) if len(t)], dtype=np.int64)
    if len(users) == 0:
        return {f"recall@{k}": float("nan"), f"ndcg@{k}": float("nan")}
    exclude = {r: inp.history.get(int(u), np.empty(0, dtype=np.int64)) for r, u in enumerate(users)}
    _, top = topk_scores(towers.users[torch.from_numpy(users)], towers.items, k, exclude)
    return ranking_metrics(top.numpy(), [targets[u] for u in users], k)


def _train_run(
    ds: Dataset, vocabs: Vocabularies, cfg: RecommenderConfig, item_text: torch.Tensor, encoder: TextEncoder | None,
    epochs: int, val: pd.DataFrame | None, progress: bool, model: FusedModel | None = None, lr_scale: float = 1.0,
) -> tuple[FusedModel, GraphInputs, list[dict[str, float]], int]:
    """Train ``model`` (a new one when None) on ``ds`` for up to ``epochs``; with ``val``, stop early."""
    from tqdm.auto import tqdm

    torch.manual_seed(cfg.train.seed)
    rng = np.random.default_rng(cfg.train.seed + (0 if model is None else 1))
    layout = GraphLayout(vocabs.sizes())
    inp = build_inputs(ds, vocabs, cfg, encoder, item_text.shape[1], progress)
    if model is None:
        model = FusedModel(layout, cfg.model, item_text.shape[1])
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr * lr_scale, weight_decay=cfg.train.weight_decay)
    targets = None
    if val is not None and len(val):
        targets = [np.empty(0, dtype=np.int64)] * len(vocabs.user)
        targets = list(targets)
        vu = vocabs.user.numbers(val[S.USER])
        vi = vocabs.item.numbers(val[S.ITEM])
        by: dict[int, list[int]] = {}
        for u, i in zip(vu.tolist(), vi.tolist(), strict=True):
            by.setdefault(u, []).append(i)
        for u, its in by.items():
            targets[u] = np.asarray(its, dtype=np.int64)
    history: list[dict[str, float]] = []
    stopper = EarlyStopping(cfg.train.patience)
    bar = tqdm(range(1, epochs + 1), desc="training" if targets is None else "training (validating)", unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        t0 = time.perf_counter()
        loss = _epoch(model, opt, inp, item_text, cfg, rng)
        row: dict[str, float] = {"epoch": epoch, "loss": loss, "seconds": time.perf_counter() - t0}
        if targets is not None and (epoch % cfg.train.eval_every == 0 or epoch == epochs):
            m = _evaluate(model, inp, item_text, targets)
            row.update({f"val_{k}": v for k, v in m.items() if k != "users"})
            score = m["ndcg@20"]
            stop = stopper.step(epoch, score, model)
            bar.set_postfix(loss=f"{loss:.3f}", val_ndcg=f"{score:.4f}")
            if stop:
                history.append(row)
                log.info("early stop at epoch %d (best %s, val ndcg@20 %.4f)", epoch, stopper.best_epoch, stopper.best)
                break
        else:
            bar.set_postfix(loss=f"{loss:.3f}")
        history.append(row)
    stopper.restore(model)
    best_epoch = stopper.best_epoch if stopper.best_epoch is not None else epochs
    return model, inp, history, best_epoch


def fit_model(
    ds: Dataset, vocabs: Vocabularies, cfg: RecommenderConfig, item_text: torch.Tensor, encoder: TextEncoder | None,
    progress: bool = True,
) -> TrainResult:
    """Train on ``ds`` (validation carved from it), then refit on all of it."""
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    t0 = time.perf_counter()
    metrics: dict[str, object] = {}
    epochs = cfg.train.epochs
    if cfg.train.val_fraction > 0:
        fit_part, val = holdout_last(ds.interactions, cfg.train.val_fraction, min_interactions=3)
        sub = dataclasses.replace(ds, interactions=fit_part)  # users and attributes kept
        model, inp, hist, best_epoch = _train_run(sub, vocabs, cfg, item_text, encoder, epochs, val, progress)
        metrics["validation"] = hist
        metrics["best_epoch"] = best_epoch
        metrics["best_val_ndcg@20"] = max((h.get("val_ndcg@20", -1) for h in hist), default=None)
        metrics["best_val_recall@20"] = next((h.get("val_recall@20") for h in hist if h["epoch"] == best_epoch), None)
        epochs = best_epoch
    refit = cfg.train.refit if cfg.train.val_fraction > 0 else "scratch"
    if refit == "scratch":
        model, inp, hist, _ = _train_run(ds, vocabs, cfg, item_text, encoder, epochs, None, progress)
        metrics["refit"] = hist
    elif refit == "continue":
        extra = max(1, math.ceil(cfg.train.refit_fraction * epochs))
        model, inp, hist, _ = _train_run(ds, vocabs, cfg, item_text, encoder, extra, None, progress, model=model, lr_scale=0.5)
        metrics["refit"] = hist
    else:
        inp = build_inputs(ds, vocabs, cfg, encoder, item_text.shape[1], progress)
    model.eval()
    with torch.no_grad():
        towers = model(inp.adj, inp.id_mask, item_text, inp.user_text, inp.recent_idx, inp.recent_mask)
    metrics["train_seconds"] = time.perf_counter() - t0
    all_epochs = [h for k in ("validation", "refit") for h in cast("list[dict[str, float]]", metrics.get(k, []))]
    metrics["seconds_per_epoch"] = float(np.mean([h["seconds"] for h in all_epochs])) if all_epochs else None
    return TrainResult(model, towers, inp, metrics)
