"""Accuracy against variety and the long tail: the re-ranker's λ/β sweeps, every model's beyond-accuracy measures.

    OMP_NUM_THREADS=1 python -m benchmarks.tradeoff --movielens ../shared/data [--seed 0] [--write-docs]

One run, one seed, the quality benchmark's split (docs/evaluation.md):

1. **Choosing the default (validation only).** The fused model (``kgrec train`` defaults) is fit on *train*;
   each validation user's list is re-ranked with every setting of the grid (a λ sweep with β = 0, a β sweep
   with λ = 0) and scored on *validation*: NDCG@20 and the beyond-accuracy measures. The default is the
   setting with the best validation NDCG@20; if no setting beats the plain top-k, the default is off.
2. **The table and the curves (test, read once per list).** The quality benchmark's rows (every model, this
   seed) give each model's NDCG@20 and measures on *test*; the fused row's model (fit on train + validation)
   is re-ranked with the same grid on test for the curves; EASE and SASRec are points.
3. **Export throughput.** ``kgrec.fusion.export.export`` of every user's top 100 to Parquet, plain and with the
   re-ranker on (the chosen default, else λ = 0.3), same model, same run, best of 3 each (alternating).

``--throughput-only MODEL_DIR`` measures only step 3, on a saved model (``kgrec demo``'s
``~/.cache/kgrec/demo-store/models/default``), for each of :data:`THROUGHPUT_SETTINGS` (λ = 0.3 by vectors, by
categories, by both; β = 0.3; λ = 0.3 + β = 0.3), and appends the run to ``benchmarks/results/tradeoff-throughput.json``::

    OMP_NUM_THREADS=1 python -m benchmarks.tradeoff --throughput-only ~/.cache/kgrec/demo-store/models/default

Writes ``benchmarks/results/tradeoff-<data>.json`` and ``docs/img/tradeoff-<data>.png``; ``--write-docs`` puts
the tables and the plot into docs/benchmarks.md between ``<!-- tradeoff:begin -->`` and ``<!-- tradeoff:end -->``.
"""

from __future__ import annotations

import argparse
import ast
import functools
import json
import logging
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from benchmarks.quality import code_version
from kgrec import loaders
from kgrec._atomic import write_text_atomic
from kgrec.evaluation.baselines.base import FitContext
from kgrec.evaluation.benchmark import BenchmarkResult, ModelSpec, default_models, run_benchmark
from kgrec.evaluation.beyond import beyond_accuracy, beyond_table, category_matrix, ild_vectors
from kgrec.evaluation.fused import FusedScorer, fused_config
from kgrec.evaluation.metrics import full_ranking_topk, targets_by_user
from kgrec.evaluation.report import markdown
from kgrec.evaluation.split import EvalSplit, Interactions, assert_no_leak, make_split
from kgrec.fusion.ranking import TopK, recall_ndcg, top_items
from kgrec.fusion.rerank import Reranker, pool_size
from kgrec.fusion.state import similarity_vectors

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[1]
K = 20
LAMBDAS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
BETAS = (0.05, 0.1, 0.2, 0.3, 0.5, 1.0)
#: (λ, β, what "alike" means for λ): a λ sweep by the fused item vectors, one by the genres (categories), a β sweep
GRID: list[tuple[float, float, str]] = (
    [(lam, 0.0, "vectors") for lam in LAMBDAS]
    + [(lam, 0.0, "categories") for lam in LAMBDAS if lam > 0]
    + [(0.0, b, "vectors") for b in BETAS]
)


def _by(df: pd.DataFrame) -> pd.Series:
    """The rows' ``by`` (results written before the genre sweep have none: vectors)."""
    return df["by"] if "by" in df else pd.Series("vectors", index=df.index)
BEGIN, END = "<!-- tradeoff:begin -->", "<!-- tradeoff:end -->"


