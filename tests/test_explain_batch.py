"""Issue 15: ``kgrec export --explain`` explains a chunk at once (kgrec.fusion.explain_batch), and every row's
sentence and path are exactly what ``rec.explain(user, item, top=1, k=k, listed=True)`` gives for it: on the embedded
store and on Neo4j, for plain, restricted and re-ranked lists (every row of a list explained as a recommendation, also
one ranked past k by score), and a live store that took events after training; rows that are not a list's (``listed``
off) are worded as links past k, as the per-row code words them.

The model has every path kind in play: categories, keywords, facts, tags, other users, user attributes, and the
co-occurrence part (forced on), so its co-occurrence paths compete with the shares of the others.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kgrec import Recommender
from kgrec._arrays import distinct
from kgrec.fusion.config import RecommenderConfig
from kgrec.fusion.explain_batch import _Chunk, explain_rows
from kgrec.fusion.explain_bounds import BatchLimits, ChunkVectors, chunk_parts
from kgrec.fusion.export import export
from kgrec.fusion.rerank import note
from kgrec.graph import GraphStore, open_store
from kgrec.graph.neo4j_paths import neighbourhood
from kgrec.graph.path_table import Anchors, PathArrays, PathTable
from kgrec.graph.paths import PathIndex
from kgrec.loaders import SyntheticConfig, batch_from_frames, synthetic
from kgrec.loaders import schema as S
from kgrec.loaders.schema import Dataset

URI = os.environ.get("KGREC_TEST_NEO4J_URI", "bolt://127.0.0.1:7687")
BACKENDS = ["embedded", pytest.param("neo4j", marks=pytest.mark.neo4j)]


@pytest.fixture(scope="module")
def world() -> Dataset:
    return synthetic(SyntheticConfig(users=90, items=140, communities=4, seed=5, user_attributes=True))


@pytest.fixture(scope="module", params=[True, False], ids=["ease", "ridge"])
def fitted(world: Dataset, request: pytest.FixtureRequest) -> Recommender:
    """A small model fitted on the data set (no store), the co-occurrence part forced on (one weight to choose),
    in each form: EASE's zero diagonal (a history side and a candidate side) and the one-factor ridge form."""
    zero = bool(request.param)
    cfg = RecommenderConfig.model_validate(
        {
            "model": {
                "dim": 16,
                "cooc_rank": 24,
                "cooc_weights": [1.0],
                "cooc_l2": [10.0],
                "cooc_zero_diagonal": [zero],
            },
            "train": {"epochs": 8, "batch_size": 256, "patience": 3, "seed": 0, "threads": 1},
        }
    )
    rec = Recommender(cfg).fit(world, progress=False)
    assert rec.state.cooc_alpha > 0 and ("hist_cooc" in rec.state.arrays) == zero
    return rec


@pytest.fixture(scope="module")
def saved(fitted: Recommender, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fitted.save(tmp_path_factory.mktemp("explain-batch") / "model")


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path, world: Dataset) -> Iterator[GraphStore]:
    """The data in a store of each backend (Neo4j: the test database, left empty afterwards)."""
    st = open_store(tmp_path / "store" if request.param == "embedded" else URI)
    st.wipe()
    st.ingest(world)
    yield st
    st.wipe()
    st.close()


def per_row(  # noqa: ANN201
    rec: Recommender, users: list[str], items: list[str], k: int, notes: list[str | None] | None = None
):
    """The per-row answer for the rows of a k-long list: ``rec.explain(user, item, top=1, k=k, listed=True)``."""
    sentences, paths = [], []
    for n, (u, i) in enumerate(zip(users, items, strict=True)):
        e = rec.explain(u, i, top=1, k=k, listed=True)
        why = notes[n] if notes else None
        sentences.append(e.headline() + (f" ({why})" if why else ""))
        paths.append(json.dumps([[x.type, x.id] for x in e.paths[0].nodes], ensure_ascii=False) if e.paths else None)
    return sentences, paths


def export_plain(rec: Recommender, out: Path, k: int, users: list[str]) -> Path:
    export(rec, out, k, users=users, chunk_size=16, progress=False)
    return out


def exported(rec: Recommender, out: Path, k: int, **kw: object) -> pd.DataFrame:
    export(rec, out, k, explain=True, chunk_size=16, progress=False, **kw)  # several chunks
    return pd.read_parquet(out)


