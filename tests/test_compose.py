"""User text vectors composed from item text vectors (``model.user_text = "compose"``, issue 15): the formula, the
tie rule, the size switch, and that training, a new user, live updates and forgetting all make or remove the same
vectors."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from kgrec import Recommender
from kgrec.encoders.behaviour import own_texts, user_texts
from kgrec.encoders.compose import compose
from kgrec.encoders.text import TextEncoder
from kgrec.fusion.coldstart import NewUsers
from kgrec.fusion.config import RecommenderConfig, user_text_mode
from kgrec.fusion.fitting import encode_items
from kgrec.fusion.inputs import build_inputs, item_title_chars
from kgrec.fusion.state import ITEM_ENCODING
from kgrec.fusion.ties import Window, window_share
from kgrec.graph.hetero import Vocabularies
from kgrec.loaders import schema as S


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def test_compose_is_the_character_weighted_mean_of_items_and_own_text() -> None:
    rng = np.random.default_rng(0)
    items = np.stack([unit(x) for x in rng.normal(size=(5, 6))]).astype(np.float32)
    items[4] = 0.0  # an item without text counts for nothing
    chars = np.array([10, 20, 30, 40, 50], dtype=np.float32)
    own = np.zeros((3, 6), dtype=np.float32)
    own[1] = unit(rng.normal(size=6))
    own[2] = unit(rng.normal(size=6))
    idx = np.array([[0, 1, 4], [2, 3, 0], [0, 0, 0]])
    w = np.array([[1.0, 0.5, 1.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    out = compose(items, idx, w, chars, own, np.array([0.0, 35.0, 12.0], dtype=np.float32))
    # user 0: items only (item 4 has no text), weights 1 and 0.5
    np.testing.assert_allclose(out[0], unit((items[0] + 0.5 * items[1]) / 1.5), rtol=1e-5, atol=1e-6)
    # user 1: items 2 and 3 (chars 30 + 40) and an own text of 35 characters: rho = 35 / 105
    mean = (items[2] + items[3]) / 2
    np.testing.assert_allclose(out[1], unit((70 / 105) * mean + (35 / 105) * own[1]), rtol=1e-5, atol=1e-6)
    # user 2: nothing in the window, own text only
    np.testing.assert_allclose(out[2], own[2], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(compose(items, idx[2:], w[2:], chars)[0], np.zeros(6, np.float32))  # nothing
    # chunks give the same rows
    np.testing.assert_allclose(compose(items, idx, w, chars, own, np.array([0.0, 35.0, 12.0]), chunk=1), out)


def test_a_tie_group_shares_the_window_positions_it_covers() -> None:
    # newest first: one item alone at position 0, then a group of 3 covering positions 1-3; window of 3
    win = Window(
        idx=torch.tensor([[7, 1, 2, 3]]),
        mask=torch.tensor([[True, True, True, True]]),
        lo=torch.tensor([[0, 1, 1, 1]]),
        hi=torch.tensor([[1, 4, 4, 4]]),
    )
    np.testing.assert_allclose(window_share(win, 3), [[1.0, 2 / 3, 2 / 3, 2 / 3]])


def test_auto_composes_above_the_size_and_encodes_below() -> None:
    m = RecommenderConfig().model
    assert m.user_text == "auto"
    assert user_text_mode(m, m.compose_above_users) == "encode"
    assert user_text_mode(m, m.compose_above_users + 1) == "compose"
    assert user_text_mode(m.model_copy(update={"user_text": "compose"}), 10) == "compose"
    with pytest.raises(ValueError, match="user_text"):
        RecommenderConfig.model_validate({"model": {"user_text": "average"}})


@pytest.fixture(scope="module")
def compose_config(small_config: RecommenderConfig) -> RecommenderConfig:
    cfg = small_config.model_copy(deep=True)
    cfg.model.user_text = "compose"
    cfg.model.compose_window = 5
    cfg.train.epochs = 3
    return cfg


@pytest.fixture(scope="module")
def tagged(synth_dataset):  # noqa: ANN001
    """The synthetic set with some users' own words: a profile and interaction texts (tags it has)."""
    ds = synth_dataset
    users = sorted(ds.interactions[S.USER].unique().tolist())
    prof = pd.DataFrame({S.USER: users[:10], S.PROFILE: [f"I like quiet films number {n}" for n in range(10)]})
    rest = pd.DataFrame({S.USER: users[10:], S.PROFILE: ""})
    it = ds.interactions.copy()
    first = it.index[it[S.USER] == users[1]][:2]
    it.loc[first, S.TEXT] = "loved the ending"
    return replace(ds, interactions=it, users=pd.concat([prof, rest], ignore_index=True).astype(ds.users.dtypes))


