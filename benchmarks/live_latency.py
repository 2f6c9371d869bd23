"""From an accepted event to a changed answer: how long a live kgrec takes to answer from a new interaction.

    OMP_NUM_THREADS=2 python -m benchmarks.live_latency --store ~/.cache/kgrec/demo-store [--neo4j bolt://127.0.0.1:7687]
        [--events 200] [--write-docs]

Starts from a store that holds MovieLens and a model trained on it (``kgrec demo`` leaves one in
``~/.cache/kgrec/demo-store``). The events go to a copy of that store (and, with ``--neo4j``, to the Neo4j server
after an ingest of the same data: the same model answers both). Each event is a real "customer took the item at
the top of their list": for a random user, their current top-1 item is appended as a new interaction (``store.append``,
in this process, as ``POST /api/events`` does in the server's) and the user's top-10 is asked for again; the answer
has changed when that item left the list. Per store:

- **accept**: ``store.append`` of one event (validation, write, swap);
- **fresh answer**: from the accepted event to the changed top-10 (the live refresh of that user and the ranking);
- **read, unchanged store**: the same top-10 request on a store that took no event (the floor, same run).

Writes ``benchmarks/results/live-latency-ml-latest-small.json``; ``--write-docs`` puts the table into
docs/benchmarks.md between ``<!-- live-latency:begin -->`` and ``<!-- live-latency:end -->``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from benchmarks.quality import code_version
from kgrec import Recommender
from kgrec.graph import GraphStore, open_store
from kgrec.graph.store import model_dir
from kgrec.loaders import batch_from_frames
from kgrec.loaders import schema as S

REPO = Path(__file__).resolve().parents[1]


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs) * 1000.0, q))


def measure(store: GraphStore, model: Path, events: int, seed: int) -> dict[str, Any]:
    rec = Recommender.load(model, store=store)
    users = rec.vocabs.user.to_list()
    rng = random.Random(seed)
    t_next = int(store.dataset().interactions[S.TIMESTAMP].max()) + 1
    known = store.item_ids()
    floor, accept, fresh, changed = [], [], [], 0
    for _ in range(20):  # warm: the text encoder and the torch model load once, before anything is timed
        rec.recommend(rng.choice(users), k=10)
    for _ in range(events):
        u = rng.choice(users)
        t0 = time.perf_counter()
        top = rec.recommend(u, k=10)
        floor.append(time.perf_counter() - t0)
        item = str(top["item"].iloc[0])
        batch = batch_from_frames(
            pd.DataFrame({"user": [u], "item": [item], "timestamp": [t_next]}), known_items=known
        )
        t_next += 1
        t1 = time.perf_counter()
        store.append(batch)
        t2 = time.perf_counter()
        after = rec.recommend(u, k=10)
        t3 = time.perf_counter()
        accept.append(t2 - t1)
        fresh.append(t3 - t2)
        changed += item not in set(after["item"].tolist())
    return {
        "events": events,
        "changed_answers": changed,
        "accept_ms": {"p50": pct(accept, 50), "p99": pct(accept, 99)},
        "fresh_answer_ms": {"p50": pct(fresh, 50), "p99": pct(fresh, 99)},
        "read_unchanged_ms": {"p50": pct(floor, 50), "p99": pct(floor, 99)},
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    src = open_store(args.store)
    model = model_dir(src, args.model)
    work = Path(tempfile.mkdtemp(prefix="kgrec-live-latency-"))
    shutil.copytree(src.location, work / "store", ignore=shutil.ignore_patterns("models", ".lock"))
    out: dict[str, Any] = {
        "code": code_version(),
        "load_average": os.getloadavg()[0],
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
        "data": src.manifest().get("name"),
        "stores": {},
    }
    emb = open_store(work / "store")
    out["stores"]["embedded"] = measure(emb, model, args.events, args.seed)
    if args.neo4j:
        neo = open_store(args.neo4j)
        neo.wipe()
        neo.ingest(src.dataset())
        try:
            out["stores"]["neo4j"] = measure(neo, model, args.events, args.seed)
        finally:
            neo.wipe()
            neo.close()
    shutil.rmtree(work, ignore_errors=True)
    return out


def table(res: dict[str, Any]) -> str:
    lines = [
        "| store | events (answer changed) | accept p50 / p99 ms | fresh answer p50 / p99 ms | read, unchanged store "
        "p50 / p99 ms | fresh / unchanged (p50) |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in res["stores"].items():
        a, f, u = r["accept_ms"], r["fresh_answer_ms"], r["read_unchanged_ms"]
        lines.append(
            f"| {name} | {r['events']} ({r['changed_answers']}) | {a['p50']:.1f} / {a['p99']:.1f} | "
            f"{f['p50']:.1f} / {f['p99']:.1f} | {u['p50']:.1f} / {u['p99']:.1f} | {f['p50'] / u['p50']:.2f}× |"
        )
    return "\n".join(lines)


def write_docs(res: dict[str, Any]) -> None:
    doc = REPO / "docs" / "benchmarks.md"
    text = doc.read_text()
    body = (
        f"<!-- live-latency:begin -->\nMeasured at `{res['code']}` on {res['machine']} ({res['data']}; "
        "`OMP_NUM_THREADS=1 python -m benchmarks.live_latency --store ~/.cache/kgrec/demo-store --neo4j "
        "bolt://127.0.0.1:7687 --write-docs`, after `kgrec demo`):\n\n"
        + table(res)
        + (f"\n\n{res['note']}" if res.get("note") else "")
        + "\n<!-- live-latency:end -->"
    )
    if "<!-- live-latency:begin -->" in text:
        a = text.index("<!-- live-latency:begin -->")
        b = text.index("<!-- live-latency:end -->") + len("<!-- live-latency:end -->")
        text = text[:a] + body + text[b:]
    else:
        text = text.rstrip() + "\n\n## Live updates: from an accepted event to a changed answer (issue 14)\n\n" + body + "\n"
    doc.write_text(text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", required=True, help="a store holding MovieLens and a model trained on it")
    p.add_argument("--model", default=None, help="the model folder (default: the store's default model)")
    p.add_argument("--neo4j", default=None, help="also measure on this Neo4j server (it is wiped before and after)")
    p.add_argument("--events", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--write-docs", action="store_true")
    args = p.parse_args()
    res = run(args)
    out = REPO / "benchmarks" / "results" / "live-latency-ml-latest-small.json"
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(table(res))
    if args.write_docs:
        write_docs(res)


if __name__ == "__main__":
    main()
