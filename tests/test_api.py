"""The promises of docs/api.md, one test each: names and signatures, frame shapes, errors, round trips.

Neo4j tests run on the real server (marker ``neo4j``); tests that train a model or use
the session's trained model are ``slow``. The code blocks of docs/api.md run top to bottom as one script.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import re
from pathlib import Path

import matplotlib
import networkx as nx
import numpy as np
import pandas as pd
import pytest
from pydantic import Field

import kgrec
from kgrec.config_tools import ConfigModel
from kgrec.errors import (
    ConfigError,
    KgrecError,
    ModelMismatchError,
    StoreError,
    UnknownIdError,
)
from kgrec.loaders import schema as S

matplotlib.use("Agg")

REPO = Path(__file__).resolve().parents[1]
API_DOC = REPO / "docs" / "api.md"
URI = os.environ.get("KGREC_TEST_NEO4J_URI", "bolt://127.0.0.1:7687")


# ---------------------------------------------------------------- docs/api.md itself
def _render(obj: object) -> str:
    """A signature as docs/api.md writes it: names and defaults, no annotations."""
    sig = inspect.signature(obj)  # type: ignore[arg-type]
    params = list(sig.parameters.values())
    if params and params[0].name in ("self", "cls") and not inspect.isclass(obj):
        params = params[1:]
    parts: list[str] = []
    star = False
    for n, p in enumerate(params):
        if p.kind is p.KEYWORD_ONLY and not star:
            parts.append("*")
            star = True
        if p.kind is p.VAR_POSITIONAL:
            parts.append("*" + p.name)
            star = True
        elif p.kind is p.VAR_KEYWORD:
            parts.append("**" + p.name)
        else:
            parts.append(p.name + ("" if p.default is p.empty else "=" + repr(p.default)))
        if p.kind is p.POSITIONAL_ONLY and (n + 1 == len(params) or params[n + 1].kind is not p.POSITIONAL_ONLY):
            parts.append("/")
    return ", ".join(parts)


def _resolve(dotted: str) -> object:
    import importlib

    parts = dotted.split(".")
    obj: object = importlib.import_module(parts[0])
    for n, attr in enumerate(parts[1:], 1):
        if not hasattr(obj, attr):  # a submodule not imported by its package
            try:
                importlib.import_module(".".join(parts[: n + 1]))
            except ModuleNotFoundError:
                raise AssertionError(f"docs/api.md names {dotted}, which does not exist") from None
        obj = getattr(obj, attr)
    return obj


def documented_signatures() -> list[tuple[str, str]]:
    """(dotted name, argument list) of every `kgrec.x(...)` code span with arguments in docs/api.md."""
    text = API_DOC.read_text()
    out = []
    for span in re.findall(r"`(kgrec(?:\.\w+)+\(.*?\))`", text, flags=re.DOTALL):
        name, _, args = span.partition("(")
        args = " ".join(args[:-1].split())
        if args:  # `kgrec.config_fields()` is a call in prose, not a signature
            out.append((name, args))
    return out


def test_api_doc_documents_the_issue_surface() -> None:
    names = {n for n, _ in documented_signatures()}
    for required in ("kgrec.loaders.movielens", "kgrec.loaders.from_frames", "kgrec.open_store",
                     "kgrec.graph.neo4j_store.Neo4jStore.cypher", "kgrec.graph.GraphStore.subgraph",
                     "kgrec.Recommender", "kgrec.Recommender.fit", "kgrec.Recommender.recommend",
                     "kgrec.Recommender.explain", "kgrec.Recommender.embeddings", "kgrec.Recommender.save",
                     "kgrec.Recommender.load", "kgrec.make_config"):
        assert required in names, f"docs/api.md does not document {required}"


@pytest.mark.parametrize("name,args", documented_signatures(), ids=[n for n, _ in documented_signatures()])
def test_documented_signature_is_the_codes(name: str, args: str) -> None:
    assert _render(_resolve(name)) == args, f"docs/api.md: {name}({args}) differs from the code"


def test_every_exported_name_exists() -> None:
    for mod in (kgrec, kgrec.loaders, kgrec.graph):
        for name in mod.__all__:
            assert hasattr(mod, name), f"{mod.__name__}.__all__ lists {name}, which does not exist"


def _doc_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", API_DOC.read_text(), flags=re.DOTALL)


@pytest.mark.slow
@pytest.mark.neo4j
def test_api_doc_code_blocks_run(ml_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, neo4j_left_empty) -> None:
    """Every python block of docs/api.md, in order, as one script (Neo4j part on the real server)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KGREC_DATA", str(ml_root))
    monkeypatch.setenv("KGREC_NEO4J_URI", URI)
    blocks = _doc_blocks()
    assert len(blocks) >= 6
    namespace: dict[str, object] = {"__name__": "docs_api"}
    for n, block in enumerate(blocks, 1):
        exec(compile(block, f"docs/api.md python block {n}", "exec"), namespace)  # noqa: S102 - our own docs
    assert isinstance(namespace["recs"], pd.DataFrame) and isinstance(namespace["written"], kgrec.explore.WriteBack)


