"""Neo4j write-back throughput: ``Neo4jStore.write_recommendations`` (what ``kgrec export --to-neo4j`` calls) by
rows per transaction and by URI scheme (``bolt://`` direct vs ``neo4j://`` routing) in the same run.

    flock /tmp/heavy.lock flock /tmp/neo4j-tests.lock env OMP_NUM_THREADS=1 \\
        python -m benchmarks.neo4j_writeback --movielens ../shared/data --synthetic-users 20000 \\
        [--k 100] [--batch-rows 1000 5000 20000] [--synthetic-batch-rows 5000] \\
        [--out benchmarks/results/neo4j-writeback.json]

It wipes the database (the Neo4j tests' lock keeps them off it). Two data sets, each ingested first with kgrec's
ingest: MovieLens latest-small (610 users) and a synthetic one (``--synthetic-users`` users, 5,000 items, ~20
interactions each). The recommendations are ``--k`` distinct items per user drawn at random (seeded): the write
does not depend on which items they are. The first write into an empty RECOMMENDED set is timed as ``fresh``;
every configuration after it (``--batch-rows`` on MovieLens, ``--synthetic-batch-rows`` on the synthetic set,
each with every scheme) is a *replace* (each batch deletes its users' previous relationships and MERGEs the
new ones, as a nightly export does), in the same state, interleaving the schemes. After each write the number of
RECOMMENDED relationships is checked to be users x k (a rerun never doubles them). Rates count relationships
written per wall second of the whole call (pandas to parameters, the driver, the server: one 2-core machine).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time
from typing import Any

import numpy as np
import pandas as pd

from benchmarks._report import report
from kgrec import loaders
from kgrec.graph.neo4j_store import Neo4jStore
from kgrec.loaders.schema import Dataset


def random_recs(ds: Dataset, k: int, seed: int = 0) -> pd.DataFrame:
    """``k`` distinct random items per user, ranked 1..k with falling scores."""
    users = np.array(sorted(set(ds.interactions["user"])), dtype=object)
    items = np.array(sorted(ds.items["item"]), dtype=object)
    rng = np.random.default_rng(seed)
    picks = np.concatenate(
        [rng.random((len(chunk), len(items))).argsort(axis=1)[:, :k] for chunk in np.array_split(users, 20)]
    )
    return pd.DataFrame(
        {
            "user": np.repeat(users, k),
            "item": items[picks.ravel()],
            "rank": np.tile(np.arange(1, k + 1), len(users)),
            "score": np.tile(np.linspace(1.0, 0.0, k), len(users)),
            "model_version": "bench",
        }
    )


def count(st: Neo4jStore) -> int:
    return int(st.cypher("MATCH ()-[r:RECOMMENDED]->() RETURN count(r) AS n")["n"].iloc[0])


def timed(st: Neo4jStore, recs: pd.DataFrame, batch_rows: int) -> dict[str, Any]:
    st.batch_rows = batch_rows
    t0 = time.perf_counter()
    written = st.write_recommendations(recs, batch_users=10**9)
    s = time.perf_counter() - t0
    held = count(st)
    if written != len(recs) or held != len(recs):
        raise SystemExit(f"wrote {written}, the database holds {held} RECOMMENDED; expected {len(recs)}")
    users = recs["user"].nunique()
    return {
        "batch_rows": batch_rows,
        "seconds": round(s, 2),
        "rel_per_s": round(len(recs) / s),
        "users_per_s": round(users / s),
    }


def bench(name: str, ds: Dataset, stores: dict[str, Neo4jStore], k: int, batch_rows: list[int]) -> dict[str, Any]:
    first = next(iter(stores.values()))
    first.wipe()
    t0 = time.perf_counter()
    first.ingest(ds, progress=False)
    ingest_s = time.perf_counter() - t0
    recs = random_recs(ds, k)
    out: dict[str, Any] = {
        "data": name,
        "users": int(recs["user"].nunique()),
        "k": k,
        "relationships": len(recs),
        "ingest_seconds": round(ingest_s, 2),
        "fresh": {"scheme": next(iter(stores)), **timed(first, recs, 5000)},
        "replace": [],
    }
    print(f"{name}: ingest {ingest_s:.1f} s; fresh write {out['fresh']}", flush=True)
    for b in batch_rows:
        for scheme, st in stores.items():
            row = {"scheme": scheme, **timed(st, recs, b)}
            print(f"{name}: replace {row}", flush=True)
            out["replace"].append(row)
    by = {(r["scheme"], r["batch_rows"]): r["rel_per_s"] for r in out["replace"]}
    if {"bolt", "neo4j"} <= set(stores):
        out["neo4j_over_bolt"] = {b: round(by["neo4j", b] / by["bolt", b], 3) for b in batch_rows}
    first.wipe()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--movielens", default="../shared/data")
    ap.add_argument("--synthetic-users", type=int, default=20000, help="0: MovieLens only")
    ap.add_argument("--host", default="127.0.0.1:7687")
    ap.add_argument("--schemes", nargs="+", default=["bolt", "neo4j"])
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--batch-rows", type=int, nargs="+", default=[1000, 5000, 20000])
    ap.add_argument("--synthetic-batch-rows", type=int, nargs="+", default=[5000])
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    stores = {s: Neo4jStore(f"{s}://{args.host}") for s in args.schemes}
    runs = [bench("MovieLens latest-small", loaders.movielens(args.movielens), stores, args.k, args.batch_rows)]
    if args.synthetic_users:
        cfg = loaders.SyntheticConfig(users=args.synthetic_users, items=5000, interactions_per_user=20, seed=0)
        f = loaders.generate_frames(cfg)
        ds = loaders.from_frames(f["interactions"], f["items"], name=f"synthetic {args.synthetic_users} users")
        runs.append(bench(ds.name, ds, stores, args.k, args.synthetic_batch_rows))
    for st in stores.values():
        st.close()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    res = {
        "runs": runs,
        "commit": commit,
        "server": "Neo4j 5.26 Community, local (scripts/neo4j.sh: heap 512m-1g, page cache 256m)",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end",
    }
    report(res, args.out)


if __name__ == "__main__":
    main()
