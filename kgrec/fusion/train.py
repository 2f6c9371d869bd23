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
from kgrec.encoders.graph import GraphLayout
from kgrec.encoders.text import TextEncoder
from kgrec.fusion.config import RecommenderConfig
from kgrec.fusion.itemitem import binary_matrix, item_factors, spectrum, user_factors
from kgrec.fusion.model import FusedModel, Towers
from kgrec.fusion.ranking import ranking_metrics, topk_scores
from kgrec.fusion.stopping import EarlyStopping
from kgrec.fusion.ties import Window, canonical_order, group_bounds, holdout_newest_groups, recency_weights, window
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
    model: FusedModel,
    opt: torch.optim.Optimizer,
    inp: GraphInputs,
    item_text: torch.Tensor,
    cfg: RecommenderConfig,
    rng: np.random.Generator,
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
            win = inp.prefix(b, model.recent.window)
            u = u + model.recent(towers.items, win.idx, win.mask, win.lo, win.hi)
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
            neg_logit = neg_logit.masked_fill(
                neg_idx.unsqueeze(0) == torch.from_numpy(inp.pos_items[b]).unsqueeze(1), float("-inf")
            )
            logits = torch.cat([pos_logit, neg_logit], 1)
            if tc.temperature != 1.0:
                logits = logits / tc.temperature
            loss = F.cross_entropy(logits, torch.zeros(len(b), dtype=torch.long))
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item() * len(b)
    return total / max(n, 1)


def _evaluate(
    model: FusedModel, inp: GraphInputs, item_text: torch.Tensor, targets: list[np.ndarray], k: int = 20
) -> dict[str, float]:
    model.eval()
    with torch.no_grad():
        towers = model(inp.adj, inp.id_mask, item_text, inp.user_text, inp.recent_idx, inp.recent_mask, inp.recent_span)
    users = np.array([u for u, t in enumerate(targets) if len(t)], dtype=np.int64)
    if len(users) == 0:
        return {f"recall@{k}": float("nan"), f"ndcg@{k}": float("nan")}
    exclude = {r: inp.history.get(int(u), np.empty(0, dtype=np.int64)) for r, u in enumerate(users)}
    _, top = topk_scores(towers.users[torch.from_numpy(users)], towers.items, k, exclude)
    return ranking_metrics(top.numpy(), [targets[u] for u in users], k)


def val_targets(val: pd.DataFrame, vocabs: Vocabularies) -> list[np.ndarray]:
    """Held-out item numbers per user number (empty for users without any)."""
    targets = [np.empty(0, dtype=np.int64)] * len(vocabs.user)
    vu = vocabs.user.numbers(val[S.USER])
    vi = vocabs.item.numbers(val[S.ITEM])
    by: dict[int, list[int]] = {}
    for u, i in zip(vu.tolist(), vi.tolist(), strict=True):
        by.setdefault(u, []).append(i)
    for u, its in by.items():
        targets[u] = np.asarray(its, dtype=np.int64)
    return targets


#: users sampled to measure the spread of the fused and co-occurrence scores (their ratio scales the weight)
SCALE_USERS = 512


def score_spread_ratio(u_f: torch.Tensor, i_f: torch.Tensor, u_c: torch.Tensor, i_c: torch.Tensor, seed: int) -> float:
    """``std(fused scores) / std(co-occurrence scores)`` over a fixed sample of users and all items."""
    g = np.random.default_rng(seed)
    rows = torch.from_numpy(np.sort(g.choice(len(u_f), min(SCALE_USERS, len(u_f)), replace=False)))
    sf = float((u_f[rows] @ i_f.T).std())
    sc = float((u_c[rows] @ i_c.T).std())
    return sf / sc if sc > 0 else 0.0


def select_cooccurrence(
    towers: Towers,
    inp: GraphInputs,
    targets: list[np.ndarray],
    cfg: RecommenderConfig,
    n_users: int,
    n_items: int,
) -> tuple[list[dict[str, float]], dict[str, float]]:
    """Every (weight, l2) of the co-occurrence grids scored on the internal validation split, with the
    fused towers trained on the fit part; returns ``(rows, best)`` (best by NDCG@20, ties: the smaller weight)."""
    m = cfg.model
    users = np.array([u for u, t in enumerate(targets) if len(t)], dtype=np.int64)
    x = binary_matrix(inp.pos_users, inp.pos_items, n_users, n_items)
    sigma, v = spectrum(x, m.cooc_rank, cfg.train.seed)
    u_f, i_f = towers.users.detach(), towers.items.detach()
    exclude = {r: inp.history.get(int(u), np.empty(0, dtype=np.int64)) for r, u in enumerate(users)}
    tg = [targets[u] for u in users]
    ut = torch.from_numpy(users)
    rows: list[dict[str, float]] = []

    def measure(uv: torch.Tensor, iv: torch.Tensor, w: float, l2: float) -> None:
        _, top = topk_scores(uv, iv, 20, exclude)
        r = ranking_metrics(top.numpy(), tg, 20)
        rows.append({"cooc_weight": w, "cooc_l2": l2, "val_ndcg@20": r["ndcg@20"], "val_recall@20": r["recall@20"]})

    if 0.0 in m.cooc_weights:
        measure(u_f[ut], i_f, 0.0, 0.0)  # the fused towers alone
    for l2 in m.cooc_l2:
        e = item_factors(sigma, v, l2)
        c = user_factors(x, e)
        ratio = score_spread_ratio(u_f, i_f, c, e, cfg.train.seed)
        for w in sorted(set(m.cooc_weights) - {0.0}):
            measure(torch.cat([u_f[ut], (w * ratio) * c[ut]], 1), torch.cat([i_f, e], 1), w, l2)
    best = max(rows, key=lambda r: (r["val_ndcg@20"], -r["cooc_weight"]))
    return rows, best


