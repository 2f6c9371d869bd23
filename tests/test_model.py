"""Known-answer tests of the fused model on planted communities (real BERT, real GNN)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from kgrec import Recommender
from kgrec.errors import ConfigError, ModelMismatchError, UnknownIdError
from kgrec.fusion.config import RecommenderConfig
from kgrec.graph import open_store
from kgrec.loaders import from_frames

pytestmark = pytest.mark.slow


def community(frames, kind: str) -> dict[str, int]:
    t = frames["communities"]
    t = t[t["kind"] == kind]
    return dict(zip(t["id"], t["community"]))


def test_top_items_come_from_the_users_community(trained: Recommender, synth_frames) -> None:
    ucom, icom = community(synth_frames, "user"), community(synth_frames, "item")
    users = sorted(ucom)
    recs = trained.recommend(users, k=10)
    share = np.mean([icom[i] == ucom[u] for u, i in zip(recs["user"], recs["item"])])
    assert share > 0.85, f"only {share:.0%} of top-10 items come from the user's own community"


def test_recommend_shape_excludes_seen_and_orders(trained: Recommender, synth_dataset) -> None:
    recs = trained.recommend(["u0", "u1"], k=7)
    assert list(recs.columns) == ["user", "item", "title", "rank", "score"]
    assert len(recs) == 14 and recs.groupby("user")["rank"].apply(list).tolist() == [list(range(1, 8))] * 2
    assert (recs.groupby("user")["score"].diff().dropna() <= 1e-6).all()
    seen = set(zip(synth_dataset.interactions["user"], synth_dataset.interactions["item"]))
    assert not any((u, i) in seen for u, i in zip(recs["user"], recs["item"]))
    one = trained.recommend("u0", k=7)
    pd.testing.assert_frame_equal(one, recs[recs["user"] == "u0"].reset_index(drop=True))
    assert trained.rank("u0", one["item"].iloc[0]) == 1 and trained.rank("u0", one["item"].iloc[6]) == 7


def test_candidates_and_exclusions(trained: Recommender) -> None:
    top = trained.recommend("u0", k=3)["item"].tolist()
    without = trained.recommend("u0", k=3, exclude=top[:1])["item"].tolist()
    assert top[0] not in without and without[:2] == top[1:]
    only = trained.recommend("u0", k=5, items=["i1", "i2", "i3"])
    assert set(only["item"]) <= {"i1", "i2", "i3"}


def test_unknown_ids_are_clear_errors(trained: Recommender) -> None:
    with pytest.raises(UnknownIdError, match=r"unknown user id 'ghost': not in the training data"):
        trained.recommend(["u0", "ghost"], k=3)
    with pytest.raises(UnknownIdError, match=r"unknown item id 'nope'"):
        trained.explain("u0", "nope")


def test_every_recommendation_has_a_path(trained: Recommender) -> None:
    recs = trained.recommend(["u0", "u5", "u17"], k=10)
    for u, i, s in zip(recs["user"], recs["item"], recs["score"]):
        e = trained.explain(u, i, top=3)
        assert e.paths, f"no path for {u} -> {i}"
        assert abs(e.score - s) < 1e-4
        p = e.paths[0]
        assert p.nodes[0].type == "user" and p.nodes[0].id == u
        assert p.nodes[-1].type == "item" and p.nodes[-1].id == i
        assert len(p.relations) == len(p.nodes) - 1 <= 3
        assert p.sentence.startswith("Recommended because") and trained.title(i) in p.sentence
        assert [q.score for q in e.paths] == sorted((q.score for q in e.paths), reverse=True)
        assert abs(sum(e.attribution.values()) - e.score) < 1e-4  # structure + text (+ co-occurrence)


def test_explaining_a_seen_item_says_so(trained: Recommender, synth_dataset) -> None:
    u, i = synth_dataset.interactions.iloc[0][["user", "item"]]
    e = trained.explain(u, i)
    assert e.interacted and e.paths == [] and "already interacted with" in e.message


def test_why_not_gives_rank_and_gap(trained: Recommender) -> None:
    scores = trained.recommend("u0", k=200)
    far = scores.iloc[-1]
    e = trained.explain("u0", far["item"], k=10)
    assert e.rank == int(far["rank"]) > 10
    assert e.gap_to_k is not None and e.gap_to_k > 0 and "outside the top 10" in e.message


def test_cold_item_with_matching_text_reaches_its_community(synth_frames, small_config: RecommenderConfig) -> None:
    """A new item with no interactions, whose text and categories match one community."""
    f = synth_frames
    items = f["items"].copy()
    new = pd.DataFrame(
        {
            "item": ["new-space"],
            "title": ["The Galaxy Rocket Astronaut"],
            "description": ["A story about a rocket and a nebula, full of spaceflight."],
            "categories": ["Space"],
            "keywords": ["astronomy|spaceflight"],
        }
    )
    ds = from_frames(f["interactions"], pd.concat([items, new], ignore_index=True), f["triples"], f["tags"])
    rec = Recommender(small_config).fit(ds, progress=False)
    ucom = community(f, "user")
    space = [u for u, c in ucom.items() if c == 0]
    other = [u for u, c in ucom.items() if c != 0]
    rank_space = np.median([rec.rank(u, "new-space") for u in space])
    rank_other = np.median([rec.rank(u, "new-space") for u in other])
    assert rank_space < rank_other / 3, (rank_space, rank_other)
    assert rank_space <= 60  # top quarter of 240 items


def test_save_load_round_trip_and_mismatch(tmp_path: Path, trained: Recommender, synth_dataset, synth_frames) -> None:
    st = open_store(tmp_path / "s")
    st.ingest(synth_dataset)
    path = trained.save(tmp_path / "model")
    back = Recommender.load(path, store=st)
    pd.testing.assert_frame_equal(back.recommend(["u0", "u3"], 10), trained.recommend(["u0", "u3"], 10))
    item = trained.recommend("u0", 1)["item"].iloc[0]
    assert back.explain("u0", item, st).to_dict() == trained.explain("u0", item).to_dict()
    assert back.config == trained.config and back.model_version == trained.model_version
    # another store's data: a clear error
    f = synth_frames
    other = open_store(tmp_path / "other")
    other.ingest(from_frames(f["interactions"].iloc[:-5], f["items"]))
    with pytest.raises(ModelMismatchError, match=r"was trained on data .* but the store at .* holds data"):
        Recommender.load(path, store=other)


def test_config_validation_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"model\.dim=2: expected an integer from 4 to 1024"):
        RecommenderConfig.model_validate({"model": {"dim": 2}})
    with pytest.raises(ConfigError, match=r"train\.epochs=0: expected an integer from 1 to 10000"):
        RecommenderConfig(train={"epochs": 0})
    with pytest.raises(ConfigError, match=r"no config.json there; expected a local Hugging Face model folder"):
        from kgrec.encoders import TextEncoder, TextEncoderConfig

        TextEncoder(TextEncoderConfig(model_path="/nonexistent"))


def test_any_local_model_folder_works_by_config(tmp_path: Path) -> None:
    """A copy of the model in another folder is used by config alone (as a Chinese BERT would be)."""
    import shutil

    from kgrec.encoders import TextEncoder, TextEncoderConfig, default_model_path

    folder = tmp_path / "my-bert"
    shutil.copytree(default_model_path(), folder)
    enc = TextEncoder(TextEncoderConfig(model_path=str(folder), cache=False))
    v = enc.encode(["Toy Story (1995)", "Toy Story 2 (1999)", "Heat (1995)"], progress=False)
    assert v.shape == (3, 384)
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2


def test_new_user_from_behaviour_text_and_items(trained: Recommender, synth_frames) -> None:
    icom = community(synth_frames, "item")
    by_text = trained.recommend_new_user(text="rocket astronaut galaxy nebula starship orbit spaceflight", k=10)
    assert list(by_text.columns) == ["user", "item", "title", "rank", "score"]  # the shape of recommend()
    assert by_text["user"].isna().all()  # no label given
    assert np.mean([icom[i] == 0 for i in by_text["item"]]) >= 0.7  # community 0 is the space theme
    ocean_items = [i for i, c in icom.items() if c == 1][:5]
    by_items = trained.recommend_new_user(history=ocean_items, k=10)
    assert not set(by_items["item"]) & set(ocean_items)
    assert np.mean([icom[i] == 1 for i in by_items["item"]]) >= 0.7
    with pytest.raises(Exception, match=r"needs behaviour text, at least one known item or at least one known attribute value"):
        trained.recommend_new_user(text=" ", history=["unknown-item"])


def test_user_with_only_tags_gets_recommendations(synth_frames, small_config: RecommenderConfig) -> None:
    f = synth_frames
    tags = pd.concat([f["tags"], pd.DataFrame({"user": ["tagger"] * 2, "item": ["i0", "i4"], "tag": ["astronomy", "spaceflight"]})])
    ds = from_frames(f["interactions"], f["items"], f["triples"], tags)
    rec = Recommender(small_config).fit(ds, progress=False)
    recs = rec.recommend("tagger", k=10)
    icom = community(f, "item")
    assert len(recs) == 10 and np.mean([icom[i] == 0 for i in recs["item"]]) >= 0.6
    e = rec.explain("tagger", recs["item"].iloc[0])
    assert e.rank == 1


def test_deletion_test_top_path_matters_more(trained: Recommender, synth_dataset) -> None:
    """Removing the top path's interactions hurts the item's rank more than removing a random path's."""
    from kgrec.fusion.faithfulness import Rescorer, deletion_test, summary

    r = Rescorer(trained, synth_dataset)
    item = trained.recommend("u3", 1)["item"].iloc[0]
    assert r.rank_without("u3", item, set(), set()) == trained.rank("u3", item) == 1
    recs = trained.recommend([f"u{n}" for n in range(0, 40, 3)], 3)
    df = deletion_test(trained, synth_dataset, list(zip(recs["user"], recs["item"])))
    s = summary(df)
    assert s["pairs"] >= 20
    assert s["top_mean_drop"] > s["random_mean_drop"], s