# ---------------------------------------------------------------- data
def test_from_frames_takes_the_documented_keywords(synth_frames) -> None:
    f = synth_frames
    ds = kgrec.loaders.from_frames(interactions=f["interactions"], items=f["items"], triples=f["triples"], tags=f["tags"])
    for name, schema in S.TABLES.items():
        df = getattr(ds, name)
        assert list(df.columns) == list(schema), name
        assert {c: str(t) for c, t in df.dtypes.items()} == schema, name
    assert not ds.interactions.duplicated(["user", "item"]).any()


def test_movielens_loader(ml_root: Path) -> None:
    ds = kgrec.loaders.movielens(ml_root)
    c = ds.counts()
    assert (c["users"], c["items"], c["interactions"]) == (610, 9742, 100836)
    assert list(ds.interactions.columns) == ["user", "item", "timestamp", "rating", "text", "weight"]
    assert ds.interactions["rating"].between(0.5, 5.0).all()
    assert set(ds.triples["relation"]) == {"released_in"}


def test_sample_users_is_seeded_and_closed(synth_dataset) -> None:
    a = kgrec.loaders.sample_users(synth_dataset, 20, seed=3)
    assert a.fingerprint() == kgrec.loaders.sample_users(synth_dataset, 20, seed=3).fingerprint()
    assert a.fingerprint() != kgrec.loaders.sample_users(synth_dataset, 20, seed=4).fingerprint()
    assert a.interactions["user"].nunique() == 20
    touched = set(a.interactions["item"]) | set(a.tags["item"])
    assert set(a.items["item"]) == touched
    assert set(a.item_categories["item"]) <= touched and set(a.triples["item"]) <= touched
    assert kgrec.loaders.sample_users(synth_dataset, None) is synth_dataset
    with pytest.raises(ConfigError, match=r"users=0: expected 1 to 160 "):
        kgrec.loaders.sample_users(synth_dataset, 0)
    with pytest.raises(ConfigError, match=r"users=161: expected 1 to 160 "):
        kgrec.loaders.sample_users(synth_dataset, 161)


def test_default_data_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KGREC_DATA", str(tmp_path))
    assert kgrec.loaders.default_data_root() == tmp_path
    monkeypatch.delenv("KGREC_DATA")
    root = kgrec.loaders.default_data_root()
    assert (root / "ml-latest-small" / "ratings.csv").is_file() or root == Path.home() / ".cache" / "kgrec" / "data"


def test_movielens_sample(ml_root: Path) -> None:
    ds = kgrec.loaders.movielens_sample(ml_root, users=12, seed=0)
    assert ds.counts()["users"] == 12 and ds.name == "ml-latest-small-12u"
    with pytest.raises(ConfigError, match=r"users=611: expected 1 to 610"):
        kgrec.loaders.movielens_sample(ml_root, users=611)


# ---------------------------------------------------------------- stores
@pytest.fixture()
def embedded(tmp_path: Path, synth_dataset):
    st = kgrec.open_store(tmp_path / "store")
    st.ingest(synth_dataset)
    return st


@pytest.fixture()
def neo(synth_dataset):
    st = kgrec.open_store(URI)
    st.wipe()
    st.ingest(synth_dataset, progress=False)
    yield st
    st.wipe()
    st.close()


