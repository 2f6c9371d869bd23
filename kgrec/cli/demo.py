"""``kgrec demo``: ingest, train, evaluate on a chronological split, recommend and explain."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.markup import escape

from kgrec import loaders
from kgrec.errors import DatasetNotFoundError
from kgrec.fusion.config import RecommenderConfig
from kgrec.fusion.evaluate import chronological_split, ranking_metrics
from kgrec.fusion.recommender import Recommender
from kgrec.graph.embedded import EmbeddedStore
from kgrec.loaders import schema as S
from kgrec.loaders.schema import Dataset


def evaluate(rec: Recommender, train: pd.DataFrame, test: pd.DataFrame, k: int = 20) -> dict[str, float]:
    """Recall@k / NDCG@k of ``rec`` on held-out ``test`` (full ranking, training items excluded)."""
    users = sorted(set(test[S.USER]) & set(rec.vocabs.user.to_list()))
    top = rec.recommend(users, k=k)
    tops = top.groupby("user", sort=False)["item"].apply(list)
    truth = test.groupby(S.USER)[S.ITEM].apply(list)
    return ranking_metrics(
        np.array([tops.get(u, []) + [None] * (k - len(tops.get(u, []))) for u in users], dtype=object),
        [np.array(truth[u], dtype=object) for u in users],
        k,
    )


def popularity(train: pd.DataFrame, test: pd.DataFrame, k: int = 20) -> dict[str, float]:
    """The most-popular baseline, for scale."""
    pop = train[S.ITEM].value_counts().index.tolist()
    seen = train.groupby(S.USER)[S.ITEM].apply(set)
    truth = test.groupby(S.USER)[S.ITEM].apply(list)
    users = sorted(truth.index)
    rows = []
    for u in users:
        s = seen.get(u, set())
        rows.append([i for i in pop[: k + len(s)] if i not in s][:k])
    return ranking_metrics(np.array(rows, dtype=object), [np.array(truth[u], dtype=object) for u in users], k)


def demo_data(console: Console, root: Path | None = None) -> tuple[Dataset, str]:
    """The demo's data set and the verb its sentences use.

    MovieLens latest-small from ``root``, by default from
    :func:`kgrec.loaders.default_data_root` (``$KGREC_DATA``, else ``../shared/data``
    beside the checkout, else ``~/.cache/kgrec/data``, downloaded when missing);
    when it is neither there nor downloadable, one line says so and the synthetic
    data set is used instead.
    """
    try:
        return loaders.movielens(root if root is not None else loaders.default_data_root()), "watched"
    except DatasetNotFoundError as e:
        console.print(
            f"[yellow]offline: MovieLens is not available ({escape(str(e).split(';')[0])}); running on synthetic data instead[/]"
        )
        return loaders.synthetic(loaders.SyntheticConfig(users=300, items=600)), "interacted with"


def run_demo(console: Console, *, root: Path | None, store: Path | None, n_users: int, epochs: int | None) -> dict:
    t0 = time.perf_counter()
    ds, verb = demo_data(console, root)
    console.print(f"[bold]data[/]: {escape(str(ds))}")
    train_part, val, test = chronological_split(ds.interactions, 0.2, 0.0)
    train_ds = Dataset(train_part, ds.items, ds.item_categories, ds.item_keywords, ds.triples, ds.tags, ds.name)
    store_path = store or Path(os.environ.get("KGREC_CACHE", Path.home() / ".cache" / "kgrec")) / "demo-store"
    st = EmbeddedStore(store_path)
    rep = st.ingest(train_ds)
    console.print(
        f"[bold]store[/]: {escape(str(store_path))} ({rep.counts['interactions']} training interactions; "
        f"last 20% of each user's history held out: {len(test)} test interactions)"
    )
    cfg = RecommenderConfig()
    cfg.explain.interaction_verb = verb
    if epochs is not None:
        cfg.train.epochs = epochs
    rec = Recommender(cfg).fit(st)
    rec.save(st.model_root() / "default")
    m = rec.metrics
    console.print(
        f"[bold]trained[/] in {m['fit_seconds']:.0f} s: best epoch {m['best_epoch']}, "
        f"{m['seconds_per_epoch']:.2f} s/epoch, text model {m['text_model']}"
    )
    fused = evaluate(rec, train_part, test)
    pop = popularity(train_part, test)
    console.print(
        f"[bold]test[/] ({fused['users']} users, chronological): fused recall@20 {fused['recall@20']:.4f}, "
        f"ndcg@20 {fused['ndcg@20']:.4f}  |  popularity recall@20 {pop['recall@20']:.4f}, ndcg@20 {pop['ndcg@20']:.4f}"
    )
    shown = sorted(set(test[S.USER]), key=lambda u: (len(u), u))[:n_users]
    for u in shown:
        console.print(f"\n[bold]user {escape(u)}[/] — top 5")
        recs = rec.recommend(u, k=5)
        for row in recs.itertuples(index=False):
            e = rec.explain(u, row.item, st, top=1)
            why = e.paths[0].sentence if e.paths else e.message
            console.print(
                f"  {row.rank}. {escape(rec.title(row.item))}  [dim](score {row.score:.3f})[/]", highlight=False
            )
            console.print(f"     {why}", highlight=False, markup=False)
    console.print(
        f"\n[bold]done[/] in {time.perf_counter() - t0:.0f} s. Try: kgrec explain --store {escape(str(store_path))} --user {escape(shown[0])} --item <id>"
    )
    return {"fused": fused, "popularity": pop, "seconds": time.perf_counter() - t0}
