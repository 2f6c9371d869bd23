"""User attributes on planted synthetic data: cold-start users from attributes only, warm users with vs without.

    OMP_NUM_THREADS=1 python -m benchmarks.user_attributes [--seeds 0 1 2] [--users 1200] [--items 600]

Data: ``kgrec generate --user-attributes`` in memory (occupation follows the user's community with probability
``--signal``, age is drawn around a community age, gender is noise, the profile line names a community keyword
with the same probability). A seeded 10% of users are *cold*: all their interactions and tags are removed, their
users-file row stays. Every other (warm) user with at least 3 interactions has the newest 20% (at least one) held out.

Measured, Recall@20 / NDCG@20 over the full catalogue (seen items excluded):

- cold users: the model trained with the users file (their only link to the graph is their attribute nodes and
  their profile text) vs the most-popular items of the training part;
- warm users: the same model vs the same model trained without the users file, and most-popular.

Writes ``benchmarks/results/user-attributes.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from kgrec import Recommender
from kgrec.fusion.config import RecommenderConfig
from kgrec.fusion.ranking import ranking_metrics
from kgrec.loaders import SyntheticConfig, from_frames, generate_frames

log = logging.getLogger("benchmarks.user_attributes")
K = 20


def split(f: dict[str, pd.DataFrame], seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, list[str]]:
    """(train interactions, train tags, warm test interactions, cold user ids)."""
    inter, tags = f["interactions"], f["tags"]
    users = np.array(sorted(inter["user"].unique()))
    rng = np.random.default_rng(seed)
    cold = sorted(rng.choice(users, size=max(1, len(users) // 10), replace=False).tolist())
    warm = inter[~inter["user"].isin(cold)].sort_values(["user", "timestamp", "item"], kind="stable")
    rank_from_newest = warm.groupby("user").cumcount(ascending=False)
    size = warm.groupby("user")["item"].transform("size")
    test = (rank_from_newest < np.maximum(1, (0.2 * size).astype(int))) & (size >= 3)  # users keep >= 2 to train on
    train, held = warm[~test], warm[test]
    return train, tags[~tags["user"].isin(cold) & tags["item"].isin(set(train["item"]))], held, cold


def metrics(recs: pd.DataFrame, truth: pd.DataFrame, users: list[str]) -> dict[str, float]:
    by_user = recs.groupby("user")["item"].apply(list).to_dict()
    tgt = truth.groupby("user")["item"].apply(lambda s: np.array(s.tolist(), dtype=object)).to_dict()
    top = np.array([(by_user.get(u, []) + [None] * K)[:K] for u in users], dtype=object)
    return ranking_metrics(top, [tgt.get(u, np.empty(0, dtype=object)) for u in users], K)


def popular(train: pd.DataFrame, users: list[str], seen: dict[str, set[str]]) -> pd.DataFrame:
    order = train["item"].value_counts().index.tolist()
    rows = [(u, i) for u in users for i in [x for x in order if x not in seen.get(u, set())][:K]]
    return pd.DataFrame(rows, columns=["user", "item"])


def run(seed: int, args: argparse.Namespace, cfg: RecommenderConfig) -> dict[str, dict[str, float]]:
    f = generate_frames(SyntheticConfig(users=args.users, items=args.items, communities=args.communities,
                                        interactions_per_user=16, seed=seed, user_attributes=True,
                                        attribute_signal=args.signal))
    train, tags, held, cold = split(f, seed)
    warm_users = sorted(held["user"].unique())
    cold_truth = f["interactions"][f["interactions"]["user"].isin(cold)]
    seen = train.groupby("user")["item"].apply(set).to_dict()
    out: dict[str, dict[str, float]] = {}
    t0 = time.perf_counter()
    with_attrs = Recommender(cfg).fit(from_frames(train, f["items"], f["triples"], tags, users=f["users"]), progress=False)
    t_with = time.perf_counter() - t0
    t0 = time.perf_counter()
    without = Recommender(cfg).fit(from_frames(train, f["items"], f["triples"], tags), progress=False)
    t_without = time.perf_counter() - t0
    out["cold: kgrec with attributes"] = metrics(with_attrs.recommend(cold, K), cold_truth, cold)
    out["cold: most popular"] = metrics(popular(train, cold, {}), cold_truth, cold)
    out["warm: kgrec with attributes"] = metrics(with_attrs.recommend(warm_users, K), held, warm_users)
    out["warm: kgrec without attributes"] = metrics(without.recommend(warm_users, K), held, warm_users)
    out["warm: most popular"] = metrics(popular(train, warm_users, seen), held, warm_users)
    out["seconds"] = {"fit with attributes": t_with, "fit without": t_without}
    log.info("seed %d: %s", seed, json.dumps(out))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--users", type=int, default=1200)
    p.add_argument("--items", type=int, default=600)
    p.add_argument("--communities", type=int, default=8)
    p.add_argument("--signal", type=float, default=0.8)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "user-attributes.json")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = RecommenderConfig.model_validate({"model": {"dim": 64}, "train": {"epochs": args.epochs, "patience": 4}})
    runs = {seed: run(seed, args, cfg) for seed in args.seeds}
    rows = [k for k in runs[args.seeds[0]] if k != "seconds"]
    lines = [f"| users (seeds {', '.join(map(str, args.seeds))}) | Recall@{K} | NDCG@{K} | users scored |", "|---|---|---|---|"]
    for r in rows:
        rec = [runs[s][r][f"recall@{K}"] for s in args.seeds]
        nd = [runs[s][r][f"ndcg@{K}"] for s in args.seeds]
        lines.append(f"| {r} | {np.mean(rec):.4f} ± {np.std(rec):.4f} | {np.mean(nd):.4f} ± {np.std(nd):.4f} | "
                     f"{runs[args.seeds[0]][r]['users']} |")
    table = "\n".join(lines)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "runs": runs, "table": table},
                                   indent=2, default=float) + "\n")
    print(table)  # noqa: T201 - a benchmark's output


if __name__ == "__main__":
    main()
