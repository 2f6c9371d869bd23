"""One contract for every graph store: the same cases on the embedded store and on the real Neo4j server.

The ``store`` fixture gives an empty store of each backend (``embedded`` in a temporary
folder, no server; ``neo4j`` on the real server, wiped before and after, marked
``neo4j``), so ``pytest -m "not neo4j"`` runs the embedded half alone. The tests at
the end compare the two backends on the same data and need the server.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch

from kgrec import Recommender
from kgrec.errors import DataValidationError, StoreError, UnknownIdError
from kgrec.graph import PATH_COLUMNS, GraphStore, open_store, to_hetero_data
from kgrec.graph.store import model_dir
from kgrec.loaders import batch_from_frames, from_frames
from kgrec.loaders import schema as S
from kgrec.loaders.schema import Dataset
from kgrec.loaders.tables import merge

URI = os.environ.get("KGREC_TEST_NEO4J_URI", "bolt://127.0.0.1:7687")
BACKENDS = ["embedded", pytest.param("neo4j", marks=pytest.mark.neo4j)]
INGEST_FIRST = r"kgrec ingest --store"


def _empty(backend: str, folder: Path) -> GraphStore:
    st = open_store(folder / "store" if backend == "embedded" else URI)
    st.wipe()
    return st


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GraphStore]:
    """An empty store of each backend (Neo4j: the test database, left empty afterwards)."""
    st = _empty(request.param, tmp_path)
    yield st
    st.wipe()
    st.close()


@pytest.fixture
def tiny() -> Dataset:
    """Two users, three items, one of each connector: every path kind has a known answer."""
    inter = pd.DataFrame({"user": ["u", "u", "v", "v"], "item": ["a", "b", "a", "c"], "timestamp": [1, 2, 3, 4]})
    items = pd.DataFrame({"item": ["a", "b", "c"], "title": ["A", "B", "C"], "categories": ["Drama", "X", "Drama"],
                          "keywords": ["k", "", "k"]})
    triples = pd.DataFrame({"item": ["a", "c"], "relation": ["directed_by", "directed_by"], "entity": ["Ann", "Ann"]})
    tags = pd.DataFrame({"user": ["u"], "item": ["b"], "tag": ["K"]})
    return from_frames(inter, items, triples, tags, name="tiny")


def _assert_same_tables(got: Dataset, want: Dataset) -> None:
    for name, df in want.tables().items():
        pd.testing.assert_frame_equal(got.tables()[name], df, check_dtype=True, obj=name)


# ------------------------------------------------------------------ one backend at a time
def test_empty_store(store: GraphStore) -> None:
    assert not store.exists()
    assert not store.has_user("u0") and not store.has_item("i0")
    for read in (store.dataset, store.counts, store.fingerprint, store.manifest):
        with pytest.raises(StoreError, match=INGEST_FIRST):
            read()
    with pytest.raises(UnknownIdError, match=r"unknown user id 'u0'"):
        store.paths("u0", "i0")
    with pytest.raises(UnknownIdError, match=r"unknown user id 'u0'"):
        store.subgraph("u0")


def test_ingest_twice_changes_nothing(store: GraphStore, synth_dataset: Dataset) -> None:
    first = store.ingest(synth_dataset)
    assert first.changed and store.exists()
    assert first.counts == synth_dataset.counts() and first.fingerprint == synth_dataset.fingerprint()
    again = store.ingest(synth_dataset)
    assert not again.changed
    assert (again.counts, again.fingerprint) == (first.counts, first.fingerprint)
    assert (store.counts(), store.fingerprint()) == (first.counts, first.fingerprint)
    _assert_same_tables(store.dataset(), synth_dataset)


def test_dataset_round_trip_counts_and_manifest(store: GraphStore, synth_dataset: Dataset) -> None:
    store.ingest(synth_dataset)
    back = store.dataset()
    _assert_same_tables(back, synth_dataset)
    assert back.fingerprint() == synth_dataset.fingerprint() == store.fingerprint()
    assert store.counts() == synth_dataset.counts()
    m = store.manifest()
    assert (m["name"], m["fingerprint"], m["counts"]) == ("synthetic-test", store.fingerprint(), store.counts())


def test_unknown_ids(store: GraphStore, tiny: Dataset) -> None:
    store.ingest(tiny)
    assert store.has_user("u") and store.has_item("c")
    assert not store.has_user("nobody") and not store.has_item("zz")
    assert not store.has_user("a") and not store.has_item("u")  # an item id is no user id and back
    with pytest.raises(UnknownIdError, match=r"unknown user id 'nobody': not in the store at "):
        store.paths("nobody", "c")
    with pytest.raises(UnknownIdError, match=r"unknown item id 'zz': not in the store at "):
        store.paths("u", "zz")
    with pytest.raises(UnknownIdError, match=r"unknown user id 'nobody'"):
        store.subgraph("nobody")
    with pytest.raises(ValueError, match=r"unknown path kind 'friend'; expected some of \['category'"):
        store.paths("u", "c", kinds=["friend"])


def test_paths_have_the_documented_shapes(store: GraphStore, tiny: Dataset) -> None:
    store.ingest(tiny)
    p = store.paths("u", "c")
    assert list(p.columns) == PATH_COLUMNS
    assert list(map(tuple, p.to_numpy().tolist())) == [tuple(r) for r in store.path_rows("u", "c")]
    assert set(map(tuple, p.to_numpy().tolist())) == {
        ("category", "a", "Drama", "", ""),
        ("keyword", "a", "k", "", ""),
        ("keyword", "b", "k", "", ""),  # b carries keyword k because u tagged it so
        ("tag", "", "k", "", ""),
        ("entity", "a", "Ann", "directed_by", "directed_by"),
        ("user", "a", "v", "", ""),
    }
    assert set(store.paths("u", "c", anchors=["b"])["kind"]) == {"tag", "keyword"}
    assert set(store.paths("u", "c", kinds=["user", "entity"])["kind"]) == {"user", "entity"}
    assert store.paths("v", "b", kinds=["entity"]).empty


def test_subgraph(store: GraphStore, tiny: Dataset) -> None:
    store.ingest(tiny)
    g = store.subgraph("u", hops=2)
    assert isinstance(g, nx.Graph) and g.has_node("user:u") and g.has_node("item:c")
    assert g.nodes["item:a"]["name"] == "A" and g.nodes["item:a"]["type"] == "item"
    dist = nx.single_source_shortest_path_length(g, "user:u")
    assert max(dist.values()) <= 2 and len(dist) == g.number_of_nodes()
    assert set(store.subgraph("u", hops=1)) < set(g)


def test_a_later_ingest_adds_and_new_ids_are_found(store: GraphStore, synth_frames) -> None:
    f = synth_frames
    inter = f["interactions"]
    first, second = inter.iloc[: len(inter) // 2], inter.iloc[len(inter) // 2 :]
    newcomer = next(u for u in second["user"] if u not in set(first["user"]) | set(f["tags"]["user"]))
    store.ingest(from_frames(first, f["items"], f["triples"], f["tags"], name="x"))
    assert not store.has_user(newcomer)  # asked before the second ingest: must not stick
    rep = store.ingest(from_frames(second, f["items"], name="x"))
    full = from_frames(inter, f["items"], f["triples"], f["tags"], name="x")
    assert rep.changed and rep.counts == full.counts() == store.counts()
    assert store.fingerprint() == full.fingerprint()
    assert store.has_user(newcomer)
    assert store.paths(newcomer, str(f["items"]["item"].iloc[0])).columns.tolist() == PATH_COLUMNS


def test_wipe_empties_the_store(store: GraphStore, tiny: Dataset) -> None:
    store.ingest(tiny)
    assert store.has_user("u")
    store.wipe()
    assert not store.exists() and not store.has_user("u") and not store.has_item("a")
    with pytest.raises(StoreError, match=INGEST_FIRST):
        store.dataset()
    assert store.ingest(tiny).changed  # and it takes data again


def test_write_back_is_a_declared_capability(store: GraphStore, tiny: Dataset) -> None:
    store.ingest(tiny)
    vectors = np.eye(2, 4, dtype=np.float32)
    if not store.supports_write_back:
        with pytest.raises(StoreError, match=r"write-back .* needs a Neo4j store; EmbeddedStore at .* has none"):
            store.write_embeddings("user", ["u", "v"], vectors, "m1")
        with pytest.raises(StoreError, match=r"needs a Neo4j store"):
            store.write_recommendations(pd.DataFrame({"user": ["u"], "item": ["c"], "rank": [1], "score": [0.5],
                                                      "model_version": ["m1"]}))
        return
    assert store.write_embeddings("user", ["u", "v"], vectors, "m1") == "kgrec_user_embedding"
    recs = pd.DataFrame({"user": ["u"], "item": ["c"], "rank": [1], "score": [0.5], "model_version": ["m1"]})
    assert store.write_recommendations(recs) == 1
    got = store.cypher("MATCH (u:User {id: 'u'})-[r:RECOMMENDED]->(i:Item) RETURN i.id AS item, u.embedding AS e")
    assert got["item"].tolist() == ["c"] and list(got["e"].iloc[0]) == [1.0, 0.0, 0.0, 0.0]


def test_capabilities_and_the_model_dir(store: GraphStore, tmp_path: Path) -> None:
    assert store.supports_write_back == (type(store).__name__ == "Neo4jStore")
    root = store.model_root()
    assert root is not None and model_dir(store) == root / "default"  # where `kgrec train` saves, as the web reads
    assert model_dir(store, tmp_path / "m") == tmp_path / "m"
    assert model_dir(store, "~/m") == Path.home() / "m"


# ------------------------------------------------------------------ both backends on the same data
@pytest.fixture
def both(tmp_path: Path, synth_dataset: Dataset) -> Iterator[dict[str, GraphStore]]:
    emb = _empty("embedded", tmp_path)
    neo = _empty("neo4j", tmp_path)
    emb.ingest(synth_dataset)
    neo.ingest(synth_dataset)
    yield {"embedded": emb, "neo4j": neo}
    neo.wipe()
    neo.close()


@pytest.mark.neo4j
def test_same_tables_counts_fingerprint_and_manifest(both) -> None:
    a, b = both["embedded"], both["neo4j"]
    _assert_same_tables(b.dataset(), a.dataset())
    assert a.fingerprint() == b.fingerprint()
    assert a.counts() == b.counts()
    keys = ("name", "fingerprint", "counts")
    assert {k: a.manifest()[k] for k in keys} == {k: b.manifest()[k] for k in keys}


@pytest.mark.neo4j
def test_same_path_rows_and_subgraph(both, synth_dataset: Dataset) -> None:
    a, b = both["embedded"], both["neo4j"]
    users = synth_dataset.interactions["user"].drop_duplicates().tolist()[:12]
    items = synth_dataset.items["item"].tolist()[::20]
    found = 0
    for u in users:
        for i in items:
            rows = a.path_rows(u, i)
            assert rows == b.path_rows(u, i), (u, i)
            found += len(rows)
        ga, gb = a.subgraph(u, hops=2), b.subgraph(u, hops=2)
        assert set(ga.nodes) == set(gb.nodes) and {frozenset(e) for e in ga.edges} == {frozenset(e) for e in gb.edges}
    assert found > 100


@pytest.mark.neo4j
def test_same_hetero_data(both) -> None:
    ha, va = to_hetero_data(both["embedded"].dataset())
    hb, vb = to_hetero_data(both["neo4j"].dataset())
    assert va.to_dict() == vb.to_dict()
    assert set(ha.edge_types) == set(hb.edge_types)
    for et in ha.edge_types:
        for key, val in ha[et].items():
            assert torch.equal(val, hb[et][key]), (et, key)


@pytest.mark.neo4j
@pytest.mark.slow
def test_same_model_same_recommendations_and_paths(both, small_config, tmp_path: Path) -> None:
    emb, neo = both["embedded"], both["neo4j"]
    rec_e = Recommender(small_config).fit(emb, progress=False)
    rec_n = Recommender(small_config).fit(neo, progress=False)
    users = ["u0", "u7", "u42"]
    re_, rn = rec_e.recommend(users, 10), rec_n.recommend(users, 10)
    assert re_[["user", "item", "rank"]].equals(rn[["user", "item", "rank"]])
    assert np.allclose(re_["score"], rn["score"], atol=1e-5)
    # one saved model, explained through each store: identical paths, order and scores
    path = rec_e.save(tmp_path / "model")
    on_emb = Recommender.load(path, store=emb)
    on_neo = Recommender.load(path, store=neo)
    for u, i in zip(re_["user"], re_["item"]):
        a = on_emb.explain(u, i, emb, top=5).to_dict()
        b = on_neo.explain(u, i, neo, top=5).to_dict()
        assert a == b
        assert a["paths"], (u, i)


@pytest.mark.neo4j
@pytest.mark.slow
def test_paths_exist_in_neo4j(both, trained) -> None:
    """Every node and edge of a returned path exists in the database (checked with Cypher)."""
    neo = both["neo4j"]
    label = {"user": "User", "item": "Item", "category": "Category", "keyword": "Keyword", "entity": "Entity"}
    recs = trained.recommend(["u1", "u2"], 10)
    checked = 0
    for u, i in zip(recs["user"], recs["item"]):
        for p in trained.explain(u, i, neo, top=5).paths:
            for a, rel, b in zip(p.nodes, p.relations, p.nodes[1:]):
                la, lb = label[a.type], label[b.type]
                if rel == "CO_OCCURS":  # derived, not stored: some user interacted with both items
                    q = "MATCH (a:Item {id: $a})<-[:INTERACTED]-(:User)-[:INTERACTED]->(b:Item {id: $b}) RETURN count(*) AS n"
                    assert neo.cypher(q, a=a.id, b=b.id).iloc[0]["n"] > 0, (p.sentence, a, b)
                    checked += 1
                    continue
                # relationships may point either way along the path (item <- category edges)
                q = (f"MATCH (a:{la} {{id: $a}}), (b:{lb} {{id: $b}}) "
                     f"RETURN exists((a)-[]-(b)) AS ok, [(a)-[r]-(b) | type(r)] AS types")
                row = neo.cypher(q, a=a.id, b=b.id).iloc[0]
                assert row["ok"], (p.sentence, a, b)
                want = "RELATED_TO" if p.kind == "entity" and rel != "INTERACTED" else rel
                assert want in row["types"], (p.sentence, rel, row["types"])
                checked += 1
    assert checked > 20


def test_callers_use_declared_capabilities_and_one_helper() -> None:
    """No `hasattr` probe of a store anywhere in the package; the CLI and the web open stores and find models one way."""
    import ast

    pkg = Path(__file__).resolve().parents[1] / "kgrec"
    probes = []
    for f in sorted(pkg.rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "hasattr"
                    and node.args and isinstance(node.args[0], ast.Name) and node.args[0].id in {"st", "store"}):
                probes.append(f"{f.relative_to(pkg)}:{node.lineno}")
    assert probes == []
    for f in ("cli/app.py", "web/service.py"):
        tree = ast.parse((pkg / f).read_text())
        defined = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        assert not defined & {"_open", "_model_dir", "default_model_dir"}, f
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "kgrec.graph.store"
                    for a in n.names}
        assert {"open_store", "model_dir"} <= imported, f


# ------------------------------------------------------------------ users file (attributes), both backends
@pytest.fixture
def with_users(tiny: Dataset) -> Dataset:
    """``tiny`` plus a users file: u and v share occupation 'dev'; w has attributes and no interactions."""
    users = pd.DataFrame({"user": ["u", "v", "w"], "occupation": ["dev", "dev", "chef"], "age": ["20", "40", "30"],
                          "profile": ["likes drama", "", "新用户，喜欢科幻"]})
    return from_frames(tiny.interactions[["user", "item", "timestamp"]], tiny.items.assign(categories=["Drama", "X", "Drama"]),
                       tiny.triples, tiny.tags, users=users, name="tiny")


def test_users_table_round_trip_and_attribute_paths(store: GraphStore, with_users: Dataset) -> None:
    rep = store.ingest(with_users)
    assert rep.changed and rep.counts == with_users.counts() == store.counts()
    _assert_same_tables(store.dataset(), with_users)
    assert store.fingerprint() == with_users.fingerprint()
    assert store.has_user("w")  # a user with attributes and no interactions
    assert store.path_rows("w", "c") == []  # no history, and nobody else is a chef
    assert store.path_rows("u", "c", kinds=["attribute"]) == [("attribute", "", "occupation=dev", "", "")]
    assert store.path_rows("v", "b", kinds=["attribute"]) == [("attribute", "", "occupation=dev", "", "")]
    assert not store.ingest(with_users).changed


def test_users_listed_again_get_their_new_attributes(store: GraphStore, with_users: Dataset) -> None:
    store.ingest(with_users)
    again = from_frames(with_users.interactions.iloc[:1], with_users.items,
                        users=pd.DataFrame({"user": ["u"], "occupation": ["chef"]}), name="tiny")
    store.ingest(again)
    attrs = store.dataset().user_attributes
    assert attrs[attrs["user"] == "u"][["attribute", "value"]].values.tolist() == [["occupation", "chef"]]
    assert attrs[attrs["user"] == "v"]["attribute"].tolist() == ["age", "occupation"]  # others kept
    profiles = dict(zip(store.dataset().users["user"], store.dataset().users["profile"], strict=True))
    assert profiles == {"u": "", "v": "", "w": "新用户，喜欢科幻"}


# ------------------------------------------------------------------ live stores: append, lineage, history, forget
@pytest.fixture
def batch() -> Dataset:
    """New rows for ``tiny``: a new user w (on a held item and on a new item d the batch adds), u's newest event,
    and w's tag on d. Items a, b, c are not in the batch's items table: the store holds them."""
    inter = pd.DataFrame({"user": ["w", "w", "u"], "item": ["a", "d", "c"], "timestamp": [5, 6, 7],
                          "rating": ["4", "", "2.5"], "text": ["", "liked it", ""]})
    items = pd.DataFrame({"item": ["d"], "title": ["D"], "categories": ["Drama"], "keywords": ["new"]})
    tags = pd.DataFrame({"user": ["w"], "item": ["d"], "tag": ["Fresh"]})
    return batch_from_frames(inter, items, tags=tags, known_items=["a", "b", "c"], name="batch")


def test_append_adds_the_batch_as_an_ingest_would_merge_it(store: GraphStore, tiny: Dataset, batch: Dataset) -> None:
    first = store.ingest(tiny)
    assert not store.has_user("w") and not store.has_item("d")
    rep = store.append(batch)
    want = merge(tiny, batch)
    assert rep.changed and rep.fingerprint == want.fingerprint() == store.fingerprint()
    assert rep.counts == want.counts() == store.counts()
    assert rep.delta["interactions"] == 3 and rep.delta["items"] == 1 and rep.delta["users"] == 1
    assert rep.delta["tags"] == 1
    _assert_same_tables(store.dataset(), want)
    assert store.has_user("w") and store.has_item("d")
    assert store.lineage() == [first.fingerprint, rep.fingerprint]
    assert store.item_ids() == ["a", "b", "c", "d"]
    with open_store(store.location) as fresh:  # read back from scratch: what the store recorded is what it holds
        _assert_same_tables(fresh.dataset(), want)
        assert fresh.fingerprint() == want.fingerprint() and fresh.lineage() == store.lineage()


def test_append_twice_changes_nothing(store: GraphStore, tiny: Dataset, batch: Dataset) -> None:
    store.ingest(tiny)
    once = store.append(batch)
    again = store.append(batch)
    assert not again.changed and (again.fingerprint, again.counts) == (once.fingerprint, once.counts)
    assert all(v == 0 for v in again.delta.values())
    assert store.lineage() == [tiny.fingerprint(), once.fingerprint]


def test_append_into_an_empty_store_is_an_ingest(store: GraphStore, tiny: Dataset) -> None:
    rep = store.append(tiny)
    assert rep.changed and store.fingerprint() == tiny.fingerprint() and store.lineage() == [tiny.fingerprint()]
    _assert_same_tables(store.dataset(), tiny)


def _state(store: GraphStore) -> tuple[str, dict[str, int], list[str], Dataset]:
    return store.fingerprint(), store.counts(), store.lineage(), store.dataset()


def test_a_batch_naming_an_unknown_item_is_refused_whole(store: GraphStore, tiny: Dataset) -> None:
    store.ingest(tiny)
    fp, counts, lineage, _ = _state(store)
    bad = batch_from_frames(pd.DataFrame({"user": ["w", "w"], "item": ["a", "zz"], "timestamp": [5, 6]}),
                            items=pd.DataFrame({"item": ["d"], "title": ["D"]}),
                            known_items=["a", "b", "c"], allow_unknown_items=True)  # the loader leaves zz to the store
    with pytest.raises(DataValidationError,
                       match=r"<batch table 'interactions'>, row 2, column 'item': item 'zz' is neither in the store "
                             r"at .* nor in the batch's items table.*allow_unknown_items=True"):
        store.append(bad)
    tag_bad = batch_from_frames(tags=pd.DataFrame({"user": ["u"], "item": ["nope"], "tag": ["t"]}),
                                known_items=["a", "b", "c"], allow_unknown_items=True)
    with pytest.raises(DataValidationError, match=r"<batch table 'tags'>, row 1, column 'item': item 'nope'"):
        store.append(tag_bad)
    assert (store.fingerprint(), store.counts(), store.lineage()) == (fp, counts, lineage)
    assert not store.has_user("w") and not store.has_item("d")  # the good rows of the batch were not applied


def test_a_malformed_batch_is_refused_whole(store: GraphStore, tiny: Dataset) -> None:
    store.ingest(tiny)
    before = _state(store)
    inter = tiny.interactions.copy()
    inter.loc[len(inter)] = ["x", "a", 9, 1.0, "", 1.0]
    inter.loc[len(inter)] = ["", "b", 10, 1.0, "", 1.0]  # a hand-built Dataset with an empty user id
    bad = Dataset(interactions=inter.astype(tiny.interactions.dtypes.to_dict()), items=S.empty_table("items"))
    with pytest.raises(DataValidationError, match=r"empty user id"):
        store.append(bad)
    no_weight = Dataset(interactions=tiny.interactions.drop(columns=["weight"]), items=S.empty_table("items"))
    with pytest.raises(DataValidationError, match=r"interactions.*missing column 'weight'"):
        store.append(no_weight)
    nothing = Dataset(interactions=S.empty_table("interactions"), items=S.empty_table("items"))
    with pytest.raises(DataValidationError, match=r"no rows to append"):
        store.append(nothing)
    after = _state(store)
    assert after[:3] == before[:3] and not store.has_user("x")
    _assert_same_tables(after[3], before[3])


def test_unknown_items_are_created_with_their_id_as_title_when_allowed(store: GraphStore, tiny: Dataset) -> None:
    store.ingest(tiny)
    b = batch_from_frames(pd.DataFrame({"user": ["u", "w"], "item": ["new-1", "a"], "timestamp": [8, 9]}),
                          known_items=["a", "b", "c"], allow_unknown_items=True)
    rep = store.append(b, allow_unknown_items=True)
    assert rep.changed and store.has_item("new-1") and rep.delta["items"] == 1
    items = store.dataset().items.set_index("item")
    assert (items.loc["new-1", "title"], items.loc["new-1", "description"]) == ("new-1", "")
    assert items.loc["a", "title"] == "A"  # a held item keeps its title
    assert not store.append(b, allow_unknown_items=True).changed


def test_lineage_records_each_change_and_wipe_empties_it(store: GraphStore, tiny: Dataset, batch: Dataset) -> None:
    assert store.lineage() == []
    first = store.ingest(tiny).fingerprint
    store.ingest(tiny)
    assert store.lineage() == [first]
    second = store.append(batch).fingerprint
    store.append(batch)
    third = store.ingest(from_frames(pd.DataFrame({"user": ["z"], "item": ["b"]}), tiny.items, name="tiny")).fingerprint
    assert store.lineage() == [first, second, third] and third == store.fingerprint()
    assert len({first, second, third}) == 3
    store.wipe()
    assert store.lineage() == []


@pytest.fixture
def timed() -> Dataset:
    """u has two events at the same second (c, a) and one earlier (b); ratings and texts to carry."""
    inter = pd.DataFrame({"user": ["u", "u", "u", "v"], "item": ["c", "a", "b", "a"], "timestamp": [5, 5, 1, 2],
                          "rating": ["4", "", "3.5", "1"], "text": ["x", "", "y", ""]})
    items = pd.DataFrame({"item": ["a", "b", "c"], "title": ["A", "B", "C"]})
    return from_frames(inter, items, name="timed")


def test_user_history_is_oldest_first_with_ties_by_item(store: GraphStore, timed: Dataset) -> None:
    store.ingest(timed)
    h = store.user_history("u")
    assert list(h.columns) == list(S.INTERACTIONS_SCHEMA) and h.dtypes.astype(str).to_dict() == S.INTERACTIONS_SCHEMA
    assert h["item"].tolist() == ["b", "a", "c"] and h["timestamp"].tolist() == [1, 5, 5]
    want = timed.interactions[timed.interactions["user"] == "u"].reset_index(drop=True)
    pd.testing.assert_frame_equal(h, want)
    assert h.index.tolist() == [0, 1, 2]
    empty = store.user_history("brand-new")
    assert empty.empty and list(empty.columns) == list(S.INTERACTIONS_SCHEMA)
    assert empty.dtypes.astype(str).to_dict() == S.INTERACTIONS_SCHEMA
    store.append(batch_from_frames(pd.DataFrame({"user": ["u", "brand-new"], "item": ["a", "c"], "timestamp": [9, 3]}),
                                   known_items=["a", "b", "c"]))
    assert store.user_history("u")["item"].tolist() == ["b", "c", "a"]  # a's later event replaced the old one
    assert store.user_history("brand-new")["item"].tolist() == ["c"]


def test_user_history_on_an_empty_store_is_empty(store: GraphStore) -> None:
    assert store.user_history("u").empty and store.item_ids() == [] and store.lineage() == []


def test_another_store_object_sees_appends_at_once(store: GraphStore, tiny: Dataset, batch: Dataset) -> None:
    store.ingest(tiny)
    with open_store(store.location) as reader:
        assert reader.user_history("w").empty and not reader.has_user("w") and "d" not in reader.item_ids()
        store.append(batch)
        assert reader.user_history("w")["item"].tolist() == ["a", "d"]
        assert reader.has_user("w") and reader.has_item("d") and "d" in reader.item_ids()
        assert reader.fingerprint() == store.fingerprint() and reader.lineage() == store.lineage()
        assert reader.dataset().fingerprint() == store.fingerprint()


def test_forget_users_removes_every_row_of_theirs(store: GraphStore, with_users: Dataset) -> None:
    store.ingest(with_users)
    store.append(batch_from_frames(pd.DataFrame({"user": ["u"], "item": ["c"], "timestamp": [9]}), known_items=["a", "b", "c"]))
    before = _state(store)
    with pytest.raises(UnknownIdError, match=r"unknown user id 'nobody'.*also unknown: 'nor-me'.*nothing was removed"):
        store.forget_users(["u", "nobody", "nor-me"])
    assert _state(store)[:3] == before[:3] and store.has_user("u")
    rep = store.forget_users(["u", "w"])
    assert rep.changed and rep.fingerprint == store.fingerprint() != before[0]
    assert store.lineage() == [rep.fingerprint]  # the old fingerprints were computed over their data
    assert rep.delta["users"] == -2 and rep.delta["interactions"] == -3 and rep.delta["tags"] == -1
    assert not store.has_user("u") and not store.has_user("w") and store.user_history("u").empty
    ds = store.dataset()
    for name in ("interactions", "tags", "users", "user_attributes"):
        assert not set(ds.tables()[name]["user"]) & {"u", "w"}, name
    assert ds.interactions[["user", "item"]].values.tolist() == [["v", "a"], ["v", "c"]]
    assert ds.items["item"].tolist() == ["a", "b", "c"]  # items stay
    # the keyword u's tag gave item b goes with the tag (these items have no keywords of their own)
    assert with_users.item_keywords.values.tolist() == [["b", "k"]] and ds.item_keywords.empty
    v_attrs = with_users.user_attributes[with_users.user_attributes["user"] == "v"].reset_index(drop=True)
    pd.testing.assert_frame_equal(ds.user_attributes, v_attrs)
    assert store.counts() == ds.counts() and store.fingerprint() == ds.fingerprint()
    assert store.counts()["attributes"] == len(ds.user_attributes)
    with pytest.raises(UnknownIdError, match=r"unknown user id 'u'"):
        store.forget_users(["u"])


@pytest.mark.neo4j
def test_both_backends_agree_after_appends_and_forgetting(tmp_path: Path, with_users: Dataset, batch: Dataset) -> None:
    stores = {"embedded": _empty("embedded", tmp_path), "neo4j": _empty("neo4j", tmp_path)}
    try:
        for st in stores.values():
            st.ingest(with_users)
            st.append(batch)
            st.append(batch_from_frames(pd.DataFrame({"user": ["v", "x"], "item": ["b", "new"], "timestamp": [5, 5]}),
                                        known_items=["a", "b", "c", "d"], allow_unknown_items=True),
                      allow_unknown_items=True)
        a, b = stores["embedded"], stores["neo4j"]
        _assert_same_tables(b.dataset(), a.dataset())
        with open_store(URI) as fresh:
            _assert_same_tables(fresh.dataset(), a.dataset())
        assert a.lineage() == b.lineage() and len(a.lineage()) == 3
        for u in ("u", "v", "w", "x", "nobody"):
            pd.testing.assert_frame_equal(a.user_history(u), b.user_history(u))
        assert a.item_ids() == b.item_ids()
        ra, rb = a.forget_users(["w", "x"]), b.forget_users(["w", "x"])
        assert (ra.fingerprint, ra.counts, ra.delta) == (rb.fingerprint, rb.counts, rb.delta)
        _assert_same_tables(b.dataset(), a.dataset())
        with open_store(URI) as fresh:
            _assert_same_tables(fresh.dataset(), a.dataset())
        assert a.lineage() == b.lineage() == [ra.fingerprint]
    finally:
        stores["neo4j"].wipe()
        stores["neo4j"].close()