def _train_run(
    ds: Dataset,
    vocabs: Vocabularies,
    cfg: RecommenderConfig,
    item_text: torch.Tensor,
    encoder: TextEncoder | None,
    epochs: int,
    val: pd.DataFrame | None,
    progress: bool,
    model: FusedModel | None = None,
    lr_scale: float = 1.0,
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
    targets = val_targets(val, vocabs) if val is not None and len(val) else None
    history: list[dict[str, float]] = []
    stopper = EarlyStopping(cfg.train.patience)
    bar = tqdm(
        range(1, epochs + 1),
        desc="training" if targets is None else "training (validating)",
        unit="epoch",
        disable=not progress,
        leave=False,
    )
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
    ds: Dataset,
    vocabs: Vocabularies,
    cfg: RecommenderConfig,
    item_text: torch.Tensor,
    encoder: TextEncoder | None,
    progress: bool = True,
) -> TrainResult:
    """Train on ``ds`` (validation carved from it), then refit on all of it."""
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    t0 = time.perf_counter()
    metrics: dict[str, object] = {}
    epochs = cfg.train.epochs
    # without a validation split the co-occurrence part takes the middle of its grids
    mid = sorted(cfg.model.cooc_weights)
    chosen = {
        "cooc_weight": mid[len(mid) // 2] if cfg.model.cooccurrence else 0.0,
        "cooc_l2": sorted(cfg.model.cooc_l2)[len(cfg.model.cooc_l2) // 2],
    }
    if cfg.train.val_fraction > 0:
        fit_part, val = holdout_newest_groups(ds.interactions, cfg.train.val_fraction, min_interactions=3)
        sub = dataclasses.replace(ds, interactions=fit_part)  # users and attributes kept
        model, inp, hist, best_epoch = _train_run(sub, vocabs, cfg, item_text, encoder, epochs, val, progress)
        metrics["validation"] = hist
        metrics["best_epoch"] = best_epoch
        metrics["best_val_ndcg@20"] = max((h.get("val_ndcg@20", -1) for h in hist), default=None)
        metrics["best_val_recall@20"] = next((h.get("val_recall@20") for h in hist if h["epoch"] == best_epoch), None)
        epochs = best_epoch
        if cfg.model.cooccurrence and len(val):
            t1 = time.perf_counter()
            model.eval()
            with torch.no_grad():
                tw = model(
                    inp.adj, inp.id_mask, item_text, inp.user_text, inp.recent_idx, inp.recent_mask, inp.recent_span
                )
                rows, best = select_cooccurrence(
                    tw, inp, val_targets(val, vocabs), cfg, len(vocabs.user), len(vocabs.item)
                )
            metrics["selection"] = rows
            chosen = {
                "cooc_weight": best["cooc_weight"],
                "cooc_l2": best["cooc_l2"],
                "val_ndcg@20": best["val_ndcg@20"],
                "val_recall@20": best["val_recall@20"],
            }
            metrics["selection_seconds"] = time.perf_counter() - t1
            log.info(
                "co-occurrence part chosen on validation: %s (val ndcg@20 %.4f; fused alone %.4f)",
                chosen,
                best["val_ndcg@20"],
                next((r["val_ndcg@20"] for r in rows if r["cooc_weight"] == 0), float("nan")),
            )
    refit = cfg.train.refit if cfg.train.val_fraction > 0 else "scratch"
    if refit == "scratch":
        model, inp, hist, _ = _train_run(ds, vocabs, cfg, item_text, encoder, epochs, None, progress)
        metrics["refit"] = hist
    elif refit == "continue":
        extra = max(1, math.ceil(cfg.train.refit_fraction * epochs))
        model, inp, hist, _ = _train_run(
            ds, vocabs, cfg, item_text, encoder, extra, None, progress, model=model, lr_scale=0.5
        )
        metrics["refit"] = hist
    else:
        inp = build_inputs(ds, vocabs, cfg, encoder, item_text.shape[1], progress)
    model.eval()
    with torch.no_grad():
        towers = model(inp.adj, inp.id_mask, item_text, inp.user_text, inp.recent_idx, inp.recent_mask, inp.recent_span)
        towers.interaction_recent = interaction_recent_weights(model, inp, len(vocabs.user))
        if chosen["cooc_weight"] > 0:
            x = binary_matrix(inp.pos_users, inp.pos_items, len(vocabs.user), len(vocabs.item))
            sigma, v = spectrum(x, cfg.model.cooc_rank, cfg.train.seed)
            e = item_factors(sigma, v, chosen["cooc_l2"])
            c = user_factors(x, e)
            alpha = chosen["cooc_weight"] * score_spread_ratio(towers.users, towers.items, c, e, cfg.train.seed)
            towers.user_cooc, towers.item_cooc = alpha * c, e
            chosen["cooc_alpha"] = alpha
    metrics["chosen"] = chosen
    metrics["train_seconds"] = time.perf_counter() - t0
    all_epochs = [h for k in ("validation", "refit") for h in cast("list[dict[str, float]]", metrics.get(k, []))]
    metrics["seconds_per_epoch"] = float(np.mean([h["seconds"] for h in all_epochs])) if all_epochs else None
    return TrainResult(model, towers, inp, metrics)