def split_vectors(scorer: FusedScorer, split: EvalSplit) -> np.ndarray:
    """The fused item vectors by the split's item numbers (0 for items the model does not know)."""
    rec = scorer.recommender
    inum = rec.vocabs.item.numbers(np.asarray(split.vocabs.item.ids).astype(str), missing="none")
    vecs = similarity_vectors(rec.arrays)  # v_i, without the co-occurrence block, as the re-ranker of a model
    out = np.zeros((len(inum), vecs.shape[1]), dtype=np.float32)
    out[inum >= 0] = vecs[inum[inum >= 0]]
    return out


def pools(scorer: FusedScorer, users: np.ndarray, seen: list[np.ndarray], width: int, chunk: int = 512) -> TopK:
    """Each user's plain top-``width`` (seen items excluded), the one top-k."""
    s_all, i_all = [], []
    for s in range(0, len(users), chunk):
        batch = users[s : s + chunk]
        sc = scorer.scores(batch).float().clone()
        rows = np.concatenate([np.full(len(seen[u]), r) for r, u in enumerate(batch)])
        cols = np.concatenate([seen[u] for u in batch])
        sc[torch.from_numpy(rows.astype(np.int64)), torch.from_numpy(cols.astype(np.int64))] = float("-inf")
        v, i = top_items(sc, width)
        s_all.append(v.numpy())
        i_all.append(i.numpy())
    return TopK(np.concatenate(s_all), np.concatenate(i_all))


def sweep(scorer: FusedScorer, split: EvalSplit, data: Interactions, held_out: Interactions,
          categories: np.ndarray) -> pd.DataFrame:
    """NDCG@20, Recall@20 and the measures of every grid setting, on ``held_out`` after fitting on ``data``."""
    users = np.unique(held_out.users)
    vectors = split_vectors(scorer, split)
    rr = Reranker(vectors, np.bincount(data.items, minlength=data.n_items), categories)
    pool = pools(scorer, users, data.by_user(), pool_size(K, data.n_items, 0.5, 0.5))
    tg = targets_by_user(held_out)
    targets = [tg[u] for u in users]
    rows = []
    for lam, beta, by in GRID:
        t0 = time.perf_counter()
        out = rr.rerank(pool, K, lam, beta, by)
        secs = time.perf_counter() - t0
        top = np.where(np.isfinite(out.top.scores), out.top.items, -1)
        rec, ndcg = recall_ndcg(top, targets, K)
        rows.append({"diversity": lam, "long_tail": beta, "by": by, f"ndcg@{K}": float(np.nanmean(ndcg)),
                     f"recall@{K}": float(np.nanmean(rec)),
                     **beyond_accuracy(top, data, K, categories=categories, vectors=vectors),
                     "rerank_seconds": secs, "users": len(users)})
    return pd.DataFrame(rows)


#: a setting becomes the default only when it beats the plain list's validation NDCG@20 by more than this share
#: (one seed, ~600 validation users: smaller differences are noise)
MARGIN = 0.01


def choose(val: pd.DataFrame, margin: float = MARGIN) -> dict[str, Any]:
    """The setting with the best validation NDCG@20 when it beats the plain top-k by more than ``margin`` (relative);
    else off. Either way the best setting and its figures are kept."""
    plain = float(val[(val["diversity"] == 0) & (val["long_tail"] == 0)].iloc[0][f"ndcg@{K}"])
    others = val[(val["diversity"] > 0) | (val["long_tail"] > 0)]
    best = others.loc[others[f"ndcg@{K}"].idxmax()]
    best_by = str(_by(others).loc[best.name])
    out = {"plain_ndcg": plain, "best_diversity": float(best["diversity"]), "best_long_tail": float(best["long_tail"]),
           "best_by": best_by, "best_ndcg": float(best[f"ndcg@{K}"]), "margin": margin}
    if best[f"ndcg@{K}"] > plain * (1 + margin):
        return {**out, "diversity": float(best["diversity"]), "long_tail": float(best["long_tail"]),
                "diversity_by": best_by, "off": False}
    return {**out, "diversity": 0.0, "long_tail": 0.0, "diversity_by": "vectors", "off": True}


