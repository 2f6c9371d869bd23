"""A live store, backend by backend: two writers appending at once (real processes), forgetting a user leaves no
trace (every file of the embedded store; every node and relationship in Neo4j), and ``kgrec ingest --append``.

The cases both stores answer the same way (append, idempotence, refused batches, lineage, user_history,
forget_users) are contract cases in test_store_contract.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from kgrec.cli import main
from kgrec.errors import DataValidationError
from kgrec.graph import GraphStore, open_store
from kgrec.loaders import from_frames, load_files
from kgrec.loaders.schema import Dataset
from kgrec.loaders.tables import merge

URI = os.environ.get("KGREC_TEST_NEO4J_URI", "bolt://127.0.0.1:7687")
BACKENDS = ["embedded", pytest.param("neo4j", marks=pytest.mark.neo4j)]
SECRET_USER = "forget-me-7Qz"
SECRET_TEXT = "my private note 9Xk"
SECRET_TAG = "private tag 4Wq"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture(params=BACKENDS)
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The location of an empty store of each backend (Neo4j: wiped before and after)."""
    loc = str(tmp_path / "store") if request.param == "embedded" else URI
    with open_store(loc) as st:
        st.wipe()
    yield loc
    with open_store(loc) as st:
        st.wipe()


@pytest.fixture(scope="module")
def halves(tmp_path_factory: pytest.TempPathFactory, synth_frames: dict[str, pd.DataFrame]) -> Path:
    """The synthetic data as files: the items and the first 40 users' interactions (the base), then the rest of the
    interactions split into two batches of disjoint users, interactions only (no items file)."""
    d = tmp_path_factory.mktemp("halves")
    inter = synth_frames["interactions"]
    users = sorted(inter["user"].unique())
    base, a, b = users[:40], users[40:100], users[100:]
    synth_frames["items"].to_csv(d / "items.csv", index=False)
    for name, sel in (("base", base), ("a", a), ("b", b)):
        inter[inter["user"].isin(sel)].to_csv(d / f"inter_{name}.csv", index=False)
    return d


# ---------------------------------------------------------------- two writers at once
STARTER = (
    "import os,sys,time\nimport kgrec.cli.app\nfrom kgrec.cli import main\nopen(sys.argv[2],'w').close()\n"
    "while not os.path.exists(sys.argv[1]): time.sleep(0.002)\nsys.exit(main(sys.argv[3:]))"
)


