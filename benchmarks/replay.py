"""Replay: a model that keeps up with new events, against one that does not and against retraining.

    OMP_NUM_THREADS=2 python -m benchmarks.replay --movielens ../shared/data [--chunks 4] [--write-docs]

MovieLens is split by global time: the first ``--train-fraction`` of all interactions (in time order) trains the
model, the rest is streamed in time order in ``--chunks`` equal chunks. Before each chunk, that chunk's
interactions are scored: each user's items of the chunk that they had not interacted with before are the targets
of their list (NDCG@20, Recall@20; every item they interacted with before the chunk is excluded as seen where the
strategy knows it). A user who first appears in the chunk has nothing to be recommended from and scores 0 for every
strategy alike. After scoring, the chunk is appended to the strategy's store. Four strategies, each on its own
embedded store, all starting from the same trained model:

- **static**: no updates (the store never takes the chunks; the model answers from its training data);
- **live**: the chunks are appended; answers come from the store's new history with no training step
  (``kgrec.fusion.live``: seen items, the recent-interest part, users new since training);
- **live + warm**: live, plus ``Recommender.warm_start`` after each chunk;
- **full retrain**: the chunks are appended and a new model is trained from scratch after each one.

Compute seconds per strategy: the updates (appends, warm starts, retrains) plus the scoring, measured in the same run.
Writes ``benchmarks/results/replay-<data>.json`` and ``docs/img/replay-<data>.png``; ``--write-docs`` puts the table
into docs/benchmarks.md between ``<!-- replay:begin -->`` and ``<!-- replay:end -->``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from benchmarks.quality import code_version
from kgrec import Recommender, loaders
from kgrec.fusion.config import RecommenderConfig
from kgrec.fusion.ranking import recall_ndcg
from kgrec.graph import open_store
from kgrec.loaders import batch_from_frames
from kgrec.loaders import schema as S

REPO = Path(__file__).resolve().parents[1]
STRATEGIES = ("static", "live", "live+warm", "full retrain")
K = 20
log = logging.getLogger("replay")


def split(ds: S.Dataset, train_fraction: float, chunks: int) -> tuple[S.Dataset, list[pd.DataFrame]]:
    """The training data set (interactions before the global cut; tags only on those pairs) and the chunks."""
    inter = ds.interactions.sort_values([S.TIMESTAMP, S.USER, S.ITEM], kind="stable").reset_index(drop=True)
    cut = int(len(inter) * train_fraction)
    train = inter.iloc[:cut]
    pairs = set(zip(train[S.USER].tolist(), train[S.ITEM].tolist(), strict=True))
    tags = ds.tags.loc[[p in pairs for p in zip(ds.tags[S.USER].tolist(), ds.tags[S.ITEM].tolist(), strict=True)]]
    stream = inter.iloc[cut:]
    bounds = np.linspace(0, len(stream), chunks + 1).astype(int)
    return (
        dataclasses.replace(ds, interactions=train.reset_index(drop=True), tags=tags.reset_index(drop=True)),
        [stream.iloc[a:b].reset_index(drop=True) for a, b in zip(bounds[:-1], bounds[1:], strict=True)],
    )


def targets_of(chunk: pd.DataFrame, seen: dict[str, set[str]]) -> dict[str, list[str]]:
    """Each user's items of the chunk that they had not interacted with before it."""
    out: dict[str, list[str]] = {}
    for u, i in zip(chunk[S.USER].tolist(), chunk[S.ITEM].tolist(), strict=True):
        if i not in seen.get(u, ()) and i not in out.get(u, []):
            out.setdefault(u, []).append(i)
    return out


def score(rec: Recommender, targets: dict[str, list[str]], items: pd.Index) -> dict[str, float]:
    """Mean NDCG@20 / Recall@20 over the users with targets (a user the model cannot answer scores 0)."""
    users = sorted(targets)
    recs = rec.recommend(users, k=K, unknown="skip")
    top = np.full((len(users), K), -1, dtype=np.int64)
    row = {u: n for n, u in enumerate(users)}
    for u, g in recs.groupby("user", sort=False):
        nums = items.get_indexer(g["item"].tolist())
        top[row[str(u)], : len(nums)] = nums
    tg = [items.get_indexer(targets[u]) for u in users]
    rc, nd = recall_ndcg(top, tg, K)
    answered = len(set(recs["user"].tolist()))
    return {"ndcg@20": float(np.nanmean(nd)), "recall@20": float(np.nanmean(rc)), "users": len(users),
            "answered": answered}