def test_open_store_embedded(embedded) -> None:
    from kgrec.graph.embedded import EmbeddedStore

    assert isinstance(embedded, EmbeddedStore) and isinstance(embedded, kgrec.GraphStore)


def _check_subgraph(g: nx.Graph, user: str, hops: int) -> None:
    start = f"user:{user}"
    assert isinstance(g, nx.Graph) and start in g
    dist = nx.single_source_shortest_path_length(g, start)
    assert max(dist.values()) <= hops and len(dist) == g.number_of_nodes()
    for key, attrs in g.nodes(data=True):
        assert key == f"{attrs['type']}:{attrs['id']}" and attrs["name"]
    assert {d["type"] for *_, d in g.edges(data=True)} <= {"INTERACTED", "IN_CATEGORY", "HAS_KEYWORD", "TAGGED", "RELATED_TO"}


def test_subgraph_on_the_embedded_store(embedded) -> None:
    g = embedded.subgraph(user="u0", hops=2)
    _check_subgraph(g, "u0", 2)
    one = embedded.subgraph(user="u0", hops=1)
    assert set(one) < set(g)
    assert embedded.subgraph(user="u0", hops=2, max_nodes=10).number_of_nodes() == 10
    with pytest.raises(UnknownIdError, match=r"unknown user id 'nobody'"):
        embedded.subgraph(user="nobody")


@pytest.mark.neo4j
def test_subgraph_on_neo4j_equals_embedded(neo, embedded) -> None:
    from kgrec.graph.neo4j_store import Neo4jStore

    assert isinstance(neo, Neo4jStore)
    g = neo.subgraph(user="u0", hops=2)
    _check_subgraph(g, "u0", 2)
    e = embedded.subgraph(user="u0", hops=2)
    assert set(g.nodes) == set(e.nodes) and {frozenset(x) for x in g.edges} == {frozenset(x) for x in e.edges}


@pytest.mark.neo4j
def test_cypher_returns_a_dataframe_and_refuses_writes(neo, synth_dataset) -> None:
    df = neo.cypher("MATCH (u:User {id: $user})-[r:INTERACTED]->(i:Item) RETURN i.id AS item, r.timestamp AS ts "
                    "ORDER BY ts, item", user="u0")
    assert isinstance(df, pd.DataFrame) and list(df.columns) == ["item", "ts"]
    want = synth_dataset.interactions.query("user == 'u0'")
    assert sorted(df["item"]) == sorted(want["item"])
    with pytest.raises(StoreError, match="refused: this query writes to the database"):
        neo.cypher("MATCH (u:User {id: $user}) DETACH DELETE u", user="u0")
    assert neo.has_user("u0")


# ---------------------------------------------------------------- model
@pytest.mark.slow
def test_recommend_frame(trained) -> None:
    users = trained.vocabs.user.to_list()[:3]
    df = trained.recommend(users, k=7)
    assert list(df.columns) == ["user", "item", "title", "rank", "score"]
    assert [str(t) for t in df.dtypes] == ["string", "string", "string", "int64", "float64"]
    assert df["title"].tolist() == [trained.title(i) for i in df["item"]]
    assert df["user"].tolist() == [u for u in users for _ in range(7)]
    for _, grp in df.groupby("user", sort=False):
        assert grp["rank"].tolist() == list(range(1, 8))
        assert grp["score"].is_monotonic_decreasing
    seen = set(map(tuple, trained.dataset().interactions[["user", "item"]].to_numpy().tolist()))
    assert not any((u, i) in seen for u, i in zip(df["user"], df["item"]))
    assert trained.recommend(users[0], k=7).equals(trained.recommend([users[0]], k=7))
    with pytest.raises(UnknownIdError, match=r"unknown user id 'nobody'"):
        trained.recommend("nobody")
    with pytest.raises(ValueError, match=r"k=0: expected a positive number"):
        trained.recommend(users, k=0)