def throughput(scorer: FusedScorer, diversity: float, long_tail: float, repeats: int = 3,
               diversity_by: str = "vectors") -> dict[str, Any]:
    """Users per second of the Parquet export of every user's top 100, plain and re-ranked (best of ``repeats``, the
    two alternating so that both see the same machine)."""
    from kgrec.fusion.export import export

    rec = scorer.recommender
    out: dict[str, Any] = {}
    best = {"plain": float("inf"), "reranked": float("inf")}
    cpu = dict(best)
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            for name, (lam, beta) in (("plain", (0.0, 0.0)), ("reranked", (diversity, long_tail))):
                t0, c0 = time.perf_counter(), time.process_time()
                rep = export(rec, Path(tmp) / f"{name}-{r}.parquet", 100, progress=False, diversity=lam, long_tail=beta,
                             diversity_by=diversity_by)
                best[name] = min(best[name], time.perf_counter() - t0)
                cpu[name] = min(cpu[name], time.process_time() - c0)
    for name, secs in best.items():
        out[f"{name}_users_per_s"] = rep["users"] / secs
        out[f"{name}_seconds"] = secs
        out[f"{name}_cpu_seconds"] = cpu[name]
    out["ratio"] = out["reranked_users_per_s"] / out["plain_users_per_s"]
    # the same ratio by this process's CPU time: on a shared machine, less moved by the other jobs than the wall time
    out["cpu_ratio"] = cpu["plain"] / cpu["reranked"]
    out["diversity"], out["long_tail"], out["by"] = diversity, long_tail, diversity_by
    return out


#: the settings ``--throughput-only`` measures: (λ, β, what "alike" means for λ)
THROUGHPUT_SETTINGS: tuple[tuple[float, float, str], ...] = (
    (0.3, 0.0, "vectors"), (0.3, 0.0, "categories"), (0.3, 0.0, "both"), (0.0, 0.3, "vectors"), (0.3, 0.3, "vectors"))


def throughput_of_model_dir(model: Path, settings: tuple[tuple[float, float, str], ...] = THROUGHPUT_SETTINGS,
                            repeats: int = 3, store: Path | None = None) -> list[dict[str, Any]]:
    """:func:`throughput` of each setting on a saved model directory (e.g. ``kgrec demo``'s ``STORE/models/default``),
    loaded without its store (no live checks), so the export's cost without a fresh training. The items' categories
    (``diversity_by`` categories or both) are read once from ``store`` (default: the store the folder sits in)."""
    from kgrec.fusion.recommender import Recommender
    from kgrec.graph import open_store

    rec = Recommender.load(model)
    if any(by != "vectors" and lam > 0 for lam, _, by in settings):
        with open_store(store if store is not None else model.parents[1]) as st:
            rec.attach(st)
            rec.category_matrix()  # read from the store once, kept by the recommender
            rec.attach(None)  # export without the store: the same setup as the plain export
    holder = FusedScorer("fused (kgrec train)", fused_config())
    holder.recommender = rec
    return [{**throughput(holder, lam, beta, repeats, by), "model": str(model)} for lam, beta, by in settings]


def throughput_of_catalogue(n_items: int, n_users: int = 2000, dim: int = 576, repeats: int = 3,
                            seed: int = 0) -> list[dict[str, Any]]:
    """:func:`throughput` of the vector settings (λ = 0.3, β = 0.3, both) on a ranking-only recommender over random
    vectors (``Recommender.from_vectors``: ``n_items`` items, ``n_users`` users with 20 seen items each, ``dim``
    dimensions as the demo model's fused + co-occurrence vectors): how the ratio moves with the catalogue, since the
    plain export's cost grows with it and the re-ranker's (a fixed pool per user) does not."""
    from kgrec.fusion.recommender import Recommender

    g = np.random.default_rng(seed)
    items = g.standard_normal((n_items, dim), dtype=np.float32)
    users = g.standard_normal((n_users, dim), dtype=np.float32)
    seen_u = np.repeat(np.arange(n_users), 20)
    seen_i = g.integers(0, n_items, len(seen_u))
    rec = Recommender.from_vectors([f"u{u}" for u in range(n_users)], users, [f"i{i}" for i in range(n_items)], items,
                                   history_index=(seen_u, seen_i))
    holder = FusedScorer("from_vectors", fused_config())
    holder.recommender = rec
    settings = [s for s in THROUGHPUT_SETTINGS if s[2] == "vectors"]
    return [{**throughput(holder, lam, beta, repeats, by), "items": n_items, "users": n_users, "dim": dim}
            for lam, beta, by in settings]


