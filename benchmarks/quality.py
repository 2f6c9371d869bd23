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
import logging
import os
import platform
import time
from pathlib import Path

from kgrec import loaders
from kgrec._atomic import write_text_atomic
from kgrec.evaluation.benchmark import default_models, run_benchmark
from kgrec.evaluation.report import bucket_frame, cold_note, comparison, markdown, plot_quality, result_json, summary_table
from kgrec.evaluation.split import assert_no_leak, make_split

REPO = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- quality:begin -->", "<!-- quality:end -->"


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
    write_text_atomic(out / f"quality-{name}.json", result_json(res, meta))
    png = REPO / "docs" / "img" / f"quality-{name}.png"
    png.parent.mkdir(parents=True, exist_ok=True)
    tmp = png.with_suffix(".tmp.png")
    plot_quality(res).savefig(tmp, dpi=110)
    os.replace(tmp, png)
    text = (f"Data: {ds.name} ({res.split['users']} users, {res.split['items']} items; train {res.split['train']}, "
            f"validation {res.split['validation']}, test {res.split['test']} interactions of {res.split['test_users']} users). "
            f"Seeds {a.seeds}. Machine: {meta['machine']}. Date {meta['date']}. Whole run: {total / 60:.1f} min.\n\n"
            + markdown(summary_table(res)) + "\n\n" + "\n".join(comparison(res)) + "\n\n" + cold_note(res) + "\n\nNDCG@20 by user activity "
            "(interactions in fit):\n\n" + markdown(bucket_frame(res), index=True)
            + f"\n\n![quality](img/quality-{name}.png)\n")
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