@pytest.mark.slow
def test_explain_paths_frame_and_dict(trained) -> None:
    user = "u0"
    item = trained.recommend(user, k=1)["item"][0]
    e = trained.explain(user, item)
    assert isinstance(e, kgrec.Explanation) and 1 <= len(e.paths) <= 3
    assert e.rank == 1 and sum(e.attribution.values()) == pytest.approx(e.score, rel=1e-4)
    p = e.paths[0]
    assert p.nodes[0].type == "user" and p.nodes[-1].id == item and len(p.relations) == len(p.nodes) - 1
    frame = e.to_frame()
    assert list(frame.columns) == ["rank", "score", "kind", "sentence"] and len(frame) == len(e.paths)
    assert frame["rank"].tolist() == list(range(1, len(e.paths) + 1))
    assert set(frame["kind"]) <= set(kgrec.fusion.explanation.EXPLANATION_KINDS)  # graph kinds + co-occurrence
    d = e.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert {"user", "item", "title", "rank", "score", "k", "paths", "attribution", "interacted", "gap_to_k", "message",
            "total_paths"} == set(d)
    assert "structure" in e.text() and p.sentence in e.text()
    with pytest.raises(UnknownIdError, match=r"unknown item id 'nothing'"):
        trained.explain(user, "nothing")


@pytest.mark.slow
def test_embeddings_frames(trained, small_config) -> None:
    dim = small_config.model.dim
    for kind, n in (("user", len(trained.vocabs.user)), ("item", len(trained.vocabs.item))):
        # the fused vector is what scores: the GNN/text part (dim) plus, when the model has one, its co-occurrence block
        cooc = trained.state.arrays.get(f"{kind}_cooc")
        width = {"fused": dim + (0 if cooc is None else cooc.shape[1]), "struct": dim, "text": dim}
        for part in ("fused", "struct", "text"):
            df = trained.embeddings(kind, part)
            assert list(df.columns) == ["id"] + [f"d{j}" for j in range(width[part])]
            assert len(df) == n and df["id"].tolist() == trained.vocabs.of(kind).to_list()
            assert all(str(t) == "float32" for t in df.dtypes.iloc[1:])
    with pytest.raises(ValueError, match=r"kind='users': expected 'user' or 'item'"):
        trained.embeddings("users")
    with pytest.raises(ValueError, match=r"part='gnn': expected 'fused', 'struct' or 'text'"):
        trained.embeddings("item", "gnn")


@pytest.mark.slow
def test_save_load_round_trip(trained, embedded, tmp_path: Path) -> None:
    users = trained.vocabs.user.to_list()
    path = trained.save(tmp_path / "model")
    again = kgrec.Recommender.load(path, store=embedded)
    assert again.recommend(users, k=10).equals(trained.recommend(users, k=10))
    assert again.embeddings("item").equals(trained.embeddings("item"))
    item = trained.recommend("u1", k=1)["item"][0]
    assert again.explain("u1", item).to_dict() == trained.explain("u1", item).to_dict()
    assert again.config == trained.config and again.model_version == trained.model_version


@pytest.mark.slow
def test_load_refuses_a_store_with_other_data(trained, tmp_path: Path, synth_frames) -> None:
    f = synth_frames
    other = kgrec.open_store(tmp_path / "other")
    other.ingest(kgrec.loaders.from_frames(f["interactions"].iloc[:-5], f["items"], f["triples"], f["tags"]))
    path = trained.save(tmp_path / "model")
    with pytest.raises(ModelMismatchError, match="retrain with `kgrec train"):
        kgrec.Recommender.load(path, store=other)
    with pytest.raises(KgrecError, match="not a kgrec model directory"):
        kgrec.Recommender.load(tmp_path)


# ---------------------------------------------------------------- configuration
def test_config_constructor_error_names_the_field() -> None:
    # pydantic's message names the field and the bound crossed; once RecommenderConfig derives from
    # kgrec.config_tools.ConfigModel it is make_config's ConfigError, naming the whole range
    with pytest.raises(ValueError, match=r"train\.epochs(=0: expected an integer from 1 to 10000|\n.*greater than or equal to 1)"):
        kgrec.RecommenderConfig(train={"epochs": 0})


