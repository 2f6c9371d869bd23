"""Live answers (kgrec.fusion.live): a trained model keeps answering from a store that took appends since training."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from kgrec import Recommender
from kgrec.encoders.graph import GraphLayout
from kgrec.errors import ModelMismatchError
from kgrec.fusion.export import export
from kgrec.fusion.live import LiveModel
from kgrec.graph import GraphStore, open_store
from kgrec.graph.embedded import EmbeddedStore
from kgrec.graph.vocab import Vocab
from kgrec.loaders import batch_from_frames, from_frames
from kgrec.loaders import schema as S
from kgrec.loaders.schema import Dataset


def test_recent_part_recomputed_from_a_history_equals_the_trained_one(trained, synth_dataset, tmp_path):
    """The recent-interest part is linear in the item vectors: recomputing it from a user's history (oldest first,
    ties by item number) gives the row training saved, so a live refresh changes nothing until the history does."""
    st = trained.state
    live = LiveModel(st, EmbeddedStore(tmp_path / "s"))
    inter = synth_dataset.interactions
    checked = 0
    for user in st.vocabs.user.to_list()[:40]:
        u = st.user_number(user)
        h = inter.loc[inter[S.USER] == user]
        nums = st.vocabs.item.numbers(h[S.ITEM].tolist())
        times = h[S.TIMESTAMP].astype("int64").to_numpy()
        order = np.lexsort((nums, times))
        seq, t = nums[order], times[order]
        np.testing.assert_array_equal(seq, st.history(u)[0])  # the model's history is in that order too
        rs, rt, w = live.recent_parts(seq, t)
        np.testing.assert_allclose(rs.numpy()[0], st.arrays["user_recent_struct"][u], atol=1e-5)
        np.testing.assert_allclose(rt.numpy()[0], st.arrays["user_recent_text"][u], atol=1e-5)
        np.testing.assert_allclose(w, st.recent_weights(u), atol=1e-6)
        checked += 1
    assert checked == 40


URI = os.environ.get("KGREC_TEST_NEO4J_URI", "bolt://127.0.0.1:7687")
BACKENDS = ["embedded", pytest.param("neo4j", marks=pytest.mark.neo4j)]


@pytest.fixture(params=BACKENDS)
def live_store(request: pytest.FixtureRequest, tmp_path: Path, synth_dataset) -> Iterator[GraphStore]:
    """A store of each backend holding the synthetic data set (Neo4j: the test database, left empty afterwards)."""
    st = open_store(tmp_path / "store" if request.param == "embedded" else URI)
    st.wipe()
    st.ingest(synth_dataset)
    yield st
    st.wipe()
    st.close()


@pytest.fixture
def saved(trained, tmp_path: Path) -> Path:
    return trained.save(tmp_path / "model")


def _events(rows: list[tuple[str, str, int]], store: GraphStore) -> Dataset:
    return batch_from_frames(pd.DataFrame(rows, columns=["user", "item", "timestamp"]), known_items=store.item_ids())


def test_appended_events_change_the_answers_at_once(live_store, saved, synth_dataset):
    """After an append the model is still usable on the store (it was refused before: the fingerprint moved) and
    answers from the new history: the item just chosen is seen, the recent-interest part follows it, and the
    explanation can cite it."""
    rec = Recommender.load(saved, store=live_store)
    user = "u1" if "u1" in rec.vocabs.user else rec.vocabs.user.id(0)
    before = rec.recommend(user, k=10)
    top = str(before["item"].iloc[0])
    vec_before = rec.state.arrays["users"][rec.user_number(user)].copy()
    t_new = int(synth_dataset.interactions[S.TIMESTAMP].max()) + 3600
    live_store.append(_events([(user, top, t_new)], live_store))

    after = rec.recommend(user, k=10)
    assert top not in set(after["item"])  # excluded as seen, no training step
    assert top in set(rec.state.vocabs.item.ids[rec.state.history(rec.user_number(user))[0]])
    vec_after = rec.state.arrays["users"][rec.user_number(user)]
    assert not np.allclose(vec_before, vec_after)  # the recent-interest part was recomputed
    # a second load from disk answers the same (nothing of the live rows is kept in the model folder)
    again = Recommender.load(saved, store=live_store).recommend(user, k=10)
    pd.testing.assert_frame_equal(after, again)
    # the newest item is the strongest recent anchor: some explanation cites it
    cited = [
        n.id
        for i in after["item"].tolist()[:5]
        for p in rec.explain(user, i, top=3).paths
        for n in p.nodes
        if n.type == "item"
    ]
    assert top in cited


def test_users_and_items_new_since_training_are_answered(live_store, saved, synth_dataset):
    rec = Recommender.load(saved, store=live_store)
    t = int(synth_dataset.interactions[S.TIMESTAMP].max()) + 10
    known = rec.vocabs.item.to_list()[:3]
    items = pd.DataFrame({"item": ["brand-new"], "title": ["A brand new thing"], "description": ["fresh"]})
    live_store.append(
        batch_from_frames(
            pd.DataFrame({"user": ["newbie"] * 4, "item": [*known, "brand-new"], "timestamp": [t, t + 1, t + 2, t + 3]}),
            items,
            known_items=rec.vocabs.item.to_list(),
        )
    )
    recs = rec.recommend("newbie", k=10)
    assert len(recs) == 10
    assert not set(recs["item"]) & {*known, "brand-new"}  # their items are seen
    # the new item has its text-only vector: it can be recommended to others and scored
    other = rec.vocabs.user.id(0)
    only = rec.recommend(other, k=1, items=["brand-new"])
    assert only["item"].tolist() == ["brand-new"] and np.isfinite(only["score"].iloc[0])
    assert rec.state.title("brand-new") == "A brand new thing"


def test_a_store_that_does_not_descend_from_the_model_is_refused(saved, tmp_path, synth_frames):
    other = open_store(tmp_path / "other")
    f = synth_frames
    other.ingest(from_frames(f["interactions"].iloc[:-50], f["items"], f["triples"], f["tags"], name="other"))
    with pytest.raises(ModelMismatchError, match="does not descend"):
        Recommender.load(saved, store=other)


def test_export_answers_from_the_live_store(tmp_path, saved, synth_dataset):
    st = open_store(tmp_path / "store")
    st.ingest(synth_dataset)
    rec = Recommender.load(saved, store=st)
    user = rec.vocabs.user.id(0)
    top = str(rec.recommend(user, k=1)["item"].iloc[0])
    st.append(_events([(user, top, int(synth_dataset.interactions[S.TIMESTAMP].max()) + 5)], st))
    out = tmp_path / "recs.csv"
    export(rec, out, 5, progress=False)
    df = pd.read_csv(out, dtype={"user": str, "item": str})
    assert top not in set(df.loc[df["user"] == user, "item"])


def test_remapped_weights_keep_every_row_by_id(trained):
    from dataclasses import replace

    from kgrec.fusion.remap import node_take, remap_weights, trained_node_ids

    st = trained.state
    same = remap_weights(st, st.vocabs)
    for k, v in st.state_dict.items():
        assert torch.equal(same[k], v), k
    grown = replace(st.vocabs, user=Vocab("user", [*st.vocabs.user.to_list(), "zz-new"]))
    take = node_take(trained_node_ids(st), grown)
    w = remap_weights(st, grown)
    emb = next(k for k, v in st.state_dict.items() if v.ndim == 2 and v.shape[0] == len(st.arrays["nodes"]))
    new_row = GraphLayout(grown.sizes()).offsets["user"] + grown.user.number("zz-new")
    assert take[new_row] == -1 and torch.count_nonzero(w[emb][new_row]) == 0
    kept = np.flatnonzero(take >= 0)
    assert torch.equal(w[emb][kept], st.state_dict[emb][take[kept]])


def test_warm_start_gives_rows_to_users_and_items_new_since_training(tmp_path, synth_dataset, small_config):
    st = open_store(tmp_path / "store")
    st.ingest(synth_dataset)
    rec = Recommender(small_config).fit(st, progress=False)
    base_version, base_fp = rec.model_version, rec.data_fingerprint
    t = int(synth_dataset.interactions[S.TIMESTAMP].max()) + 10
    known = rec.vocabs.item.to_list()[:5]
    items = pd.DataFrame({"item": ["warm-item"], "title": ["A warm new item"], "categories": ["Fresh"]})
    rows = pd.DataFrame({"user": ["warm-user"] * 6, "item": [*known, "warm-item"], "timestamp": range(t, t + 6)})
    st.append(batch_from_frames(rows, items, known_items=st.item_ids()))
    rec.warm_start(st, progress=False)
    assert "warm-user" in rec.vocabs.user and "warm-item" in rec.vocabs.item
    assert rec.data_fingerprint == st.fingerprint()
    lineage = rec.metrics["lineage"]
    assert lineage["fit_on"] == base_fp
    assert lineage["warm_starts"][-1]["from_model"] == base_version
    assert rec.metrics["warm_epochs"] >= 1
    assert not set(rec.recommend("warm-user", k=10)["item"]) & {*known, "warm-item"}
    # saved and loaded: the lineage travels with the model, and the store is its own data
    again = Recommender.load(rec.save(tmp_path / "m"), store=st)
    assert again.metrics["lineage"] == lineage


def test_explain_many_equals_explain_item_by_item(trained):
    user = trained.vocabs.user.id(3)
    items = trained.recommend(user, k=6)["item"].tolist() + [trained.vocabs.item.id(0)]
    many = trained.explain_many(user, items, top=2)
    assert [e.to_dict() for e in many] == [trained.explain(user, i, top=2).to_dict() for i in items]


def test_embedded_writer_answers_from_what_it_wrote(tmp_path, synth_dataset):
    """The appending process keeps the tables it wrote (no read-back) and scans the user column for the first
    histories of a snapshot: both agree with a fresh reader of the same folder, read for read."""
    from kgrec.graph.embedded import SCANS

    st = open_store(tmp_path / "store")
    st.ingest(synth_dataset)
    users = synth_dataset.interactions[S.USER].drop_duplicates().tolist()
    t = int(synth_dataset.interactions[S.TIMESTAMP].max()) + 1
    st.append(_events([(users[0], "i1", t), ("brand-new-user", "i2", t)], st))
    other = open_store(tmp_path / "store")
    for t_ in st.dataset().tables():
        pd.testing.assert_frame_equal(st.dataset().tables()[t_], other.dataset().tables()[t_])
    for u in [*users[: SCANS + 4], "brand-new-user", "nobody"]:  # past SCANS the index answers
        pd.testing.assert_frame_equal(st.user_history(u), other.user_history(u))
