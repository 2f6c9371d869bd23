"""docs/queries.md run against the real Neo4j server; write-back of vectors and recommendations."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pandas as pd
import pytest

from kgrec import Recommender
from kgrec.cli import main
from kgrec.graph import open_store
from kgrec.loaders import from_frames

pytestmark = [pytest.mark.neo4j, pytest.mark.slow]
URI = os.environ.get("KGREC_TEST_NEO4J_URI", "bolt://127.0.0.1:7687")
DOC = Path(__file__).resolve().parents[1] / "docs" / "queries.md"


def doc_queries() -> list[tuple[str, dict, str]]:
    text = DOC.read_text()
    out = []
    for title, body in re.findall(r"### (.+?)\n```cypher\n(.*?)```", text, flags=re.S):
        first, _, query = body.partition("\n")
        assert first.startswith("// params:"), title
        out.append((title, json.loads(first.removeprefix("// params:")), query))
    return out


@pytest.fixture(scope="module")
def loaded(synth_frames, small_config):
    f = synth_frames
    cold = pd.DataFrame({"item": ["cold-1"], "title": ["The Untouched Comet"], "categories": ["Space"], "keywords": ["astronomy"]})
    ds = from_frames(f["interactions"], pd.concat([f["items"], cold], ignore_index=True), f["triples"], f["tags"])
    st = open_store(URI)
    st.wipe()
    st.ingest(ds, progress=False)
    rec = Recommender(small_config).fit(st, progress=False)
    for kind in ("user", "item"):
        e = rec.embeddings(kind)
        st.write_embeddings(kind, e["id"].tolist(), e.drop(columns="id").to_numpy(), rec.model_version)
    recs = rec.recommend(rec.vocabs.user.to_list(), 5)
    recs["model_version"] = rec.model_version
    recs["explanation"] = [rec.explain(u, i, top=1).paths[0].sentence for u, i in zip(recs["user"], recs["item"])]
    st.write_recommendations(recs)
    yield st, rec, recs
    st.wipe()
    st.close()


def test_docs_have_a_dozen_queries() -> None:
    assert len(doc_queries()) >= 12


@pytest.mark.parametrize("title,params,query", doc_queries(), ids=[q[0] for q in doc_queries()])
def test_documented_query_runs_and_answers(loaded, title: str, params: dict, query: str) -> None:
    st, _, _ = loaded
    df = st.cypher(query, **params)
    assert not df.empty, title


def test_vector_index_finds_the_models_nearest_items(loaded) -> None:
    st, rec, _ = loaded
    emb = rec.embeddings("item").set_index("id")
    v = emb.loc["i0"].to_numpy()
    cos = (emb.to_numpy() @ v) / ((emb.to_numpy() ** 2).sum(1) ** 0.5 * (v @ v) ** 0.5)
    best = set(emb.index[cos.argsort()[::-1][1:6]])
    got = st.cypher(
        "MATCH (i:Item {id: 'i0'}) CALL db.index.vector.queryNodes('kgrec_item_embedding', 6, i.embedding) "
        "YIELD node WHERE node <> i RETURN node.id AS id"
    )
    assert len(best & set(got["id"])) >= 4  # the index is approximate


def test_recommendations_replace_per_version_and_are_idempotent(loaded) -> None:
    st, rec, recs = loaded
    count = "MATCH (u:User)-[r:RECOMMENDED]->() RETURN r.model_version AS v, count(*) AS n"
    before = st.cypher(count)
    assert before["n"].tolist() == [len(recs)]
    st.write_recommendations(recs)  # rerun: same relationships, not doubled
    assert st.cypher(count).equals(before)
    newer = recs.assign(model_version="v-next")
    st.write_recommendations(newer)
    after = st.cypher(count)
    assert after["v"].tolist() == ["v-next"] and after["n"].tolist() == [len(recs)]
    per_user = st.cypher("MATCH (u:User)-[r:RECOMMENDED]->() RETURN u.id AS u, count(r) AS n, collect(DISTINCT r.model_version) AS vs")
    assert (per_user["n"] == 5).all() and per_user["vs"].map(len).eq(1).all()
    top = st.cypher("MATCH (:User {id: 'u0'})-[r:RECOMMENDED]->(i:Item) RETURN i.id AS item ORDER BY r.rank")
    assert top["item"].tolist() == recs[recs["user"] == "u0"]["item"].tolist()


def test_kgrec_query_cli(loaded, tmp_path: Path, capsys) -> None:
    out = tmp_path / "r.csv"
    rc = main(["query", "MATCH (:User {id: $u})-[:INTERACTED]->(i:Item) RETURN i.id AS item ORDER BY item",
               "--param", "u=u0", "--out", str(out), "--store", URI])
    assert rc == 0
    df = pd.read_csv(out, dtype=str)
    st, _, _ = loaded
    assert set(df["item"]) == set(st.dataset().interactions.query("user == 'u0'")["item"])
    rc = main(["query", "MATCH (n:User) DETACH DELETE n", "--store", URI])
    err = capsys.readouterr().err
    assert rc == 2 and "refused: this query writes to the database" in err
    assert st.has_user("u0")


def test_export_to_neo4j_cli(loaded, tmp_path: Path, capsys) -> None:
    """kgrec export --to-neo4j writes the exported rows as RECOMMENDED relationships."""
    st, rec, _ = loaded
    model_dir = rec.save(tmp_path / "model")
    out = tmp_path / "recs.parquet"
    rc = main(["export", "--store", URI, "--model", str(model_dir), "--k", "3", "--to-neo4j", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    df = pd.read_parquet(out)
    got = st.cypher("MATCH (u:User)-[r:RECOMMENDED]->(i:Item) RETURN u.id AS user, i.id AS item, r.rank AS rank, "
                    "r.model_version AS model_version ORDER BY user, rank")
    assert len(got) == len(df) == len(rec.vocabs.user) * 3
    assert set(got["model_version"]) == {rec.model_version}
    want = df.sort_values(["user", "rank"])[["user", "item", "rank"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(got[["user", "item", "rank"]].astype(want.dtypes.to_dict()), want, check_dtype=False)
