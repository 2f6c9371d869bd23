"""Neo4j specifics against the real server started by scripts/neo4j.sh (no mocks).

The behaviour both stores share (idempotent ingest, empty store, unknown ids, round trip, paths) is in
test_store_contract.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from kgrec.errors import StoreError, StoreUnavailableError
from kgrec.graph import open_store
from kgrec.graph.neo4j_store import Neo4jStore
from kgrec.loaders import from_frames

pytestmark = pytest.mark.neo4j

REPO = Path(__file__).resolve().parents[1]
URI = os.environ.get("KGREC_TEST_NEO4J_URI", "bolt://127.0.0.1:7687")


@pytest.fixture
def neo(request):
    """A clean Neo4j store (wiped before and after each test)."""
    st = open_store(URI)
    st.wipe()
    yield st
    st.wipe()
    st.close()


def test_ingest_twice_creates_no_duplicate_nodes_or_relationships(neo, synth_dataset) -> None:
    """MERGE, not CREATE: the graph in the database is the same after a second ingest (round trip, idempotent
    counts and fingerprint are contract cases, in test_store_contract.py)."""
    neo.ingest(synth_dataset)
    nodes = neo.cypher("MATCH (n) RETURN labels(n)[0] AS label, count(*) AS n ORDER BY label")
    rels = neo.cypher("MATCH ()-[r]->() RETURN type(r) AS type, count(*) AS n ORDER BY type")
    assert not neo.ingest(synth_dataset).changed
    assert neo.cypher("MATCH (n) RETURN labels(n)[0] AS label, count(*) AS n ORDER BY label").equals(nodes)
    assert neo.cypher("MATCH ()-[r]->() RETURN type(r) AS type, count(*) AS n ORDER BY type").equals(rels)
    assert dict(zip(rels["type"], rels["n"]))["INTERACTED"] == len(synth_dataset.interactions)
    assert dict(zip(nodes["label"], nodes["n"]))["KgrecMeta"] == 1


def test_hostile_strings_are_stored_verbatim(neo) -> None:
    hostile = ["'}) MATCH (n) DETACH DELETE n //", "back`tick", "{braces}", 'quo"te', "ünïcødé 推荐", "x" * 1000]
    inter = pd.DataFrame({"user": hostile, "item": hostile[::-1], "timestamp": range(len(hostile))})
    items = pd.DataFrame({"item": hostile, "title": hostile, "keywords": ["k" + h for h in hostile]})
    ds = from_frames(inter, items)
    neo.ingest(ds, progress=False)
    assert neo.dataset().fingerprint() == ds.fingerprint()
    assert set(neo.cypher("MATCH (u:User) RETURN u.id AS id")["id"]) == set(hostile)


def test_read_only_queries_refuse_writes(neo, synth_dataset) -> None:
    neo.ingest(synth_dataset, progress=False)
    df = neo.cypher("MATCH (u:User {id: $u})-[:INTERACTED]->(i:Item) RETURN i.id AS item ORDER BY item", u="u0")
    assert set(df["item"]) == set(synth_dataset.interactions.query("user == 'u0'")["item"])
    with pytest.raises(StoreError, match=r"refused: this query writes to the database"):
        neo.cypher("CREATE (:User {id: 'intruder'})")
    assert not neo.has_user("intruder")


def test_wrong_password_and_missing_server_are_clear() -> None:
    with pytest.raises(StoreUnavailableError, match=r"refused the credentials of user 'neo4j'; set NEO4J_PASSWORD"):
        Neo4jStore(URI, password="definitely-wrong")
    with pytest.raises(StoreUnavailableError, match=r"Neo4j at bolt://127.0.0.1:7699 does not answer; start it with"):
        Neo4jStore("bolt://127.0.0.1:7699", password="x")


def test_killed_ingest_rerun_gives_the_same_graph(neo, tmp_path: Path) -> None:
    """SIGKILL an ingest midway; running it again ends with exactly one clean run's graph."""
    from kgrec.loaders import SyntheticConfig, generate_frames

    f = generate_frames(SyntheticConfig(users=2000, items=1500, interactions_per_user=25, seed=3))
    for name in ("interactions", "items", "triples", "tags"):
        f[name].to_csv(tmp_path / f"{name}.csv", index=False)
    args = [sys.executable, "-m", "kgrec", "ingest", "--store", URI,
            "--interactions", str(tmp_path / "interactions.csv"), "--items", str(tmp_path / "items.csv"),
            "--triples", str(tmp_path / "triples.csv"), "--tags", str(tmp_path / "tags.csv")]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    # wait until part of the interactions are in, then kill
    deadline = time.time() + 120
    while time.time() < deadline:
        n = neo.cypher("MATCH ()-[r:INTERACTED]->() RETURN count(r) AS n")["n"].iloc[0]
        if n > 0:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = neo.cypher("MATCH ()-[r:INTERACTED]->() RETURN count(r) AS n")["n"].iloc[0]
    assert neo.exists()  # a partly finished ingest counts as data
    subprocess.run(args, check=True, capture_output=True)
    from kgrec.loaders import load_files

    clean = load_files(tmp_path / "interactions.csv", tmp_path / "items.csv", tmp_path / "triples.csv", tmp_path / "tags.csv")
    neo._cache.clear()
    assert partial < len(clean.interactions)
    assert neo.dataset().fingerprint() == clean.fingerprint()


def test_server_stopped_mid_ingest_fails_clearly_and_rerun_completes(neo, tmp_path: Path) -> None:
    """Stop the real server during an ingest: retries with backoff, then a message saying what was committed."""
    from kgrec.loaders import SyntheticConfig, generate_frames, load_files

    f = generate_frames(SyntheticConfig(users=6000, items=1500, interactions_per_user=30, seed=4))
    for name in ("interactions", "items"):
        f[name].to_csv(tmp_path / f"{name}.csv", index=False)
    args = [sys.executable, "-m", "kgrec", "ingest", "--store", URI,
            "--interactions", str(tmp_path / "interactions.csv"), "--items", str(tmp_path / "items.csv")]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            if neo.cypher("MATCH ()-[r:INTERACTED]->() RETURN count(r) AS n")["n"].iloc[0] > 0:
                break
            time.sleep(0.05)
        subprocess.run(["bash", str(REPO / "scripts" / "neo4j.sh"), "stop"], check=True, capture_output=True)
        _, err = proc.communicate(timeout=180)
    finally:
        subprocess.run(["bash", str(REPO / "scripts" / "neo4j.sh"), "start"], check=True, capture_output=True)
    assert proc.returncode == 2
    assert "lost the connection to Neo4j" in err and "rows were committed; steps completed before: users, items" in err
    assert "Run the same ingest again" in err
    subprocess.run(args, check=True, capture_output=True)
    again = open_store(URI)
    clean = load_files(tmp_path / "interactions.csv", tmp_path / "items.csv")
    assert again.dataset().fingerprint() == clean.fingerprint()
    again.close()


def test_neo4j_scheme_and_cli_uri_option(neo, synth_dataset, capsys) -> None:
    """neo4j:// (routing) works against the single server, and --neo4j-uri is accepted by the CLI."""
    from kgrec.cli import main

    neo.ingest(synth_dataset, progress=False)
    routed = open_store(URI.replace("bolt://", "neo4j://"))
    assert routed.fingerprint() == synth_dataset.fingerprint()
    routed.close()
    rc = main(["query", "MATCH (u:User) RETURN count(u) AS users", "--neo4j-uri", URI.replace("bolt://", "neo4j://")])
    assert rc == 0 and str(synth_dataset.counts()["users"]) in capsys.readouterr().out
