"""Neo4j as the graph store, behind the same interface as the embedded store.

Schema (``docs/graph-schema.md``)::

    (:User {id})-[:INTERACTED {timestamp, rating, text, weight}]->(:Item {id, title, description})
    (:Item)-[:IN_CATEGORY]->(:Category {id})
    (:Item)-[:HAS_KEYWORD]->(:Keyword {id})
    (:User)-[:TAGGED {item}]->(:Keyword)
    (:Item)-[:RELATED_TO {relation}]->(:Entity {id})
    (:User {profile})-[:HAS_ATTRIBUTE]->(:Attribute {id: 'name=value', name, value})   from a users file
    (:KgrecMeta {id: 'dataset'})  name, fingerprint, counts, lineage of the data

The Cypher of the schema is in :mod:`kgrec.graph.neo4j_schema`. An ingest is batched
``UNWIND … MERGE`` in managed write transactions (5,000 rows each, ``batch_rows``) with values passed as
parameters; labels and relationship types are fixed strings, never taken from input. MERGE
makes each batch idempotent, so an ingest killed midway and run again ends with the same graph
as one clean run. An append and forgetting users are one transaction each
(:mod:`kgrec.graph.neo4j_live`): applied whole or not at all, writers taking turns.

Through a routing URI (``neo4j://``, ``neo4j+s://``: a cluster or Aura) every write is a managed write
transaction (the leader; the driver retries it on a leader switch or a transient error) and every read a read
transaction (a follower or read replica), all sessions sharing one bookmark manager so this process reads its
own writes (docs/scale.md).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import numpy as np
import pandas as pd

from kgrec.errors import StoreError, StoreUnavailableError
from kgrec.graph import neo4j_live
from kgrec.graph.batch import prepare_batch
from kgrec.graph.neo4j_schema import (
    BATCH,
    CONSTRAINTS,
    R_HISTORY,
    R_ITEM_IDS,
    batches,
    interactions_frame,
    read_dataset,
    records,
    schema_flags,
    write_steps,
)
from kgrec.graph.paths import PathRow, canonical_rows
from kgrec.graph.store import GraphStore, IngestReport
from kgrec.loaders import schema as S
from kgrec.loaders.schema import Dataset

if TYPE_CHECKING:
    import neo4j

log = logging.getLogger(__name__)

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}

# One query for all path kinds; $anchors = null searches every history item. The anchors are
# collected once, then each kind expands from them (the unique-id indexes find u and i). Each
# row carries all connectors of one anchor as a list of [via, rel_a, rel_b]: far fewer records
# to send than one per path (the popular-item case has thousands of collaborative paths).
Q_PATHS = """
MATCH (u:User {id: $user}), (i:Item {id: $item})
OPTIONAL MATCH (u)-[:INTERACTED]->(j:Item)
WHERE j <> i AND ($anchors IS NULL OR j.id IN $anchors)
WITH u, i, collect(DISTINCT j) AS js
CALL (u, i, js) {
  UNWIND js AS j
  MATCH (j)-[:IN_CATEGORY]->(c:Category)<-[:IN_CATEGORY]-(i)
  RETURN 'category' AS kind, j.id AS anchor, collect([c.id, '', '']) AS vias
  UNION ALL
  UNWIND js AS j
  MATCH (j)-[:HAS_KEYWORD]->(k:Keyword)<-[:HAS_KEYWORD]-(i)
  RETURN 'keyword' AS kind, j.id AS anchor, collect([k.id, '', '']) AS vias
  UNION ALL
  MATCH (u)-[:TAGGED]->(k:Keyword)<-[:HAS_KEYWORD]-(i)
  RETURN 'tag' AS kind, '' AS anchor, collect(DISTINCT [k.id, '', '']) AS vias
  UNION ALL
  UNWIND js AS j
  MATCH (j)-[ra:RELATED_TO]->(e:Entity)<-[rb:RELATED_TO]-(i)
  RETURN 'entity' AS kind, j.id AS anchor, collect([e.id, ra.relation, rb.relation]) AS vias
  UNION ALL
  UNWIND js AS j
  MATCH (j)<-[:INTERACTED]-(v:User)-[:INTERACTED]->(i)
  WHERE v <> u
  RETURN 'user' AS kind, j.id AS anchor, collect([v.id, '', '']) AS vias
}
RETURN kind, anchor, vias
"""

# attribute paths, asked only of a database that holds attributes (the server warns of an unknown relationship type)
Q_ATTRIBUTE_PATHS = """
MATCH (u:User {id: $user})-[:HAS_ATTRIBUTE]->(a:Attribute), (i:Item {id: $item})
WHERE EXISTS { MATCH (a)<-[:HAS_ATTRIBUTE]-(v:User)-[:INTERACTED]->(i) WHERE v <> u }
RETURN 'attribute' AS kind, '' AS anchor, collect(DISTINCT [a.id, '', '']) AS vias
"""


def local_password_file() -> Path | None:
    """The password written by ``scripts/neo4j.sh`` for the local server, if any."""
    candidates = []
    if os.environ.get("KGREC_NEO4J_HOME"):
        candidates.append(Path(os.environ["KGREC_NEO4J_HOME"]) / "password")
    candidates += [Path.cwd() / ".neo4j" / "password", Path(__file__).resolve().parents[2] / ".neo4j" / "password"]
    return next((p for p in candidates if p.is_file()), None)


def resolve_password(uri: str) -> str | None:
    """``NEO4J_PASSWORD``, else (for the local server only) ``.neo4j/password``."""
    pw = os.environ.get("NEO4J_PASSWORD")
    if pw:
        return pw
    if (urlparse(uri).hostname or "") in LOCAL_HOSTS:
        f = local_password_file()
        if f is not None:
            return f.read_text().strip()
    return None


def _dirty_write(tx: Any, query: str, rows: list[Any]) -> None:
    """One ingest batch: mark the meta node dirty (the data may differ from its fingerprint until the ingest records
    the new one, :data:`~kgrec.graph.neo4j_live.Q_DIRTY`), then write the rows, in one transaction."""
    tx.run(neo4j_live.Q_DIRTY).consume()
    tx.run(query, rows=rows).consume()


class Neo4jStore(GraphStore):
    """The graph in a Neo4j database (5.x; Community is enough).

    Args:
        uri: ``bolt://host:port`` (one server), or ``neo4j://host:port`` / ``neo4j+s://…`` (routing: a cluster or
            Aura; writes go to the leader, reads to followers, docs/scale.md).
        user: the Neo4j user (default ``neo4j``).
        database: the database (default ``neo4j``).
        password: normally None: taken from ``NEO4J_PASSWORD``, or for the local
            server from ``.neo4j/password``. Never logged.
        retries: attempts per batch when the connection is lost.
        batch_rows: rows per write transaction of an ingest and of :meth:`write_recommendations`.
    """

    supports_write_back = True

    def __init__(
        self,
        uri: str,
        user: str | None = None,
        database: str | None = None,
        password: str | None = None,
        retries: int = 3,
        batch_rows: int = BATCH,
    ) -> None:
        import neo4j
        from neo4j.exceptions import AuthError, ServiceUnavailable

        self.location = uri
        self.uri = uri
        self.user = user or os.environ.get("NEO4J_USER", "neo4j")
        self.database = database or os.environ.get("NEO4J_DATABASE", "neo4j")
        self.retries = retries
        self.batch_rows = batch_rows
        pw = password if password is not None else resolve_password(uri)
        if pw is None:
            raise StoreUnavailableError(
                f"no password for Neo4j at {uri}: set NEO4J_PASSWORD (kgrec reads .neo4j/password only for the local server)"
            )
        # a managed transaction is retried on a lost leader or a transient error: a cluster elects a new leader within
        # seconds (the driver's default 30 s); one server that went away is not back sooner for waiting (5 s)
        routed = uri.split("://", 1)[0].startswith("neo4j")
        self._driver = neo4j.GraphDatabase.driver(
            uri, auth=(self.user, pw), max_transaction_retry_time=30.0 if routed else 5.0
        )
        try:
            self._driver.verify_connectivity()
        except ServiceUnavailable:
            self._driver.close()
            local = (urlparse(uri).hostname or "") in LOCAL_HOSTS
            hint = (
                "start it with `bash scripts/neo4j.sh start`"
                if local
                else "check that the server runs and the URI is right"
            )
            raise StoreUnavailableError(f"Neo4j at {uri} does not answer; {hint}") from None
        except AuthError:
            self._driver.close()
            raise StoreUnavailableError(
                f"Neo4j at {uri} refused the credentials of user {self.user!r}; set NEO4J_PASSWORD to that user's password"
            ) from None
        self._cache: dict[str, Any] = {}

    # ------------------------------------------------------------------ plumbing
    def close(self) -> None:
        self._driver.close()

    def _session(self, read: bool = False) -> neo4j.Session:
        """A session on the database, WRITE (the leader of a cluster) unless ``read`` (READ: a follower or read
        replica). Every session shares the bookmarks of :meth:`_read`'s ``execute_query``, so a read after a write
        in this process sees that write on whichever member answers (causal consistency)."""
        import neo4j

        return self._driver.session(
            database=self.database,
            default_access_mode=neo4j.READ_ACCESS if read else neo4j.WRITE_ACCESS,
            bookmark_manager=self._driver.execute_query_bookmark_manager,
        )

    def _read(self, query: str, **params: Any) -> pd.DataFrame:
        import neo4j

        return self._driver.execute_query(
            query,
            params,
            database_=self.database,
            routing_=neo4j.RoutingControl.READ,
            result_transformer_=neo4j.Result.to_df,
        )

    def _write_batches(
        self,
        query: str,
        rows: list[Any],
        desc: str,
        progress: Callable[[int], None] | None = None,
        done_steps: Sequence[str] = (),
    ) -> None:
        """Write ``rows`` in batches; each batch is one managed transaction, retried with backoff."""
        from neo4j.exceptions import ServiceUnavailable, SessionExpired, TransientError

        done = 0
        for batch in batches(rows, self.batch_rows):
            for attempt in range(self.retries):
                try:
                    with self._session() as s:
                        s.execute_write(lambda tx, b=batch: _dirty_write(tx, query, b))  # type: ignore[misc]  # a lambda with a default
                    break
                except (ServiceUnavailable, SessionExpired, TransientError) as e:
                    if attempt == self.retries - 1:
                        before = ", ".join(done_steps) if done_steps else "none"
                        raise StoreUnavailableError(
                            f"lost the connection to Neo4j at {self.uri} while writing {desc}: {done} of {len(rows)} "
                            f"{desc} rows were committed; steps completed before: {before}. Run the same ingest again "
                            f"when the server is back: ingest is idempotent. ({type(e).__name__})"
                        ) from None
                    wait = min(8.0, 0.5 * 2**attempt)
                    log.warning("Neo4j write of %s failed (%s); retrying in %.1f s", desc, type(e).__name__, wait)
                    time.sleep(wait)
            done += len(batch)
            if progress:
                progress(len(batch))

    def cypher(self, query: str, **params: Any) -> pd.DataFrame:
        """Run a read-only Cypher query; returns a DataFrame.

        Only what a read transaction of a non-admin reader may do runs (:mod:`kgrec.graph.readonly`): writes,
        administration (``SHOW``, ``TERMINATE``, ``USE``, …), ``LOAD CSV``, ``IN TRANSACTIONS`` and procedures
        off the allow-list raise :class:`~kgrec.errors.StoreError` ("refused: …") before anything runs; then the
        server's ``EXPLAIN`` must call it a read-only query; then it runs in a read transaction.
        """
        import re

        from neo4j.exceptions import ClientError

        from kgrec.graph.readonly import check_read_only

        check_read_only(query)
        plain = re.sub(r"^\s*(?:EXPLAIN|PROFILE)\b", "", query, count=1, flags=re.I)

        def run(tx: Any) -> pd.DataFrame:
            kind = tx.run("EXPLAIN " + plain, params).consume().query_type
            if kind != "r":
                raise StoreError(
                    f"refused: the server plans this query as {kind!r}, not read-only ('r'); kgrec query / "
                    "store.cypher run read queries only (see docs/queries.md)"
                )
            return tx.run(query, params).to_df()

        try:
            with self._session(read=True) as s:
                return s.execute_read(run)
        except ClientError as e:
            code = e.code or ""
            if (
                "Forbidden" in code
                or "AccessMode" in code
                or "write" in (e.message or "").lower()
                and "read" in (e.message or "").lower()
            ):
                raise StoreError(
                    f"refused: this query writes to the database, and kgrec query / store.cypher run read-only transactions ({e.message})"
                ) from None
            raise StoreError(f"Cypher error {code}: {e.message}") from None

    # ------------------------------------------------------------------ writing
    def _constraints(self) -> None:
        for q in CONSTRAINTS:
            self._driver.execute_query(q, database_=self.database)

    def _transaction(self, work: neo4j_live.Work, what: str) -> IngestReport:
        """Run one write transaction (retried by the driver on transient errors); a lost server is one clear error.
        The data afterwards become this object's cached data set."""
        from neo4j.exceptions import ServiceUnavailable, SessionExpired

        self._cache.clear()
        try:
            with self._session() as s:
                rep, after = s.execute_write(work)
        except (ServiceUnavailable, SessionExpired) as e:
            raise StoreUnavailableError(
                f"lost the connection to Neo4j at {self.uri} while {what}: nothing of it was written (one "
                f"transaction); run it again when the server is back ({type(e).__name__})"
            ) from None
        self._cache.update(dataset=after, dataset_fp=rep.fingerprint)
        return rep

    def ingest(self, dataset: Dataset, progress: bool = False) -> IngestReport:
        """MERGE ``dataset`` into the database in batches (idempotent; a killed ingest can simply be rerun), then
        record fingerprint, counts and lineage in one transaction that reads the data back."""
        from tqdm.auto import tqdm

        self._constraints()
        steps = write_steps(dataset)
        total = sum(len(r) for _, _, r in steps)
        with tqdm(total=total, desc="ingesting into Neo4j", unit="row", disable=not progress) as bar:
            finished: list[str] = []
            for desc, q, rows in steps:
                self._write_batches(q, rows, desc, bar.update, finished)
                finished.append(desc)
        self._cache.clear()
        work = neo4j_live.after_ingest(dataset.name, self._flags(), self._where(), self.uri)
        return self._transaction(work, "recording the ingest")

    def append(self, data: Dataset, *, allow_unknown_items: bool = False, progress: bool = False) -> IngestReport:
        """Append in one write transaction (:mod:`kgrec.graph.neo4j_live`): the batch is checked before anything
        is sent, the items it names are looked up under the writers' lock, then it is MERGEd in batched statements
        and the data read back for the fingerprint; a refused batch or any failure rolls all of it back."""
        from tqdm.auto import tqdm

        batch = prepare_batch(data)
        self._constraints()
        flags = self._flags()
        cached = (self._cache["dataset_fp"], self._cache["dataset"]) if "dataset" in self._cache else None
        total = sum(len(r) for _, _, r in write_steps(batch))
        with tqdm(total=total, desc="appending to Neo4j", unit="row", disable=not progress) as bar:
            work = neo4j_live.append(
                batch,
                allow_unknown_items=allow_unknown_items,
                flags=flags,
                where=self._where(),
                uri=self.uri,
                cached=cached,
                progress=bar.update,
            )
            return self._transaction(work, "appending a batch")

    def forget_users(self, users: Sequence[str]) -> IngestReport:
        """Forget users in one write transaction (:func:`kgrec.graph.neo4j_live.forget`)."""
        work = neo4j_live.forget(users, flags=self._flags(), where=self._where(), uri=self.uri)
        return self._transaction(work, "forgetting users")

    # ------------------------------------------------------------------ reading
    def _meta(self) -> dict[str, Any]:
        df = self._read("MATCH (m:KgrecMeta {id: 'dataset'}) RETURN properties(m) AS meta")
        return {} if df.empty else dict(df.iloc[0]["meta"])

    def _where(self) -> str:
        return f"Neo4j at {self.uri} (database {self.database})"

    def exists(self) -> bool:
        """Whether the database holds any kgrec node (a partly finished ingest counts)."""
        return not self._read("MATCH (n) WHERE n:User OR n:Item OR n:KgrecMeta RETURN 1 AS one LIMIT 1").empty

    def manifest(self) -> dict[str, Any]:
        """``name``, ``fingerprint``, ``counts`` and ``lineage`` as the last write recorded them (read back when an
        ingest did not finish)."""
        m = self._meta()
        if m.get("fingerprint") and m.get("counts"):
            return {
                "name": m.get("name") or "neo4j",
                "fingerprint": str(m["fingerprint"]),
                "counts": json.loads(m["counts"]),
                "lineage": [str(f) for f in m.get("lineage") or [m["fingerprint"]]],
            }
        ds = self.dataset()  # StoreError on an empty database
        return {"name": ds.name, "fingerprint": ds.fingerprint(), "counts": ds.counts(), "lineage": [ds.fingerprint()]}

    def dataset(self) -> Dataset:
        """Every table, read once per fingerprint: another process's write is seen on the next call."""
        meta = self._meta()
        fp = meta.get("fingerprint")
        if "dataset" in self._cache and self._cache.get("dataset_fp") == fp:
            return self._cache["dataset"]
        self._cache.clear()
        ds = read_dataset(self._read, self._flags(), meta.get("name") or "neo4j", self._where(), self.uri)
        self._cache.update(dataset=ds, dataset_fp=fp)
        return ds

    def counts(self) -> dict[str, int]:
        m = self._meta()
        if m.get("counts"):
            return json.loads(m["counts"])
        return self.dataset().counts()

    def fingerprint(self) -> str:
        """The fingerprint recorded by the last write (computed from the data read back)."""
        m = self._meta()
        return m.get("fingerprint") or self.dataset().fingerprint()

    def lineage(self) -> list[str]:
        """From the meta node (a database written before lineages: its fingerprint alone)."""
        m = self._meta()
        if m.get("fingerprint"):
            return [str(f) for f in m.get("lineage") or [m["fingerprint"]]]
        return [self.fingerprint()] if self.exists() else []

    def _flags(self) -> dict[str, bool]:
        """Which optional parts the database has held (:func:`~kgrec.graph.neo4j_schema.schema_flags`), asked once
        per fingerprint read."""
        if "flags" not in self._cache:
            self._cache["flags"] = schema_flags(self._read)
        return self._cache["flags"]

    def user_history(self, user: str) -> pd.DataFrame:
        """One query; sorted here (oldest first, ties by item id), as the embedded store sorts."""
        df = self._read(R_HISTORY, user=str(user))
        if df.empty:
            return S.empty_table("interactions")
        return interactions_frame(df).sort_values([S.TIMESTAMP, S.ITEM], kind="stable").reset_index(drop=True)

    def item_ids(self) -> list[str]:
        df = self._read(R_ITEM_IDS)
        return [] if df.empty else sorted(str(i) for i in df["item"].tolist())

    def has_user(self, user: str) -> bool:
        return not self._read("MATCH (u:User {id: $id}) RETURN u.id AS id LIMIT 1", id=str(user)).empty

    def has_item(self, item: str) -> bool:
        return not self._read("MATCH (i:Item {id: $id}) RETURN i.id AS id LIMIT 1", id=str(item)).empty

    def _paths(self, user: str, item: str, anchors: list[str] | None, kinds: Sequence[str]) -> list[PathRow]:
        import neo4j

        records, _, _ = self._driver.execute_query(
            Q_PATHS,
            {"user": user, "item": item, "anchors": anchors},
            database_=self.database,
            routing_=neo4j.RoutingControl.READ,
        )
        if "attribute" in kinds and self._flags()["attributes"]:
            more, _, _ = self._driver.execute_query(
                Q_ATTRIBUTE_PATHS,
                {"user": user, "item": item},
                database_=self.database,
                routing_=neo4j.RoutingControl.READ,
            )
            records = [*records, *more]
        wanted = set(kinds)
        return canonical_rows(
            (r["kind"], r["anchor"], via, rel_a, rel_b)
            for r in records
            if r["kind"] in wanted
            for via, rel_a, rel_b in r["vias"]
        )

    # ------------------------------------------------------------------ write-back
    def write_embeddings(
        self, kind: str, ids: Sequence[str], vectors: np.ndarray, model_version: str, progress: bool = False
    ) -> str:
        """Store fused vectors as ``embedding`` properties and (re)build a cosine vector index.

        Returns the index name (``kgrec_user_embedding`` or ``kgrec_item_embedding``), which
        ``db.index.vector.queryNodes`` takes.
        """
        label = {"user": "User", "item": "Item"}.get(kind)
        if label is None:
            raise ValueError(f"kind={kind!r}: expected 'user' or 'item'")
        dim = int(vectors.shape[1])
        index = f"kgrec_{kind}_embedding"
        existing = self._read("SHOW VECTOR INDEXES YIELD name, options WHERE name = $n RETURN options", n=index)
        if not existing.empty:
            cfg = existing.iloc[0]["options"].get("indexConfig", {})
            if int(cfg.get("vector.dimensions", dim)) != dim:
                self._driver.execute_query(f"DROP INDEX {index} IF EXISTS", database_=self.database)
        rows = [{"id": str(i), "v": [float(x) for x in v]} for i, v in zip(ids, vectors)]
        q = f"UNWIND $rows AS row MATCH (n:{label} {{id: row.id}}) SET n.embedding = row.v, n.model_version = $version"
        for batch in batches(rows, 2000):
            with self._session() as sess:
                sess.execute_write(lambda tx, b=batch: tx.run(q, rows=b, version=model_version).consume())  # type: ignore[misc]  # a lambda with a default
        self._driver.execute_query(
            f"CREATE VECTOR INDEX {index} IF NOT EXISTS FOR (n:{label}) ON n.embedding "
            "OPTIONS {indexConfig: {`vector.dimensions`: $dim, `vector.similarity_function`: 'cosine'}}",
            dim=dim,
            database_=self.database,
        )
        self._driver.execute_query("CALL db.awaitIndexes(300)", database_=self.database)
        return index

    def write_recommendations(self, recs: pd.DataFrame, batch_users: int = 500) -> int:
        """Replace users' ``RECOMMENDED`` relationships with ``recs`` in managed write transactions of whole users,
        at most :attr:`batch_rows` rows (or ``batch_users`` users) each; returns the relationships written.

        ``recs`` has ``user, item, rank, score, model_version`` and optionally ``explanation`` and ``path`` (the
        explanation's path as JSON ``[[type, id], …]``, as export writes it; forgetting a user finds the
        recommendations citing them by it). A row whose user or item the database does not hold writes nothing.
        Each batch deletes the users' previous recommendations and MERGEs the new ones in the same transaction, so
        a reader never sees a user with a mix of two versions or with none, and a batch the driver retries (a
        leader switch, a transient error) or a rerun of the same frame ends with the same relationships, never
        twice as many.
        """
        from neo4j.exceptions import ServiceUnavailable, SessionExpired

        cols = ["user", "item", "rank", "score", "model_version"]
        cols += [c for c in ("explanation", "path") if c in recs]
        df = recs[cols].copy()
        for c in ("explanation", "path"):
            if c not in df:
                df[c] = None
        df["user"] = df["user"].astype(str)
        codes, users = pd.factorize(df["user"])
        df = df.iloc[np.argsort(codes, kind="stable")]  # each user's rows together, users in first-seen order
        sizes = np.bincount(codes, minlength=len(users)).tolist()
        q_del = "UNWIND $users AS id MATCH (:User {id: id})-[r:RECOMMENDED]->() DELETE r"
        q_new = """
        UNWIND $rows AS row
        MATCH (u:User {id: row.user}), (i:Item {id: row.item})
        MERGE (u)-[r:RECOMMENDED]->(i)
        SET r.rank = row.rank, r.score = row.score, r.model_version = row.model_version,
            r.explanation = row.explanation, r.path = row.path
        """

        def work(tx: neo4j.ManagedTransaction, chunk: list[str], rows: list[dict[str, Any]]) -> int:
            tx.run(q_del, users=chunk).consume()
            return int(tx.run(q_new, rows=rows).consume().counters.relationships_created)

        written = first = row = 0
        while first < len(sizes):
            last, n = first + 1, sizes[first]  # whole users: one with more rows than batch_rows goes alone
            while last < len(sizes) and last - first < batch_users and n + sizes[last] <= self.batch_rows:
                n += sizes[last]
                last += 1
            chunk, rows = [str(u) for u in users[first:last]], records(df.iloc[row : row + n])
            try:
                with self._session() as sess:
                    written += sess.execute_write(work, chunk, rows)
            except (ServiceUnavailable, SessionExpired) as e:
                raise StoreUnavailableError(
                    f"lost the connection to Neo4j at {self.uri} while writing recommendations: those of {first} of "
                    f"{len(sizes)} users were committed; run the same write-back again when the server is back: it "
                    f"replaces each user's recommendations, so nothing is doubled ({type(e).__name__})"
                ) from None
            first, row = last, row + n
        return written

    def model_root(self) -> Path:
        host = urlparse(self.uri)
        base = Path(os.environ.get("KGREC_CACHE", Path.home() / ".cache" / "kgrec"))
        return base / "models" / f"neo4j-{host.hostname}-{host.port or 7687}-{self.database}"

    def wipe(self) -> None:
        """Delete every kgrec node and relationship (batched), write-back included. For tests and re-ingest from scratch.

        The relationships go first, 10,000 a transaction (every kgrec relationship starts at a User or an Item), so a
        transaction's memory does not grow with the nodes' degree (10,000 users with 100 RECOMMENDED each, deleted
        with their nodes, overran a 1 GB server's transaction memory pool); then the nodes."""
        with self._session() as s:  # CALL IN TRANSACTIONS needs an auto-commit tx (WRITE: the leader)
            s.run(
                "MATCH (n)-[r]->() WHERE n:User OR n:Item CALL (r) { DELETE r } IN TRANSACTIONS OF 10000 ROWS"
            ).consume()
            s.run(
                "MATCH (n) WHERE n:User OR n:Item OR n:Category OR n:Keyword OR n:Entity OR n:Attribute OR n:KgrecMeta "
                "CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS"
            ).consume()
        self._cache.clear()

    def __repr__(self) -> str:
        return f"Neo4jStore({self.uri!r}, database={self.database!r})"
