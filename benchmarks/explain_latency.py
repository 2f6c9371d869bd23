"""Explanation lookup latency, embedded store vs Neo4j, over (user, recommended item) pairs.

    python -m benchmarks.explain_latency --store ~/.cache/kgrec/demo-store [--pairs 1000] [--neo4j bolt://127.0.0.1:7687]

Uses the model trained in the embedded store (e.g. by ``kgrec demo``), loads the same data into Neo4j
(wiping kgrec's nodes there first), and times ``Recommender.explain`` for the same pairs on both stores,
after a warm-up of 20 pairs. Also checks that both stores return identical explanations and reports the
share of top-20 recommendations that have at least one path.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks._report import report
from kgrec import Recommender
from kgrec.graph import open_store


def measure(rec, store, pairs) -> tuple[np.ndarray, list[dict]]:  # noqa: ANN001
    for u, i in pairs[:20]:
        rec.explain(u, i, store)
    times, out = [], []
    for u, i in pairs:
        t0 = time.perf_counter()
        e = rec.explain(u, i, store)
        times.append(time.perf_counter() - t0)
        out.append(e.to_dict())
    return np.array(times) * 1000, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", required=True)
    ap.add_argument("--model", default=None)
    ap.add_argument("--pairs", type=int, default=1000)
    ap.add_argument("--neo4j", default="bolt://127.0.0.1:7687")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    emb = open_store(args.store)
    rec = Recommender.load(args.model or emb.model_root() / "default", store=emb)
    users = rec.vocabs.user.to_list()
    top = rec.recommend(users, 20)
    covered = float(np.mean([bool(rec.explain(u, i, emb, top=1).paths) for u, i in zip(top["user"], top["item"])]))
    rng = np.random.default_rng(0)
    idx = rng.choice(len(top), size=min(args.pairs, len(top)), replace=False)
    pairs = list(zip(top["user"].iloc[idx], top["item"].iloc[idx]))
    t_emb, out_emb = measure(rec, emb, pairs)
    res = {
        "pairs": len(pairs),
        "coverage_top20": round(covered, 4),
        "embedded_ms": {"p50": round(float(np.percentile(t_emb, 50)), 2), "p95": round(float(np.percentile(t_emb, 95)), 2)},
    }
    if args.neo4j:
        neo = open_store(args.neo4j)
        neo.wipe()
        neo.ingest(emb.dataset(), progress=False)
        rec.check_store(neo)
        t_neo, out_neo = measure(rec, neo, pairs)
        res["neo4j_ms"] = {"p50": round(float(np.percentile(t_neo, 50)), 2), "p95": round(float(np.percentile(t_neo, 95)), 2)}
        res["identical_explanations"] = out_emb == out_neo
        neo.close()
    report(res, args.out)


if __name__ == "__main__":
    main()
