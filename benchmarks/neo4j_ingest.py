"""Neo4j ingest throughput: kgrec's batched UNWIND/MERGE against a naive one-row-per-transaction MERGE loop.

    python -m benchmarks.neo4j_ingest --movielens ../shared/data [--naive-rows 3000] [--out docs/bench/neo4j.json]

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
from kgrec.graph.neo4j_store import Neo4jStore


def relationships(ds) -> int:  # noqa: ANN001
    return len(ds.interactions) + len(ds.item_categories) + len(ds.item_keywords) + len(ds.tags) + len(ds.triples)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--movielens", default="../shared/data")
    ap.add_argument("--uri", default="bolt://127.0.0.1:7687")
    ap.add_argument("--naive-rows", type=int, default=3000)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    ds = loaders.movielens(args.movielens)
    st = Neo4jStore(args.uri)

    st.wipe()
    t0 = time.perf_counter()
    st.ingest(ds, progress=False)
    kg_s = time.perf_counter() - t0
    kg_rate = relationships(ds) / kg_s

    st.wipe()
    for q in ("CREATE CONSTRAINT kgrec_user_id IF NOT EXISTS FOR (n:User) REQUIRE n.id IS UNIQUE",
              "CREATE CONSTRAINT kgrec_item_id IF NOT EXISTS FOR (n:Item) REQUIRE n.id IS UNIQUE"):
        st._driver.execute_query(q, database_=st.database)
    rows = ds.interactions.head(args.naive_rows)
    t0 = time.perf_counter()
    with st._driver.session(database=st.database) as s:
        for r in rows.itertuples(index=False):
            s.execute_write(lambda tx, r=r: tx.run(
                "MERGE (u:User {id: $u}) MERGE (i:Item {id: $i}) MERGE (u)-[x:INTERACTED]->(i) "
                "SET x.timestamp = $t, x.rating = $r", u=r.user, i=r.item, t=int(r.timestamp), r=float(r.rating)).consume())
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