def run(args: argparse.Namespace) -> dict[str, Any]:
    code = code_version()  # the code the run imports now, not what the checkout holds when it ends
    ds = loaders.movielens(args.movielens)
    base, chunks = split(ds, args.train_fraction, args.chunks)
    train: dict[str, Any] = {"seed": args.seed}
    if args.epochs:
        train["epochs"] = args.epochs
    cfg = RecommenderConfig.model_validate({"train": train})
    items = pd.Index(ds.items[S.ITEM].tolist())
    work = Path(tempfile.mkdtemp(prefix="kgrec-replay-"))
    t0 = time.perf_counter()
    first = open_store(work / "first")
    first.ingest(base)
    model = Recommender(cfg).fit(first, progress=False).save(work / "model")
    train_seconds = time.perf_counter() - t0
    log.info("trained the starting model in %.0f s", train_seconds)
    recs: dict[str, Recommender] = {}
    stores = {}
    for name in STRATEGIES:
        st = open_store(work / name.replace(" ", "-").replace("+", "-"))
        st.ingest(base)
        stores[name] = st
        recs[name] = Recommender.load(model, store=st)
    seen: dict[str, set[str]] = {}
    for u, i in zip(base.interactions[S.USER].tolist(), base.interactions[S.ITEM].tolist(), strict=True):
        seen.setdefault(u, set()).add(i)
    rows: list[dict[str, Any]] = []
    compute = {n: 0.0 for n in STRATEGIES}
    for c, chunk in enumerate(chunks):
        tg = targets_of(chunk, seen)
        for name in STRATEGIES:
            t1 = time.perf_counter()
            m = score(recs[name], tg, items)
            compute[name] += time.perf_counter() - t1
            rows.append({"chunk": c, "strategy": name, **m})
            log.info("chunk %d %-12s ndcg@20 %.4f recall@20 %.4f (%d of %d users answered)", c, name,
                     m["ndcg@20"], m["recall@20"], m["answered"], m["users"])
        if c == len(chunks) - 1:
            break
        for u, i in zip(chunk[S.USER].tolist(), chunk[S.ITEM].tolist(), strict=True):
            seen.setdefault(u, set()).add(i)
        for name in STRATEGIES[1:]:
            st = stores[name]
            t1 = time.perf_counter()
            st.append(batch_from_frames(chunk[[S.USER, S.ITEM, S.TIMESTAMP, S.RATING]], known_items=items.tolist()))
            if name == "live+warm":
                recs[name].warm_start(st, progress=False)
            elif name == "full retrain":
                recs[name] = Recommender(cfg).fit(st, progress=False)
            compute[name] += time.perf_counter() - t1
            log.info("chunk %d: %s updated (%.1f s so far)", c, name, compute[name])
    frame = pd.DataFrame(rows)
    users = frame.loc[frame["strategy"] == STRATEGIES[0], ["users", "answered"]].sum()
    summary = {
        name: {
            "ndcg@20": float(frame.loc[frame["strategy"] == name, "ndcg@20"].mean()),
            "recall@20": float(frame.loc[frame["strategy"] == name, "recall@20"].mean()),
            "compute_seconds": compute[name],
        }
        for name in STRATEGIES
    }
    return {
        "data": "ml-latest-small",
        "code": code,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
        "train_fraction": args.train_fraction,
        "chunks": args.chunks,
        "chunk_interactions": [len(c) for c in chunks],
        "seed": args.seed,
        "epochs": args.epochs,
        "starting_model_seconds": train_seconds,
        "per_chunk": rows,
        "scored_users": int(users["users"]),
        "answerable_users": int(users["answered"]),
        "summary": summary,
    }


