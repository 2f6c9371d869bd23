"""A live Neo4j store: append, forget and the bookkeeping after an ingest, each one write transaction.

Each such write first takes the write lock of the one ``(:KgrecMeta {id: 'dataset'})`` node (``SET
m.write_lock = true``, removed again before the commit), so writers take turns. Inside that transaction it
checks the batch against what the database holds (the items it names, the users to forget), writes (batched
``UNWIND … MERGE`` / ``DELETE``, 5,000 rows a statement), reads every table back and records the new
fingerprint, counts and lineage on the meta node. Neo4j commits all of it or nothing: a refused batch, an
error, a lost connection or a killed process leaves the database as it was (atomic, no compensation needed),
and an append run again after a failure is simply applied then. The rows of one append are held in that one
transaction's memory: for a bulk load use ``ingest`` (one transaction per 5,000 rows, idempotent when rerun).

An append skips the read-back when the writer holds the data of the fingerprint the meta node records and
nothing else wrote since: the data afterwards are then that data merged with the batch
(:func:`~kgrec.loaders.tables.merge`, whose rules the Cypher follows: the contract tests compare a fresh
read-back with it). Ingest batches, which commit without the lock, mark the meta node ``dirty`` in their own
transactions; a dirty mark means a read-back, and every read-back clears it.

The functions here return the work a session runs with ``execute_write``; they take a transaction and never
open connections, so :class:`~kgrec.graph.neo4j_store.Neo4jStore` keeps the driver.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from kgrec.graph.batch import add_unknown_items, count_delta, referenced_items, unknown_users, without_users
from kgrec.graph.neo4j_schema import Reader, batches, read_dataset, records, write_steps
from kgrec.graph.store import IngestReport
from kgrec.loaders import schema as S
from kgrec.loaders.schema import Dataset
from kgrec.loaders.tables import merge

#: one write transaction's work: takes a ``neo4j.ManagedTransaction``, returns what the write did and the data after
Work = Callable[[Any], tuple[IngestReport, Dataset]]

Q_LOCK = "MERGE (m:KgrecMeta {id: 'dataset'}) SET m.write_lock = true RETURN properties(m) AS meta"
Q_META = """
MATCH (m:KgrecMeta {id: 'dataset'})
SET m.name = $name, m.fingerprint = $fingerprint, m.counts = $counts, m.lineage = $lineage
REMOVE m.write_lock, m.dirty
"""
#: run by each ingest batch in its transaction: the data may differ from the recorded fingerprint until a read-back
Q_DIRTY = "MERGE (m:KgrecMeta {id: 'dataset'}) SET m.dirty = true"
Q_HELD_ITEMS = "UNWIND $ids AS id MATCH (i:Item {id: id}) RETURN i.id AS item"
Q_HELD_USERS = "UNWIND $ids AS id MATCH (u:User {id: id}) RETURN u.id AS user"
Q_DROP_KEYWORD_LINKS = """
UNWIND $rows AS row
MATCH (:Item {id: row.item})-[h:HAS_KEYWORD]->(:Keyword {id: row.keyword})
DELETE h
"""
Q_DROP_USERS = "UNWIND $ids AS id MATCH (u:User {id: id}) DETACH DELETE u"
Q_DROP_LONELY = {
    "Attribute": "UNWIND $ids AS id MATCH (a:Attribute {id: id}) WHERE NOT (a)--() DELETE a",
    "Keyword": "UNWIND $ids AS id MATCH (k:Keyword {id: id}) WHERE NOT (k)--() DELETE k",
}
# other users' recommendations whose explanation cites a forgotten user: by the stored path (exact), or, for
# relationships written without a path, by the id as a whole word in the explanation sentence
Q_DROP_CITING = """
MATCH ()-[r:RECOMMENDED]->()
WITH r, properties(r) AS p
WHERE any(n IN $needles WHERE coalesce(p['path'], '') CONTAINS n)
   OR (p['path'] IS NULL AND any(w IN $words WHERE coalesce(p['explanation'], '') =~ w))
DELETE r
"""


def reader(tx: Any) -> Reader:
    """Read queries inside the transaction ``tx`` (they see its own writes)."""
    return lambda query, **params: tx.run(query, params).to_df()


def lock(tx: Any) -> dict[str, Any]:
    """Take the writers' lock (the meta node, created when missing) and return its properties."""
    meta = tx.run(Q_LOCK).single()["meta"]
    return dict(meta or {})


def finish(tx: Any, meta: dict[str, Any], after: Dataset, *, reset: bool = False) -> tuple[IngestReport, Dataset]:
    """Record ``after`` (the data now, in this transaction) on the meta node and release the lock.

    The lineage grows by the new fingerprint when the data changed (``reset``: it is that fingerprint alone).
    """
    fp = after.fingerprint()
    counts = after.counts()
    old_fp = meta.get("fingerprint")
    old_lineage = [str(f) for f in meta.get("lineage") or ([old_fp] if old_fp else [])]
    changed = fp != old_fp
    lineage = [fp] if reset else (old_lineage + [fp] if changed else old_lineage)
    before = json.loads(meta["counts"]) if meta.get("counts") else {}
    tx.run(Q_META, name=after.name, fingerprint=fp, counts=json.dumps(counts), lineage=lineage).consume()
    delta = count_delta(before, counts) if changed else count_delta(counts, counts)
    return IngestReport(counts, fp, changed, delta), after


