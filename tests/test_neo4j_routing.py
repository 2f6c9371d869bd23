"""Neo4j through a ``neo4j://`` routing URI (issue 15): the whole CLI job, write-back that a rerun or a retried batch
cannot double, and every store method in the kind of transaction a cluster routes right (writes to the leader,
reads to followers). Against the real server started by scripts/neo4j.sh (no mocks of the database).

The access-mode test wraps the real driver in :class:`AccessModes`, which records the access mode each transaction
asks for and can turn every transaction into a READ one; the server itself refuses a write in a READ transaction
("Writing in read access mode not allowed"), so a store method that writes in a read transaction fails here as it
would on a cluster's follower, and a read method that passes with every transaction forced to READ runs on one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import neo4j
import numpy as np
import pandas as pd
import pytest
from neo4j.exceptions import ClientError

from kgrec.cli import main
from kgrec.graph.neo4j_store import Neo4jStore
from kgrec.loaders import SyntheticConfig, batch_from_frames, from_frames, generate_frames

pytestmark = pytest.mark.neo4j

BOLT = os.environ.get("KGREC_TEST_NEO4J_URI", "bolt://127.0.0.1:7687")
ROUTED = BOLT.replace("bolt://", "neo4j://", 1)
REFUSED = "read access mode"  # the server's "Writing in read access mode not allowed"


@pytest.fixture
def routed() -> Iterator[Neo4jStore]:
    """A clean store through the routing URI (wiped before and after)."""
    st = Neo4jStore(ROUTED)
    st.wipe()
    yield st
    st.wipe()
    st.close()


def run(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    rc = main(list(args))
    out = capsys.readouterr()
    assert rc == 0, out.err
    return out.out


def relationships(st: Neo4jStore) -> pd.DataFrame:
    return st.cypher(
        "MATCH (u:User)-[r:RECOMMENDED]->(i:Item) RETURN u.id AS user, i.id AS item, r.rank AS rank, "
        "r.score AS score, r.model_version AS model_version ORDER BY user, rank"
    )


def same_rows(got: pd.DataFrame, file: pd.DataFrame) -> None:
    want = file.sort_values(["user", "rank"])[["user", "item", "rank", "score", "model_version"]]
    want = want.reset_index(drop=True).astype({"user": str, "item": str, "rank": "int64"})
    pd.testing.assert_frame_equal(got.astype(want.dtypes.to_dict()), want, check_exact=False, rtol=1e-9)


@pytest.mark.slow
def test_ingest_train_export_recommend_query_through_the_routing_uri(routed, tmp_path: Path, capsys) -> None:
    f = generate_frames(SyntheticConfig(users=60, items=90, communities=3, interactions_per_user=12, seed=3))
    for name in ("interactions", "items", "triples", "tags"):
        f[name].to_csv(tmp_path / f"{name}.csv", index=False)
    (tmp_path / "config.json").write_text(json.dumps({"model": {"dim": 16}, "train": {"epochs": 3, "lr": 0.01}}))
    files = [f"--{n}" for n in ("interactions", "items-file", "triples", "tags")]
    paths = [str(tmp_path / f"{n}.csv") for n in ("interactions", "items", "triples", "tags")]
    ingest = ["ingest", "--store", ROUTED, *[a for pair in zip(files, paths) for a in pair]]
    assert "ingested: 60 users, 90 items" in run(capsys, *ingest)
    assert run(capsys, *ingest).startswith("unchanged")
    model = str(tmp_path / "model")
    out = run(capsys, "train", "--store", ROUTED, "--model", model, "--config", str(tmp_path / "config.json"))
    assert "wrote 60 user vectors to Neo4j" in out
    export = ["export", "--store", ROUTED, "--model", model, "--k", "5", "--to-neo4j"]
    out = run(capsys, *export, "--out", str(tmp_path / "recs.parquet"))
    assert "wrote 300 RECOMMENDED relationships" in out
    file = pd.read_parquet(tmp_path / "recs.parquet")
    assert len(file) == 300
    same_rows(relationships(routed), file)

    # a second write-back of the same export replaces, never doubles
    run(capsys, *export, "--out", str(tmp_path / "again.parquet"))
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "again.parquet"), file)
    same_rows(relationships(routed), file)

    user = str(file["user"].iloc[0])
    out = run(capsys, "recommend", "--store", ROUTED, "--model", model, "--user", user, "--k", "5", "--format", "json")
    got = [r["item"] for r in json.loads(out)]
    assert got == file[file["user"] == user].sort_values("rank")["item"].tolist()
    out = run(
        capsys,
        "query",
        "--store",
        ROUTED,
        "--format",
        "json",
        "MATCH ()-[r:RECOMMENDED]->() RETURN count(r) AS n, count(DISTINCT [startNode(r), endNode(r)]) AS pairs",
    )
    assert json.loads(out) == [{"n": 300, "pairs": 300}]


def test_write_back_in_small_batches_is_whole_per_user_and_idempotent(routed) -> None:
    f = generate_frames(SyntheticConfig(users=30, items=40, communities=2, interactions_per_user=8, seed=5))
    routed.ingest(from_frames(f["interactions"], f["items"]), progress=False)
    users = sorted(set(f["interactions"]["user"]))
    items = sorted(set(f["items"]["item"]))
    rng = np.random.default_rng(0)
    recs = pd.DataFrame(
        [
            {"user": u, "item": i, "rank": r + 1, "score": float(10 - r), "model_version": "v1"}
            for u in users
            for r, i in enumerate(rng.choice(items, size=4, replace=False))
        ]
    )
    routed.batch_rows = 9  # two users (8 rows) a transaction: many transactions, none splitting a user
    assert routed.write_recommendations(recs) == len(recs)
    same_rows(relationships(routed), recs)
    routed.batch_rows = 3  # fewer rows than one user has: each user alone, still whole
    assert routed.write_recommendations(recs) == len(recs)
    same_rows(relationships(routed), recs)
    # a row given twice (as a retried batch would send it) MERGEs into the one relationship, the later row winning
    doubled = pd.concat([recs.assign(score=0.0), recs], ignore_index=True).sample(frac=1.0, random_state=1)
    doubled = doubled.sort_values("score", kind="stable")
    routed.batch_rows = 5000
    routed.write_recommendations(doubled)
    same_rows(relationships(routed), recs)
    # a newer model replaces each user's relationships whole
    newer = recs[recs["rank"] <= 2].assign(model_version="v2")
    routed.write_recommendations(newer)
    same_rows(relationships(routed), newer)


# ------------------------------------------------------------------ access modes, checked by the server
class _Session:
    def __init__(self, inner: Any, spy: AccessModes, mode: str) -> None:
        self._inner, self._spy, self._mode = inner, spy, mode

    def __enter__(self) -> _Session:
        self._inner.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._inner.__exit__(*exc)

    def execute_read(self, work: Any, *args: Any, **kwargs: Any) -> Any:
        self._spy.modes.append("r")
        return self._inner.execute_read(work, *args, **kwargs)

    def execute_write(self, work: Any, *args: Any, **kwargs: Any) -> Any:
        self._spy.modes.append("w")
        run = self._inner.execute_read if self._spy.force_read else self._inner.execute_write
        return run(work, *args, **kwargs)

    def run(self, query: Any, *args: Any, **kwargs: Any) -> Any:  # auto-commit: the session's own mode
        self._spy.modes.append(self._mode)
        return self._inner.run(query, *args, **kwargs)


class AccessModes:
    """The real driver, recording the access mode of each transaction; ``force_read`` makes every one READ."""

    def __init__(self, driver: neo4j.Driver, force_read: bool = False) -> None:
        self._driver, self.force_read = driver, force_read
        self.modes: list[str] = []

    def session(self, **config: Any) -> _Session:
        mode = "r" if config.get("default_access_mode") == neo4j.READ_ACCESS else "w"
        if self.force_read:
            config["default_access_mode"] = neo4j.READ_ACCESS
        return _Session(self._driver.session(**config), self, mode)

    def execute_query(self, query: Any, *args: Any, routing_: Any = neo4j.RoutingControl.WRITE, **kwargs: Any) -> Any:
        self.modes.append("r" if routing_ == neo4j.RoutingControl.READ else "w")
        routing = neo4j.RoutingControl.READ if self.force_read else routing_
        return self._driver.execute_query(query, *args, routing_=routing, **kwargs)

    def __getattr__(self, name: str) -> Any:  # execute_query_bookmark_manager, close, ...
        return getattr(self._driver, name)


@pytest.fixture
def tiny() -> dict[str, Any]:
    inter = pd.DataFrame({"user": ["u", "u", "v", "v"], "item": ["a", "b", "a", "c"], "timestamp": [1, 2, 3, 4]})
    items = pd.DataFrame(
        {
            "item": ["a", "b", "c"],
            "title": ["A", "B", "C"],
            "categories": ["Drama", "X", "Drama"],
            "keywords": ["k", "", "k"],
        }
    )
    triples = pd.DataFrame({"item": ["a", "c"], "relation": ["directed_by", "directed_by"], "entity": ["Ann", "Ann"]})
    tags = pd.DataFrame({"user": ["u"], "item": ["b"], "tag": ["K"]})
    batch = batch_from_frames(
        pd.DataFrame({"user": ["w"], "item": ["a"], "timestamp": [5]}), known_items=["a", "b", "c"]
    )
    recs = pd.DataFrame(
        {"user": ["u", "v"], "item": ["c", "b"], "rank": [1, 1], "score": [0.5, 0.4], "model_version": ["v1", "v1"]}
    )
    return {"data": from_frames(inter, items, triples, tags, name="tiny"), "batch": batch, "recs": recs}


def writes(tiny: dict[str, Any]) -> dict[str, Any]:
    """Each writing store method, in an order that leaves each one something to write."""
    vec = np.eye(3, 4, dtype=np.float32)
    return {
        "ingest": lambda st: st.ingest(tiny["data"]),
        "append": lambda st: st.append(tiny["batch"]),
        "write_embeddings": lambda st: st.write_embeddings("item", ["a", "b", "c"], vec, "v1"),
        "write_recommendations": lambda st: st.write_recommendations(tiny["recs"]),
        "forget_users": lambda st: st.forget_users(["w"]),
        "wipe": lambda st: st.wipe(),
    }


READS = {
    "exists": lambda st: st.exists(),
    "manifest": lambda st: st.manifest(),
    "dataset": lambda st: st.dataset().fingerprint(),
    "counts": lambda st: st.counts(),
    "fingerprint": lambda st: st.fingerprint(),
    "lineage": lambda st: st.lineage(),
    "item_ids": lambda st: st.item_ids(),
    "has_user": lambda st: (st.has_user("u"), st.has_user("nobody")),
    "has_item": lambda st: st.has_item("a"),
    "user_history": lambda st: st.user_history("u").to_json(),
    "paths": lambda st: st.paths("u", "c").to_json(),
    "subgraph": lambda st: sorted(st.subgraph("u").nodes),
    "cypher": lambda st: st.cypher("MATCH (i:Item) RETURN i.id AS id ORDER BY id")["id"].tolist(),
}


def test_the_server_refuses_a_write_in_a_read_transaction_of_the_routing_driver(routed) -> None:
    with routed._session(read=True) as s, pytest.raises(ClientError, match=REFUSED):
        s.run("CREATE (:User {id: 'intruder'})").consume()
    with routed._session(read=True) as s, pytest.raises(ClientError, match=REFUSED):
        s.execute_read(lambda tx: tx.run("CREATE (:User {id: 'intruder'})").consume())
    assert not routed.has_user("intruder")


@contextmanager
def driven(st: Neo4jStore, spy: AccessModes) -> Iterator[AccessModes]:
    """``st`` using ``spy`` (its cache emptied: every answer comes from the server)."""
    real = st._driver
    st._driver, st._cache = spy, {}
    try:
        yield spy
    finally:
        st._driver, st._cache = real, {}


def test_writes_ask_for_write_transactions_and_reads_for_read_ones(routed, tiny) -> None:
    real = routed._driver
    size = "MATCH (n) OPTIONAL MATCH (n)-[r]->() RETURN count(DISTINCT n) AS n, count(r) AS r"
    for name, write in writes(tiny).items():
        # forced to READ, the server refuses the method's write: it does write, and nothing of it lands
        before = routed.cypher(size)
        with driven(routed, AccessModes(real, force_read=True)), pytest.raises(ClientError, match=REFUSED) as refused:
            write(routed)
        assert refused.value.code == "Neo.ClientError.Statement.AccessMode", name
        pd.testing.assert_frame_equal(routed.cypher(size), before, obj=name)
        # as written, it asks for a write transaction and the server takes it
        with driven(routed, AccessModes(real)) as spy:
            write(routed)
        assert "w" in spy.modes, name
        if name == "ingest":  # then every read method, answered with every transaction READ, as it asked
            want = {read: fn(routed) for read, fn in READS.items()}
            for read, fn in READS.items():
                with driven(routed, AccessModes(real, force_read=True)) as spy:
                    assert fn(routed) == want[read], read
                assert spy.modes and set(spy.modes) == {"r"}, (read, spy.modes)
    assert not routed.exists()
