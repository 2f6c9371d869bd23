"""Training: inputs from a dataset, sampled-softmax ranking loss, early stopping.

``fit_model`` trains on the interactions of a data set with early stopping on a
chronological validation hold-out taken from those interactions (the last
``val_fraction`` of each user's history), then refits on all of them
(``refit="continue"``: the best model trains on for half its epoch count,
validation interactions included, at half the learning rate). Nothing outside the given data is
read: the caller's test set never reaches this module.

Inside a torch.distributed process group (``kgrec train --workers N``, torchrun) the epochs are data-parallel:
each rank takes its shard of every step and the gradients are summed over the ranks; rank 0 alone validates
(:mod:`kgrec.fusion.distributed`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from kgrec.encoders.graph import GraphLayout
from kgrec.encoders.text import TextEncoder
from kgrec.fusion.config import RecommenderConfig, user_text_mode
from kgrec.fusion.distributed import (
    all_reduce_gradients,
    all_reduce_sum,
    barrier,
    broadcast_float,
    broadcast_module,
    rank_batches,
    world,
)
from kgrec.fusion.inputs import GraphInputs, build_inputs, interaction_recent_weights
from kgrec.fusion.itemitem import binary_matrix, candidate_factors, item_factors, spectrum, user_factors
from kgrec.fusion.model import FusedModel, Towers
from kgrec.fusion.ranking import ranking_metrics, topk_scores
from kgrec.fusion.selection import (
    score_rows,
    score_spread_ratio,
    select_cooccurrence,
    selection_split,
    validation_users,
)
from kgrec.fusion.stopping import EarlyStopping
from kgrec.fusion.ties import holdout_newest_groups
from kgrec.graph.hetero import Vocabularies
from kgrec.loaders import schema as S
from kgrec.loaders.schema import Dataset

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    model: FusedModel
    towers: Towers
    inputs: GraphInputs
    metrics: dict[str, object]
    #: the configuration the model was trained with: the one given, with the alternative fit chose (if any)
    config: RecommenderConfig | None = None


def effective_batch_size(
    n: int, batch_size: int, min_steps: int = 8, floor: int = 64, max_steps: int | None = None
) -> int:
    """``batch_size``, shrunk so that small data sets still take ``min_steps`` steps per epoch, and grown so that
    large ones take at most ``max_steps`` (every step propagates over the whole graph: without a bound an epoch
    costs steps x graph, both growing with the data)."""
    bs = max(1, min(batch_size, max(floor, -(-n // min_steps))))
    return bs if max_steps is None else max(bs, -(-n // max_steps))


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
    # data-parallel (kgrec.fusion.distributed): this rank's shard of each step; every rank draws the same random
    # numbers (same seed, same calls), so the permutation, dropped items and negatives agree across ranks
    group = world()
    rank, workers = group if group is not None else (0, 1)
    bs = effective_batch_size(-(-n // workers), tc.batch_size, max_steps=tc.max_steps_per_epoch)
    has_text = (item_text != 0).any(dim=1, keepdim=True)
    for b, step_rows in rank_batches(perm, bs, rank, workers):
        towers = model(inp.adj, inp.id_mask, item_text, inp.user_text)
        user_vecs, item_vecs = towers.user_base, towers.items
        p = cfg.model.content_dropout
        if p > 0 and cfg.model.use_text and cfg.model.use_structure:
            # score a random share of items from their text alone, as cold items are scored; an item without
            # text is never dropped (its text vector is zero: there is nothing to learn to rank it from)
            drop = torch.from_numpy(rng.random(n_items) < p).unsqueeze(1) & has_text
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
        if group is None:
            loss.backward()
        else:  # the mean over the whole step: each shard weighted by its share, summed over the ranks
            (loss * (len(b) / step_rows)).backward()
            all_reduce_gradients(model)
        opt.step()
        total += loss.item() * len(b)
    if group is not None:
        total = all_reduce_sum(total)
    return total / max(n, 1)


@dataclass
class ValidationSample:
    """The users an epoch's validation scores (``train.val_users`` of them, seeded), their seen items and held-out
    targets: drawn once per training run, read at every validation."""

    users: np.ndarray
    exclude: dict[int, np.ndarray]
    targets: list[np.ndarray]

    @classmethod
    def of(cls, targets: list[np.ndarray], inp: GraphInputs, cfg: RecommenderConfig) -> ValidationSample:
        users = validation_users(targets, cfg.train.val_users, cfg.train.seed)
        return cls(users, {r: inp.seen(int(u)) for r, u in enumerate(users)}, [targets[u] for u in users])


def _evaluate(
    model: FusedModel, inp: GraphInputs, item_text: torch.Tensor, sample: ValidationSample, k: int = 20
) -> dict[str, float]:
    model.eval()
    with torch.no_grad():
        towers = model(inp.adj, inp.id_mask, item_text, inp.user_text, inp.recent_idx, inp.recent_mask, inp.recent_span)
    if len(sample.users) == 0:
        return {f"recall@{k}": float("nan"), f"ndcg@{k}": float("nan")}
    step = score_rows(towers.items.shape[0])
    _, top = topk_scores(towers.users[torch.from_numpy(sample.users)], towers.items, k, sample.exclude, chunk=step)
    return ranking_metrics(top.numpy(), sample.targets, k)


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


def split_targets(
    val: pd.DataFrame, vocabs: Vocabularies, cfg: RecommenderConfig
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The internal validation's held-out items for early stopping and for the co-occurrence grid: disjoint users
    (``train.selection_share``, :func:`kgrec.fusion.selection.selection_split`) when the grid runs, else the same."""
    share = cfg.train.selection_share if cfg.model.cooccurrence else 0.0
    return selection_split(val_targets(val, vocabs), share, cfg.train.seed, cfg.train.selection_min_users)


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
    group = world()  # None in one process; rank 0 alone validates, stops and reports
    main = group is None or group[0] == 0
    if group is not None and not main:
        barrier()  # rank 0 encodes the behaviour texts first; the others then read them from its text cache
    inp = build_inputs(ds, vocabs, cfg, encoder, item_text.shape[1], progress and main, item_text=item_text)
    if group is not None and main:
        barrier()
    if model is None:
        model = FusedModel(layout, cfg.model, item_text.shape[1])
        if group is not None:  # a new model starts from rank 0's weights (the same seed gives the same anyway);
            broadcast_module(model)  # one handed in (refit) is never overwritten: the final checksums see any drift
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr * lr_scale, weight_decay=cfg.train.weight_decay)
    targets = split_targets(val, vocabs, cfg)[0] if val is not None and len(val) else None
    sample = ValidationSample.of(targets, inp, cfg) if targets is not None else None
    history: list[dict[str, float]] = []
    stopper = EarlyStopping(cfg.train.patience)
    bar = tqdm(
        range(1, epochs + 1),
        desc="training" if targets is None else "training (validating)",
        unit="epoch",
        disable=not progress or not main,
        leave=False,
    )
    for epoch in bar:
        t0 = time.perf_counter()
        loss = _epoch(model, opt, inp, item_text, cfg, rng)
        row: dict[str, float] = {"epoch": epoch, "loss": loss, "seconds": time.perf_counter() - t0}
        if sample is not None and (epoch % cfg.train.eval_every == 0 or epoch == epochs):
            score = float("nan")
            if main:
                m = _evaluate(model, inp, item_text, sample)
                row.update({f"val_{k}": v for k, v in m.items() if k != "users"})
                score = m["ndcg@20"]
                bar.set_postfix(loss=f"{loss:.3f}", val_ndcg=f"{score:.4f}")
            if group is not None:  # rank 0's score: every rank keeps the same best weights and stops together
                score = broadcast_float(score)
            stop = stopper.step(epoch, score, model)
            if stop:
                history.append(row)
                if main:
                    log.info(
                        "early stop at epoch %d (best %s, val ndcg@20 %.4f)", epoch, stopper.best_epoch, stopper.best
                    )
                break
        else:
            bar.set_postfix(loss=f"{loss:.3f}")
        history.append(row)
    stopper.restore(model)
    best_epoch = stopper.best_epoch if stopper.best_epoch is not None else epochs
    return model, inp, history, best_epoch