def test_training_composes_from_item_vectors_and_encodes_only_own_text(tagged, compose_config, tmp_path) -> None:  # noqa: ANN001
    # an empty cache of its own: the session's cache holds behaviour texts other tests encoded
    ds, cfg = tagged, compose_config.model_copy(deep=True)
    cfg.text.cache_dir = str(tmp_path / "text-cache")
    vocabs = Vocabularies.from_dataset(ds)
    item_text, encoder, _ = encode_items(ds, vocabs, cfg, progress=False)
    assert encoder is not None
    own = own_texts(ds, vocabs)
    assert sum(bool(t) for t in own) >= 10 and own[vocabs.user.number(ds.users[S.USER].iloc[0])].startswith("I like")
    behaviour = user_texts(ds, vocabs)
    before = set(encoder._memory)
    assert not {TextEncoder._key(t) for t in behaviour if t not in own} & before
    inp = build_inputs(ds, vocabs, cfg, encoder, item_text.shape[1], progress=False, item_text=item_text)
    encoded = set(encoder._memory) - before
    assert encoded <= {TextEncoder._key(t) for t in own if t.strip()}  # no behaviour text was encoded
    assert not {TextEncoder._key(t) for t in behaviour if t not in own} & set(encoder._memory)
    # each user's row, from scratch: the newest 5 items (distinct timestamps here), title characters, own text
    chars = item_title_chars(ds, vocabs)
    enc = item_text.numpy()
    hist = ds.interactions.assign(u=vocabs.user.numbers(ds.interactions[S.USER]), i=vocabs.item.numbers(ds.interactions[S.ITEM]))
    for u in range(0, len(vocabs.user), 17):
        h = hist[hist.u == u].sort_values(S.TIMESTAMP)
        assert h[S.TIMESTAMP].is_unique
        newest = h.i.to_numpy()[::-1][:5]
        mean = enc[newest].mean(0)
        c_items = chars[newest].sum()
        o = encoder.encode([own[u]], progress=False)[0] if own[u] else np.zeros_like(mean)
        rho = len(own[u]) / (len(own[u]) + c_items) if own[u] else 0.0
        want = unit((1 - rho) * mean + rho * o)
        np.testing.assert_allclose(inp.user_text[u].numpy(), want, rtol=1e-4, atol=1e-5)


