"""The same checks on both stores: same data in -> same tables, HeteroData, recommendations and paths out."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from kgrec import Recommender
from kgrec.graph import open_store, to_hetero_data

URI = os.environ.get("KGREC_TEST_NEO4J_URI", "bolt://127.0.0.1:7687")
pytestmark = [pytest.mark.neo4j, pytest.mark.slow]


@pytest.fixture(scope="module")
def stores(tmp_path_factory, synth_dataset):
    emb = open_store(tmp_path_factory.mktemp("contract") / "store")
    emb.ingest(synth_dataset)
    neo = open_store(URI)
    neo.wipe()
    neo.ingest(synth_dataset, progress=False)
    yield {"embedded": emb, "neo4j": neo}
    neo.wipe()
    neo.close()


def test_same_tables_and_counts(stores) -> None:
    a, b = stores["embedded"].dataset(), stores["neo4j"].dataset()
    for name in a.tables():
        pd.testing.assert_frame_equal(a.tables()[name], b.tables()[name], obj=name)
    assert stores["embedded"].fingerprint() == stores["neo4j"].fingerprint()
    assert stores["embedded"].counts() == stores["neo4j"].counts()


def test_same_hetero_data(stores) -> None:
    ha, va = to_hetero_data(stores["embedded"].dataset())
    hb, vb = to_hetero_data(stores["neo4j"].dataset())
    assert va.to_dict() == vb.to_dict()
    assert set(ha.edge_types) == set(hb.edge_types)
    for et in ha.edge_types:
        for key, val in ha[et].items():
            assert torch.equal(val, hb[et][key]), (et, key)


def test_same_model_same_recommendations_and_paths(stores, small_config, tmp_path: Path) -> None:
    emb, neo = stores["embedded"], stores["neo4j"]
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


def test_paths_exist_in_neo4j(stores, trained) -> None:
    """Every node and edge of a returned path exists in the database (checked with Cypher)."""
    neo = stores["neo4j"]
    label = {"user": "User", "item": "Item", "category": "Category", "keyword": "Keyword", "entity": "Entity"}
    recs = trained.recommend(["u1", "u2"], 10)
    checked = 0
    for u, i in zip(recs["user"], recs["item"]):
        for p in trained.explain(u, i, neo, top=5).paths:
            for a, rel, b in zip(p.nodes, p.relations, p.nodes[1:]):
                la, lb = label[a.type], label[b.type]
                # relationships may point either way along the path (item <- category edges)
                q = (f"MATCH (a:{la} {{id: $a}}), (b:{lb} {{id: $b}}) "
                     f"RETURN exists((a)-[]-(b)) AS ok, [(a)-[r]-(b) | type(r)] AS types")
                row = neo.cypher(q, a=a.id, b=b.id).iloc[0]
                assert row["ok"], (p.sentence, a, b)
                want = "RELATED_TO" if p.kind == "entity" and rel != "INTERACTED" else rel
                assert want in row["types"], (p.sentence, rel, row["types"])
                checked += 1
    assert checked > 20
