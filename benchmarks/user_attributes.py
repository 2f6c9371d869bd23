"""User attributes: cold-start users from attributes only, warm users with vs without; synthetic or real data.

    OMP_NUM_THREADS=1 python -m benchmarks.user_attributes [--seeds 0 1 2] [--users 1200] [--items 600]
    OMP_NUM_THREADS=1 python -m benchmarks.user_attributes --data /work/datasets/ml-100k [--seeds 0 1 2]

Data: ``kgrec generate --user-attributes`` in memory (occupation follows the user's community with probability
``--signal``, age is drawn around a community age, gender is noise, the profile line names a community keyword
with the same probability). A seeded 10% of users are *cold*: all their interactions and tags are removed, their
users-file row stays. Every other (warm) user with at least 3 interactions has the newest 20% (at least one) held out.

Measured, Recall@20 / NDCG@20 over the full catalogue (seen items excluded):

- cold users: the model trained with the users file (their only link to the graph is their attribute nodes and
  their profile text) vs the most-popular items of the training part (real data: also
  ``recommend_new_user(attributes=...)``, the same model scoring them as users it has never seen, from their
  attribute values alone);
- warm users: the same model vs the same model trained without the users file, and most-popular.

Writes ``benchmarks/results/user-attributes.json`` and prints a Markdown table.

``--data DIR`` runs the same measurement on a real data set in the bring-your-own format (``interactions.csv``,
``items.csv``, ``users.csv``, and ``triples.csv`` / ``tags.csv`` when present; e.g. MovieLens 100K converted by
``benchmarks.datasets.ml100k``), writing ``benchmarks/results/user-attributes-<folder name>.json``. The cold users
are chosen as above; the warm users' newest 20% are held out in whole tie groups
(:func:`kgrec.fusion.ties.holdout_newest_groups`: users that rate many items in one second are common in
MovieLens). Two more cold-user baselines count instead of learning: the most popular items among the training
users who share the cold user's occupation, and among those who share occupation, age band and gender (backing
off to occupation and age band, then occupation alone, then everyone, while the group has fewer than
``MIN_GROUP`` training users); the age bands are kgrec's own (the users-file attribute values).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmarks.quality import code_version
from kgrec import Recommender
from kgrec.fusion.config import RecommenderConfig
from kgrec.fusion.ranking import ranking_metrics
from kgrec.fusion.ties import holdout_newest_groups
from kgrec.loaders import SyntheticConfig, from_frames, generate_frames
from kgrec.loaders.files import read_table

log = logging.getLogger("benchmarks.user_attributes")
K = 20
#: the demographic baseline backs off to a coarser group while its group has fewer training users than this
MIN_GROUP = 10
#: the demographic baseline's groups, most specific first (attribute names of the users file)
DEMOGRAPHIC_LEVELS = (("occupation", "age", "gender"), ("occupation", "age"), ("occupation",))


def cold_users(inter: pd.DataFrame, seed: int) -> list[str]:
    """A seeded 10% (at least one) of the users with interactions."""
    users = np.array(sorted(inter["user"].unique()))
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(users, size=max(1, len(users) // 10), replace=False).tolist())


def split(f: dict[str, pd.DataFrame], seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, list[str]]:
    """(train interactions, train tags, warm test interactions, cold user ids)."""
    inter, tags = f["interactions"], f["tags"]
    cold = cold_users(inter, seed)
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


def split_real(inter: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """(train interactions, warm test interactions, cold user ids): the cold users of :func:`cold_users`; every
    other user's newest 20% held out in whole tie groups (users with fewer than 3 interactions keep all)."""
    cold = cold_users(inter, seed)
    train, held = holdout_newest_groups(inter[~inter["user"].isin(cold)], 0.2, min_interactions=3)
    return train, held, cold