def test_items_in_one_timestamp_are_no_order(tagged, compose_config) -> None:  # noqa: ANN001
    ds, cfg = tagged, compose_config
    vocabs = Vocabularies.from_dataset(ds)
    item_text, encoder, _ = encode_items(ds, vocabs, cfg, progress=False)
    it = ds.interactions.copy()
    own_all = own_texts(ds, vocabs)
    user = next(u for u in vocabs.user.to_list() if not own_all[vocabs.user.number(u)])  # no own text: items alone
    rows = it.index[it[S.USER] == user]
    tied = it.loc[rows].sort_values(S.TIMESTAMP).index[-8:]
    newest = it.loc[rows, S.TIMESTAMP].max()
    it.loc[tied, S.TIMESTAMP] = newest  # the newest 8 share one timestamp
    assert it.loc[tied, S.ITEM].is_unique
    a = replace(ds, interactions=it)
    b = replace(ds, interactions=it.iloc[::-1].reset_index(drop=True))  # file order reversed
    ia = build_inputs(a, vocabs, cfg, encoder, item_text.shape[1], progress=False, item_text=item_text)
    ib = build_inputs(b, vocabs, cfg, encoder, item_text.shape[1], progress=False, item_text=item_text)
    u = vocabs.user.number(user)
    np.testing.assert_allclose(ia.user_text[u].numpy(), ib.user_text[u].numpy(), rtol=1e-6, atol=1e-6)
    # the 8 tied items share the 5 window positions: their mean, whatever order the group is in
    g = vocabs.item.numbers(it.loc[tied, S.ITEM])
    own = own_texts(a, vocabs)[u]
    assert not own
    np.testing.assert_allclose(ia.user_text[u].numpy(), unit(item_text.numpy()[g].mean(0)), rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def composed_model(tagged, compose_config) -> Recommender:  # noqa: ANN001
    return Recommender(compose_config).fit(tagged, progress=False)


def test_a_model_that_composes_saves_the_item_encodings_and_composes_new_users(
    composed_model, tagged, tmp_path  # noqa: ANN001
) -> None:
    rec = composed_model
    assert rec.metrics["user_text"] == "compose"
    rec.save(tmp_path / "m")
    back = Recommender.load(tmp_path / "m")
    st = back.state
    assert ITEM_ENCODING in st.arrays and st.arrays[ITEM_ENCODING].shape[0] == len(st.vocabs.item)
    # a new user with exactly a trained user's own text and history gets that user's text vector
    vocabs = st.vocabs
    own = own_texts(tagged, vocabs)
    new = NewUsers(st)
    hist = tagged.interactions
    for user in [tagged.users[S.USER].iloc[0], hist[S.USER].iloc[-1]]:
        u = vocabs.user.number(user)
        h = hist[hist[S.USER] == user].sort_values(S.TIMESTAMP)
        nums = vocabs.item.numbers(h[S.ITEM])
        _, t, _ = new.long_term(own[u], nums, np.empty(0, np.int64), times=h[S.TIMESTAMP].to_numpy())
        np.testing.assert_allclose(t[0].numpy(), st.arrays["user_text"][u], rtol=1e-4, atol=1e-5)
    df = back.recommend_new_user(history=list(h[S.ITEM].astype(str))[-6:], k=5)
    assert len(df) == 5 and not set(df["item"]) & set(h[S.ITEM].astype(str).tolist()[-6:])


def test_a_model_that_encodes_saves_no_item_encodings(trained) -> None:  # noqa: ANN001
    assert trained.metrics["user_text"] == "encode"  # 160 users: 'auto' encodes
    assert ITEM_ENCODING not in trained.state.arrays


def test_live_users_and_items_of_a_composing_model(composed_model, tagged, tmp_path) -> None:  # noqa: ANN001
    from kgrec.fusion.forget import behaviour_texts_of
    from kgrec.graph.embedded import EmbeddedStore
    from kgrec.loaders import batch_from_frames

    store = EmbeddedStore(tmp_path / "store")
    store.ingest(tagged)
    rec = Recommender.load(composed_model.save(tmp_path / "m"), store=store)
    known = rec.vocabs.item.to_list()[:3]
    t = int(tagged.interactions[S.TIMESTAMP].max()) + 10
    items = pd.DataFrame({"item": ["brand-new"], "title": ["A brand new thing"], "description": ["fresh"]})
    events = pd.DataFrame({"user": ["newbie"] * 4, "item": [*known, "brand-new"], "timestamp": [t, t, t + 1, t + 2]})
    store.append(batch_from_frames(events, items, known_items=rec.vocabs.item.to_list()))
    recs = rec.recommend("newbie", k=5)
    assert len(recs) == 5 and not set(recs["item"]) & {*known, "brand-new"}
    st = rec.state
    assert st.arrays[ITEM_ENCODING].shape[0] == len(st.vocabs.item)  # the new item's encoding joined
    assert np.abs(st.arrays[ITEM_ENCODING][st.item_number("brand-new")]).sum() > 0
    nums = st.vocabs.item.numbers(known)
    base = Recommender.load(tmp_path / "m").state  # the state the weights were trained with
    _, want, _ = NewUsers(base).long_term("", nums, np.empty(0, np.int64), times=np.array([t, t, t + 1]))
    np.testing.assert_allclose(st.arrays["user_text"][st.user_number("newbie")], want[0].numpy(), rtol=1e-4, atol=1e-5)
    # forgetting collects the own text a composing model encoded
    user = tagged.users[S.USER].iloc[0]
    own = own_texts(tagged, Vocabularies.from_dataset(tagged))[Vocabularies.from_dataset(tagged).user.number(user)]
    assert own and own in behaviour_texts_of(store, [user])