def plot(test: pd.DataFrame, runs: pd.DataFrame, path: Path, where: str = "test") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    lam = test[(test["long_tail"] == 0) & (_by(test) == "vectors")]
    genre = test[(test["long_tail"] == 0) & ((_by(test) == "categories") | (test["diversity"] == 0))]
    beta = test[test["diversity"] == 0]
    for ax, x, label in ((axes[0], f"ild_categories@{K}", "intra-list diversity ILD@20 (1 − Jaccard of genres)"),
                         (axes[1], f"long_tail@{K}", "long-tail share of the top 20")):
        ax.plot(lam[x], lam[f"ndcg@{K}"], "o-", label="fused + MMR by item vectors, λ sweep (β = 0)")
        for _, r in lam.iterrows():
            ax.annotate(f"{r['diversity']:g}", (r[x], r[f"ndcg@{K}"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        if len(genre) > 1:
            ax.plot(genre[x], genre[f"ndcg@{K}"], "v-", label="fused + MMR by genres, λ sweep (β = 0)")
            for _, r in genre.iterrows():
                if r["diversity"] > 0:
                    ax.annotate(f"{r['diversity']:g}", (r[x], r[f"ndcg@{K}"]), fontsize=7, xytext=(3, -9),
                                textcoords="offset points")
        ax.plot(beta[x], beta[f"ndcg@{K}"], "s-", label="fused + popularity penalty, β sweep (λ = 0)")
        for _, r in beta.iterrows():
            if r["long_tail"] > 0:
                ax.annotate(f"{r['long_tail']:g}", (r[x], r[f"ndcg@{K}"]), fontsize=7, xytext=(3, -9), textcoords="offset points")
        for name, marker in (("EASE", "^"), ("SASRec", "D")):
            row = runs[runs["model"] == name]
            if len(row):
                ax.plot(row[x], row[f"ndcg@{K}"], marker, markersize=9, label=name)
        ax.set_xlabel(label)
        ax.set_ylabel(f"NDCG@20 ({where})")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("MovieLens latest-small: accuracy against variety and the long tail (one seed)")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)


def fmt_sweep(df: pd.DataFrame) -> pd.DataFrame:
    cols = ["diversity", "by", "long_tail", f"ndcg@{K}", f"recall@{K}", f"ild_categories@{K}", f"ild_vectors@{K}",
            f"novelty@{K}", f"long_tail@{K}", f"gini@{K}", f"coverage@{K}"]
    out = df.assign(by=_by(df))[cols].copy()
    out.loc[out["diversity"] == 0, "by"] = "–"
    for c in cols[3:]:
        digits = 4 if c.startswith(("ndcg", "recall")) else 3
        out[c] = out[c].map(lambda v, d=digits: f"{v:.{d}f}")
    out["diversity"] = out["diversity"].map(lambda v: f"{v:g}")
    out["long_tail"] = out["long_tail"].map(lambda v: f"{v:g}")
    return out.rename(columns={"diversity": "λ (diversity)", "by": "λ by", "long_tail": "β (long_tail)", f"long_tail@{K}": f"long-tail share@{K}"})


ESSENTIAL = ("Popularity", "ItemKNN", "EASE", "SASRec", "fused (kgrec train)")


def reused_models(selection: Path | None) -> list[ModelSpec]:
    """The quality benchmark's rows; with ``selection`` (a ``quality-<data>.json``), each with the parameters and
    epoch count its validation selection chose there (no grid, no early stopping: one fit per row), essential rows
    (:data:`ESSENTIAL`: the curves' points and the fused model) first."""
    models = default_models()
    if selection is not None:
        chosen = {r["model"]: ast.literal_eval(r["params"]) if r.get("params") else {}
                  for r in json.loads(selection.read_text())["runs"] if r.get("seed") == 0}
        models = [ModelSpec(m.name, functools.partial(m.factory, **chosen[m.name]) if chosen.get(m.name) else m.factory,
                            seeded=m.seeded, uses_content=m.uses_content) if m.name in chosen else m for m in models]
    # essential rows first; a row without a reused choice (it selects on its grid: slowest) last
    return sorted(models, key=lambda m: (m.name not in ESSENTIAL, len(m.grid) > 1 or m.early_stopping))


def report_text(result: dict[str, Any]) -> str:
    """The docs/benchmarks.md section of a result (``tradeoff-<data>.json``), from whatever parts it holds."""
    meta = result["meta"]
    val = pd.DataFrame(result.get("validation", []))
    test = pd.DataFrame(result.get("test", []))
    runs = pd.DataFrame(result.get("runs", []))
    tp = result.get("throughput") or {}
    name = meta["data"].replace("/", "-")
    reuse = (f" Each model row fit once with the parameters and epochs its validation selection chose in "
             f"`{Path(meta['reused_selection']).name}`." if meta.get("reused_selection") else "")
    parts = [f"Data: {meta['data']}; seed {meta['seed']}; machine {meta['machine']}; date {meta['date']}; code "
             f"{meta['code']}; whole run {meta.get('total_seconds', float('nan')) / 60:.1f} min.{reuse}"]
    if len(val):
        parts.append(f"Validation (the fused model fit on train; each validation user's list re-ranked from their top "
                     f"{pool_size(K, 10**9, 0.5, 0.5)}; NDCG@20 on validation):\n\n" + markdown(fmt_sweep(val)))
        d = choose(val)
        gain = f"{d['best_ndcg'] - d['plain_ndcg']:+.4f} ({(d['best_ndcg'] / d['plain_ndcg'] - 1) * 100:+.1f}%)"
        def setting(lam: float, b: float, by: str) -> str:
            return f"λ={lam:g}" + (f" by {by}" if lam > 0 and by != "vectors" else "") + f", β={b:g}"

        best = setting(d["best_diversity"], d["best_long_tail"], d.get("best_by", "vectors"))
        above = val[((val["diversity"] > 0) | (val["long_tail"] > 0)) & (val[f"ndcg@{K}"] >= d["plain_ndcg"])]
        up = [f"{setting(lam, b, by)} ({n - d['plain_ndcg']:+.4f})"
              for lam, b, by, n in zip(above["diversity"], above["long_tail"], _by(above), above[f"ndcg@{K}"],
                                       strict=True)
              if setting(lam, b, by) != best]
        if d["off"]:
            parts.append(f"**Default: off** (`diversity=0`, `long_tail=0`). The best setting on validation, {best}, changes "
                         f"NDCG@20 by {gain} against the plain list's {d['plain_ndcg']:.4f}: less than the {d['margin']:.0%} "
                         f"a setting must gain to become the default (one seed); "
                         + (f"the others at or above plain: {', '.join(up)}; " if up else "")
                         + "every other setting costs NDCG.")
        else:
            parts.append(f"**Default: {best}**: validation NDCG@20 {d['best_ndcg']:.4f} against {d['plain_ndcg']:.4f} "
                         f"plain ({gain}).")
    points = pd.DataFrame(result.get("points", []))
    if len(points):
        cols = ["model", f"ndcg@{K}", f"recall@{K}", f"ild_categories@{K}", f"ild_vectors@{K}", f"novelty@{K}", f"long_tail@{K}",
                f"gini@{K}", f"coverage@{K}"]
        tab = points[cols].copy()
        for c in cols[1:]:
            tab[c] = tab[c].map(lambda v, d=4 if c.startswith(("ndcg", "recall")) else 3: f"{v:.{d}f}")
        of = points["ild_vectors_of"].iloc[0]
        parts.append("The baselines on the same validation lists (fit on train; ILD by vectors with "
                     + (of if of else "no vectors: empty") + "):\n\n" + markdown(tab))
        parts.append(f"![trade-off](img/tradeoff-{name}.png)")
    if len(runs):
        summary = BenchmarkResult(runs, pd.DataFrame(), meta.get("split", {})).summary()
        parts.append("Every model row on test (one seed; ILD by vectors uses the fused row's item vectors for every "
                     "model):\n\n" + markdown(beyond_table(summary)))
    if len(test):
        parts.append("The fused model (fit on train + validation) re-ranked on test:\n\n" + markdown(fmt_sweep(test)))
        parts.append(f"![trade-off](img/tradeoff-{name}.png)")
    tps = result.get("throughput_runs", [])
    if tps:
        rows = [f"| {t['diversity']:g} | {t.get('by', 'vectors') if t['diversity'] > 0 else '–'} | {t['long_tail']:g} | "
                f"{t['plain_users_per_s']:.0f} | {t['reranked_users_per_s']:.0f} | {t['ratio']:.2f} |" for t in tps]
        parts.append("Export throughput (`--throughput-only`: every user's top 100 to Parquet, best of 3, plain and re-ranked "
                     "alternating on the same model):\n\n| λ | λ by | β | plain users/s | re-ranked users/s | ratio |\n"
                     "|---|---|---|---|---|---|\n" + "\n".join(rows))
    if tp:
        parts.append(f"Export throughput (all {meta.get('split', {}).get('users', '?')} users, top 100, Parquet, best of 3, "
                     f"same model, same run): plain {tp['plain_users_per_s']:.0f} users/s, re-ranked "
                     f"(λ={tp['diversity']:g}, β={tp['long_tail']:g}) {tp['reranked_users_per_s']:.0f} users/s: ratio "
                     f"{tp['ratio']:.2f}.")
    return "\n\n".join(parts) + "\n"


def points_on_validation(result_path: Path, movielens: str, selection: Path, vectors_dir: Path | None, seed: int) -> None:
    """The baselines' points on *validation* (fit on train, as the fused curve of ``result_path``), all measures,
    saved into ``result_path`` after each model (``points``), and the plot of the validation curves with them.

    ILD by vectors needs item vectors; with ``vectors_dir`` (a saved model's folder) they are that model's fused
    item vectors (by item id), named in ``ild_vectors_of``."""
    result = json.loads(result_path.read_text())
    ds = loaders.movielens(movielens)
    split = make_split(ds)
    categories = category_matrix(ds.item_categories, split.vocabs)
    vectors = None
    if vectors_dir is not None:
        with np.load(vectors_dir / "vectors.npz") as z:
            items = np.array(similarity_vectors({k: z[k] for k in ("items", "item_cooc") if k in z.files}))
        ids = json.loads((vectors_dir / "vocabs.json").read_text())["item"]
        pos = {str(i): n for n, i in enumerate(ids if isinstance(ids, list) else ids["ids"])}
        vectors = np.zeros((len(split.vocabs.item), items.shape[1]), dtype=np.float32)
        for n, i in enumerate(np.asarray(split.vocabs.item.ids).astype(str)):
            if i in pos:
                vectors[n] = items[pos[i]]
    users = np.unique(split.val.users)
    tg = targets_by_user(split.val)
    targets = [tg[u] for u in users]
    points = result.setdefault("points", [])
    for m in reused_models(selection):
        if m.name not in ("Popularity", "ItemKNN", "EASE", "SASRec"):
            continue
        t0 = time.perf_counter()
        ctx = FitContext(data=split.train, validation=None, seed=seed, progress=False, dataset=None,
                         user_ids=split.vocabs.user.ids, item_ids=split.vocabs.item.ids)
        model = m.factory().fit(ctx)
        top = full_ranking_topk(model.scores, users, split.train.by_user(), K)
        rec, ndcg = recall_ndcg(top, targets, K)
        points.append({"model": m.name, f"ndcg@{K}": float(np.nanmean(ndcg)), f"recall@{K}": float(np.nanmean(rec)),
                       **beyond_accuracy(top, split.train, K, categories=categories, vectors=vectors),
                       "ild_vectors_of": str(vectors_dir or ""), "fit_seconds": time.perf_counter() - t0})
        write_text_atomic(result_path, json.dumps(result, indent=2, default=float) + "\n")
        log.info("validation point %s: %s", m.name, points[-1])
        name = ds.name.replace("/", "-")
        plot(pd.DataFrame(result["validation"]), pd.DataFrame(points), REPO / "docs" / "img" / f"tradeoff-{name}.png",
             where="validation")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--movielens", default=os.environ.get("KGREC_DATA"), help="folder holding ml-latest-small/")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", nargs="+", default=None, help="quality-benchmark rows for the table (default: all)")
    ap.add_argument("--reuse-selection", type=Path, default=None,
                    help="a quality-<data>.json: fit each row once with the parameters its validation selection chose")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    ap.add_argument("--write-docs", action="store_true")
    ap.add_argument("--points-on-validation", type=Path, default=None, metavar="JSON",
                    help="add the baselines' validation points to a result's validation sweep (and plot them)")
    ap.add_argument("--vectors-from", type=Path, default=None, metavar="MODEL_DIR",
                    help="with --points-on-validation: the item vectors of ILD by vectors")
    ap.add_argument("--from-results", type=Path, default=None, metavar="JSON", help="print the section of a finished result")
    ap.add_argument("--throughput-only", type=Path, default=None, metavar="MODEL_DIR",
                    help="only measure the export throughput on a saved model (plain against λ=0.3 by vectors, by "
                         "categories, by both, β=0.3, λ=0.3 + β=0.3), printed and added to the results JSON")
    ap.add_argument("--store", type=Path, default=None,
                    help="with --throughput-only: the store of the items' categories (default: the model's store)")
    ap.add_argument("--throughput-catalogue", type=int, nargs="+", default=None, metavar="N_ITEMS",
                    help="only measure the export throughput on random vectors of catalogues of N_ITEMS items (2,000 "
                         "users, 576 dimensions; vector settings only), printed and added to the results JSON")
    ap.add_argument("--repeats", type=int, default=3, help="with --throughput-only: runs of each export (best kept)")
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if a.points_on_validation is not None:
        points_on_validation(a.points_on_validation, a.movielens, a.reuse_selection, a.vectors_from, a.seed)
        return
    if a.from_results is not None:
        print(report_text(json.loads(a.from_results.read_text())), flush=True)
        return
    if a.throughput_only is not None or a.throughput_catalogue:
        runs = (throughput_of_model_dir(a.throughput_only, repeats=a.repeats, store=a.store)
                if a.throughput_only is not None else
                [r for n in a.throughput_catalogue for r in throughput_of_catalogue(n, repeats=a.repeats)])
        for r in runs:
            print(json.dumps(r), flush=True)
        path = Path(a.out) / "tradeoff-throughput.json"  # every run kept: on a shared machine one run is not enough
        done = json.loads(path.read_text()) if path.is_file() else {"runs": []}
        done["runs"].append({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "code": code_version(),
                             "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch threads "
                                        f"{torch.get_num_threads()}", "load_average": os.getloadavg()[0],
                             "settings": runs})
        Path(a.out).mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(done, indent=2, default=float) + "\n")
        return
    if not a.movielens:
        ap.error("set KGREC_DATA or give --movielens ROOT")
    t_all = time.perf_counter()
    ds = loaders.movielens(a.movielens)
    split = make_split(ds)
    assert_no_leak(split)
    categories = category_matrix(ds.item_categories, split.vocabs)
    name = ds.name.replace("/", "-")
    meta: dict[str, Any] = {
        "data": ds.name, "seed": a.seed, "grid": GRID, "reused_selection": str(a.reuse_selection or ""),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}",
        "date": time.strftime("%Y-%m-%d", time.gmtime()), "code": code_version()}
    result: dict[str, Any] = {"meta": meta}
    Path(a.out).mkdir(parents=True, exist_ok=True)

    def save() -> None:
        meta["total_seconds"] = time.perf_counter() - t_all
        write_text_atomic(Path(a.out) / f"tradeoff-{name}.json", json.dumps(result, indent=2, default=float) + "\n")

    # 1. validation: fit on train, sweep on validation, choose
    t0 = time.perf_counter()
    ctx = FitContext(data=split.train, validation=None, seed=a.seed, progress=False, dataset=split.dataset_of(split.train_frame),
                     user_ids=split.vocabs.user.ids, item_ids=split.vocabs.item.ids)
    val_model = FusedScorer("fused (kgrec train)", fused_config()).fit(ctx)
    val = sweep(val_model, split, split.train, split.val, categories)
    default = choose(val)
    result.update(default=default, validation=val.to_dict("records"))
    save()
    log.info("validation sweep done in %.0f s; default %s", time.perf_counter() - t0, default)
    print(markdown(fmt_sweep(val)), flush=True)

    # 2. test: the quality benchmark's rows (this seed), essential ones first; the fused row re-ranked with the grid
    models = reused_models(a.reuse_selection)
    if a.models:
        models = [m for m in models if m.name in a.models]
    first = [m for m in models if m.name in ESSENTIAL]
    res = run_benchmark(split, first, seeds=[a.seed])
    fused = res.models.get("fused (kgrec train)")
    test = sweep(fused, split, split.fit, split.test, categories) if fused is not None else pd.DataFrame()
    tp = (throughput(fused, default["diversity"] or 0.3, default["long_tail"],
                     diversity_by=default["diversity_by"] if default["diversity"] else "vectors")
          if fused is not None else {})
    result.update(split=res.split, test=test.to_dict("records"), runs=res.runs.to_dict("records"), throughput=tp)
    meta["split"] = res.split
    save()
    png = REPO / "docs" / "img" / f"tradeoff-{name}.png"
    if len(test):
        plot(test, res.runs, png)
    # the other rows, measured with the same fused vectors
    runs = res.runs
    rest = [m for m in models if m.name not in ESSENTIAL]
    if rest:
        more = run_benchmark(split, rest, seeds=[a.seed])
        extra = more.runs.copy()
        if fused is not None:
            vecs = split_vectors(fused, split)
            fit, users = split.fit, np.unique(split.test.users)
            for r, mname in enumerate(extra["model"]):
                top = full_ranking_topk(more.models[mname].scores, users, fit.by_user(), K)
                extra.loc[r, f"ild_vectors@{K}"] = ild_vectors(top, vecs, K)
                extra.loc[r, "ild_vectors_of"] = "fused (kgrec train)"
        runs = pd.concat([runs, extra], ignore_index=True)
        result["runs"] = runs.to_dict("records")
        save()
    text = report_text(result)
    print(text, flush=True)
    write_text_atomic(Path(a.out) / f"tradeoff-{name}.md", text)
    if a.write_docs:
        doc = REPO / "docs" / "benchmarks.md"
        cur = doc.read_text()
        section = f"{BEGIN}\n{text}\n{END}"
        if BEGIN in cur and END in cur:
            cur = cur[: cur.index(BEGIN)] + section + cur[cur.index(END) + len(END) :]
        else:
            cur = cur.rstrip() + "\n\n## Beyond accuracy: diversity, novelty, long tail\n\n" + section + "\n"
        write_text_atomic(doc, cur)


if __name__ == "__main__":
    main()
