"""Ties in time are not an order (kgrec.fusion.ties; docs/evaluation.md, "Ties in time").

Interactions of one user that share a timestamp form a tie group: the recent-interest profile, the causal
training prefixes, the recency weights of graph edges and the validation split inside ``fit`` treat the
group as one, so neither the order of its rows nor how its item ids sort reaches the model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from kgrec.fusion.config import RecommenderConfig
from kgrec.fusion.ties import group_bounds, holdout_newest_groups, recency_weights, window
from kgrec.loaders import schema as S
from kgrec.loaders.schema import Dataset


def test_window_keeps_a_tie_group_whole_and_prefixes_are_strictly_earlier() -> None:
    # one user: t=1: [10], t=2: [11, 12, 13], t=3: [14]
    seq = np.array([10, 11, 12, 13, 14])
    gs, ge = group_bounds(np.zeros(5, int), np.array([1, 2, 2, 2, 3]))
    assert gs.tolist() == [0, 1, 1, 1, 4] and ge.tolist() == [1, 4, 4, 4, 5]
    # the prefix of an item of the t=2 group ends at the group's start: its tie partners are not in it
    w = window(seq, gs, ge, np.array([0]), gs[[2]], 5)
    assert w.idx[w.mask].tolist() == [10]
    # the whole history, window 2: 14 has position 0; the t=2 group covers positions 1..3 and starts inside
    # the window, so all three are in it (sharing what the window gives to position 1)
    w = window(seq, gs, ge, np.array([0]), np.array([5]), 2)
    assert w.idx[w.mask].tolist() == [14, 13, 12, 11]
    assert w.lo[w.mask].tolist() == [0, 1, 1, 1] and w.hi[w.mask].tolist() == [1, 4, 4, 4]


def test_recent_weights_split_a_group_equally_and_sum_to_one() -> None:
    from kgrec.fusion.model import RecentInterest

    ri = RecentInterest(4, 3)
    seq = np.array([10, 11, 12, 13, 14])
    gs, ge = group_bounds(np.zeros(5, int), np.array([1, 2, 2, 2, 3]))
    w = window(seq, gs, ge, np.array([0]), np.array([5]), 3)
    a = ri.weights(w.mask, w.lo, w.hi)[0].detach()
    p = torch.softmax(ri.logits.detach(), 0)
    # 14 gets position 0; the group 11..13 covers positions 1, 2 (3 is past the window), split in three
    assert a[0].item() == pytest.approx(p[0].item())
    assert a[1:].tolist() == pytest.approx([(p[1] + p[2]).item() / 3] * 3)
    assert a.sum().item() == pytest.approx(1.0)


def test_recency_weights_give_a_tie_group_one_position() -> None:
    users = np.array([0, 0, 0, 0, 1])
    times = np.array([5, 9, 9, 9, 1])
    w = recency_weights(users, times, 1.0)
    # t=9 group: positions 0..2 -> mean position 1; t=5: 3 newer -> position 3
    assert w.tolist() == pytest.approx([0.5**3, 0.5, 0.5, 0.5, 1.0])
    perm = np.array([3, 1, 4, 0, 2])
    assert recency_weights(users[perm], times[perm], 1.0).tolist() == pytest.approx(w[perm].tolist())


def test_internal_split_never_cuts_a_tie_group() -> None:
    inter = pd.DataFrame({
        S.USER: ["a"] * 10 + ["b"] * 6,
        S.ITEM: [f"i{k}" for k in range(10)] + [f"j{k}" for k in range(6)],
        # a: nine months of one item each, then a month of ... ; b: two months of three items
        S.TIMESTAMP: [1, 2, 3, 4, 5, 6, 7, 8, 8, 8] + [1, 1, 1, 2, 2, 2],
    })
    kept, out = holdout_newest_groups(inter, 0.2, min_interactions=3)
    # a: newest 2 positions are held out only if more than half of a group is in them: the t=8 group (3 items,
    # positions 0..2: 0 newer + 3/2 < 2) goes whole; b: its t=2 group (0 newer + 3/2 >= round(1.2) = 1) stays
    assert sorted(out[S.ITEM]) == ["i7", "i8", "i9"]
    assert len(kept) + len(out) == len(inter)
    for (u, t), g in inter.groupby([S.USER, S.TIMESTAMP]):
        held = g[S.ITEM].isin(out[S.ITEM])
        assert held.all() or not held.any(), (u, t)


def _coarse(ds: Dataset) -> Dataset:
    """The data set with its timestamps coarsened to 10 steps over its span: most interactions tie."""
    it = ds.interactions.copy()
    t = it[S.TIMESTAMP].to_numpy(np.int64)
    step = max(1, (t.max() - t.min()) // 10 + 1)
    it[S.TIMESTAMP] = (t - t.min()) // step * step + t.min()
    return Dataset(it, ds.items, ds.item_categories, ds.item_keywords, ds.triples, ds.tags, ds.name)


def _renamed(ds: Dataset) -> tuple[Dataset, dict[str, str]]:
    """Item ids renamed so that they sort the other way round (the vocabulary numbers them in reverse)."""
    ranked = sorted(ds.items[S.ITEM].tolist())
    new = {i: f"x{len(ranked) - k:05d}" for k, i in enumerate(ranked)}
    ren = lambda df: df.assign(**{S.ITEM: df[S.ITEM].map(new)}) if S.ITEM in df else df  # noqa: E731
    return Dataset(ren(ds.interactions), ren(ds.items), ren(ds.item_categories), ren(ds.item_keywords),
                   ren(ds.triples), ren(ds.tags), ds.name), new


def _shuffled(ds: Dataset, seed: int) -> Dataset:
    """The same data, the interaction rows in another order (so every tie group is in another order)."""
    it = ds.interactions.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    return Dataset(it, ds.items, ds.item_categories, ds.item_keywords, ds.triples, ds.tags, ds.name)


TIE_CFG = {"model": {"dim": 16, "recent_window": 8, "recency_half_life": 4.0},
           "train": {"epochs": 4, "batch_size": 256, "eval_every": 1, "patience": 2, "seed": 3, "threads": 1}}


def test_permuting_tied_rows_gives_the_same_trained_model(synth_dataset) -> None:
    """Same seed, interaction rows shuffled (so every tie group is in another order): the same vectors,
    the same best epoch, the same recommendations."""
    from kgrec import Recommender

    ds = _coarse(synth_dataset)
    ties = ds.interactions.duplicated([S.USER, S.TIMESTAMP], keep=False).mean()
    assert ties > 0.8  # the point of the test: almost every interaction ties with another of its user
    cfg = RecommenderConfig.model_validate(TIE_CFG)
    a = Recommender(cfg).fit(ds, progress=False)
    b = Recommender(cfg).fit(_shuffled(ds, seed=7), progress=False)
    for name in ("users", "items", "user_recent_struct"):
        np.testing.assert_allclose(a.arrays[name], b.arrays[name], rtol=1e-4, atol=1e-5, err_msg=name)
    assert a.metrics["best_epoch"] == b.metrics["best_epoch"]
    for u in a.vocabs.user.to_list()[:5]:
        ra, rb = a.recommend(u, 5), b.recommend(u, 5)
        assert ra["item"].tolist() == rb["item"].tolist()
        np.testing.assert_allclose(a.state.recent_weights(a.user_number(u)), b.state.recent_weights(b.user_number(u)), atol=1e-6)


def _per_interaction(ds: Dataset, cfg: RecommenderConfig) -> dict[tuple[str, str], tuple]:
    """What the model's inputs say about each interaction, by ids: its edge weight, the item ids of its
    causal prefix with their tie spans, and its slot in the user's recent-interest window."""
    from kgrec.fusion.inputs import build_inputs
    from kgrec.graph.hetero import Vocabularies

    v = Vocabularies.from_dataset(ds)
    inp = build_inputs(ds, v, cfg, None, 8, progress=False)
    w = inp.prefix(np.arange(len(inp.pos_users)), cfg.model.recent_window)
    win, bounds = inp.recent_window(cfg.model.recent_window, len(v.user))
    recent: dict[tuple[str, str], tuple[int, int]] = {}
    for u in range(len(v.user)):
        m = win.mask[u].numpy()
        for i, lo, hi in zip(win.idx[u].numpy()[m], win.lo[u].numpy()[m], win.hi[u].numpy()[m], strict=True):
            recent[(v.user.id(u), v.item.id(int(i)))] = (int(lo), int(hi))
    out = {}
    for r, (u, i) in enumerate(zip(inp.pos_users, inp.pos_items, strict=True)):
        m = w.mask[r].numpy()
        pre = sorted(zip(v.item.ids_of(w.idx[r].numpy()[m]) if hasattr(v.item, "ids_of") else
                         [v.item.id(int(x)) for x in w.idx[r].numpy()[m]],
                         w.lo[r].numpy()[m].tolist(), w.hi[r].numpy()[m].tolist(), strict=True))
        key = (v.user.id(int(u)), v.item.id(int(i)))
        out[key] = (round(float(inp.edge_norm[r]), 6), pre, recent.get(key))
    return out


