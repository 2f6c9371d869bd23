"""Neo4j ingest throughput: kgrec's batched UNWIND/MERGE against a naive one-row-per-transaction MERGE loop.

    python -m benchmarks.neo4j_ingest --movielens ../shared/data [--naive-rows 3000] [--out docs/bench/neo4j.json]
    python -m benchmarks.neo4j_ingest --movielens ../shared/data --schemes bolt neo4j --batch-rows 1000 5000 20000

``--schemes`` / ``--batch-rows`` (issue 15) time kgrec's ingest once per (rows per transaction, scheme) pair, the
schemes interleaved, each into an emptied database: ``bolt://`` direct against ``neo4j://`` routing on the same
server, in the same run; rows/s counts every row the ingest's batches send (nodes and relationships).

Both run in the same process against the same server (started with scripts/neo4j.sh). The naive loop is
timed on its first ``--naive-rows`` interactions (it would take far too long on all of them) and its rate
is extrapolated; kgrec's ingest is timed on the whole data set, nodes included, so the ratio is
conservative for kgrec. Relationships per second = interaction + link relationships written / seconds.
"""

from __future__ import annotations

import argparse
import platform
import time

from benchmarks._report import report
from kgrec import loaders
from kgrec.graph.neo4j_schema import write_steps
from kgrec.graph.neo4j_store import Neo4jStore


def relationships(ds) -> int:  # noqa: ANN001
    return len(ds.interactions) + len(ds.item_categories) + len(ds.item_keywords) + len(ds.tags) + len(ds.triples)


def sweep(ds, host: str, schemes: list[str], batch_rows: list[int]) -> dict:  # noqa: ANN001
    """kgrec's ingest per (batch rows, scheme); the ratio neo4j:// / bolt:// per batch size."""
    rows = sum(len(r) for _, _, r in write_steps(ds))
    stores = {s: Neo4jStore(f"{s}://{host}") for s in schemes}
    out = []
    for b in batch_rows:
        for scheme, st in stores.items():
            st.batch_rows = b
            st.wipe()
            t0 = time.perf_counter()
            st.ingest(ds, progress=False)
            s = time.perf_counter() - t0
            out.append(
                {
                    "scheme": scheme,
                    "batch_rows": b,
                    "seconds": round(s, 2),
                    "rows_per_s": round(rows / s),
                    "rel_per_s": round(relationships(ds) / s),
                }
            )
            print(out[-1], flush=True)
    next(iter(stores.values())).wipe()
    for st in stores.values():
        st.close()
    res: dict = {"rows": rows, "relationships": relationships(ds), "runs": out}
    if {"bolt", "neo4j"} <= set(schemes):
        by = {(r["scheme"], r["batch_rows"]): r["seconds"] for r in out}
        res["neo4j_over_bolt_rate"] = {b: round(by["bolt", b] / by["neo4j", b], 3) for b in batch_rows}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--movielens", default="../shared/data")
    ap.add_argument("--uri", default="bolt://127.0.0.1:7687")
    ap.add_argument("--naive-rows", type=int, default=3000)
    ap.add_argument("--out", default=None)
    ap.add_argument("--schemes", nargs="+", default=None, help="e.g. bolt neo4j: the sweep, on --uri's host")
    ap.add_argument("--batch-rows", type=int, nargs="+", default=[5000])
    args = ap.parse_args()
    ds = loaders.movielens(args.movielens)
    if args.schemes:
        res = sweep(ds, args.uri.split("://", 1)[1], args.schemes, args.batch_rows)
        res.update(data="MovieLens latest-small", machine=f"{platform.machine()}, {__import__('os').cpu_count()} cores")
        report(res, args.out)
        return
    st = Neo4jStore(args.uri)

    st.wipe()
    t0 = time.perf_counter()
    st.ingest(ds, progress=False)
    kg_s = time.perf_counter() - t0
    kg_rate = relationships(ds) / kg_s

    st.wipe()
    for q in (
        "CREATE CONSTRAINT kgrec_user_id IF NOT EXISTS FOR (n:User) REQUIRE n.id IS UNIQUE",
        "CREATE CONSTRAINT kgrec_item_id IF NOT EXISTS FOR (n:Item) REQUIRE n.id IS UNIQUE",
    ):
        st._driver.execute_query(q, database_=st.database)
    rows = ds.interactions.head(args.naive_rows)
    t0 = time.perf_counter()
    with st._driver.session(database=st.database) as s:
        for r in rows.itertuples(index=False):
            s.execute_write(
                lambda tx, r=r: tx.run(
                    "MERGE (u:User {id: $u}) MERGE (i:Item {id: $i}) MERGE (u)-[x:INTERACTED]->(i) "
                    "SET x.timestamp = $t, x.rating = $r",
                    u=r.user,
                    i=r.item,
                    t=int(r.timestamp),
                    r=float(r.rating),
                ).consume()
            )
    naive_s = time.perf_counter() - t0
    naive_rate = len(rows) / naive_s
    st.wipe()
    st.close()
    res = {
        "data": "MovieLens latest-small",
        "relationships": relationships(ds),
        "kgrec_seconds": round(kg_s, 2),
        "kgrec_rel_per_s": round(kg_rate),
        "naive_rows": len(rows),
        "naive_seconds": round(naive_s, 2),
        "naive_rel_per_s": round(naive_rate),
        "speedup": round(kg_rate / naive_rate, 1),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
    }
    report(res, args.out)


if __name__ == "__main__":
    main()
