"""Recommendation quality: kgrec's fused model against strong baselines, one protocol, one run.

    python -m benchmarks.quality --movielens ../shared/data [--seeds 0 1 2] [--write-docs]
    python -m benchmarks.quality --interactions I.csv --items M.csv [--triples T.csv] [--tags G.csv]

Protocol (docs/evaluation.md): chronological per-user split (last 20% test, last 10% of the
rest validation), selection on validation only, full ranking over all items with the items
seen in training excluded, Recall@20 / NDCG@20 overall, on cold items and by user activity,
item coverage. Writes ``benchmarks/results/quality-<data>.json`` and a plot; with
``--write-docs`` also the table and plot into docs/benchmarks.md (between markers).
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

from kgrec import loaders
from kgrec._atomic import write_text_atomic
from kgrec.evaluation.benchmark import BenchmarkResult, default_models, run_benchmark
from kgrec.evaluation.metrics import ACTIVITY_BUCKETS, bucket_name
from kgrec.evaluation.split import assert_no_leak, make_split

REPO = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- quality:begin -->", "<!-- quality:end -->"


def table(res: BenchmarkResult) -> str:
    s = res.summary()
    best_base = s[~s["model"].str.startswith("fused")]
    lines = ["| model | Recall@20 | NDCG@20 | cold Recall@20 | cold NDCG@20 | coverage@20 | seeds | fit s | s/epoch |",
             "|---|---|---|---|---|---|---|---|---|"]

    def ms(row: pd.Series, m: str) -> str:
        sd = row[f"{m}_std"]
        return f"{row[f'{m}_mean']:.4f}" + (f" ± {sd:.4f}" if row["seeds"] > 1 and np.isfinite(sd) else "")

    for _, r in s.iterrows():
        spe = "" if not np.isfinite(r["seconds_per_epoch"]) else f"{r['seconds_per_epoch']:.2f}"
        lines.append(f"| {r['model']} | {ms(r, 'recall@20')} | {ms(r, 'ndcg@20')} | {ms(r, 'cold_recall@20')} | "
                     f"{ms(r, 'cold_ndcg@20')} | {r['coverage@20_mean']:.3f} | {int(r['seeds'])} | {r['fit_seconds']:.0f} | {spe} |")
    fused = s[s["model"].str.startswith("fused")]
    if len(fused) and len(best_base):
        f = fused.iloc[0]
        for m in ("ndcg@20", "recall@20"):
            b = best_base.loc[best_base[f"{m}_mean"].idxmax()]
            lines.append("")
            lines.append(f"Fused vs the best other model on {m} ({b['model']}): {f[f'{m}_mean'] / b[f'{m}_mean']:.3f}x "
                         f"(difference {f[f'{m}_mean'] - b[f'{m}_mean']:+.4f}; seed std fused {f[f'{m}_std']:.4f}, "
                         f"{b['model']} {0.0 if not np.isfinite(b[f'{m}_std']) else b[f'{m}_std']:.4f}).")
    return "\n".join(lines)


def bucket_table(res: BenchmarkResult) -> str:
    names = [bucket_name(lo, hi) for lo, hi in ACTIVITY_BUCKETS]
    g = res.runs.groupby("model", sort=False)
    users = res.runs.iloc[0]
    lines = ["| model | " + " | ".join(f"NDCG@20, {n} interactions ({int(users[f'users[{n}]'])} users)" for n in names) + " |",
             "|---|" + "---|" * len(names)]
    for model, grp in g:
        lines.append(f"| {model} | " + " | ".join(f"{grp[f'ndcg@20[{n}]'].mean():.4f}" for n in names) + " |")
    return "\n".join(lines)


def plot(res: BenchmarkResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = res.summary()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    x = np.arange(len(s))
    for ax, m in zip(axes[:2], ("ndcg@20", "cold_recall@20")):
        ax.bar(x, s[f"{m}_mean"], yerr=s[f"{m}_std"].fillna(0), color=["#c44" if n.startswith("fused") else "#579" for n in s["model"]])
        ax.set_xticks(x, s["model"], rotation=35, ha="right", fontsize=8)
        ax.set_title(m.replace("_", " "))
    names = [bucket_name(lo, hi) for lo, hi in ACTIVITY_BUCKETS]
    for model, grp in res.runs.groupby("model", sort=False):
        axes[2].plot(names, [grp[f"ndcg@20[{n}]"].mean() for n in names], marker="o", label=model,
                     linewidth=2.5 if model.startswith("fused") else 1)
    axes[2].set_title("NDCG@20 by user activity (interactions in training)")
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_argument_group("data (MovieLens or bring-your-own files)")
    src.add_argument("--movielens", metavar="ROOT", help="folder holding ml-latest-small/ (downloaded when missing)")
    src.add_argument("--interactions")
    src.add_argument("--items")
    src.add_argument("--triples")
    src.add_argument("--tags")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--models", nargs="+", default=None, help="subset of model names (default: all)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    ap.add_argument("--write-docs", action="store_true", help="write the table and plot into docs/benchmarks.md")
    ap.add_argument("--progress", action="store_true")
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if a.movielens:
        ds = loaders.movielens(a.movielens)
    elif a.interactions and a.items:
        ds = loaders.load_files(a.interactions, a.items, a.triples, a.tags)
    else:
        ap.error("give --movielens ROOT, or --interactions and --items")
    t0 = time.perf_counter()
    split = make_split(ds)
    assert_no_leak(split)
    models = default_models()
    if a.models:
        unknown = set(a.models) - {m.name for m in models}
        if unknown:
            ap.error(f"unknown models {sorted(unknown)}; choose from {[m.name for m in models]}")
        models = [m for m in models if m.name in a.models]
    res = run_benchmark(split, models, seeds=a.seeds, progress=a.progress)
    total = time.perf_counter() - t0
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    name = ds.name.replace("/", "-")
    meta = {"data": ds.name, "split": res.split, "seeds": a.seeds, "total_seconds": total,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch threads {__import__('torch').get_num_threads()}",
            "date": time.strftime("%Y-%m-%d", time.gmtime())}
    write_text_atomic(out / f"quality-{name}.json", json.dumps(
        {"meta": meta, "runs": res.runs.to_dict("records"), "selection": res.selection.to_dict("records"),
         "summary": res.summary().to_dict("records")}, indent=2, default=float) + "\n")
    png = REPO / "docs" / "img" / f"quality-{name}.png"
    png.parent.mkdir(parents=True, exist_ok=True)
    plot(res, png)
    text = (f"Data: {ds.name} ({res.split['users']} users, {res.split['items']} items; train {res.split['train']}, "
            f"validation {res.split['validation']}, test {res.split['test']} interactions of {res.split['test_users']} users). "
            f"Seeds {a.seeds}. Machine: {meta['machine']}. Date {meta['date']}. Whole run: {total / 60:.1f} min.\n\n"
            + table(res) + "\n\n" + bucket_table(res) + f"\n\n![quality](img/quality-{name}.png)\n")
    print(text)
    if a.write_docs:
        doc = REPO / "docs" / "benchmarks.md"
        cur = doc.read_text()
        section = f"{BEGIN}\n{text}\n{END}"
        if BEGIN in cur and END in cur:
            cur = cur[: cur.index(BEGIN)] + section + cur[cur.index(END) + len(END) :]
        else:
            cur = cur.rstrip() + "\n\n" + section + "\n"
        write_text_atomic(doc, cur)


if __name__ == "__main__":
    main()
