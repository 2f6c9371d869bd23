"""The re-ranker (kgrec.fusion.rerank): off is the plain top-k exactly, λ = 1 picks the most dissimilar,
β > 0 moves popular items down, excluded items never come back, options are validated everywhere
(Python, export, CLI, API, page), and a moved-up item's explanation says why."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from _webdata import TOKEN, build_web_store
from fastapi.testclient import TestClient

from kgrec import Recommender
from kgrec.cli import main
from kgrec.errors import ConfigError
from kgrec.fusion.export import export
from kgrec.fusion.ranking import TopK
from kgrec.fusion.rerank import LONG_TAIL_NOTE, VARIETY_NOTE, Reranker, check_options, pool_size, popularity_z
from kgrec.web import WebConfig, create_app

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def vec_model() -> tuple[Recommender, np.ndarray, np.ndarray, dict[int, set[int]]]:
    """80 users × 300 items of small integer vectors (ties frequent), a few seen items each; item
    popularity from the histories grows with the item number."""
    rng = np.random.default_rng(17)
    n_u, n_i = 80, 300
    U = rng.integers(-3, 4, size=(n_u, 6)).astype(np.float32)
    V = rng.integers(-3, 4, size=(n_i, 6)).astype(np.float32)
    seen = {u: set(rng.choice(n_i, int(rng.integers(0, 8)), replace=False).tolist()) for u in range(n_u)}
    hu = [u for u in range(n_u) for _ in seen[u]]
    hi = [i for u in range(n_u) for i in sorted(seen[u])]
    rec = Recommender.from_vectors([f"u{u}" for u in range(n_u)], U, [f"i{i}" for i in range(n_i)], V,
                                   history_index=(np.array(hu, dtype=np.int64), np.array(hi, dtype=np.int64)))
    return rec, U, V, seen


def test_off_is_exactly_the_plain_top_k(vec_model) -> None:  # noqa: ANN001
    rec, *_ = vec_model
    users = [f"u{u}" for u in range(80)]
    plain = rec.recommend(users, 15)
    off = rec.recommend(users, 15, diversity=0, long_tail=0.0)
    pd.testing.assert_frame_equal(plain, off)
    # the greedy itself, when every item is as similar as every other, keeps the pool order (ties: the earlier place)
    pool = rec.state.topk(np.arange(80), pool_size(15, 300, 0.5, 0.5))
    same = Reranker(np.ones((300, 6), dtype=np.float32), np.zeros(300)).rerank(pool, 15, diversity=0.5)
    assert (same.top.items == pool.items[:, :15]).all() and not same.promoted.any()


def test_lambda_one_picks_the_most_dissimilar() -> None:
    # item 0 is the best; 1 is a near copy of 0; 2 points the other way; 3 is orthogonal
    V = np.array([[1.0, 0.0], [0.99, 0.14], [-1.0, 0.05], [0.0, 1.0]], dtype=np.float32)
    pool = TopK(np.array([[4.0, 3.0, 2.0, 1.0]], dtype=np.float32), np.array([[0, 1, 2, 3]]))
    r = Reranker(V, np.ones(4))
    out = r.rerank(pool, 4, diversity=1.0)
    assert out.top.items[0].tolist()[:2] == [0, 2]  # first the best, then the farthest from it
    assert out.top.items[0, 2] == 3  # then the one least like {0, 2}: max cos with 3 is small
    assert out.top.scores[0].tolist() == [4.0, 2.0, 1.0, 3.0]  # the model's scores travel with the items
    assert out.promoted[0].tolist() == [False, True, True, False]
    assert out.plain_rank[0].tolist() == [1, 3, 4, 2]
    # a moderate λ keeps the near copy out of second place but not out of the list
    mid = r.rerank(pool, 4, diversity=0.5)
    assert mid.top.items[0, 0] == 0 and mid.top.items[0, 1] != 1


def mmr_reference(scores: np.ndarray, items: np.ndarray, V: np.ndarray, z: np.ndarray, k: int, lam: float,
                  beta: float, C: np.ndarray | None = None, by: str = "vectors") -> list[int]:
    """One user's MMR, written out as the docs say it, in float64: pool places in chosen order (``C``: the 0/1
    category matrix, for ``by="categories"|"both"``)."""
    ok = np.isfinite(scores)
    lo, hi = scores[ok].min(), scores[ok].max()
    rel = (scores - lo) / (hi - lo) if hi > lo else np.ones_like(scores)
    a = rel - beta * z[items]
    Vn = V / np.linalg.norm(V, axis=1, keepdims=True)

    def sim(i: int, j: int) -> float:
        cos = float(Vn[i] @ Vn[j])
        if by == "vectors" or C is None:
            return cos
        union = np.logical_or(C[i], C[j]).sum()
        jac = np.logical_and(C[i], C[j]).sum() / union if union else 1.0
        return jac if by == "categories" else (cos + jac) / 2

    chosen: list[int] = []
    for _ in range(min(k, int(ok.sum()))):
        best, best_v = -1, -np.inf
        for p in range(len(items)):
            if p in chosen or not ok[p]:
                continue
            s = max((sim(items[p], items[q]) for q in chosen), default=0.0)
            v = (1 - lam) * a[p] - lam * s if chosen else (1 - lam) * a[p]
            if v > best_v + 1e-9:  # strictly better: ties keep the earlier place
                best, best_v = p, v
        chosen.append(best)
    return chosen


@pytest.mark.parametrize("by", ["vectors", "categories", "both"])
@pytest.mark.parametrize(("lam", "beta"), [(0.3, 0.0), (0.7, 0.2), (1.0, 0.0)])
def test_greedy_equals_the_written_out_mmr(lam: float, beta: float, by: str) -> None:
    rng = np.random.default_rng(3)
    V = rng.normal(size=(200, 8)).astype(np.float32)
    C = (rng.random((200, 6)) < 0.3).astype(np.float32)  # some items without a category
    pop = rng.integers(0, 50, 200)
    r = Reranker(V, pop, C)
    users = 300  # more than one chunk of users
    scores = np.sort(rng.normal(size=(users, 40)).astype(np.float32), axis=1)[:, ::-1].copy()
    scores[::7, 30:] = -np.inf  # users with fewer items left
    items = np.stack([rng.choice(200, 40, replace=False) for _ in range(users)])
    got = r.rerank(TopK(scores, items), 12, lam, beta, by)  # pool 40, list 12: most lists pick past place 12
    z = popularity_z(pop)
    for u in range(0, users, 13):
        want = mmr_reference(scores[u].astype(np.float64), items[u], V.astype(np.float64), z.astype(np.float64), 12, lam,
                             beta, C, by)
        assert got.plain_rank[u][: len(want)].tolist() == [p + 1 for p in want], u
        assert np.isfinite(got.top.scores[u]).sum() == len(want)


def full_matrix_order(r: Reranker, scores: np.ndarray, items: np.ndarray, w: int, lam: float, beta: float,
                      by: str) -> np.ndarray:
    """The re-ranker as it was before its speed-up (issue 17), in float32: every pool pair's similarity in one batched
    product (``[B, P, P]``), then ``w`` greedy steps of a gather and a minimum; plain places from 1. The same order,
    ties included, is the speed-up's contract."""
    s, it = torch.from_numpy(scores), torch.from_numpy(items)
    valid = torch.isfinite(s)
    lo = torch.where(valid, s, torch.inf).min(1, keepdim=True).values
    hi = torch.where(valid, s, -torch.inf).max(1, keepdim=True).values
    span = hi - lo
    rel = torch.where(span > 0, (torch.where(valid, s, torch.nan) - lo) / torch.where(span > 0, span, 1.0), 1.0)
    adj = rel - beta * r.z[it] if beta else rel
    B, P = s.shape
    vec = r.vectors[it]
    cos = torch.bmm(vec, vec.transpose(1, 2))
    jac = cos
    if by != "vectors" and r.categories is not None:
        cat = r.categories[it]
        inter = torch.bmm(cat, cat.transpose(1, 2))
        size = cat.sum(2)
        union = size.unsqueeze(2) + size.unsqueeze(1) - inter
        jac = torch.where(union > 0, inter / union.clamp_min(1e-12), 1.0)
    sims = cos if by == "vectors" else jac if by == "categories" else (cos + jac) / 2
    base = torch.where(valid, (1.0 - lam) * adj, torch.tensor(-1e30))
    h = sims.mul_(-lam).add_(base.unsqueeze(1)).view(B * P, P)
    val, rows = base.clone(), torch.arange(B)
    out = torch.empty((B, w), dtype=torch.long)
    for t in range(w):
        j = torch.argmax(val, dim=1)
        out[:, t] = j
        row = h.index_select(0, rows * P + j)
        val = row if t == 0 else torch.minimum(val, row)
        val[rows, j] = -torch.inf
    return out.numpy() + 1