def demographic_popular(
    train: pd.DataFrame, attributes: pd.DataFrame, users: list[str], levels: tuple[tuple[str, ...], ...]
) -> pd.DataFrame:
    """Per user, the items most often chosen by the training users of the user's group: the first level of
    ``levels`` whose group holds at least :data:`MIN_GROUP` training users (else everyone); ties, and any
    items the group never chose, in overall popularity order.

    Args:
        train: training interactions (``user, item``).
        attributes: kgrec's ``user_attributes`` table (``user, attribute, value``; numeric values as bands).
        users: the users to recommend for (none of them in ``train``).
        levels: attribute-name tuples, most specific first.
    """
    wide = attributes.pivot(index="user", columns="attribute", values="value").fillna("")
    overall = train["item"].value_counts()
    overall_rank = pd.Series(np.arange(len(overall)), index=overall.index)
    trained = wide.loc[wide.index.intersection(pd.Index(train["user"].unique()))]
    rows: list[tuple[str, str]] = []
    cache: dict[tuple[str, ...], list[str]] = {}
    for u in users:
        key: tuple[str, ...] = ()
        members = trained.index
        for level in levels:
            if u not in wide.index or any(a not in wide.columns for a in level):
                continue
            mask = np.logical_and.reduce([trained[a] == wide.at[u, a] for a in level])
            if int(mask.sum()) >= MIN_GROUP:
                key, members = tuple(f"{a}={wide.at[u, a]}" for a in level), trained.index[mask]
                break
        if key not in cache:
            counts = train.loc[train["user"].isin(members), "item"].value_counts()
            order = pd.DataFrame({"n": counts.reindex(overall.index, fill_value=0), "r": overall_rank})
            cache[key] = order.sort_values(["n", "r"], ascending=[False, True]).index[:K].tolist()
        rows += [(u, i) for i in cache[key]]
    return pd.DataFrame(rows, columns=["user", "item"])


def new_user_lists(rec: Recommender, attributes: pd.DataFrame, users: list[str]) -> pd.DataFrame:
    """Each user's top-K from :meth:`~kgrec.Recommender.recommend_new_user` given only their attribute values
    (numeric ones as kgrec's band labels), as for someone the model has never seen."""
    given = {u: dict(zip(g["attribute"], g["value"], strict=True)) for u, g in attributes.groupby("user")}
    rows: list[tuple[str, str]] = []
    for u in users:
        rows += [(u, str(i)) for i in rec.recommend_new_user(attributes=given.get(u, {}), k=K)["item"]]
    return pd.DataFrame(rows, columns=["user", "item"])


def load_real(folder: Path) -> dict[str, pd.DataFrame]:
    """The bring-your-own tables of ``folder`` as kgrec's reader reads them (text columns; the loader
    validates); ``timestamp`` as integers for the split. ``users.csv`` is required."""
    frames: dict[str, pd.DataFrame] = {}
    for name in ("interactions", "items", "triples", "tags", "users"):
        path = folder / f"{name}.csv"
        if path.exists():
            frames[name] = read_table(path, name)[0]
        elif name in ("interactions", "items", "users"):
            raise SystemExit(
                f"{path}: not found; expected a converted data set with a users file "
                "(e.g. python -m benchmarks.datasets.ml100k, see benchmarks/datasets/README.md)"
            )
    frames["interactions"]["timestamp"] = frames["interactions"]["timestamp"].astype("int64")
    return frames


def run_real(seed: int, f: dict[str, pd.DataFrame], name: str, cfg: RecommenderConfig) -> dict[str, dict[str, float]]:
    inter = f["interactions"]
    train, held, cold = split_real(inter, seed)
    tags = f.get("tags")
    if tags is not None:
        tags = tags[tags["user"].isin(set(train["user"])) & tags["item"].isin(set(train["item"]))]
    warm_users = sorted(held["user"].unique())
    cold_truth = inter[inter["user"].isin(cold)]
    seen = train.groupby("user")["item"].apply(set).to_dict()
    data_with = from_frames(train, f["items"], f.get("triples"), tags, users=f["users"], name=name)
    out: dict[str, dict[str, float]] = {}
    t0 = time.perf_counter()
    with_attrs = Recommender(cfg).fit(data_with, progress=False)
    t_with = time.perf_counter() - t0
    t0 = time.perf_counter()
    without = Recommender(cfg).fit(from_frames(train, f["items"], f.get("triples"), tags, name=name), progress=False)
    t_without = time.perf_counter() - t0
    attrs = data_with.user_attributes
    out["cold: kgrec with attributes"] = metrics(with_attrs.recommend(cold, K), cold_truth, cold)
    out["cold: kgrec recommend_new_user(attributes)"] = metrics(
        new_user_lists(with_attrs, attrs, cold), cold_truth, cold
    )
    out["cold: most popular"] = metrics(popular(train, cold, {}), cold_truth, cold)
    out["cold: most popular in the same occupation"] = metrics(
        demographic_popular(train, attrs, cold, (("occupation",),)), cold_truth, cold
    )
    out["cold: most popular in the same occupation × age band × gender"] = metrics(
        demographic_popular(train, attrs, cold, DEMOGRAPHIC_LEVELS), cold_truth, cold
    )
    out["warm: kgrec with attributes"] = metrics(with_attrs.recommend(warm_users, K), held, warm_users)
    out["warm: kgrec without attributes"] = metrics(without.recommend(warm_users, K), held, warm_users)
    out["warm: most popular"] = metrics(popular(train, warm_users, seen), held, warm_users)
    out["seconds"] = {"fit with attributes": t_with, "fit without": t_without}
    out["split"] = {
        "train interactions": len(train),
        "held-out interactions": len(held),
        "cold users": len(cold),
        "cold users' interactions": len(cold_truth),
    }
    log.info("seed %d: %s", seed, json.dumps(out))
    return out