@pytest.mark.parametrize(
    "sections,message",
    [
        ({"train": {"epochs": 0}}, r"^train\.epochs=0: expected an integer from 1 to 10000 \(maximum epochs\)$"),
        ({"model": {"dim": 2}}, r"^model\.dim=2: expected an integer from 4 to 1024 "),
        ({"model": {"dim": "wide"}}, r"^model\.dim=\"wide\": expected an integer from 4 to 1024 "),
        ({"train": {"val_fraction": 0.7}}, r"^train\.val_fraction=0\.7: expected a number ≥ 0 and < 0\.5 "),
        ({"train": {"lr": 0}}, r"^train\.lr=0: expected a number > 0 and ≤ 1 "),
        ({"train": {"threads": 0}}, r"^train\.threads=0: expected an integer from 1 to 1024, or null "),
        ({"model": {"fusion": "sum"}}, r"^model\.fusion=\"sum\": expected one of 'gate', 'mean' "),
        ({"explain": {"interaction_verb": ""}}, r"^explain\.interaction_verb=\"\": expected a string of 1 to 40 characters"),
        ({"train": {"epcohs": 3}}, r"^train\.epcohs: unknown setting; expected one of epochs, batch_size, "),
        ({"trian": {}}, r"^trian: unknown setting; expected one of model, train, text, explain$"),
    ],
)
def test_make_config_errors_name_field_and_range(sections: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        kgrec.make_config(**sections)


def test_make_config_merges_sections_and_reads_json(tmp_path: Path) -> None:
    base = kgrec.make_config(train={"epochs": 7, "lr": 0.02})
    cfg = kgrec.make_config(base, train={"epochs": 5})
    assert (cfg.train.epochs, cfg.train.lr, base.train.epochs) == (5, 0.02, 7)
    f = tmp_path / "config.json"
    f.write_text(cfg.model_dump_json())
    assert kgrec.make_config(f) == cfg
    f.write_text('{"train": {"epochs": -1}}')
    with pytest.raises(ConfigError, match=r"train\.epochs=-1: expected an integer from 1 to 10000"):
        kgrec.make_config(f)
    with pytest.raises(ConfigError, match=r"no such config file"):
        kgrec.make_config(tmp_path / "missing.json")


def test_config_fields_cover_every_setting() -> None:
    fields = kgrec.config_fields()
    assert list(fields.columns) == ["field", "default", "allowed", "description"]

    def leaves(d: dict, prefix: str = "") -> list[str]:
        return [k for key, v in d.items() for k in (leaves(v, f"{prefix}{key}.") if isinstance(v, dict) else [prefix + key])]

    defaults = kgrec.RecommenderConfig().model_dump()
    assert fields["field"].tolist() == leaves(defaults)
    row = fields.set_index("field").loc["train.epochs"]
    assert row["default"] == 100 and row["allowed"] == "an integer from 1 to 10000"
    assert (fields["description"] != "").all()


class _Inner(ConfigModel):
    n: int = Field(1, ge=1, le=5, description="how many")


class _Outer(ConfigModel):
    inner: _Inner = _Inner()
    name: str = "x"


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: _Inner(n=0), r"^n=0: expected an integer from 1 to 5 \(how many\)$"),
        (lambda: _Outer(inner={"n": 9}), r"^inner\.n=9: expected an integer from 1 to 5 \(how many\)$"),
        (lambda: _Outer.model_validate({"inner": {"m": 1}}), r"^inner\.m: unknown setting; expected one of n$"),
        (lambda: _Outer.model_validate_json('{"inner": {"n": "a"}, "name": 3}'),
         r'^inner\.n="a": expected an integer from 1 to 5 \(how many\); name=3: expected a string$'),
        (lambda: _Outer(inner=5), r"^inner=5: expected a mapping of _Inner settings$"),
    ],
)
def test_config_model_base_raises_config_errors(make, message: str) -> None:
    """The drop-in base for config classes: constructor and model_validate raise ConfigError with field and range."""
    with pytest.raises(ConfigError, match=message):
        make()


def test_config_model_base_still_validates_and_round_trips() -> None:
    o = _Outer(inner={"n": 3})
    assert o.inner.n == 3 and _Outer.model_validate_json(o.model_dump_json()) == o
    assert _Outer().inner is not _Outer().inner


