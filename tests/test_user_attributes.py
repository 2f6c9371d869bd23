"""User attributes: the users file, attribute nodes in the graph, cold-start users recommended and explained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kgrec import Recommender, loaders
from kgrec.errors import DataValidationError
from kgrec.graph import to_hetero_data
from kgrec.loaders import SyntheticConfig, from_frames, generate_frames
from kgrec.loaders.tables import band_of

INTER = "user,item\n1,a\n2,b\n"
ITEMS = "item,title\na,A\nb,B\n"


def _files(tmp_path: Path, users: str) -> tuple[Path, Path, Path]:
    (tmp_path / "i.csv").write_text(INTER)
    (tmp_path / "it.csv").write_text(ITEMS)
    (tmp_path / "u.csv").write_text(users, encoding="utf-8")
    return tmp_path / "i.csv", tmp_path / "it.csv", tmp_path / "u.csv"


# ------------------------------------------------------------------ the users file
def test_users_file_kinds_bands_profile_and_unknown_users(tmp_path: Path) -> None:
    users = (
        "user,gender,age,zip:category,score:number,profile,bio:text\n"
        "1,F,23,02139,1.5,likes sci-fi,reads a lot\n"
        "2,M,41,,2.5,,\n"
        "9,F,35,10001,,新用户，喜欢科幻,\n"
    )
    ds = loaders.load_files(*_files(tmp_path, users)[:2], users=tmp_path / "u.csv")
    assert ds.users.values.tolist() == [["1", "likes sci-fi; reads a lot"], ["2", ""], ["9", "新用户，喜欢科幻"]]
    got = {(u, a): v for u, a, v in ds.user_attributes.values.tolist()}
    assert got[("1", "zip")] == "02139"  # declared categorical: the leading zero stays
    assert ("2", "zip") not in got and ("9", "score") not in got  # an empty cell is no attribute
    assert {got[("1", "gender")], got[("2", "gender")]} == {"F", "M"}
    # age was inferred numeric: quantile bands over the file's values, "lo to hi"
    ages = [got[(u, "age")] for u in ("1", "9", "2")]
    assert all(" to " in a for a in ages) and len(set(ages)) == 3
    assert band_of(23, ages) == ages[0] and band_of(41, ages) == ages[2] and band_of(99, ages) == ages[2]
    assert ds.counts()["users"] == 3  # user 9 has no interactions: allowed
    assert not {"profile", "bio"} & set(ds.user_attributes["attribute"])  # free text is no node


@pytest.mark.parametrize(
    ("users", "message"),
    [
        ("name,age\nx,1\n", r"u\.csv: missing required column 'user' for users"),
        (
            "user,age\n1,20\n2,21\n1,22\n",
            r"u\.csv, line 4, column 'user': user '1' is listed again \(first at .*u\.csv, line 2\)",
        ),
        (
            "user,age:num\n1,20\n2,old\n",
            r"u\.csv, line 3, column 'age:num': 'old' is not a finite number; expected a number",
        ),
        (
            "user,age:integer\n1,20\n",
            r"column 'age:integer' declares the kind 'integer'; expected a header 'name:kind'",
        ),
        ("user,a=b\n1,x\n", r"column 'a=b' is not a usable attribute name; expected a non-empty name without '='"),
        ("user,job,job:category\n1,x,y\n", r"columns 'job' and 'job:category' name the same attribute 'job'"),
        ("user\n", r"u\.csv: no data rows; expected at least one users row"),
    ],
)
def test_users_file_errors_name_the_line_and_column(tmp_path: Path, users: str, message: str) -> None:
    i, it, u = _files(tmp_path, users)
    with pytest.raises(DataValidationError, match=message):
        loaders.load_files(i, it, users=u)


def test_users_parquet_and_frames_give_the_same_tables(tmp_path: Path) -> None:
    frame = pd.DataFrame({"user": ["1", "2", "3"], "job": ["dev", "chef", "dev"], "age": [20, 30, 60]})
    frame.to_parquet(tmp_path / "u.parquet", index=False)
    i, it, _ = _files(tmp_path, "user\n1\n")
    a = loaders.load_files(i, it, users=tmp_path / "u.parquet")
    b = from_frames(pd.read_csv(i, dtype=str), pd.read_csv(it, dtype=str), users=frame)
    pd.testing.assert_frame_equal(a.user_attributes, b.user_attributes)
    assert a.fingerprint() == b.fingerprint()
    without = loaders.load_files(i, it)
    assert without.fingerprint() != a.fingerprint() and without.users.empty


# ------------------------------------------------------------------ graph
def test_hetero_data_has_attribute_nodes_and_edges() -> None:
    f = generate_frames(SyntheticConfig(users=40, items=60, communities=4, seed=3, user_attributes=True))
    ds = from_frames(f["interactions"], f["items"], users=f["users"])
    data, vocabs = to_hetero_data(ds)
    assert (
        data["attribute"].num_nodes
        == len(vocabs.attribute)
        == len(ds.user_attributes[["attribute", "value"]].drop_duplicates())
    )
    ei = data[("user", "has_attribute", "attribute")].edge_index
    assert ei.shape[1] == len(ds.user_attributes)
    assert "occupation=astronomer" in vocabs.attribute
    assert data[("attribute", "rev_has_attribute", "user")].edge_index.shape[1] == ei.shape[1]


def test_generate_with_user_attributes_writes_a_loadable_users_file(tmp_path: Path) -> None:
    from kgrec.cli import main

    out = tmp_path / "gen"
    assert main(["generate", "--n-users", "300", "--n-items", "100", "--out", str(out), "--user-attributes"]) == 0
    assert (out / "users.parquet").is_file()
    ds = loaders.load_files(out / "interactions.parquet", out / "items.parquet", users=out / "users.parquet")
    assert set(ds.user_attributes["attribute"]) == {"occupation", "age", "gender"}
    assert ds.users["profile"].str.startswith("I enjoy ").all()
    store = tmp_path / "store"
    assert (
        main(
            [
                "ingest",
                "--store",
                str(store),
                "--interactions",
                str(out / "interactions.parquet"),
                "--items-file",
                str(out / "items.parquet"),
                "--users",
                str(out / "users.parquet"),
            ]
        )
        == 0
    )
    import kgrec

    assert kgrec.open_store(store).dataset().user_attributes.equals(ds.user_attributes)


# ------------------------------------------------------------------ cold-start users
COLD = [f"u{n}" for n in range(8)]


def _planted_frames() -> dict[str, pd.DataFrame]:
    """4 communities of 40 users; occupation and profile always follow the community."""
    return generate_frames(
        SyntheticConfig(
            users=160,
            items=240,
            communities=4,
            interactions_per_user=16,
            seed=1,
            user_attributes=True,
            attribute_signal=1.0,
        )
    )


def _without_cold(f: dict[str, pd.DataFrame], users: pd.DataFrame, name: str):
    """The data set of frames ``f`` with every interaction and tag of the :data:`COLD` users removed (their users-file
    rows stay)."""
    inter, tags = f["interactions"], f["tags"]
    return from_frames(
        inter[~inter["user"].isin(COLD)],
        f["items"],
        f["triples"],
        tags[~tags["user"].isin(COLD)],
        users=users,
        name=name,
    )


@pytest.fixture(scope="module")
def cold_world(small_config):
    """Planted data; the first 8 users keep their attributes and lose every interaction and tag."""
    f = _planted_frames()
    ds = _without_cold(f, f["users"], "cold")
    cfg = small_config.model_copy(update={"train": small_config.train.model_copy(update={"epochs": 12})})
    rec = Recommender(cfg).fit(ds, progress=False)
    truth = f["communities"].set_index(["kind", "id"])["community"]
    return rec, ds, truth


def test_cold_users_are_recommended_from_their_attributes(cold_world) -> None:
    rec, ds, truth = cold_world
    assert not set(COLD) & set(ds.interactions["user"])
    recs = rec.recommend(COLD, k=10)
    share = np.mean([truth[("item", i)] == truth[("user", u)] for u, i in zip(recs["user"], recs["item"], strict=True)])
    popular = ds.interactions["item"].value_counts().index[:10]
    pop_share = np.mean([truth[("item", i)] == truth[("user", u)] for u in COLD for i in popular])
    assert share > 0.8 and share > pop_share + 0.3, (share, pop_share)
    # two cold users of different communities get different lists (personalised, not one popular list)
    assert set(recs[recs["user"] == "u0"]["item"]) != set(recs[recs["user"] == "u1"]["item"])


def test_a_cold_user_is_explained_in_plain_words(cold_world) -> None:
    rec, ds, _ = cold_world
    top = rec.recommend("u6", k=1)["item"].iloc[0]  # community 2: the cooks
    e = rec.explain("u6", top)
    kinds = [p.kind for p in e.paths]
    assert "attribute" in kinds, e.text()
    p = e.paths[kinds.index("attribute")]
    occupation = ds.user_attributes.query("user == 'u6' and attribute == 'occupation'")["value"].iloc[0]
    if p.nodes[1].id == f"occupation={occupation}":
        assert p.sentence == (
            f"Recommended because people who share your occupation, {occupation}, interacted with {rec.title(top)}."
        )
    assert [n.type for n in p.nodes] == ["user", "attribute", "item"] and p.relations[0] == "HAS_ATTRIBUTE"
    assert p.sentence.startswith("Recommended because people who share your ")
    assert sum(x.score for x in rec.explain("u6", top, top=50).paths) == pytest.approx(e.score, rel=1e-4)


def test_a_new_user_given_attributes_only(cold_world) -> None:
    rec, _, truth = cold_world
    for occupation, community in (("astronomer", 0), ("cook", 2)):
        got = rec.recommend_new_user(
            attributes={"occupation": occupation, "age": 18 + 45 * (community + 0.5) / 4}, k=10
        )
        share = np.mean([truth[("item", i)] == community for i in got["item"]])
        assert share >= 0.8, (occupation, share)
    unknown_only = {"occupation": "astronaut-chef"}
    with pytest.raises(
        Exception, match=r"needs behaviour text, at least one known item or at least one known attribute"
    ):
        rec.recommend_new_user(attributes=unknown_only)


def test_a_sample_of_users_keeps_their_attributes() -> None:
    ds = loaders.synthetic(SyntheticConfig(users=60, items=50, user_attributes=True))
    s = loaders.sample_users(ds, 10, seed=1)
    kept = set(s.interactions["user"])
    assert set(s.users["user"]) == kept and set(s.user_attributes["user"]) == kept
    assert len(s.user_attributes) == len(ds.user_attributes[ds.user_attributes["user"].isin(kept)])


def test_a_new_user_is_told_why_in_plain_words(cold_world) -> None:
    rec, ds, _ = cold_world
    attrs = {"occupation": "cook", "age": 18 + 45 * 2.5 / 4, "gender": "f", "hobby": "never seen"}
    item = rec.recommend_new_user(attributes=attrs, k=1)["item"].iloc[0]
    why = rec.explain_new_user(item, attrs)
    assert list(why.columns) == ["attribute", "value", "users", "strength", "sentence"] and set(why["attribute"]) <= {
        "occupation",
        "age",
        "gender",
    }
    chose = set(ds.interactions.loc[ds.interactions["item"] == item, "user"])
    cooks = set(ds.user_attributes.query("attribute == 'occupation' and value == 'cook'")["user"])
    row = why[why["attribute"] == "occupation"].iloc[0]
    assert row["users"] == len(chose & cooks) > 0
    assert (
        row["sentence"]
        == f"Recommended because people who share your occupation, cook, interacted with {rec.title(item)}."
    )
    # Ordered as the attribute path of kgrec.fusion.explain weighs it (regression: ordered by raw counts, so a value
    # nearly everybody holds came first whenever many of its holders chose a popular item): the structural cosine of
    # the value and the item times the value's specificity 1 + log((1 + U) / (1 + n_a)), computed here from scratch.
    st, nodes = rec.state, rec.state.arrays["nodes"]
    z_i = nodes[st.node_offsets["item"] + rec.item_number(item)]
    n_users = len(st.vocabs.user)
    for r in why.itertuples():
        z_a = nodes[st.node_offsets["attribute"] + st.vocabs.attribute.number(f"{r.attribute}={r.value}")]
        n_a = ds.user_attributes.query("attribute == @r.attribute and value == @r.value")["user"].nunique()
        cos = z_a @ z_i / (np.linalg.norm(z_a) * np.linalg.norm(z_i))
        assert r.strength == pytest.approx(max(cos, 0) * (1 + np.log((1 + n_users) / (1 + n_a))), rel=1e-5)
    assert why["strength"].is_monotonic_decreasing
    assert rec.explain_new_user(item, attrs, lang="zh")["sentence"].str.startswith("推荐理由：和你").all()


def test_a_user_without_any_text_has_a_zero_text_vector(small_config) -> None:
    # Regression: the text tower mapped an empty text (an all-zero encoding) to its biases, one vector shared by every
    # user without text, which dominated a cold user's score (ml-100k: below popularity on every seed).
    f = generate_frames(
        SyntheticConfig(users=60, items=80, communities=2, interactions_per_user=10, seed=2, user_attributes=True)
    )
    users = f["users"].copy()
    users.loc[users["user"].isin(COLD), "profile"] = ""  # attributes only: no behaviour, no profile line
    ds = _without_cold(f, users, "textless")
    cfg = small_config.model_copy(update={"train": small_config.train.model_copy(update={"epochs": 2})})
    state = Recommender(cfg).fit(ds, progress=False)._state
    cold = state.vocabs.user.numbers(pd.Series(COLD), missing="none")
    warm = state.vocabs.user.numbers(pd.Series(["u20", "u21"]), missing="none")
    assert (cold >= 0).all() and (warm >= 0).all()
    assert np.abs(state.arrays["user_text"][cold]).max() == 0.0
    assert np.abs(state.arrays["user_text"][warm]).max() > 0.0, "users with behaviour text keep a text vector"


def test_an_attribute_value_everybody_shares_is_weak_evidence(small_config) -> None:
    # Regression (ml-100k): attribute paths were weighed by closeness alone, so a value held by most users (gender,
    # a large region) explained a cold user as often as a specific one. Now, like a category or keyword, a value held
    # by n_a of the U users has specificity 1 + log((1 + U) / (1 + n_a)): one every user holds gets the minimum, 1.
    import math

    from kgrec.fusion.explain_batch import explain_rows

    f = _planted_frames()
    users = f["users"].assign(planet="earth")  # a categorical value every user shares
    ds = _without_cold(f, users, "everybody")
    cfg = small_config.model_copy(update={"train": small_config.train.model_copy(update={"epochs": 4})})
    rec = Recommender(cfg).fit(ds, progress=False)
    st = rec.state
    deg, n_users = st.degrees["attribute"], len(st.vocabs.user)
    ua = ds.user_attributes
    assert deg["planet=earth"] == n_users == ua["user"].nunique()
    assert deg == {f"{a}={v}": int(n) for (a, v), n in ua.groupby(["attribute", "value"])["user"].nunique().items()}
    z, off = st.arrays["nodes"], st.node_offsets

    def closeness(attribute: str, item: str) -> float:
        za = z[off["attribute"] + st.vocabs.attribute.number(attribute)]
        zi = z[off["item"] + st.item_number(item)]
        return max(0.0, float(za @ zi / (np.linalg.norm(za) * np.linalg.norm(zi))))

    top = rec.recommend(COLD, k=1)
    for u, item in zip(top["user"], top["item"], strict=True):
        e = rec.explain(u, item, top=50)
        got = {p.nodes[1].id: p.score for p in e.paths if p.kind == "attribute"}
        assert "planet=earth" in got and len(got) == len(e.paths) >= 3, e.text()
        spec = {a: 1.0 + math.log((1 + n_users) / (1 + deg[a])) for a in got}
        assert spec["planet=earth"] == pytest.approx(1.0) and min(spec.values()) == spec["planet=earth"]
        # each path's score is its share of the score: closeness x specificity over the sum of them
        raw = {a: closeness(a, item) * spec[a] for a in got}
        assert got == pytest.approx({a: e.score * r / sum(raw.values()) for a, r in raw.items()}, rel=1e-5)
    batch = explain_rows(rec, top["user"].tolist(), top["item"].tolist())  # the batched code weighs them alike
    assert batch.sentences == [
        rec.explain(u, i, top=1).headline() for u, i in zip(top["user"], top["item"], strict=True)
    ]