@pytest.mark.parametrize("by", ["vectors", "categories", "both"])
@pytest.mark.parametrize(("lam", "beta", "k"), [(0.3, 0.0, 10), (0.5, 0.3, 20), (1.0, 0.0, 10), (0.2, 0.0, 30)])
def test_same_order_as_the_full_matrix_greedy_ties_included(lam: float, beta: float, k: int, by: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Many exact ties (small integer vectors, every item twice, equal scores, 4 categories): the re-ranker (one
    similarity row per step, the first k places' rows in one product, a table of the category sets) gives the
    full-matrix greedy's order to every user, with the category table and without it (computed per step)."""
    from kgrec.fusion import rerank

    rng = np.random.default_rng(11)
    V = rng.integers(-2, 3, size=(120, 5)).astype(np.float32)
    V[V.sum(1) == 0, 0] = 1.0
    V[60:] = V[:60]  # every vector twice
    C = (rng.random((120, 4)) < 0.4).astype(np.float32)
    pop = rng.integers(0, 5, 120)
    r = Reranker(V, pop, C)
    users, pool = 150, max(k + k // 2, 20)
    scores = -np.sort(rng.integers(0, 6, size=(users, pool)), axis=1).astype(np.float32)  # many equal scores
    scores[::9, pool - 5 :] = -np.inf
    items = np.stack([rng.choice(120, pool, replace=False) for _ in range(users)])
    want = full_matrix_order(r, scores, items, k, lam, beta, by)
    assert r.rerank(TopK(scores, items), k, lam, beta, by).plain_rank.tolist() == want.tolist()
    if by != "vectors":
        monkeypatch.setattr(rerank, "TABLE_BUDGET", 0)
        per_step = Reranker(V, pop, C)
        assert per_step.rerank(TopK(scores, items), k, lam, beta, by).plain_rank.tolist() == want.tolist()


def test_lambda_one_by_categories() -> None:
    C = np.array([[1, 0, 0], [1, 0, 0], [1, 1, 0], [0, 0, 1]], dtype=np.float32)  # 3 shares nothing with 0
    pool = TopK(np.array([[4.0, 3.0, 2.0, 1.0]], dtype=np.float32), np.array([[0, 1, 2, 3]]))
    r = Reranker(np.eye(4, dtype=np.float32), np.ones(4), C)
    assert r.rerank(pool, 2, diversity=1.0, by="categories").top.items[0].tolist() == [0, 3]
    with pytest.raises(ConfigError, match=r"by='categories' needs the items' categories"):
        Reranker(np.eye(4, dtype=np.float32), np.ones(4)).rerank(pool, 2, diversity=1.0, by="categories")


def test_long_tail_moves_popular_items_down(vec_model) -> None:  # noqa: ANN001
    rec, *_ = vec_model
    pop = np.bincount(rec.state.pos_items, minlength=300)
    users = [f"u{u}" for u in range(80)]
    plain = rec.recommend(users, 10)
    tail = rec.recommend(users, 10, long_tail=2.0)
    n = {i: int(pop[rec.item_number(i)]) for i in set(plain["item"]) | set(tail["item"])}
    assert tail["item"].map(n).mean() < plain["item"].map(n).mean()
    # a popularity z-score: the most used item has the largest, equal counts give 0
    z = popularity_z(np.array([0, 1, 10, 100]))
    assert np.all(np.diff(z) > 0) and abs(z.mean()) < 1e-6
    assert (popularity_z(np.array([3, 3, 3])) == 0).all()
    # known answer: equal relevance, the less popular item first
    pool = TopK(np.array([[1.0, 1.0]], dtype=np.float32), np.array([[0, 1]]))
    r = Reranker(np.eye(2, dtype=np.float32), np.array([100, 1]))
    assert r.rerank(pool, 2, long_tail=0.1).top.items[0].tolist() == [1, 0]
    assert r.rerank(pool, 2).top.items[0].tolist() == [0, 1]


@pytest.mark.parametrize(("lam", "beta"), [(0.3, 0.0), (1.0, 0.0), (0.0, 0.5), (0.5, 1.0)])
def test_no_seen_or_excluded_item_ever_returned(vec_model, lam: float, beta: float) -> None:  # noqa: ANN001
    rec, _, _, seen = vec_model
    users = [f"u{u}" for u in range(80)]
    exclude = [f"i{i}" for i in range(0, 300, 7)]
    cand = [f"i{i}" for i in range(0, 300, 2)]
    df = rec.recommend(users, 12, exclude=exclude, items=cand, diversity=lam, long_tail=beta)
    assert set(df["item"]).isdisjoint(exclude) and set(df["item"]) <= set(cand)
    for u, g in df.groupby("user"):
        assert set(g["item"]).isdisjoint({f"i{i}" for i in seen[int(u[1:])]})
        assert g["rank"].tolist() == list(range(1, len(g) + 1)) and g["item"].is_unique
        assert len(g) == 12
    plain = rec.recommend(users, 60, exclude=exclude, items=cand)
    pooled = plain.groupby("user")["item"].apply(set)
    assert all(set(g["item"]) <= pooled[u] for u, g in df.groupby("user"))  # from the user's own pool


def test_a_user_with_few_items_left_gets_them_all() -> None:
    V = np.eye(5, dtype=np.float32)
    rec = Recommender.from_vectors(["a"], np.ones((1, 5), dtype=np.float32), list("vwxyz"), V,
                                   history=pd.DataFrame({"user": ["a"] * 3, "item": ["v", "w", "x"]}))
    df = rec.recommend("a", 4, diversity=0.7, long_tail=0.3)
    assert sorted(df["item"]) == ["y", "z"] and df["rank"].tolist() == [1, 2]


@pytest.mark.parametrize(("d", "b", "msg"), [
    (-0.1, 0, r"diversity=-0.1: expected a number in \[0, 1\]"),
    (1.5, 0, r"diversity=1.5: expected a number in \[0, 1\]"),
    (float("nan"), 0, r"diversity=nan: expected a number in \[0, 1\]"),
    (0, -1, r"long_tail=-1: expected a number >= 0"),
    (0, float("inf"), r"long_tail=inf: expected a number >= 0"),
    ("x", 0, r"expected numbers"),
])
def test_options_are_validated(vec_model, tmp_path: Path, d: object, b: object, msg: str) -> None:  # noqa: ANN001
    rec, *_ = vec_model
    with pytest.raises(ConfigError, match=msg):
        check_options(d, b)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=msg):
        rec.recommend("u1", 5, diversity=d, long_tail=b)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=msg):
        export(rec, tmp_path / "r.parquet", 5, diversity=d, long_tail=b, progress=False)  # type: ignore[arg-type]
    assert not (tmp_path / "r.parquet").exists()


def test_export_with_the_reranker_equals_recommend(vec_model, tmp_path: Path) -> None:  # noqa: ANN001
    rec, *_ = vec_model
    users = [f"u{u}" for u in range(80)]
    export(rec, tmp_path / "r.parquet", 9, users=users, diversity=0.4, long_tail=0.2, chunk_size=16, progress=False)
    got = pd.read_parquet(tmp_path / "r.parquet")
    want = rec.recommend(users, 9, diversity=0.4, long_tail=0.2)
    assert got["item"].tolist() == want["item"].tolist() and got["rank"].tolist() == want["rank"].tolist()
    export(rec, tmp_path / "p.parquet", 9, users=users, progress=False)
    assert pd.read_parquet(tmp_path / "p.parquet")["item"].tolist() == rec.recommend(users, 9)["item"].tolist()


# ---------------------------------------------------------------- trained store: CLI, explanations, web
@pytest.fixture(scope="module")
def web_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_web_store(tmp_path_factory.getbasetemp())


def test_cli_recommend_and_export(web_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recommend", "--store", str(web_store), "--user", "u2", "--k", "8", "--diversity", "0.6",
                 "--format", "json", "--explain"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 8 and all(r["explanation"] for r in rows)
    moved = [r for r in rows if r["promoted"]]
    assert moved and all(r["explanation"].endswith(f"({VARIETY_NOTE})") for r in moved)
    assert not any(VARIETY_NOTE in r["explanation"] for r in rows if not r["promoted"])
    # a row brought in from past k is still a recommendation of the list: never the why-not wording
    assert not any("not enough" in r["explanation"] for r in rows)
    out = tmp_path / "recs.csv"
    assert main(["export", "--store", str(web_store), "--out", str(out), "--k", "6", "--long-tail", "0.5", "--explain"]) == 0
    df = pd.read_csv(out)
    assert df["explanation"].notna().all() and df["path"].notna().any()
    assert df["explanation"].str.endswith(f"({LONG_TAIL_NOTE})").any()
    assert main(["recommend", "--store", str(web_store), "--user", "u2", "--diversity", "2"]) == 2
    assert "--diversity/--long-tail: diversity=2.0: expected a number in [0, 1]" in capsys.readouterr().err
    assert main(["export", "--store", str(web_store), "--out", str(out), "--long-tail", "-0.5"]) == 2
    assert "long_tail=-0.5: expected a number >= 0" in capsys.readouterr().err


def test_alike_by_vectors_is_the_fused_vectors_without_the_cooccurrence_block(web_store: Path) -> None:
    """MMR by vectors (and ILD by vectors) read ``v_i``, not the joined scoring vector ``[v_i, e_i]``: the
    co-occurrence factor ``e_i`` is a part of the score, not the item's representation, and was 8/9 of the products."""
    from kgrec.fusion.rerank import reranked_topk, reranker_of
    from kgrec.fusion.state import ITEM_COOC, similarity_vectors

    st = Recommender.load(web_store / "models" / "default").state
    a = st.arrays
    assert ITEM_COOC in a  # the trained default appends the block to the scoring vectors
    v = similarity_vectors(a)
    assert v.shape[1] == a["items"].shape[1] - a[ITEM_COOC].shape[1] > 0
    np.testing.assert_array_equal(v, a["items"][:, : v.shape[1]])
    assert reranker_of(st).vectors.shape[1] == v.shape[1]
    users = np.arange(len(st.vocabs.user))
    k, lam = 8, 0.7
    got = reranked_topk(st, users, k, diversity=lam)
    pool = st.topk(users, pool_size(k, len(st.vocabs.item), lam, 0.0))
    z = popularity_z(np.bincount(st.pos_items, minlength=len(st.vocabs.item)))
    for r in range(len(users)):
        want = mmr_reference(pool.scores[r].astype(np.float64), pool.items[r], v.astype(np.float64), z, k, lam, 0.0)
        assert got.top.items[r].tolist() == pool.items[r][want].tolist()
    vec_only = Recommender.from_vectors(["u"], np.ones((1, 3), np.float32), ["a", "b"], np.eye(2, 3, dtype=np.float32))
    assert similarity_vectors(vec_only.state.arrays) is vec_only.state.arrays["items"]  # no block: the whole vectors


def test_every_reranked_item_is_explained(web_store: Path) -> None:
    from kgrec.graph import open_store

    with open_store(web_store) as st:
        rec = Recommender.load(web_store / "models" / "default", store=st)
        df = rec.recommend(["u2", "u5", "u9"], 10, diversity=0.8, long_tail=0.5)
        assert df["promoted"].any()
        for u, i in zip(df["user"], df["item"], strict=True):
            e = rec.explain(u, i, st, top=3)
            assert e.headline().strip()  # a sentence for every item: its best path, or the closest history item
            assert all(p.nodes[0].id == u and p.nodes[-1].id == i for p in e.paths)
            assert e.rank == rec.rank(u, i)  # the model's own rank: the explanation is of the item, not of the list


def service_rank(c: TestClient, user: str, item: str) -> int:
    return int(c.get(f"/api/users/{user}/explanations/{item}?k=8", headers=AUTH).json()["rank"])


def test_api_and_page(web_store: Path) -> None:
    with TestClient(create_app(WebConfig(store=str(web_store), token=TOKEN))) as c:
        plain = c.get("/api/users/u2/recommendations?k=8", headers=AUTH).json()
        div = c.get("/api/users/u2/recommendations?k=8&diversity=0.7", headers=AUTH).json()
        assert div["diversity"] == 0.7 and plain["diversity"] == 0.0 and len(div["items"]) == 8
        assert [r["item"] for r in div["items"]] != [r["item"] for r in plain["items"]]
        assert all(r["note"] is None for r in plain["items"])
        assert any(r["note"] == VARIETY_NOTE for r in div["items"])
        ranks = [service_rank(c, "u2", r["item"]) for r in div["items"]]
        assert max(ranks) > 8 and not any("not enough" in (r["explanation"] or "") for r in div["items"])
        tail = c.get("/api/users/u2/recommendations?k=8&long_tail=1", headers=AUTH).json()
        assert any(r["note"] == LONG_TAIL_NOTE for r in tail["items"])
        for bad, field in (("diversity=1.5", "diversity"), ("diversity=-1", "diversity"), ("long_tail=-0.1", "long_tail"),
                           ("long_tail=11", "long_tail"), ("diversity=abc", "diversity")):
            r = c.get(f"/api/users/u2/recommendations?{bad}", headers=AUTH)
            assert r.status_code == 422, bad
            assert any(field in err["loc"] for err in r.json()["detail"]), r.json()
        page = c.get("/?user=u2&k=8&diversity=0.7", headers=AUTH)
        assert page.status_code == 200 and 'id="diversity"' in page.text and 'value="0.7"' in page.text
        assert VARIETY_NOTE in page.text
        assert '&amp;diversity=0.7#detail">' in page.text and 'name="diversity" value="0.7"' in page.text  # kept in links, forms
        assert "diversity=" not in c.get("/?user=u2&k=8", headers=AUTH).text.split('id="recs"')[1]  # off: links as before
        bad = c.get("/?user=u2&diversity=3", headers=AUTH)
        assert bad.status_code == 422 and "“Variety” must be a number from 0 to 1 (got “3”)." in bad.text
        bad = c.get("/?user=u2&long_tail=x", headers=AUTH)
        assert bad.status_code == 422 and "“Long tail” must be a number from 0 to 10" in bad.text


def test_diversity_by_categories_everywhere(web_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``diversity_by="categories"`` (issue 17: genre MMR) varies the list's categories far more than the plain list
    (nearly every list holds every category group), on Python, export, CLI, API and page, with its note."""
    from kgrec.evaluation.beyond import ild_categories
    from kgrec.fusion.rerank import CATEGORY_NOTE, category_matrix
    from kgrec.graph import open_store

    with open_store(web_store) as st:
        rec = Recommender.load(web_store / "models" / "default", store=st)
        C = rec.category_matrix()
        assert C.shape[0] == len(rec.vocabs.item) and C.sum() > 0
        assert np.array_equal(C, category_matrix(st.dataset().item_categories, rec.vocabs))
        users = [f"u{n}" for n in range(2, 30)]

        def ild(df: pd.DataFrame) -> float:
            top = np.stack([rec.vocabs.item.numbers(g["item"].tolist()) for _, g in df.groupby("user", sort=False)])
            return ild_categories(top, C, k=8)

        plain = rec.recommend(users, 8)
        by_vec = rec.recommend(users, 8, diversity=0.9)
        by_cat = rec.recommend(users, 8, diversity=0.9, diversity_by="categories")
        both = rec.recommend(users, 8, diversity=0.9, diversity_by="both")
        assert ild(by_cat) > ild(plain) + 0.3 and ild(both) > ild(plain) + 0.3 and ild(by_vec) > ild(plain)

        def groups(df: pd.DataFrame) -> list[int]:  # distinct category sets per list
            return [len({tuple(C[i]) for i in rec.vocabs.item.numbers(g["item"].tolist())})
                    for _, g in df.groupby("user", sort=False)]

        n_sets = len({tuple(row) for row in C if row.any()})
        assert np.mean(groups(by_cat)) > n_sets - 0.5 > np.mean(groups(plain)) + 1
        assert by_cat["promoted"].any() and set(by_cat.columns) == set(by_vec.columns)
        with pytest.raises(ConfigError, match="diversity_by='genres': expected one of vectors, categories, both"):
            rec.recommend("u2", 8, diversity=0.5, diversity_by="genres")
        out = tmp_path / "cat.parquet"
        export(rec, out, 8, users=users, diversity=0.9, diversity_by="categories", progress=False)
        got = pd.read_parquet(out)
        assert got[["user", "item"]].values.tolist() == by_cat[["user", "item"]].values.tolist()
    assert main(["recommend", "--store", str(web_store), "--user", "u2", "--k", "8", "--diversity", "0.9",
                 "--diversity-by", "categories", "--format", "json", "--explain"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["item"] for r in rows] == by_cat[by_cat["user"] == "u2"]["item"].tolist()
    assert any(r["explanation"].endswith(f"({CATEGORY_NOTE})") for r in rows if r["promoted"])
    assert main(["recommend", "--store", str(web_store), "--user", "u2", "--diversity-by", "genre"]) == 2
    assert "--diversity-by='genre': expected one of vectors, categories, both" in capsys.readouterr().err
    with TestClient(create_app(WebConfig(store=str(web_store), token=TOKEN))) as c:
        r = c.get("/api/users/u2/recommendations?k=8&diversity=0.9&diversity_by=categories", headers=AUTH).json()
        assert r["diversity_by"] == "categories"
        assert [x["item"] for x in r["items"]] == [x["item"] for x in rows]
        assert any(x["note"] == CATEGORY_NOTE for x in r["items"])
        assert c.get("/api/users/u2/recommendations?diversity_by=x", headers=AUTH).status_code == 422
        page = c.get("/?user=u2&k=8&diversity=0.9&diversity_by=categories", headers=AUTH)
        assert page.status_code == 200 and '<option value="categories" selected>' in page.text
        assert CATEGORY_NOTE in page.text and "diversity_by=categories#detail" in page.text
        bad = c.get("/?user=u2&diversity=0.5&diversity_by=genre", headers=AUTH)
        assert bad.status_code == 422 and "“Variety by” must be one of vectors, categories, both" in bad.text