def test_configs_are_not_shared() -> None:
    a, b = kgrec.Recommender(), kgrec.Recommender()
    a.config.train.epochs = 3
    assert b.config.train.epochs == kgrec.RecommenderConfig().train.epochs == 100


# ---------------------------------------------------------------- quiet library
@pytest.mark.slow
def test_library_never_prints(synth_dataset, capfd: pytest.CaptureFixture[str]) -> None:
    root_handlers = list(logging.getLogger().handlers)
    cfg = kgrec.make_config(model={"dim": 16}, train={"epochs": 2, "batch_size": 256})
    capfd.readouterr()
    rec = kgrec.Recommender(cfg).fit(synth_dataset)  # progress bars (stderr) on, as by default
    recs = rec.recommend(["u0", "u1"], k=5)
    e = rec.explain("u0", recs["item"][0])
    e.to_frame(), e.to_dict(), e.text(), rec.embeddings("user")
    out, _ = capfd.readouterr()
    assert out == ""
    assert logging.getLogger().handlers == root_handlers


def test_import_prints_nothing_and_configures_no_logging() -> None:
    import subprocess
    import sys

    code = "import logging, kgrec; assert not logging.getLogger().handlers, logging.getLogger().handlers"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""


# ---------------------------------------------------------------- exploring
@pytest.mark.slow
def test_score_split_adds_up(trained) -> None:
    recs = trained.recommend(trained.vocabs.user.to_list()[:5], k=4)
    split = kgrec.explore.score_split(trained, recs)
    assert list(split.columns) == kgrec.explore.SPLIT_COLUMNS and len(split) == len(recs)
    np.testing.assert_allclose(split["structure"] + split["text"] + split["cooccurrence"], split["score"], rtol=1e-4, atol=1e-4)
    assert split["text_share"].between(-1, 1).all()
    assert split["rank"].tolist() == recs["rank"].tolist()
    with pytest.raises(KgrecError, match="missing column 'item'"):
        kgrec.explore.score_split(trained, recs[["user"]])


@pytest.mark.slow
def test_explanation_paths_table(trained) -> None:
    users = trained.vocabs.user.to_list()[:2]
    t = kgrec.explore.explanation_paths(trained, users, k=2, top=2)
    assert list(t.columns) == kgrec.explore.PATH_TABLE_COLUMNS
    assert set(t["user"]) == set(users) and set(t["rank"]) == {1, 2}
    assert t.groupby(["user", "item"])["path"].max().le(2).all()
    first = t.iloc[0]
    assert first["sentence"] == trained.explain(first["user"], first["item"], top=2).paths[0].sentence
    # every row is explained as the recommendation it is (what the export and the web page's lists say)
    for r in t[t["path"] == 1].itertuples(index=False):
        assert r.sentence == trained.explain(r.user, r.item, top=2, k=2, listed=True).paths[0].sentence


@pytest.mark.neo4j
@pytest.mark.slow
def test_write_to_neo4j(neo, trained, embedded) -> None:
    wb = kgrec.explore.write_to_neo4j(trained, neo, k=3)
    assert wb.indexes == {"user": "kgrec_user_embedding", "item": "kgrec_item_embedding"}
    assert wb.vectors == {"user": len(trained.vocabs.user), "item": len(trained.vocabs.item)}
    assert wb.recommendations == 3 * len(trained.vocabs.user)
    got = neo.cypher("MATCH (:User {id: 'u0'})-[r:RECOMMENDED]->(i:Item) RETURN i.id AS item, r.explanation AS why ORDER BY r.rank")
    assert got["item"].tolist() == trained.recommend("u0", k=3)["item"].tolist() and got["why"].str.len().gt(0).all()
    near = neo.cypher("MATCH (i:Item {id: 'i0'}) CALL db.index.vector.queryNodes('kgrec_item_embedding', 3, i.embedding) "
                      "YIELD node RETURN node.id AS id")
    assert len(near) == 3
    with pytest.raises(KgrecError, match="write-back needs a Neo4j store"):
        kgrec.explore.write_to_neo4j(trained, embedded)