def test_from_vectors_ranks_and_excludes_history() -> None:
    users, items = ["b", "a"], ["x", "y", "z"]
    U = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)  # b likes dim 0, a likes dim 1
    V = np.array([[3.0, 0.0], [0.0, 2.0], [1.0, 1.0]], dtype=np.float32)
    rec = Recommender.from_vectors(users, U, items, V, history_index=(np.array([0]), np.array([0])))  # b saw x
    got = rec.recommend(["a", "b"], 2)
    assert got["item"].tolist() == ["y", "z", "z", "y"]
    assert got["score"].tolist() == [2.0, 1.0, 1.0, 0.0]
    same = Recommender.from_vectors(users, U, items, V, history=pd.DataFrame({"user": ["b"], "item": ["x"]}))
    pd.testing.assert_frame_equal(same.recommend(["a", "b"], 2), got)


def test_recent_interest_window_is_causal_and_newest_first() -> None:
    from kgrec.fusion.inputs import window_index

    seq = np.array([10, 11, 12, 13, 20, 21])  # user A: 10..13 (oldest first), user B: 20, 21
    start = np.array([0, 0, 0, 4])
    end = np.array([3, 1, 0, 6])  # before A's 4th item, before A's 2nd, before A's 1st, B's whole history
    idx, mask = window_index(seq, start, end, 2)
    assert idx[mask].tolist() == [12, 11, 10, 21, 20]
    assert mask.tolist() == [[True, True], [True, False], [False, False], [True, True]]