def run(seed: int, args: argparse.Namespace, cfg: RecommenderConfig) -> dict[str, dict[str, float]]:
    f = generate_frames(
        SyntheticConfig(
            users=args.users,
            items=args.items,
            communities=args.communities,
            interactions_per_user=16,
            seed=seed,
            user_attributes=True,
            attribute_signal=args.signal,
        )
    )
    train, tags, held, cold = split(f, seed)
    warm_users = sorted(held["user"].unique())
    cold_truth = f["interactions"][f["interactions"]["user"].isin(cold)]
    seen = train.groupby("user")["item"].apply(set).to_dict()
    out: dict[str, dict[str, float]] = {}
    t0 = time.perf_counter()
    with_attrs = Recommender(cfg).fit(
        from_frames(train, f["items"], f["triples"], tags, users=f["users"]), progress=False
    )
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


def table(runs: dict[int, dict[str, dict[str, float]]], seeds: list[int]) -> str:
    """Markdown: one row per measured list, mean ± SD over the seeds."""
    rows = [k for k in runs[seeds[0]] if k not in ("seconds", "split")]
    lines = [
        f"| users (seeds {', '.join(map(str, seeds))}) | Recall@{K} | NDCG@{K} | users scored |",
        "|---|---|---|---|",
    ]
    for r in rows:
        rec = [runs[s][r][f"recall@{K}"] for s in seeds]
        nd = [runs[s][r][f"ndcg@{K}"] for s in seeds]
        lines.append(
            f"| {r} | {np.mean(rec):.4f} ± {np.std(rec):.4f} | {np.mean(nd):.4f} ± {np.std(nd):.4f} | "
            f"{runs[seeds[0]][r]['users']} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--data", type=Path, help="a real data set's folder (bring-your-own files with users.csv)")
    p.add_argument("--users", type=int, default=1200)
    p.add_argument("--items", type=int, default=600)
    p.add_argument("--communities", type=int, default=8)
    p.add_argument("--signal", type=float, default=0.8)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--out", type=Path, help="result file (default benchmarks/results/user-attributes[-NAME].json)")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    results = Path(__file__).parent / "results"
    cfg = RecommenderConfig.model_validate({"model": {"dim": 64}, "train": {"epochs": args.epochs, "patience": 4}})
    if args.data:
        frames = load_real(args.data)
        name = args.data.resolve().name
        args.out = args.out or results / f"user-attributes-{name}.json"
        runs = {seed: run_real(seed, frames, name, cfg) for seed in args.seeds}
    else:
        args.out = args.out or results / "user-attributes.json"
        runs = {seed: run(seed, args, cfg) for seed in args.seeds}
    text = table(runs, args.seeds)
    meta = {
        "code": code_version(),
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"args": {k: str(v) for k, v in vars(args).items()}, **meta, "runs": runs, "table": text},
            indent=2,
            default=float,
        )
        + "\n"
    )
    print(text)  # noqa: T201 - a benchmark's output


if __name__ == "__main__":
    main()