def test_documented_queries_parse_docs_queries() -> None:
    qs = kgrec.graph.documented_queries()
    text = (REPO / "docs" / "queries.md").read_text()
    assert len(qs) == text.count("```cypher") >= 12
    assert [q.number for q in qs] == list(range(1, len(qs) + 1))
    assert all(isinstance(q.params, dict) and "RETURN" in q.cypher and "// params" not in q.cypher for q in qs)
    with pytest.raises(KgrecError, match="no such file"):
        kgrec.graph.documented_queries(REPO / "docs" / "missing.md")


@pytest.mark.neo4j
def test_documented_query_runs_with_replaced_params(neo) -> None:
    q = kgrec.graph.documented_queries()[0]
    assert q.params == {"user": "u0"}
    a = q.run(neo)
    b = q.run(neo, user="u1", unrelated="ignored")
    assert list(a.columns) == ["category", "items"] and not a.equals(b)


@pytest.mark.slow
def test_explanation_graph_and_drawings(trained, embedded) -> None:
    item = trained.recommend("u0", k=1)["item"][0]
    e = trained.explain("u0", item, top=5)
    g = kgrec.graph.explanation_graph(e)
    assert g.nodes["user:u0"]["layer"] == 0 and g.nodes[f"item:{item}"]["layer"] == 3
    assert nx.has_path(g, "user:u0", f"item:{item}")
    assert sum(d["score"] for _, v, d in g.in_edges(f"item:{item}", data=True)) == pytest.approx(sum(p.score for p in e.paths))
    assert nx.utils.graphs_equal(kgrec.graph.explanation_graph(e.to_dict()), g)
    ax = kgrec.graph.draw_explanation(e)
    assert "structure" in ax.get_title()
    ax2 = kgrec.graph.draw_graph(embedded.subgraph(user="u0", hops=1))
    assert ax2.get_legend() is not None
    import matplotlib.pyplot as plt

    plt.close("all")
    with pytest.raises(TypeError, match="expected an Explanation"):
        kgrec.graph.explanation_graph(42)



# ---------------------------------------------------------------- API snags (issue 18 point 7) and noise (point 6)
def _vectors_model() -> kgrec.Recommender:
    """Users "1".."3" and items "10".."13" with known vectors: item 10 ~ 11, 12 orthogonal, 13 opposite."""
    iv = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [-1.0, 0.0]], dtype=np.float32)
    uv = np.array([[1.0, 0.2], [0.1, 1.0], [-1.0, 0.0]], dtype=np.float32)
    titles = pd.DataFrame({"item": ["10", "11", "12", "13"], "title": ["Ten", "Eleven", "Twelve", "Thirteen"],
                           "description": ""})
    history = pd.DataFrame({"user": ["1"], "item": ["10"]})
    return kgrec.Recommender.from_vectors(["1", "2", "3"], uv, ["10", "11", "12", "13"], iv, history=history, titles=titles)


def test_recommend_takes_int_ids_as_strings_and_names_bad_types() -> None:
    rec = _vectors_model()
    pd.testing.assert_frame_equal(rec.recommend(1, k=2), rec.recommend("1", k=2))
    pd.testing.assert_frame_equal(rec.recommend([1, np.int64(2)], k=2), rec.recommend(["1", "2"], k=2))
    for bad in (1.0, None, True, {"user": 1}):
        with pytest.raises(TypeError, match=r"users: (ids are strings|expected an id or a list of ids).*got"):
            rec.recommend(bad, k=2)  # type: ignore[arg-type]


def test_recommend_has_titles_and_can_skip_unknown_users() -> None:
    rec = _vectors_model()
    df = rec.recommend(["1", "2"], k=3)
    assert list(df.columns) == ["user", "item", "title", "rank", "score"]
    assert df.query("user == '1'")["item"].tolist() == ["11", "12", "13"]  # 10 is in the history
    assert df.query("user == '1'")["title"].tolist() == ["Eleven", "Twelve", "Thirteen"]
    with pytest.raises(UnknownIdError, match="nobody"):
        rec.recommend(["1", "nobody"], k=3)
    skipped = rec.recommend(["1", "nobody", "2"], k=3, unknown="skip")
    pd.testing.assert_frame_equal(skipped, df)
    assert rec.recommend(["nobody"], k=3, unknown="skip").empty
    with pytest.raises(ConfigError, match="unknown='ignore': expected 'error' or 'skip'"):
        rec.recommend("1", k=3, unknown="ignore")


