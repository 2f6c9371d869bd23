"""The defaults adapt on validation inside fit, and the co-occurrence part stays a fused, explained part.

- ``fit`` scores every (weight, l2) of the co-occurrence grids on its internal validation split and
  records them (``metrics["selection"]``) and the choice (``metrics["chosen"]``);
- the co-occurrence part (kgrec.fusion.itemitem) is EASE's item-item model ``E F^T`` (history side ``E``,
  candidate side ``F = diag(1 / (1 - |e_i|^2)) E``) in low rank, folded into the vectors: a score is still one dot product and splits exactly into structure / text /
  co-occurrence; each co-occurrence path gets exactly its history item's term.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kgrec.fusion.config import RecommenderConfig
from kgrec.fusion.itemitem import binary_matrix, candidate_factors, item_factors, spectrum, user_factors


def _cfg(**model: object) -> RecommenderConfig:
    return RecommenderConfig.model_validate(
        {"model": {"dim": 16, "cooc_rank": 32, **model},
         "train": {"epochs": 6, "batch_size": 256, "eval_every": 1, "patience": 3, "seed": 0, "threads": 1}}
    )


def test_cooccurrence_factors_are_the_ridge_item_item_model() -> None:
    """``E E^T`` equals the closed-form ridge regression ``(X^T X + l2 I)^-1 X^T X`` at full rank."""
    rng = np.random.default_rng(0)
    x = (rng.random((30, 12)) < 0.3).astype(np.float32)
    u, i = np.nonzero(x)
    xs = binary_matrix(u, i, 30, 12)
    sigma, v = spectrum(xs, 12)
    e = item_factors(sigma, v, 5.0).double()
    g = torch.from_numpy(x.T @ x).double()
    ridge = torch.linalg.solve(g + 5.0 * torch.eye(12, dtype=torch.float64), g)
    assert torch.allclose(e @ e.T, ridge, atol=1e-4)
    assert torch.allclose(user_factors(xs, e.float()).double(), torch.from_numpy(x).double() @ e, atol=1e-5)


def test_candidate_factors_give_ease_off_the_diagonal() -> None:
    """At full rank ``E F^T`` is EASE's ``B = I - P diag(1 / diag(P))``, ``P = (X^T X + l2 I)^-1``, off the
    diagonal (the diagonal never counts: a user's own items are never recommended); without the zero diagonal
    the candidate side is ``E`` itself."""
    rng = np.random.default_rng(1)
    x = (rng.random((40, 15)) < 0.3).astype(np.float32)
    u, i = np.nonzero(x)
    sigma, v = spectrum(binary_matrix(u, i, 40, 15), 15)
    e = item_factors(sigma.double(), v.double(), 3.0)
    g = torch.from_numpy(x.T @ x).double()
    p = torch.linalg.inv(g + 3.0 * torch.eye(15, dtype=torch.float64))
    ease = -p / p.diagonal().unsqueeze(0)
    off = ~torch.eye(15, dtype=torch.bool)
    assert torch.allclose((e @ candidate_factors(e).T)[off], ease[off], atol=1e-6)
    assert torch.equal(candidate_factors(e, zero_diagonal=False), e)
    # the plain autoencoder is not EASE: the scale matters
    assert not torch.allclose((e @ e.T)[off], ease[off], atol=1e-3)


def test_fit_selects_the_cooccurrence_part_on_validation_and_records_it(synth_dataset) -> None:
    from kgrec import Recommender

    cfg = _cfg(cooc_weights=[0.0, 1.0, 4.0], cooc_l2=[10.0, 1000.0])
    rec = Recommender(cfg).fit(synth_dataset, progress=False)
    rows, chosen = rec.metrics["selection"], rec.metrics["chosen"]
    assert len(rows) == 1 + 2 * 2 * 2  # the towers alone, then every weight > 0 with every l2 and both forms
    best = max(rows, key=lambda r: (r["val_ndcg@20"], -r["cooc_weight"], -int(r["cooc_zero_diagonal"])))
    key = ("cooc_weight", "cooc_l2", "cooc_zero_diagonal")
    assert tuple(chosen[k] for k in key) == tuple(best[k] for k in key)
    assert chosen["val_ndcg@20"] == best["val_ndcg@20"]
    d = cfg.model.dim
    if chosen["cooc_weight"] > 0:
        assert rec.arrays["users"].shape[1] == d + rec.arrays["item_cooc"].shape[1]
        assert ("hist_cooc" in rec.arrays) == chosen["cooc_zero_diagonal"]  # two sides only with the zero diagonal
    else:
        assert rec.arrays["users"].shape[1] == d and "item_cooc" not in rec.arrays


def test_cooccurrence_off_gives_the_towers_alone(synth_dataset) -> None:
    from kgrec import Recommender

    rec = Recommender(_cfg(cooccurrence=False)).fit(synth_dataset, progress=False)
    assert rec.metrics["chosen"]["cooc_weight"] == 0.0 and "selection" not in rec.metrics
    assert rec.arrays["users"].shape[1] == 16
    u = rec.vocabs.user.to_list()[0]
    assert set(rec.attribution(u, rec.recommend(u, 1)["item"].iloc[0])) == {"structure", "text"}


@pytest.fixture(scope="module")
def with_cooc(synth_dataset):
    from kgrec import Recommender

    return Recommender(_cfg(cooc_weights=[1.0], cooc_l2=[100.0], cooc_zero_diagonal=[True])).fit(
        synth_dataset, progress=False
    )


def test_score_splits_into_structure_text_and_cooccurrence(with_cooc) -> None:
    rec = with_cooc
    assert rec.metrics["chosen"]["cooc_weight"] == 1.0 and rec.metrics["chosen"]["cooc_alpha"] > 0
    st = rec.state
    for u in rec.vocabs.user.to_list()[:5]:
        for item in rec.recommend(u, 3)["item"]:
            a = rec.attribution(u, item)
            assert set(a) == {"structure", "text", "cooccurrence"}
            assert sum(a.values()) == pytest.approx(rec.score(u, item), rel=1e-4, abs=1e-5)
            hist = rec.history(u)[0]
            terms = st.cooc_contributions(rec.item_number(item), hist)
            assert terms.sum() == pytest.approx(a["cooccurrence"], rel=1e-4, abs=1e-5)


def test_cooccurrence_paths_get_exactly_their_history_items_term(with_cooc) -> None:
    rec = with_cooc
    st = rec.state
    u = rec.vocabs.user.to_list()[1]
    item = rec.recommend(u, 1)["item"].iloc[0]
    e = rec.explain(u, item, top=1000)
    co = [p for p in e.paths if p.kind == "cooccurrence"]
    assert co, "a model with a co-occurrence part explains with co-occurrence paths"
    hist = rec.history(u)[0]
    terms = dict(zip(st.vocabs.item.ids[hist].tolist(), st.cooc_contributions(rec.item_number(item), hist).tolist(),
                     strict=True))
    for p in co:
        assert p.nodes[1].id in terms and p.score == pytest.approx(terms[p.nodes[1].id], abs=1e-6)
        assert p.sentence.startswith("Recommended because people who interacted with ")
    assert sum(p.score for p in e.paths) == pytest.approx(e.score, rel=1e-4, abs=1e-5)  # other paths exist here
    assert "co-occurrence" in e.text()


def test_cooccurrence_survives_save_load_and_reaches_new_users(with_cooc, tmp_path) -> None:
    from kgrec import Recommender

    rec = with_cooc
    back = Recommender.load(rec.save(tmp_path / "m"))
    u = rec.vocabs.user.to_list()[2]
    item = rec.recommend(u, 1)["item"].iloc[0]
    assert back.score(u, item) == pytest.approx(rec.score(u, item))
    assert back.attribution(u, item) == pytest.approx(rec.attribution(u, item))
    # two sides (EASE's zero diagonal): the history side is saved, and a user's block is alpha * sum of it
    a, b = rec.state.arrays, back.state.arrays
    assert "hist_cooc" in b and np.array_equal(a["hist_cooc"], b["hist_cooc"])
    assert not np.allclose(a["hist_cooc"], a["item_cooc"])
    un = rec.user_number(u)
    assert np.allclose(back.state.cooc_user(rec.history(u)[0])[0], a["user_cooc"][un], rtol=1e-4, atol=1e-5)
    hist = [rec.vocabs.item.id(int(i)) for i in rec.history(u)[0]]
    new = back.recommend_new_user(history=hist, k=5)
    assert len(new) == 5 and not set(new["item"]) & set(hist)


def test_data_without_any_text_trains_the_graph_tower_alone(small_config):
    # Instacart has no product names, tags or facts: the text tower then saw only zero encodings, and the fused
    # model fell below the same model without it (validation 0.068 vs 0.075). Fit now says so and leaves it out.
    import pandas as pd

    from kgrec import Recommender
    from kgrec.loaders import SyntheticConfig, from_frames, generate_frames

    f = generate_frames(SyntheticConfig(users=40, items=50, interactions_per_user=8, seed=3))
    bare = f["items"][["item"]].assign(title="")
    cfg = small_config.model_copy(update={"train": small_config.train.model_copy(update={"epochs": 2})})
    rec = Recommender(cfg).fit(from_frames(f["interactions"], bare), progress=False)
    assert rec._state.config.model.use_text is False
    assert str(rec._state.metrics["towers"]).startswith("structure only: the data has no text")
    assert len(rec.recommend(f["interactions"]["user"].iloc[0], k=5)) == 5
    # one user's profile line is text: the text tower stays
    users = pd.DataFrame({"user": [f["interactions"]["user"].iloc[0]], "profile": ["likes apples"]})
    rec = Recommender(cfg).fit(from_frames(f["interactions"], bare, users=users), progress=False)
    assert rec._state.config.model.use_text is True and "towers" not in rec._state.metrics


def test_fit_tries_the_alternatives_on_validation_and_keeps_the_best(small_config):
    from kgrec import Recommender
    from kgrec.fusion.config import RecommenderConfig
    from kgrec.loaders import SyntheticConfig, synthetic

    ds = synthetic(SyntheticConfig(users=60, items=60, interactions_per_user=12, seed=4))
    cfg = small_config.model_copy(
        update={"train": small_config.train.model_copy(update={"epochs": 4, "alternatives": [{"recent_window": 0}]})}
    )
    st = Recommender(cfg).fit(ds, progress=False)._state
    rows = st.metrics["alternatives"]
    assert [r["settings"] for r in rows] == [{}, {"recent_window": 0}]
    best = max(rows, key=lambda r: r["val_ndcg@20"])
    assert st.metrics["model_settings"] == (best["settings"] or "as configured")
    # the saved config is the one trained: the chosen alternative applied
    assert st.config.model.recent_window == best["settings"].get("recent_window", cfg.model.recent_window)
    # candidates are compared by their fused model on the selection users (each with its own grid), not by the
    # towers' early-stopping figure: the kept row's figure is the chosen grid point's
    assert st.metrics["best_val_ndcg@20"] == pytest.approx(best["towers_val_ndcg@20"])
    assert best["val_ndcg@20"] == pytest.approx(st.metrics["chosen"]["val_ndcg@20"])
    assert best["val_ndcg@20"] == pytest.approx(max(r["val_ndcg@20"] for r in st.metrics["selection"]))
    with pytest.raises(ValueError, match=r"train.alternatives\[0\]: recent_windw: expected model settings"):
        RecommenderConfig.model_validate({"train": {"alternatives": [{"recent_windw": 0}]}})
    with pytest.raises(ValueError, match="recent_window"):
        RecommenderConfig.model_validate({"train": {"alternatives": [{"recent_window": -1}]}})


def _old_grid(u_f, i_f, x, targets, history, users, cfg):
    """The co-occurrence grid as it was first written: one product over the joined vectors per grid point."""
    from kgrec.fusion.ranking import ranking_metrics, topk_scores
    from kgrec.fusion.selection import score_spread_ratio

    m = cfg.model
    sigma, v = spectrum(x, m.cooc_rank, cfg.train.seed)
    ut = torch.from_numpy(users)
    exclude = {r: history[int(u)] for r, u in enumerate(users)}
    tg = [targets[u] for u in users]
    rows = []

    def measure(uv, iv, w, l2, zero):
        r = ranking_metrics(topk_scores(uv, iv, 20, exclude)[1].numpy(), tg, 20)
        rows.append((w, l2, zero, r["ndcg@20"], r["recall@20"]))

    measure(u_f[ut], i_f, 0.0, 0.0, m.cooc_zero_diagonal[0])
    for l2 in m.cooc_l2:
        e = item_factors(sigma, v, l2)
        c = user_factors(x, e)
        for zero in m.cooc_zero_diagonal:
            f = candidate_factors(e, zero)
            ratio = score_spread_ratio(u_f, i_f, c, f, cfg.train.seed)
            for w in sorted(set(m.cooc_weights) - {0.0}):
                measure(torch.cat([u_f[ut], (w * ratio) * c[ut]], 1), torch.cat([i_f, f], 1), w, l2, zero)
    return rows


@pytest.mark.parametrize("val_users", [None, 150])
def test_the_grid_scores_once_per_part_and_gives_the_joined_products_rows(val_users) -> None:
    """The fused scores once, the co-occurrence scores once per l2, a weight only adds them: the same metrics as one
    product over the joined vectors per grid point; with ``train.val_users`` on a fixed sample of the users."""
    from types import SimpleNamespace

    from kgrec.fusion.selection import score_rows, select_cooccurrence, validation_users

    rng = np.random.default_rng(4)
    n_users, n_items = 400, 90
    pu, pi = np.nonzero(rng.random((n_users, n_items)) < 0.12)
    history = {u: pi[pu == u] for u in range(n_users)}
    targets = [rng.choice(n_items, rng.integers(0, 4), replace=False) for _ in range(n_users)]
    u_f, i_f = torch.randn(n_users, 8), torch.randn(n_items, 8)
    cfg = RecommenderConfig.model_validate(
        {"model": {"cooc_rank": 24, "cooc_l2": [5.0, 50.0], "cooc_weights": [0.0, 0.5, 2.0]},
         "train": {"val_users": val_users, "seed": 3}}
    )
    inp = SimpleNamespace(pos_users=pu, pos_items=pi, seen=history.__getitem__)
    rows, best = select_cooccurrence(SimpleNamespace(users=u_f, items=i_f), inp, targets, cfg, n_users, n_items)
    users = validation_users(targets, val_users, 3)
    with_items = [u for u in range(n_users) if len(targets[u])]
    assert len(users) == (len(with_items) if val_users is None else 150) and set(users) <= set(with_items)
    assert np.array_equal(users, validation_users(targets, val_users, 3))  # fixed by the seed
    old = _old_grid(u_f, i_f, binary_matrix(pu, pi, n_users, n_items), targets, history, users, cfg)
    got = [(r["cooc_weight"], r["cooc_l2"], r["cooc_zero_diagonal"], r["val_ndcg@20"], r["val_recall@20"]) for r in rows]
    assert [g[:3] for g in got] == [o[:3] for o in old]
    assert {g[2] for g in got} == {False, True}  # both forms are candidates by default
    assert np.allclose([g[3:] for g in got], [o[3:] for o in old], atol=1e-9)
    assert best == max(rows, key=lambda r: (r["val_ndcg@20"], -r["cooc_weight"]))
    assert score_rows(100_000) * 100_000 <= 1 << 26 and score_rows(10) == 2048


def test_selection_users_are_kept_out_of_early_stopping() -> None:
    """The co-occurrence grid scores users early stopping never saw: a seeded share, disjoint, together all."""
    from kgrec.fusion.selection import selection_split

    rng = np.random.default_rng(0)
    targets = [rng.integers(0, 50, rng.integers(0, 4)).astype(np.int64) for _ in range(200)]
    with_items = {u for u, t in enumerate(targets) if len(t)}
    stop, sel = selection_split(targets, 0.5, 3)
    a = {u for u, t in enumerate(stop) if len(t)}
    b = {u for u, t in enumerate(sel) if len(t)}
    assert not a & b and a | b == with_items and abs(len(b) - len(with_items) / 2) <= 1
    assert all(np.array_equal(targets[u], stop[u]) for u in a) and all(np.array_equal(targets[u], sel[u]) for u in b)
    again = selection_split(targets, 0.5, 3)[1]
    assert all(np.array_equal(x, y) for x, y in zip(sel, again, strict=True))  # fixed by the seed
    same = selection_split(targets, 0.0, 3)
    assert same[0] is targets and same[1] is targets
    # too few users for two parts of at least min_users each: both use all
    few = selection_split(targets, 0.5, 3, min_users=len(with_items) // 2 + 1)
    assert few[0] is targets and few[1] is targets
    assert selection_split(targets, 0.5, 3, min_users=len(with_items) // 2 - 1)[1] is not targets


def test_fit_records_the_disjoint_validation_users(synth_dataset) -> None:
    from kgrec import Recommender

    cfg = _cfg(cooc_weights=[0.0, 1.0], cooc_l2=[100.0])
    cfg.train.selection_min_users = 10  # the synthetic set has ~160 validation users
    rec = Recommender(cfg).fit(synth_dataset, progress=False)
    n = rec.metrics["validation_users"]
    assert n["stopping"] > 0 and n["selection"] > 0 and abs(n["stopping"] - n["selection"]) <= 1
    # by default a part needs 100 users: on this set both use all of them
    both = Recommender(_cfg(cooc_weights=[0.0, 1.0], cooc_l2=[100.0])).fit(synth_dataset, progress=False)
    assert both.metrics["validation_users"]["stopping"] == both.metrics["validation_users"]["selection"] == sum(n.values())