@dataclass
class _Candidate:
    """One set of model settings trained on the fit part: its towers at the best epoch and, when the
    co-occurrence part is on, its grid scored on the selection users (:func:`select_cooccurrence`)."""

    model: FusedModel
    inp: GraphInputs
    hist: list[dict[str, float]]
    best_epoch: int
    grid: list[dict[str, float]] | None = None
    best: dict[str, float] | None = None
    users: dict[str, int] | None = None
    grid_seconds: float = 0.0

    @property
    def towers_val(self) -> float:
        """The towers' best validation NDCG@20 (early stopping's users)."""
        return float(max((h.get("val_ndcg@20", -1.0) for h in self.hist), default=-1.0))

    @property
    def val(self) -> float:
        """What candidates are compared by: the fused model's NDCG@20 (towers and the chosen co-occurrence part) on
        the selection users when the grid ran, else the towers' own validation figure."""
        return float(self.best["val_ndcg@20"]) if self.best is not None else self.towers_val


def _candidate(
    sub: Dataset,
    vocabs: Vocabularies,
    cfg: RecommenderConfig,
    item_text: torch.Tensor,
    encoder: TextEncoder | None,
    epochs: int,
    val: pd.DataFrame,
    progress: bool,
) -> _Candidate:
    """Train ``cfg``'s model on the fit part ``sub`` (early stopping on ``val``), then score its co-occurrence grid."""
    model, inp, hist, best_epoch = _train_run(sub, vocabs, cfg, item_text, encoder, epochs, val, progress)
    cand = _Candidate(model, inp, hist, best_epoch)
    if cfg.model.cooccurrence and len(val):
        t1 = time.perf_counter()
        model.eval()
        with torch.no_grad():
            tw = model(inp.adj, inp.id_mask, item_text, inp.user_text, inp.recent_idx, inp.recent_mask, inp.recent_span)
            stop_t, sel_t = split_targets(val, vocabs, cfg)
            cand.grid, cand.best = select_cooccurrence(tw, inp, sel_t, cfg, len(vocabs.user), len(vocabs.item))
        cand.users = {"stopping": sum(1 for t in stop_t if len(t)), "selection": sum(1 for t in sel_t if len(t))}
        cand.grid_seconds = time.perf_counter() - t1
    return cand