def test_similar_items_by_cosine_without_the_item_itself() -> None:
    rec = _vectors_model()
    sim = rec.similar_items("10", k=2)
    assert list(sim.columns) == ["similar_to", "item", "title", "rank", "score"]
    assert sim["similar_to"].tolist() == ["10", "10"] and sim["item"].tolist() == ["11", "12"]
    assert sim["title"].tolist() == ["Eleven", "Twelve"] and sim["rank"].tolist() == [1, 2]
    assert sim["score"].iloc[0] == pytest.approx(0.9 / np.hypot(0.9, 0.1)) and sim["score"].iloc[1] == pytest.approx(0.0)
    everything = rec.similar_items(10, k=100)
    assert everything["item"].tolist() == ["11", "12", "13"] and everything["score"].iloc[-1] == pytest.approx(-1.0)
    with pytest.raises(UnknownIdError):
        rec.similar_items("99")


def test_readable_repr() -> None:
    assert repr(kgrec.Recommender()) == f"Recommender(untrained, dim={kgrec.RecommenderConfig().model.dim})"
    assert repr(_vectors_model()) == "Recommender(model_version='vectors', users=3, items=4, dim=2)"


@pytest.mark.slow
def test_load_with_store_has_the_data_and_new_users_get_the_same_columns(trained, tmp_path: Path) -> None:
    from kgrec.graph.embedded import EmbeddedStore

    store = EmbeddedStore(tmp_path / "store")
    store.ingest(trained.dataset(), progress=False)
    back = kgrec.Recommender.load(trained.save(tmp_path / "model"), store=store)
    assert back.dataset().fingerprint() == trained.dataset().fingerprint()
    assert "store=" in repr(back) and f"model_version={trained.model_version!r}" in repr(back)
    with pytest.raises(KgrecError, match="loaded without its data: pass the store"):
        kgrec.Recommender.load(tmp_path / "model").dataset()
    known = back.recommend("u0", k=4)
    hist = trained.dataset().interactions.query("user == 'u0'")["item"].tolist()[:5]
    new = back.recommend_new_user(history=hist, k=4)
    assert list(new.columns) == list(known.columns) == ["user", "item", "title", "rank", "score"]
    assert [str(t) for t in new.dtypes] == [str(t) for t in known.dtypes]
    assert new["user"].isna().all() and new["rank"].tolist() == [1, 2, 3, 4]
    assert new["title"].tolist() == [back.title(i) for i in new["item"]]
    labelled = back.recommend_new_user(history=hist, k=4, user="walk-in")
    assert (labelled["user"] == "walk-in").all() and labelled["item"].tolist() == new["item"].tolist()


@pytest.mark.slow
def test_fit_and_new_users_are_quiet_with_progress_off(tmp_path: Path) -> None:
    """No torch.jit.script FutureWarning from importing torch_geometric, no "Loading weights" bar (issue 18.6)."""
    import subprocess
    import sys

    code = (
        "import warnings; warnings.simplefilter('default')\n"
        "import kgrec\n"
        "ds = kgrec.loaders.synthetic(kgrec.loaders.SyntheticConfig(users=40, items=30, communities=2, seed=2))\n"
        "cfg = kgrec.make_config(model={'dim': 8}, train={'epochs': 1})\n"
        "rec = kgrec.Recommender(cfg).fit(ds, progress=False)\n"
        "rec.recommend_new_user(text='space adventure', k=3)\n"
        "rec.recommend_new_user(text='a quiet drama', k=3)\n"
        "print('done')\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "KGREC_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0 and p.stdout.strip() == "done", p.stderr[-2000:]
    assert "torch.jit.script" not in p.stderr and "FutureWarning" not in p.stderr, p.stderr[-2000:]
    assert "Loading weights" not in p.stderr, p.stderr[-2000:]


@pytest.mark.slow
def test_item_projection_does_not_warn(trained) -> None:
    import warnings

    from kgrec.evaluation.report import item_projection

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        proj = item_projection(trained)
    assert list(proj.columns) == ["item", "x", "y", "category"] and len(proj) == len(trained.vocabs.item)