def assert_same(df: pd.DataFrame, want: tuple[list[str], list[str | None]]) -> None:
    sentences, paths = want
    got_paths = [None if p is None or (isinstance(p, float) and np.isnan(p)) else p for p in df["path"].tolist()]
    assert df["explanation"].tolist() == sentences
    assert got_paths == paths


def test_path_arrays_list_the_rows_the_path_index_lists(world: Dataset) -> None:
    """Every kind, with anchors, without, with unknown anchors, ids the data lacks, and an item the user has."""
    index, arrays = PathIndex(world), PathArrays(world)
    rng = np.random.default_rng(0)
    users, items = arrays.ids["users"], arrays.ids["items"]
    asks: list[tuple[str, str, list[str] | None]] = []
    for n in range(400):
        u, i = str(rng.choice(users)), str(rng.choice(items))
        hist = sorted(index.history.get(u, set()))
        anchors = None if n % 3 == 0 else [*rng.choice(hist, min(len(hist), 5), replace=False).tolist(), "nope"]
        if n % 7 == 0 and hist:
            i = hist[0]
        asks.append((u, i, anchors))
    asks += [("nobody", str(items[0]), None), (str(users[0]), "no-item", None)]
    table = arrays.table(
        arrays.user_codes([a[0] for a in asks]),
        arrays.item_codes([a[1] for a in asks]),
        Anchors.of([None if a[2] is None else arrays.item_codes(a[2]) for a in asks]),
    )
    kinds = set()
    for q, (u, i, anchors) in enumerate(asks):
        want = index.paths(u, i, anchors)
        assert table.rows(q) == want, (u, i, anchors)
        kinds |= {r[0] for r in want}
    assert kinds == {"category", "keyword", "tag", "entity", "user", "attribute"}
    # tables from a store's answers read back the same rows
    assert PathTable.from_rows([table.rows(q) for q in range(20)]).rows(7) == table.rows(7)


def test_path_tables_are_assembled_by_question_then_kind(world: Dataset) -> None:
    """The parts (one kind each) are placed straight into (question, kind) blocks; a part that is not by question
    is sorted first, with the same table as the result."""
    arrays = PathArrays(world)
    parts = [
        [
            np.array([2, 0, 0]),
            np.full(3, 3, np.int8),
            np.array([7, 8, 9]),
            np.array([1, 2, 3]),
            np.full(3, -1),
            np.full(3, -1),
        ],
        [np.array([0, 2]), np.full(2, 1, np.int8), np.array([4, 5]), np.array([6, 7]), np.full(2, -1), np.full(2, -1)],
    ]
    t = arrays._assemble(parts, 3)
    assert t.ptr.tolist() == [0, 3, 3, 5]
    assert t.kind.tolist() == [1, 3, 3, 1, 3] and t.anchor.tolist() == [4, 8, 9, 5, 7]
    assert t.via.tolist() == [6, 2, 3, 7, 1]


def test_chunk_parts_count_and_sum_every_co_user_of_each_pair(fitted: Recommender, world: Dataset) -> None:
    """The chunk-wide join (kgrec.fusion.explain_bounds.chunk_parts) against the definition, pair by pair: the
    other users who chose both the history item and the row's item, and the sum of their similarities to the user;
    by the dense incidence of a small index and by the join (its key sets held as a bitmap or searched)."""
    st = fitted.state
    arrays = PathArrays(world)
    cv = ChunkVectors(st, arrays)
    rng = np.random.default_rng(3)
    users = rng.choice(len(st.vocabs.user), 12, replace=False).astype(np.int64)
    hists = [st.history(int(u))[0] for u in users]
    weights = [np.ones(len(h)) for h in hists]
    items = [rng.choice(np.setdiff1d(np.arange(len(st.vocabs.item)), h), 6, replace=False) for h in hists]
    me = arrays.user_codes(st.vocabs.user.ids[users].tolist())
    chosen: dict[int, set[int]] = {}
    for u, i in zip(world.interactions[S.USER], world.interactions[S.ITEM], strict=True):
        chosen.setdefault(int(st.vocabs.item.number(str(i))), set()).add(int(st.vocabs.user.number(str(u))))
    f = st.arrays["users"].astype(np.float64)
    # the dense incidence (a small index), the join with its keys in a bitmap, the join with its keys searched
    # (and the users taken in runs of a few pairs, laid end to end)
    for limits in (BatchLimits(), BatchLimits(dense=0, pairs=50), BatchLimits(dense=0, bitmap=0)):
        runs = chunk_parts(cv, users, hists, weights, items, me, limits)
        assert sum(len(r.base) for r in runs) == len(users) and (len(runs) > 1) == (limits.pairs == 50)
        where = [(r, n) for r in runs for n in range(len(r.base))]  # each user's run and place in it
        for g, u in enumerate(users.tolist()):
            p, n = where[g]
            assert not p.unsure.any()
            for j, hj in enumerate(hists[g].tolist()):
                for c, i in enumerate(items[g].tolist()):
                    at = p.base[n] + j * len(items[g]) + c
                    co = sorted((chosen.get(hj, set()) & chosen.get(i, set())) - {u})
                    sims = [max(0.0, f[v] @ f[u] / np.linalg.norm(f[v]) / np.linalg.norm(f[u])) for v in co]
                    assert p.co_count[at] == len(co)
                    assert abs(p.co_sum[at] - sum(sims)) <= p.co_sum_err[at] + 1e-12
                    assert p.co_max[p.hoff[n] + j] >= max(sims, default=0.0)