def _tried(settings: dict[str, Any], cand: _Candidate) -> dict[str, Any]:
    """One candidate's row of ``metrics["alternatives"]``: its settings, the figure candidates are compared by
    (:attr:`_Candidate.val`), the towers' own validation figure, and the best epoch."""
    return {
        "settings": dict(settings),
        "val_ndcg@20": cand.val,
        "towers_val_ndcg@20": cand.towers_val,
        "best_epoch": cand.best_epoch,
    }


def _val(row: dict[str, Any]) -> float:
    return float(row["val_ndcg@20"])


def fit_model(
    ds: Dataset,
    vocabs: Vocabularies,
    cfg: RecommenderConfig,
    item_text: torch.Tensor,
    encoder: TextEncoder | None,
    progress: bool = True,
) -> TrainResult:
    """Train on ``ds`` (validation carved from it), then refit on all of it.

    With ``train.alternatives``, each listed set of model settings is trained on the fit part too, and the one whose
    fused model (towers and co-occurrence part, each candidate with its own grid) scores best on the selection users
    is kept (ties: the configured settings)."""
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
        cand = _candidate(sub, vocabs, cfg, item_text, encoder, epochs, val, progress)
        tried = [_tried({}, cand)]
        for alt in cfg.train.alternatives:
            acfg = cfg.model_copy(update={"model": cfg.model.model_copy(update=alt)})
            if acfg.model == cfg.model:
                continue  # the configured settings already
            t1 = time.perf_counter()
            run = _candidate(sub, vocabs, acfg, item_text, encoder, epochs, val, progress)
            tried.append({**_tried(alt, run), "seconds": time.perf_counter() - t1})
            better = _val(tried[-1]) > max(_val(t) for t in tried[:-1])
            if world() is not None:  # rank 0 alone validated: every rank follows its choice
                better = broadcast_float(1.0 if better else 0.0) > 0.5
            if better:
                cfg, cand = acfg, run
        if len(tried) > 1:
            best_row = max(tried, key=_val)
            metrics["alternatives"] = tried
            metrics["model_settings"] = best_row["settings"] or "as configured"
            log.info("model settings chosen on validation: %s (%s)", metrics["model_settings"], tried)
        model, inp, hist, best_epoch = cand.model, cand.inp, cand.hist, cand.best_epoch
        metrics["validation"] = hist
        metrics["best_epoch"] = best_epoch
        metrics["best_val_ndcg@20"] = cand.towers_val if hist else None
        metrics["best_val_recall@20"] = next((h.get("val_recall@20") for h in hist if h["epoch"] == best_epoch), None)
        epochs = best_epoch
        if cand.best is not None and cand.grid is not None:
            best = cand.best
            metrics["validation_users"] = cand.users
            metrics["selection"] = cand.grid
            chosen = {
                "cooc_weight": best["cooc_weight"],
                "cooc_l2": best["cooc_l2"],
                "cooc_zero_diagonal": best["cooc_zero_diagonal"],
                "val_ndcg@20": best["val_ndcg@20"],
                "val_recall@20": best["val_recall@20"],
            }
            metrics["selection_seconds"] = cand.grid_seconds
            log.info(
                "co-occurrence part chosen on validation: %s (val ndcg@20 %.4f; fused alone %.4f)",
                chosen,
                best["val_ndcg@20"],
                next((r["val_ndcg@20"] for r in cand.grid if r["cooc_weight"] == 0), float("nan")),
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
        inp = build_inputs(ds, vocabs, cfg, encoder, item_text.shape[1], progress, item_text=item_text)
    res = finish(model, inp, vocabs, cfg, item_text, chosen, metrics, t0)
    res.config = cfg
    return res


def finish(
    model: FusedModel,
    inp: GraphInputs,
    vocabs: Vocabularies,
    cfg: RecommenderConfig,
    item_text: torch.Tensor,
    chosen: dict[str, float],
    metrics: dict[str, object],
    t0: float,
) -> TrainResult:
    """The trained model's towers on ``inp``, with the co-occurrence part of weight ``chosen`` and the timings."""
    model.eval()
    with torch.no_grad():
        towers = model(inp.adj, inp.id_mask, item_text, inp.user_text, inp.recent_idx, inp.recent_mask, inp.recent_span)
        towers.interaction_recent = interaction_recent_weights(model, inp, len(vocabs.user))
        if chosen["cooc_weight"] > 0:
            x = binary_matrix(inp.pos_users, inp.pos_items, len(vocabs.user), len(vocabs.item))
            sigma, v = spectrum(x, cfg.model.cooc_rank, cfg.train.seed)
            e = item_factors(sigma, v, chosen["cooc_l2"])
            c, f = user_factors(x, e), candidate_factors(e, bool(chosen.get("cooc_zero_diagonal", False)))
            alpha = chosen["cooc_weight"] * score_spread_ratio(towers.users, towers.items, c, f, cfg.train.seed)
            towers.user_cooc, towers.item_cooc, towers.hist_cooc = alpha * c, f, e
            chosen["cooc_alpha"] = alpha
        user_text = user_text_mode(cfg.model, len(vocabs.user)) if cfg.model.use_text else "none"
        if user_text == "compose":
            towers.item_encoding = item_text.numpy()
    metrics["user_text"] = user_text
    metrics["chosen"] = chosen
    metrics["train_seconds"] = time.perf_counter() - t0
    all_epochs = [h for k in ("validation", "refit") for h in cast("list[dict[str, float]]", metrics.get(k, []))]
    metrics["seconds_per_epoch"] = float(np.mean([h["seconds"] for h in all_epochs])) if all_epochs else None
    return TrainResult(model, towers, inp, metrics)


def warm_fit_model(
    ds: Dataset,
    vocabs: Vocabularies,
    cfg: RecommenderConfig,
    item_text: torch.Tensor,
    encoder: TextEncoder | None,
    model: FusedModel,
    epochs: int,
    chosen: dict[str, float],
    progress: bool = True,
) -> TrainResult:
    """Continue training ``model`` (its weights carried over from a saved model, kgrec.fusion.warm) on all of ``ds``
    for ``epochs`` at half the learning rate, keeping the co-occurrence weight and l2 chosen before (no validation)."""
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    t0 = time.perf_counter()
    model, inp, hist, _ = _train_run(
        ds, vocabs, cfg, item_text, encoder, epochs, None, progress, model=model, lr_scale=0.5
    )
    keep = {k: v for k, v in chosen.items() if k in ("cooc_weight", "cooc_l2")}
    return finish(model, inp, vocabs, cfg, item_text, keep, {"refit": hist, "warm_epochs": epochs}, t0)