def test_recent_weights_follow_the_learned_profile(trained: Recommender) -> None:
    u = trained.user_number("u3")
    w = trained.state.recent_weights(u)
    items, _ = trained.history("u3")
    window = trained.config.model.recent_window
    assert len(w) == len(items) and w.sum() == pytest.approx(1.0)
    assert (w[: max(0, len(items) - window)] == 0).all()
    a = torch.softmax(trained.state_dict["recent.logits"][: min(len(items), window)], 0).numpy()
    assert np.allclose(w[::-1][: len(a)], a, atol=1e-6)  # newest history item gets the first logit


def test_mean_fusion_joins_the_towers_half_and_half(synth_dataset, small_config: RecommenderConfig) -> None:
    """The ablation's ``fusion="mean"``: every warm gate is 0.5, cold items stay text-only, scores still split."""
    cfg = small_config.model_copy(
        update={"model": small_config.model.model_copy(update={"fusion": "mean"}),
                "train": small_config.train.model_copy(update={"epochs": 4})}
    )
    rec = Recommender(cfg).fit(synth_dataset, progress=False)
    assert np.all(rec.arrays["user_gate"] == 0.5)
    items, _ = rec.history("u0")
    assert np.all(rec.arrays["item_gate"][int(items[0])] == 0.5)  # an item u0 interacted with: warm
    item = rec.recommend("u0", 1)["item"].iloc[0]
    a = rec.attribution("u0", item)
    assert sum(a.values()) == pytest.approx(rec.score("u0", item), rel=1e-4, abs=1e-5)  # structure + text (+ co-occurrence)


def test_new_item_without_any_path_is_explained_by_its_text(synth_frames, small_config: RecommenderConfig) -> None:
    """An item with a title and nothing else (no interactions, categories, keywords or facts) can still be
    recommended from its text; its explanation says so and names the closest history item by text."""
    f = synth_frames
    bare = pd.DataFrame({"item": ["new-bare"], "title": ["Rocket Nebula"], "description": [""], "categories": [""],
                         "keywords": [""]})
    ds = from_frames(f["interactions"], pd.concat([f["items"], bare], ignore_index=True), f["triples"], f["tags"])
    rec = Recommender(small_config).fit(ds, progress=False)
    user = "u0"
    e = rec.explain(user, "new-bare")
    assert e.paths == [] and e.total_paths == 0
    assert "Nobody has" in e.message and "only by its text" in e.message
    hist, _ = rec.history(user)
    text = rec.arrays["item_text"]
    sims = text[hist] @ text[rec.item_number("new-bare")] / (
        np.linalg.norm(text[hist], axis=1) * np.linalg.norm(text[rec.item_number("new-bare")]))
    nearest = rec.title(rec.vocabs.item.id(int(hist[int(np.argmax(sims))])))
    assert f"closest to that of {nearest}," in e.message
    # an item with interactions and no path gets no such note
    warm = rec.recommend(user, 1)["item"].iloc[0]
    assert "only by its text" not in rec.explain(user, warm).message


def test_new_user_lists_never_hold_the_given_history(trained: Recommender) -> None:
    """A new user who names all but two items gets those two (not the history with a -inf score), ranked as
    the model's top-k ranks them; repeated calls (encoder and rebuilt model kept) give the same list."""
    items = trained.vocabs.item.to_list()
    history, rest = items[2:], items[:2]
    got = trained.recommend_new_user(history=history, k=len(items))
    assert sorted(got["item"]) == sorted(rest) and got["rank"].tolist() == [1, 2]
    assert np.isfinite(got["score"]).all()
    again = trained.recommend_new_user(history=history, k=len(items))
    pd.testing.assert_frame_equal(got, again)