def test_renaming_items_to_reverse_their_sort_order_changes_no_input(synth_dataset) -> None:
    """Item ids sorted the other way round: every interaction has the same edge weight, the same causal
    prefix (by id, with the same tie spans) and the same place in the recent-interest window; the validation
    split holds out the same interactions; the behaviour texts are the same."""
    from kgrec.encoders.behaviour import user_texts
    from kgrec.graph.hetero import Vocabularies

    ds = _coarse(synth_dataset)
    other, new = _renamed(ds)
    cfg = RecommenderConfig.model_validate(TIE_CFG)
    a, b = _per_interaction(ds, cfg), _per_interaction(other, cfg)
    assert len(a) == len(b) == len(ds.interactions)
    back = {v: k for k, v in new.items()}
    b_back = {(u, back[i]): (w, sorted((back[p], lo, hi) for p, lo, hi in pre), rw) for (u, i), (w, pre, rw) in b.items()}
    assert a == b_back
    kept_a, out_a = holdout_newest_groups(ds.interactions, 0.3)
    kept_b, out_b = holdout_newest_groups(other.interactions, 0.3)
    assert len(out_a) > 0
    assert set(zip(out_a[S.USER], out_a[S.ITEM])) == set(zip(out_b[S.USER], out_b[S.ITEM].map(back)))
    assert user_texts(ds, Vocabularies.from_dataset(ds)) == user_texts(other, Vocabularies.from_dataset(other))


def test_the_inputs_hold_every_users_items_as_two_arrays(synth_dataset) -> None:
    """The training inputs keep each user's items as one CSR pair (no Python object per user: a million users)."""
    from kgrec.fusion.inputs import build_inputs
    from kgrec.graph.hetero import Vocabularies

    v = Vocabularies.from_dataset(synth_dataset)
    inp = build_inputs(synth_dataset, v, RecommenderConfig(), None, 8, progress=False)
    assert isinstance(inp.user_ptr, np.ndarray) and len(inp.user_ptr) == len(v.user) + 1
    it = synth_dataset.interactions
    for u in range(len(v.user)):
        want = sorted(v.item.numbers(it.loc[it["user"] == v.user.id(u), "item"].astype(str).to_numpy()).tolist())
        assert sorted(inp.seen(u).tolist()) == want
    assert inp.seen(len(v.user) + 5).size == 0