def test_two_processes_appending_at_once_lose_nothing(location: str, halves: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Two real processes append different batches to one store at the same moment: both rows sets are there, and
    the fingerprint and lineage describe the data the store holds (base, one batch, both)."""
    rc, _, err = run(capsys, "ingest", "--store", location, "--interactions", str(halves / "inter_base.csv"),
                     "--items-file", str(halves / "items.csv"))
    assert rc == 0, err
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", STARTER, str(go), str(tmp_path / f"ready-{h}"), "ingest",
                               "--append", "--store", location, "--interactions", str(halves / f"inter_{h}.csv")],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for h in "ab"]
    deadline = time.time() + 120
    while time.time() < deadline and not all((tmp_path / f"ready-{h}").exists() for h in "ab"):
        time.sleep(0.01)
    go.touch()  # both have imported kgrec: they append at the same moment
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    assert all(out.startswith("appended: +") for out, _ in results), results
    ds = {h: load_files(halves / f"inter_{h}.csv", halves / "items.csv", name="x") for h in ("base", "a", "b")}
    with open_store(location) as st:
        got = st.dataset()
        want = merge(merge(ds["base"], ds["a"]), ds["b"])
        assert len(got.interactions) == len(want.interactions) == sum(len(d.interactions) for d in ds.values())
        assert got.fingerprint() == want.fingerprint() == st.fingerprint()
        lineage = st.lineage()
        middle = {merge(ds["base"], ds["a"]).fingerprint(), merge(ds["base"], ds["b"]).fingerprint()}
        assert len(lineage) == 3 and lineage[0] == ds["base"].fingerprint() and lineage[1] in middle
        assert lineage[2] == st.fingerprint()
        assert st.counts() == want.counts()
    if not location.startswith("bolt"):
        assert len(list(Path(location).glob("data-*"))) == 1
        assert [p.name for p in Path(location).iterdir() if p.name.startswith(".data-")] == []


# ---------------------------------------------------------------- forgetting leaves no trace
@pytest.fixture
def secret(synth_dataset: Dataset) -> tuple[Dataset, Dataset]:
    """The synthetic data with a user whose id, interaction text and tag are distinctive, and a later batch
    of theirs (so the store has had several snapshots of their data)."""
    items = synth_dataset.items["item"].tolist()
    inter = pd.DataFrame({"user": [SECRET_USER] * 3 + ["u0"], "item": items[:3] + [items[5]],
                          "timestamp": [10, 11, 12, 13], "text": [SECRET_TEXT, "", "", ""]})
    tags = pd.DataFrame({"user": [SECRET_USER], "item": [items[7]], "tag": [SECRET_TAG]})
    users = pd.DataFrame({"user": [SECRET_USER, "u1"], "city": ["Zzyzx-unique-town", "Paris"]})
    first = merge(synth_dataset, from_frames(inter, synth_dataset.items, tags=tags, users=users, name="x"))
    later = from_frames(pd.DataFrame({"user": [SECRET_USER], "item": [items[9]], "timestamp": [20]}),
                        synth_dataset.items.iloc[9:10], name="x")
    return first, later


def _no_trace_in_folder(folder: Path, needles: list[str]) -> list[str]:
    """Where any needle occurs: in a cell of a Parquet file (every column read as text) or in the raw bytes of a file."""
    found = []
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        raw = f.read_bytes()
        found += [f"{f}: bytes hold {n!r}" for n in needles if n.encode() in raw]
        if f.suffix == ".parquet":
            df = pq.read_table(f).to_pandas()
            for col in df.columns:
                text = df[col].astype(str)
                found += [f"{f}:{col} holds {n!r}" for n in needles if text.str.contains(n, regex=False).any()]
    return found


def test_forget_leaves_no_trace_in_any_embedded_file(tmp_path: Path, secret: tuple[Dataset, Dataset]) -> None:
    first, later = secret
    folder = tmp_path / "store"
    st = open_store(folder)
    st.ingest(first)
    st.append(later)
    stale = folder / "data-0000000000000000"  # an old snapshot whose removal was cut short, holding the user
    stale.mkdir()
    live = folder / (folder / "CURRENT").read_text().strip()
    (stale / "interactions.parquet").write_bytes((live / "interactions.parquet").read_bytes())
    needles = [SECRET_USER, SECRET_TEXT, SECRET_TAG.lower(), "Zzyzx-unique-town"]
    assert _no_trace_in_folder(folder, needles)  # the check finds them before
    rep = st.forget_users([SECRET_USER])
    assert _no_trace_in_folder(folder, needles) == []
    assert [p.name for p in folder.iterdir() if "data-" in p.name] == [f"data-{rep.fingerprint[:16]}"]
    assert st.lineage() == [rep.fingerprint]
    assert open_store(folder).has_user("u0") and not open_store(folder).has_user(SECRET_USER)


@pytest.mark.neo4j
def test_forget_leaves_no_node_or_relationship_referring_to_them_in_neo4j(secret: tuple[Dataset, Dataset],
                                                                          neo4j_left_empty: None) -> None:
    first, later = secret
    with open_store(URI) as st:
        st.wipe()
        st.ingest(first)
        st.append(later)
        users = ["u0", "u1", SECRET_USER]
        st.write_embeddings("user", users, np.eye(3, 4, dtype=np.float32), "m1")
        item = first.items["item"].iloc[0]
        cites = json.dumps([["user", "u0"], ["item", item], ["user", SECRET_USER], ["item", "i9"]], ensure_ascii=False)
        recs = pd.DataFrame({"user": ["u0", "u1", SECRET_USER], "item": [item] * 3, "rank": [1, 1, 1],
                             "score": [0.5] * 3, "model_version": ["m1"] * 3,
                             "explanation": [f"Recommended because user {SECRET_USER}, who also …", "plain", "x"],
                             "path": [cites, json.dumps([["user", "u1"], ["item", item]]), None]})
        assert st.write_recommendations(recs) == 3
        st.forget_users([SECRET_USER])
        needles = [SECRET_USER, SECRET_TEXT, SECRET_TAG.lower(), "Zzyzx-unique-town"]
        nodes = st.cypher("MATCH (n) RETURN labels(n) AS labels, properties(n) AS props")
        rels = st.cypher("MATCH (a)-[r]->(b) RETURN type(r) AS type, properties(r) AS props, a.id AS a, b.id AS b")
        assert len(nodes) > 300 and len(rels) > 2000
        for frame in (nodes, rels):
            for row in frame.itertuples(index=False):
                text = json.dumps([list(x) if isinstance(x, (list, tuple, np.ndarray)) else x for x in row],
                                  default=str, ensure_ascii=False)
                assert not [n for n in needles if n in text], text[:300]
        # the recommendation whose explanation cited them went; the others stayed
        left = st.cypher("MATCH (u:User)-[r:RECOMMENDED]->() RETURN u.id AS user ORDER BY user")
        assert left["user"].tolist() == ["u1"]
        hits = st.cypher("CALL db.index.vector.queryNodes('kgrec_user_embedding', 10, $v) YIELD node "
                         "RETURN node.id AS id", v=[0.0, 0.0, 1.0, 0.0])
        assert SECRET_USER not in set(hits["id"]) and set(hits["id"]) <= {"u0", "u1"}
        assert st.lineage() == [st.fingerprint()]


@pytest.mark.neo4j
def test_a_refused_neo4j_batch_writes_nothing(neo4j_left_empty: None, synth_dataset: Dataset) -> None:
    """The unknown item is in the last row: nothing of the rows before it (nor a node) is in the database."""
    with open_store(URI) as st:
        st.wipe()
        st.ingest(synth_dataset)
        graph = "MATCH (n) OPTIONAL MATCH (n)-[r]->() RETURN count(DISTINCT n) AS nodes, count(r) AS rels"
        before = st.cypher(graph)
        items = synth_dataset.items["item"].tolist()
        bad = from_frames(pd.DataFrame({"user": ["new-user"] * 3, "item": [items[0], items[1], "missing"],
                                        "timestamp": [1, 2, 3]}),
                          pd.DataFrame({"item": ["brand-new-item"], "title": ["T"]}), name="x",
                          allow_unknown_items=True)
        bad = type(bad)(**{**bad.tables(), "items": bad.items[bad.items["item"] != "missing"]}, name="x")
        with pytest.raises(DataValidationError, match=r"row 3, column 'item': item 'missing'"):
            st.append(bad)
        assert st.cypher(graph).equals(before)
        assert not st.has_user("new-user") and not st.has_item("brand-new-item")


@pytest.mark.neo4j
def test_neo4j_append_records_what_a_fresh_read_finds(neo4j_left_empty: None, synth_dataset: Dataset) -> None:
    """An append by a writer that holds the data (no read-back) records the fingerprint a fresh read-back computes;
    after an ingest batch wrote without the lock (marked dirty) the append reads back and counts that row too."""
    import neo4j

    from kgrec.graph.neo4j_store import resolve_password

    items = synth_dataset.items["item"].tolist()
    with open_store(URI) as st:
        st.wipe()
        st.ingest(synth_dataset)
        st.dataset()
        b1 = from_frames(pd.DataFrame({"user": ["n1", "u0"], "item": items[:2], "timestamp": [10**9, 10**9]}),
                         synth_dataset.items.iloc[:2], name="x")
        rep = st.append(b1)
        with open_store(URI) as fresh:
            assert fresh.dataset().fingerprint() == rep.fingerprint == merge(synth_dataset, b1).fingerprint()
        # an ingest batch of another process, not finished: a row the writer's data do not hold, marked dirty
        with neo4j.GraphDatabase.driver(URI, auth=("neo4j", resolve_password(URI))) as drv:
            drv.execute_query("MERGE (m:KgrecMeta {id: 'dataset'}) SET m.dirty = true")
            drv.execute_query("MATCH (i:Item {id: $i}) MERGE (u:User {id: 'sneaky'}) "
                              "MERGE (u)-[:INTERACTED {timestamp: 5, text: '', weight: 1.0}]->(i)", i=items[3])
        b2 = from_frames(pd.DataFrame({"user": ["n2"], "item": [items[4]], "timestamp": [10**9]}),
                         synth_dataset.items.iloc[4:5], name="x")
        rep2 = st.append(b2)
        with open_store(URI) as fresh:
            back = fresh.dataset()
            assert back.fingerprint() == rep2.fingerprint == st.fingerprint() and "sneaky" in set(back.interactions["user"])
            assert "dirty" not in st.cypher("MATCH (m:KgrecMeta) RETURN keys(m) AS k")["k"].iloc[0]


# ---------------------------------------------------------------- kgrec ingest --append
@pytest.fixture
def files(tmp_path: Path) -> Path:
    d = tmp_path / "files"
    d.mkdir()
    pd.DataFrame({"user": ["u", "u", "v"], "item": ["a", "b", "a"], "timestamp": [1, 2, 3]}).to_csv(d / "inter.csv", index=False)
    pd.DataFrame({"item": ["a", "b", "c"], "title": ["A", "B", "C"]}).to_csv(d / "items.csv", index=False)
    pd.DataFrame({"user": ["w", "u"], "item": ["c", "c"], "timestamp": [4, 5]}).to_csv(d / "new.csv", index=False)
    (d / "unknown.csv").write_text("user,item,timestamp\nw,a,6\nw,zz,7\n")
    pd.DataFrame({"item": ["d"], "title": ["D"]}).to_csv(d / "new_items.csv", index=False)
    pd.DataFrame({"user": ["w"], "item": ["d"], "tag": ["Fresh"]}).to_csv(d / "new_tags.csv", index=False)
    return d


def test_cli_append(location: str, files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "ingest", "--store", location, "--interactions", str(files / "inter.csv"),
               "--items-file", str(files / "items.csv"))[0] == 0
    rc, out, err = run(capsys, "ingest", "--append", "--store", location, "--interactions", str(files / "new.csv"))
    assert rc == 0, err
    assert out == (f"appended: +2 interactions, +0 items, +1 users, +0 tags, +0 facts (3 users, 3 items, "
                   f"5 interactions in all) -> {location}\n")
    rc, out, _ = run(capsys, "ingest", "--append", "--store", location, "--interactions", str(files / "new.csv"))
    assert rc == 0 and out == (f"unchanged: the store already holds every row (3 users, 3 items, 5 interactions "
                               f"in all) -> {location}\n")
    # an unknown item is refused, naming the file, its line, the column and the id; nothing is applied
    with open_store(location) as st:
        fp = st.fingerprint()
    rc, out, err = run(capsys, "ingest", "--append", "--store", location, "--interactions", str(files / "unknown.csv"))
    assert rc == 2 and out == ""
    assert err.startswith(f"kgrec: error: {files / 'unknown.csv'}, line 3, column 'item': item 'zz' is neither in the "
                          f"store nor in the items file") and "--allow-unknown-items" in err and len(err.splitlines()) == 1
    with open_store(location) as st:
        assert st.fingerprint() == fp and st.user_history("w")["item"].tolist() == ["c"]
    rc, out, err = run(capsys, "ingest", "--append", "--store", location, "--interactions", str(files / "unknown.csv"),
                       "--allow-unknown-items")
    assert rc == 0 and out.startswith("appended: +2 interactions, +1 items, +0 users"), (out, err)
    with open_store(location) as st:
        assert st.dataset().items.set_index("item").loc["zz", "title"] == "zz"
        assert len(st.lineage()) == 3
    # items and tags files too, without interactions
    rc, out, err = run(capsys, "ingest", "--append", "--store", location, "--items-file", str(files / "new_items.csv"),
                       "--tags", str(files / "new_tags.csv"))
    assert rc == 0 and out.startswith("appended: +0 interactions, +1 items, +0 users, +1 tags, +0 facts"), (out, err)


def test_cli_append_usage_errors(tmp_path: Path, files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = str(tmp_path / "s")
    rc, _, err = run(capsys, "ingest", "--append", "--store", store, "--synthetic")
    assert rc == 2 and "--append takes --interactions" in err
    rc, _, err = run(capsys, "ingest", "--append", "--store", store)
    assert rc == 2 and "--append takes --interactions" in err
    rc, _, err = run(capsys, "ingest", "--store", store, "--interactions", str(files / "new.csv"))
    assert rc == 2 and "--interactions and --items-file go together" in err and "--append" in err
    bad = files / "bad.csv"
    bad.write_text("user,item,timestamp\nw,a,6\n,b,7\n")
    assert run(capsys, "ingest", "--store", store, "--interactions", str(files / "inter.csv"),
               "--items-file", str(files / "items.csv"))[0] == 0
    rc, _, err = run(capsys, "ingest", "--append", "--store", store, "--interactions", str(bad))
    assert rc == 2 and f"{bad}, line 3, column 'user': empty user id" in err


def test_an_embedded_reader_follows_current(tmp_path: Path) -> None:
    """A second store object on the same folder: it sees a wipe and an append by the other on its next call, a
    snapshot written again under an earlier name (data back to an earlier state), and keeps answering from memory
    once the folder is gone."""
    items = pd.DataFrame({"item": ["a", "b"], "title": ["A", "B"]})
    one = from_frames(pd.DataFrame({"user": ["u"], "item": ["a"], "timestamp": [1]}), items, name="x")
    other = from_frames(pd.DataFrame({"user": ["u"], "item": ["a"], "timestamp": [1]}), items.assign(title=["A2", "B"]),
                        name="x")
    folder = tmp_path / "s"
    writer, reader = open_store(folder), open_store(folder)
    writer.ingest(one)
    assert reader.user_history("u")["item"].tolist() == ["a"] and reader.lineage() == [one.fingerprint()]
    writer.ingest(other)  # the titles change: B
    writer.ingest(one)  # and back: data-<A> is written again, with the lineage A, B, A
    assert reader.lineage() == [one.fingerprint(), other.fingerprint(), one.fingerprint()]
    assert reader.dataset().items["title"].tolist() == ["A", "B"]
    writer.wipe()
    assert not reader.has_user("u") and reader.user_history("u").empty and reader.lineage() == []
    writer.ingest(one)
    assert reader.has_user("u") and reader.fingerprint() == one.fingerprint()
    import shutil

    shutil.rmtree(folder)
    assert reader.user_history("u")["item"].tolist() == ["a"] and reader.has_user("u")
    assert reader.fingerprint() == one.fingerprint() and reader.lineage() == [one.fingerprint()]


def test_user_history_is_fast_on_the_embedded_store(tmp_path: Path, synth_dataset: Dataset) -> None:
    """Built once per snapshot; each call is a slice of the user's rows (well under a millisecond)."""
    st = open_store(tmp_path / "s")
    st.ingest(synth_dataset)
    users = synth_dataset.interactions["user"].unique().tolist()
    st.user_history(users[0])  # builds the index
    start = time.perf_counter()
    for u in users:
        st.user_history(u)
    per_call = (time.perf_counter() - start) / len(users)
    assert per_call < 0.002, per_call


def test_store_methods_are_declared_on_the_interface() -> None:
    for name in ("append", "lineage", "user_history", "item_ids", "forget_users"):
        assert name in GraphStore.__abstractmethods__, name