def after_ingest(name: str, flags: dict[str, bool], where: str, uri: str) -> Work:
    """The last step of an ingest (its batches committed): read back, record fingerprint, counts, lineage."""

    def work(tx: Any) -> tuple[IngestReport, Dataset]:
        meta = lock(tx)
        return finish(tx, meta, read_dataset(reader(tx), flags, name, where, uri))

    return work


def append(
    batch: Dataset,
    *,
    allow_unknown_items: bool,
    flags: dict[str, bool],
    where: str,
    uri: str,
    cached: tuple[str, Dataset] | None = None,
    progress: Callable[[int], Any] | None = None,
) -> Work:
    """Append ``batch`` (checked by :func:`~kgrec.graph.batch.prepare_batch`): look up the items it names, refuse or
    create the unknown ones, MERGE it, then read back (or, when ``cached`` = ``(fingerprint, data)`` is what the
    database holds, merge in memory), record. ``flags``: :func:`~kgrec.graph.neo4j_schema.schema_flags`."""
    flags = {**flags, "profiles": flags["profiles"] or not batch.users.empty}
    flags["attributes"] = flags["attributes"] or not batch.user_attributes.empty

    def work(tx: Any) -> tuple[IngestReport, Dataset]:
        read = reader(tx)
        meta = lock(tx)
        refs = referenced_items(batch)
        held = set(read(Q_HELD_ITEMS, ids=refs)["item"].tolist()) if refs else set()
        full = add_unknown_items(batch, held, allow=allow_unknown_items, location=uri)
        for _, query, rows in write_steps(full):
            for chunk in batches(rows):
                tx.run(query, rows=chunk).consume()
                if progress is not None:
                    progress(len(chunk))
        old_name = meta.get("name")
        name = full.name if old_name in (None, "", "dataset") else str(old_name)
        if cached is not None and cached[0] and meta.get("fingerprint") == cached[0] and not meta.get("dirty"):
            return finish(tx, meta, dataclasses.replace(merge(cached[1], full), name=name))
        return finish(tx, meta, read_dataset(read, flags, name, where, uri))

    return work


def _word(ident: str) -> str:
    """A Java regular expression matching a text that holds ``ident`` as a whole word."""
    return f"(?s).*(?<![\\w]){re.escape(ident)}(?![\\w]).*"


def forget(users: Sequence[str], *, flags: dict[str, bool], where: str, uri: str) -> Work:
    """Remove ``users`` (see :func:`~kgrec.graph.batch.without_users`): their nodes with every relationship
    (RECOMMENDED included; the vector indexes drop the nodes' embeddings), other users' RECOMMENDED
    relationships citing them, the item keywords only their tags gave, and the attribute and keyword nodes
    nobody links to any more. The lineage restarts from the new fingerprint."""
    ids = list(dict.fromkeys(str(u) for u in users))

    def work(tx: Any) -> tuple[IngestReport, Dataset]:
        read = reader(tx)
        meta = lock(tx)
        held = set(read(Q_HELD_USERS, ids=ids)["user"].tolist()) if ids else set()
        missing = [u for u in ids if u not in held]
        if missing:
            raise unknown_users(missing, uri)
        name = str(meta.get("name") or "neo4j")
        full = read_dataset(read, flags, name, where, uri)
        target = without_users(full, ids)
        key = [S.ITEM, S.KEYWORD]
        links = full.item_keywords.merge(target.item_keywords, on=key, how="left", indicator=True)
        links = links[links["_merge"] == "left_only"][key]
        if flags["recommended"]:
            needles = [json.dumps(["user", u], ensure_ascii=False) for u in ids]
            tx.run(Q_DROP_CITING, needles=needles, words=[_word(u) for u in ids]).consume()
        for chunk in batches(records(pd.DataFrame(links))):
            tx.run(Q_DROP_KEYWORD_LINKS, rows=chunk).consume()
        tx.run(Q_DROP_USERS, ids=ids).consume()
        mine_attrs = full.user_attributes[full.user_attributes[S.USER].isin(ids)]
        attrs = sorted(
            {S.attribute_id(a, v) for a, v in zip(mine_attrs[S.ATTRIBUTE], mine_attrs[S.VALUE], strict=True)}
        )
        tags = sorted(set(full.tags[full.tags[S.USER].isin(ids)][S.TAG].tolist()))
        for label, lonely in (("Attribute", attrs), ("Keyword", tags)):
            if lonely:
                tx.run(Q_DROP_LONELY[label], ids=lonely).consume()
        return finish(tx, meta, read_dataset(read, flags, name, where, uri), reset=True)

    return work