def table(res: dict[str, Any]) -> str:
    s = res["summary"]
    full = s["full retrain"]
    lines = [
        "| strategy | NDCG@20 | Recall@20 | vs full retrain NDCG | compute s | vs full retrain compute |",
        "|---|---|---|---|---|---|",
    ]
    for name in STRATEGIES:
        r = s[name]
        lines.append(
            f"| {name} | {r['ndcg@20']:.4f} | {r['recall@20']:.4f} | {r['ndcg@20'] / full['ndcg@20']:.3f}× | "
            f"{r['compute_seconds']:.1f} | {r['compute_seconds'] / full['compute_seconds']:.3f}× |"
        )
    return "\n".join(lines)


def plot(res: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = pd.DataFrame(res["per_chunk"])
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    for name in STRATEGIES:
        f = frame.loc[frame["strategy"] == name]
        a.plot(f["chunk"], f["ndcg@20"], marker="o", label=name)
    a.set_xlabel("chunk (time order)")
    a.set_ylabel("NDCG@20 of the chunk")
    a.legend()
    s = res["summary"]
    b.bar(list(STRATEGIES), [s[n]["compute_seconds"] for n in STRATEGIES])
    b.set_ylabel("compute seconds (updates + scoring)")
    fig.suptitle("Replay of MovieLens in time order: kgrec's update strategies")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def write_docs(res: dict[str, Any], img: Path) -> None:
    doc = REPO / "docs" / "benchmarks.md"
    text = doc.read_text()
    s = res["summary"]
    body = (
        f"<!-- replay:begin -->\nMeasured at `{res['code']}` on {res['machine']}: MovieLens latest-small, the first "
        f"{res['train_fraction']:.0%} of interactions by time to train, the rest in {res['chunks']} chunks "
        f"({', '.join(map(str, res['chunk_interactions']))} interactions), seed {res['seed']}; starting model "
        f"{res['starting_model_seconds']:.0f} s (shared, not counted). Command: `OMP_NUM_THREADS=1 python -m "
        f"benchmarks.replay --movielens ../shared/data --chunks {res['chunks']} --write-docs`."
        + (f" {res['note']}" if res.get("note") else "")
        + f"\n\n{table(res)}\n\n"
        f"![replay]({img.relative_to(REPO / 'docs')})\n\n"
        f"Live appends alone: {s['live']['ndcg@20'] / s['static']['ndcg@20']:.2f}× the static model's NDCG@20; "
        f"live + warm: {s['live+warm']['ndcg@20'] / s['full retrain']['ndcg@20']:.3f}× full retrain's NDCG@20 at "
        f"{s['live+warm']['compute_seconds'] / s['full retrain']['compute_seconds']:.2f}× its compute. Few users are "
        "active in each time slice of this data set: the four chunks score "
        f"{res.get('scored_users', '?')} (user, chunk) lists, of which the users first seen in their chunk (nothing to "
        "answer from, 0 for every strategy) are about half; read the differences with that in mind.\n"
        "<!-- replay:end -->"
    )
    if "<!-- replay:begin -->" in text:
        a, b = text.index("<!-- replay:begin -->"), text.index("<!-- replay:end -->") + len("<!-- replay:end -->")
        text = text[:a] + body + text[b:]
    else:
        text = text.rstrip() + "\n\n## Live updates: replay in time order (issue 14)\n\n" + body + "\n"
    doc.write_text(text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--movielens", type=Path, default=loaders.default_data_root())
    p.add_argument("--chunks", type=int, default=4)
    p.add_argument("--train-fraction", type=float, default=0.8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None, help="cap the training epochs (a quick smoke run; default: kgrec's)")
    p.add_argument("--write-docs", action="store_true")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    res = run(args)
    out = REPO / "benchmarks" / "results" / "replay-ml-latest-small.json"
    out.write_text(json.dumps(res, indent=2) + "\n")
    img = REPO / "docs" / "img" / "replay-ml-latest-small.png"
    plot(res, img)
    print(table(res))
    if args.write_docs:
        write_docs(res, img)


if __name__ == "__main__":
    main()