def test_the_chunk_scores_hold_the_per_row_score_within_their_bound(fitted: Recommender) -> None:
    """Each row's score in the chunk (one float64 product per user) lies within its bound of the per-row code's
    ``ModelState.score`` (a float32 dot product), and the bound is a few float32 roundings, not a blanket."""
    rec = fitted
    top = rec.recommend(rec.vocabs.user.to_list()[:25], 15)
    chunk = _Chunk(rec, rec.state, top["user"].tolist(), top["item"].tolist(), 10, None, listed=True)
    chunk.run()
    want = np.array([rec.state.score(int(u), int(i)) for u, i in zip(chunk.u, chunk.i, strict=True)])
    assert (np.abs(chunk.score - want) <= chunk.score_err).all()
    assert (chunk.score_err > 0).all() and (chunk.score_err < 1e-4 * np.maximum(np.abs(want), 1.0)).all()


def test_distinct_is_numpy_unique() -> None:
    rng = np.random.default_rng(0)
    for x in (np.empty(0, np.int64), np.array([5]), rng.integers(0, 50, 1000), rng.integers(-(10**12), 10**12, 500)):
        assert np.array_equal(distinct(x), np.unique(x))


@pytest.mark.neo4j
def test_a_neo4j_neighbourhood_lists_the_rows_the_server_finds(world: Dataset) -> None:
    st = open_store(URI)
    try:
        st.wipe()
        st.ingest(world)
        users = sorted(world.interactions[S.USER].unique().tolist())[:25]
        items = sorted(world.items[S.ITEM].tolist())[::7]
        arrays = PathArrays(neighbourhood(st, users, items))
        asks = [(u, i) for u in users for i in items]
        table = arrays.table(arrays.user_codes([a[0] for a in asks]), arrays.item_codes([a[1] for a in asks]))
        for q, (u, i) in enumerate(asks):
            assert table.rows(q) == st.path_rows(u, i), (u, i)
    finally:
        st.wipe()
        st.close()


@pytest.mark.slow
def test_exported_explanations_are_the_per_row_ones(store: GraphStore, saved: Path, tmp_path: Path) -> None:
    """k = 14, several chunks. Every row of the list is explained as a recommendation: rows past the 10th were
    worded as links ("Linked to their history: ..., but that is not enough"), the per-row default k = 10."""
    rec = Recommender.load(saved, store=store)
    users = rec.vocabs.user.to_list()[:: 3 if store.location.startswith("bolt") else 1]
    df = exported(rec, tmp_path / "recs.parquet", 14, users=users)
    assert (df["rank"] > 10).any() and df["path"].notna().all()
    assert not df["explanation"].str.contains("not enough").any()
    assert df["explanation"].str.startswith("Recommended because").all()
    assert_same(df, per_row(rec, df["user"].tolist(), df["item"].tolist(), 14))
    plain = pd.read_parquet(export_plain(rec, tmp_path / "plain.parquet", 14, users))
    assert plain[["user", "item", "rank"]].equals(df[["user", "item", "rank"]])


