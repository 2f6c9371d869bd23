"""The quality benchmark's protocol: splits that never leak, exact metrics, baselines that work."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from kgrec.evaluation.baselines.base import FitContext
from kgrec.evaluation.baselines.ease import EASE
from kgrec.evaluation.baselines.itemknn import ItemKNN
from kgrec.evaluation.baselines.popularity import Popularity
from kgrec.evaluation.benchmark import ModelSpec, run_benchmark
from kgrec.evaluation.metrics import evaluate_cold_only, evaluate_topk, full_ranking_topk
from kgrec.evaluation.split import Interactions, assert_no_leak, make_split
from kgrec.loaders import from_frames
from kgrec.loaders import schema as S


def _keys(df: pd.DataFrame) -> set[tuple]:
    return set(map(tuple, df[[S.USER, S.ITEM, S.TIMESTAMP]].itertuples(index=False)))


@pytest.mark.parametrize("source", ["synthetic", "movielens"])
def test_split_never_leaks_test_into_train_or_validation(source, synth_dataset, ml_root):
    from kgrec import loaders

    ds = synth_dataset if source == "synthetic" else loaders.movielens(ml_root)
    sp = make_split(ds)
    assert_no_leak(sp)
    tr, va, te = _keys(sp.train_frame), _keys(sp.val_frame), _keys(sp.test_frame)
    assert not (te & tr) and not (te & va) and not (va & tr)
    # nothing lost: the three parts are the (deduplicated) interactions
    assert len(tr) + len(va) + len(te) == len(ds.interactions.drop_duplicates([S.USER, S.ITEM]))
    # per user: every test interaction is at least as new as everything the model may fit on
    fit = sp.fit_frame.groupby(S.USER)[S.TIMESTAMP].max()
    first_test = sp.test_frame.groupby(S.USER)[S.TIMESTAMP].min()
    assert (first_test >= fit[first_test.index]).all()
    # ties in time are not an order (issue 20): a user's interactions at one timestamp are all in one part
    parts = pd.concat([sp.train_frame.assign(_p=0), sp.val_frame.assign(_p=1), sp.test_frame.assign(_p=2)])
    assert (parts.groupby([S.USER, S.TIMESTAMP])["_p"].nunique() == 1).all()
    # users without ties: the test part is their last 20% (at least one) when they have >= 5 interactions
    n = parts.groupby(S.USER).size()
    untied = parts.groupby(S.USER)[S.TIMESTAMP].nunique() == n
    n_test = sp.test_frame.groupby(S.USER).size().reindex(n.index, fill_value=0)
    expect = np.where(n >= 5, np.maximum(1, np.round(n * 0.2)), 0)
    assert untied.sum() > 0 and (n_test[untied].to_numpy() == expect[untied.to_numpy()]).all()
    # the numbered views agree with the frames
    assert len(sp.fit) == len(sp.train) + len(sp.val)
    assert sp.test.n_items == len(ds.items)


def test_fit_data_set_drops_tags_on_held_out_items():
    inter = pd.DataFrame({"user": ["a"] * 6, "item": list("pqrstu"), "timestamp": range(6)})
    items = pd.DataFrame({"item": list("pqrstuv"), "title": list("PQRSTUV")})
    tags = pd.DataFrame({"user": ["a", "a", "a"], "item": ["p", "u", "v"], "tag": ["kept", "future", "unrated"]})
    ds = from_frames(inter, items, tags=tags)
    sp = make_split(ds)
    assert sp.test_frame[S.ITEM].tolist() == ["u"]
    fit_ds = sp.dataset_of(sp.fit_frame)
    assert fit_ds.tags[S.TAG].tolist() == ["kept"]
    # the keyword only the held-out tag gave item u is gone; the kept one stays
    kw = set(map(tuple, fit_ds.item_keywords[[S.ITEM, S.KEYWORD]].itertuples(index=False)))
    assert ("p", "kept") in kw and ("u", "future") not in kw and ("v", "unrated") not in kw
    assert set(fit_ds.interactions[S.ITEM]) == set("pqrst")


def test_metrics_known_answer():
    fit = Interactions(np.array([0, 0, 1]), np.array([0, 1, 0]), np.zeros(3, np.int64), 2, 6)
    held = Interactions(np.array([0, 0, 1]), np.array([2, 5, 3]), np.ones(3, np.int64), 2, 6)
    top = np.array([[2, 3, 4], [4, 3, 2]])  # user 0 hits item 2 at rank 1; user 1 hits item 3 at rank 2
    m = evaluate_topk(top, np.array([0, 1]), fit, held, k=3)
    disc = 1 / np.log2(np.arange(2, 5))
    assert m["recall@3"] == pytest.approx((1 / 2 + 1) / 2)
    assert m["ndcg@3"] == pytest.approx((disc[0] / disc[:2].sum() + disc[1] / disc[0]) / 2)
    # items 2..5 never appear in fit: all held-out items are cold here
    assert m["cold_recall@3"] == pytest.approx(m["recall@3"]) and m["cold_users"] == 2
    assert m["coverage@3"] == pytest.approx(3 / 6)


def test_cold_only_ranking_known_answer():
    # items 0, 1 are warm (in fit); 2..5 are cold. User 0 holds out warm 1 and cold 4; user 1 only warm 0.
    fit = Interactions(np.array([0, 1]), np.array([0, 1]), np.zeros(2, np.int64), 2, 6)
    held = Interactions(np.array([0, 0, 1]), np.array([1, 4, 0]), np.ones(3, np.int64), 2, 6)
    # user 0's scores put the warm items first; over cold items only, item 4 is second (after 5)
    scores = torch.tensor([[9.0, 8.0, 1.0, 0.0, 3.0, 4.0], [9.0, 9.0, 9.0, 9.0, 9.0, 9.0]])
    m = evaluate_cold_only(lambda u: scores[torch.from_numpy(u)], fit, held, k=2)
    disc = 1 / np.log2(np.arange(2, 4))
    assert m["cold_only_users"] == 1 and m["cold_items"] == 4  # user 1 has no cold held-out item
    assert m["cold_only_recall@2"] == 1.0
    assert m["cold_only_ndcg@2"] == pytest.approx(disc[1] / disc[0])
    assert m["cold_only_random_recall@2"] == pytest.approx(2 / 4)
    # the same scores in a full ranking put no cold item in the top 2
    top = full_ranking_topk(lambda u: scores[torch.from_numpy(u)], np.array([0]), [np.array([0])], k=2)
    assert evaluate_topk(top, np.array([0]), fit, held, k=2)["cold_recall@2"] == 0.0


def test_full_ranking_candidates_restrict_and_pad_with_non_hits():
    scores = torch.tensor([[1.0, 5.0, 4.0, 3.0]])
    top = full_ranking_topk(lambda u: scores[torch.from_numpy(u)], np.array([0]), [np.empty(0, np.int64)], k=3,
                            candidates=np.array([True, False, False, True]))
    assert top[0, :2].tolist() == [3, 0]


def test_full_ranking_excludes_seen_and_breaks_ties_by_item_number():
    scores = torch.tensor([[1.0, 5.0, 5.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    top = full_ranking_topk(lambda u: scores[torch.from_numpy(u)], np.array([0, 1]), [np.array([1]), np.array([0])], k=3)
    assert top.tolist() == [[2, 0, 3], [1, 2, 3]]


def _blocks(n_users: int = 60, n_items: int = 40, per_user: int = 8, seed: int = 0) -> Interactions:
    """Two disjoint tastes: even users take items < 20, odd users items >= 20."""
    rng = np.random.default_rng(seed)
    u, i = [], []
    for user in range(n_users):
        lo = 0 if user % 2 == 0 else n_items // 2
        chosen = rng.choice(np.arange(lo, lo + n_items // 2), per_user, replace=False)
        u += [user] * per_user
        i += chosen.tolist()
    return Interactions(np.array(u), np.array(i), np.arange(len(u), dtype=np.int64), n_users, n_items)


@pytest.mark.parametrize("model", [EASE(l2=10.0), ItemKNN(neighbours=10)])
def test_item_item_baselines_learn_the_blocks(model):
    d = _blocks()
    m = model.fit(FitContext(d))
    s = m.scores(np.arange(d.n_users))
    top = torch.topk(s, 5, dim=1).indices.numpy()
    even = np.arange(d.n_users) % 2 == 0
    assert (top[even] < 20).mean() > 0.95 and (top[~even] >= 20).mean() > 0.95


def test_ease_is_its_closed_form():
    """EASE's weights are ``B = I - P diag(1 / diag(P))``, ``P = (X^T X + l2 I)^-1`` (its Cholesky inverse against
    the definition with a general inverse), with a zero diagonal."""
    d = _blocks()
    m = EASE(l2=7.0).fit(FitContext(d))
    x = torch.zeros(d.n_users, d.n_items, dtype=torch.float64)
    x[torch.from_numpy(d.users), torch.from_numpy(d.items)] = 1.0
    used = x.sum(0) > 0
    p = torch.linalg.inv(x[:, used].T @ x[:, used] + 7.0 * torch.eye(int(used.sum()), dtype=torch.float64))
    b = torch.eye(len(p), dtype=torch.float64) - p / p.diagonal().unsqueeze(0)
    assert torch.allclose(m._b.double(), b, atol=1e-6)
    assert float(m._b.diagonal().abs().max()) == 0.0
    s = m.scores(np.arange(d.n_users))
    assert torch.allclose(s[:, used].double(), x[:, used] @ b, atol=1e-5)


def test_popularity_ranks_by_count():
    d = Interactions(np.array([0, 1, 2, 0]), np.array([3, 3, 3, 1]), np.zeros(4, np.int64), 3, 5)
    s = Popularity().fit(FitContext(d)).scores(np.array([0]))
    assert torch.argsort(s[0], descending=True)[:2].tolist() == [3, 1]


@pytest.mark.slow
def test_sasrec_learns_a_sequence():
    from kgrec.evaluation.baselines.sasrec import SASRec

    # every user walks the items in a fixed cycle from a random start: the next item is determined
    rng = np.random.default_rng(0)
    n_items, users, items, times = 30, [], [], []
    for u in range(80):
        start = int(rng.integers(n_items))
        seq = [(start + t) % n_items for t in range(12)]
        users += [u] * 12
        items += seq
        times += list(range(12))
    d = Interactions(np.array(users), np.array(items), np.array(times, dtype=np.int64), 80, n_items)
    m = SASRec(dim=32, blocks=1, heads=1, dropout=0.0, max_len=12, epochs=60, batch_size=16, lr=5e-3).fit(FitContext(d))
    hist = d.by_user()
    top1 = m.scores(np.arange(80)).argmax(1).numpy()
    assert np.mean([top1[u] == (hist[u][-1] + 1) % n_items for u in range(80)]) > 0.9


class _Spy:
    """Records every interaction it is fitted on."""

    seen: list[set[tuple[int, int]]] = []

    name = "spy"

    def fit(self, ctx: FitContext) -> _Spy:
        pairs = set(zip(ctx.data.users.tolist(), ctx.data.items.tolist()))
        if ctx.validation is not None:
            pairs |= set(zip(ctx.validation.users.tolist(), ctx.validation.items.tolist()))
        _Spy.seen.append(pairs)
        self._n = ctx.data.n_items
        return self

    def scores(self, users: np.ndarray) -> torch.Tensor:
        return torch.zeros(len(users), self._n)


def test_benchmark_never_shows_the_test_set_to_a_model(synth_dataset):
    sp = make_split(synth_dataset)
    _Spy.seen = []
    res = run_benchmark(sp, [ModelSpec("spy", _Spy, grid=[{}, {}]), ModelSpec("Popularity", Popularity, seeded=False)], seeds=(0, 1))
    test_pairs = set(zip(sp.test.users.tolist(), sp.test.items.tolist()))
    assert len(_Spy.seen) == 4  # two grid points on train (+validation), two seeds on fit
    for pairs in _Spy.seen:
        assert not (pairs & test_pairs)
    assert set(res.runs["model"]) == {"spy", "Popularity"}
    assert res.runs.loc[res.runs.model == "Popularity", "ndcg@20"].iloc[0] > 0


@pytest.mark.slow
def test_lightgcn_learns_the_blocks_and_stops_early():
    from kgrec.evaluation.baselines import LightGCN

    d = _blocks(per_user=10)
    held = _blocks(per_user=10, seed=1)  # more of the same tastes as validation
    m = LightGCN(dim=16, layers=2, lr=0.05, epochs=40, eval_every=2, patience=3, batch_size=256).fit(FitContext(d, held))
    assert m.best_epoch is not None and m.best_epoch <= 40 and m.val_ndcg > 0
    top = torch.topk(m.scores(np.arange(d.n_users)), 5, dim=1).indices.numpy()
    even = np.arange(d.n_users) % 2 == 0
    assert (top[even] < 20).mean() > 0.9 and (top[~even] >= 20).mean() > 0.9


def test_one_top_k_one_metric_one_early_stopping_for_training_export_and_evaluation():
    """The evaluation's full ranking is the model's top-k (same tie rule: lower item number), its Recall/NDCG
    the one training reports, and the baselines stop early with kgrec's own helper."""
    from kgrec.evaluation.baselines.base import EarlyStopping as BaselineStopping
    from kgrec.evaluation.metrics import recall_ndcg as eval_recall_ndcg
    from kgrec.fusion.ranking import ranking_metrics, recall_ndcg, topk_scores
    from kgrec.fusion.stopping import EarlyStopping

    rng = np.random.default_rng(3)
    U = torch.from_numpy(rng.integers(-2, 3, size=(40, 4)).astype(np.float32))  # small integers: many exact ties
    V = torch.from_numpy(rng.integers(-2, 3, size=(30, 4)).astype(np.float32))
    seen = [rng.choice(30, int(rng.integers(0, 28)), replace=False) for _ in range(40)]
    users = np.arange(40)
    for k in (1, 5, 30):
        evaluation = full_ranking_topk(lambda u: U[torch.from_numpy(u)] @ V.T, users, seen, k=k, chunk=7)
        model = topk_scores(U, V, k, dict(enumerate(seen)), chunk=9)[1].numpy()
        assert np.array_equal(evaluation, model)
        s = (U @ V.T).numpy()
        for u in range(40):  # per-user reference: score descending, then item number, seen items last
            key = np.where(np.isin(np.arange(30), seen[u]), -np.inf, s[u])
            assert model[u].tolist() == np.lexsort((np.arange(30), -key))[:k].tolist()
    targets = [rng.choice(30, int(rng.integers(0, 4)), replace=False) for _ in range(40)]
    top = topk_scores(U, V, 10, dict(enumerate(seen)))[1].numpy()
    rec, ndcg = recall_ndcg(top, targets, 10)
    has = ~np.isnan(rec)
    assert ranking_metrics(top, targets, 10) == {"recall@10": float(np.mean(rec[has])), "ndcg@10": float(np.mean(ndcg[has])),
                                                 "users": int(has.sum())}
    assert eval_recall_ndcg is recall_ndcg and BaselineStopping is EarlyStopping