@pytest.mark.slow
def test_restricted_and_reranked_lists_keep_the_per_row_explanations(
    saved: Path, world: Dataset, tmp_path: Path
) -> None:
    st = open_store(tmp_path / "store")
    st.ingest(world)
    rec = Recommender.load(saved, store=st)
    users = rec.vocabs.user.to_list()[:40]
    items = rec.vocabs.item.to_list()
    stock, banned = items[::2], items[1:12:2]
    df = exported(rec, tmp_path / "stock.parquet", 12, users=users, items=stock, exclude=banned)
    assert set(df["item"]) <= set(stock)
    # rows of a restricted list rank past 12 among all items, yet are recommendations: never the why-not wording
    ranks = [rec.state.rank(rec.state.user_number(u), rec.state.item_number(i)) for u, i in zip(df["user"], df["item"])]
    assert max(ranks) > 12 and not df["explanation"].str.contains("not enough").any()
    assert_same(df, per_row(rec, df["user"].tolist(), df["item"].tolist(), 12))
    # re-ranked: the promoted items' sentences end with the re-ranker's note
    df = exported(rec, tmp_path / "mmr.parquet", 12, users=users, diversity=0.7, long_tail=0.2)
    ref = rec.recommend(users, 12, diversity=0.7, long_tail=0.2)
    assert ref["item"].tolist() == df["item"].tolist() and ref["promoted"].any()
    notes = [note(bool(p), 0.7, 0.2) for p in ref["promoted"].tolist()]
    assert not df["explanation"].str.contains("not enough").any()
    assert_same(df, per_row(rec, df["user"].tolist(), df["item"].tolist(), 12, notes))


@pytest.mark.slow
def test_a_live_store_is_explained_as_the_per_row_code_explains_it(
    store: GraphStore, saved: Path, world: Dataset, tmp_path: Path
) -> None:
    """Events after training: users' new items are seen and can anchor paths, a user and an item new since
    training are explained too."""
    rec = Recommender.load(saved, store=store)
    users = rec.vocabs.user.to_list()[:12]
    top = rec.recommend(users, 3)
    t = int(world.interactions[S.TIMESTAMP].max()) + 60
    known = rec.vocabs.item.to_list()
    rows = [(u, i, t + n) for n, (u, i) in enumerate(zip(top["user"], top["item"], strict=True))]
    rows += [("newcomer", known[n], t + 100 + n) for n in range(5)] + [("newcomer", "fresh-item", t + 200)]
    fresh = pd.DataFrame({"item": ["fresh-item"], "title": ["A fresh thing"], "description": ["new"]})
    store.append(batch_from_frames(pd.DataFrame(rows, columns=["user", "item", "timestamp"]), fresh, known_items=known))
    df = exported(rec, tmp_path / "live.parquet", 11, users=[*users, "newcomer"])
    assert "newcomer" in set(df["user"])
    assert not set(zip(df["user"], df["item"], strict=True)) & {(u, i) for u, i, _ in rows}  # new events are seen
    assert_same(df, per_row(rec, df["user"].tolist(), df["item"].tolist(), 11))


@pytest.mark.slow
def test_without_a_store_and_in_another_language(fitted: Recommender) -> None:
    """A model fitted on a data set (no store: the in-memory index of its data), sentences in Chinese."""
    rec = fitted
    users = rec.vocabs.user.to_list()[:30]
    top = rec.recommend(users, 12)
    got = explain_rows(rec, top["user"].tolist(), top["item"].tolist(), lang="zh")  # k = 10: ranks 11, 12 are links
    want_s, want_p = [], []
    for u, i in zip(top["user"], top["item"], strict=True):
        e = rec.explain(u, i, top=1, lang="zh")
        want_s.append(e.headline())
        want_p.append(json.dumps([[x.type, x.id] for x in e.paths[0].nodes], ensure_ascii=False) if e.paths else None)
    assert got.sentences == want_s and got.paths == want_p
    assert any(s.startswith("与其历史的联系") for s in got.sentences), "ranks past k = 10 read as links"


@pytest.mark.slow
def test_the_join_of_a_large_index_explains_as_the_per_row_code(fitted: Recommender) -> None:
    """The collaborative sums by the chunk's join (what an index too large for the dense incidence uses: 10,000
    users × 100,000 items) give every row the per-row answer too, the join's keys searched, not marked, the users
    taken in runs of a few hundred pairs, the rows' paths listed and decided seven rows at a time."""
    rec = fitted
    top = rec.recommend(rec.vocabs.user.to_list(), 12)
    limits = BatchLimits(dense=0, bitmap=0, pairs=300, questions=7)
    got = explain_rows(rec, top["user"].tolist(), top["item"].tolist(), k=12, listed=True, limits=limits)
    assert (got.sentences, got.paths) == per_row(rec, top["user"].tolist(), top["item"].tolist(), 12)
