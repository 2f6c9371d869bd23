"""Recommendation quality: kgrec's fused model against strong baselines, one protocol, every data set.

    python -m benchmarks.quality --datasets movielens lastfm-hetrec2011 instacart-sample [--seeds 0 1 2] [--write-docs]
    python -m benchmarks.quality --datasets movielens ml-100k lastfm-hetrec2011 instacart-sample --jobs 2
    python -m benchmarks.quality --movielens ../shared/data [--seeds 0 1 2] [--write-docs]
    python -m benchmarks.quality --interactions I.csv --items M.csv [--triples T.csv] [--tags G.csv]
    python -m benchmarks.quality --from-results benchmarks/results/quality-NAME.json --write-docs

``--datasets`` names data sets: ``movielens`` (MovieLens latest-small under ``$KGREC_DATA``, downloaded
when missing) and the converted sets of ``benchmarks/datasets/`` (``lastfm-hetrec2011``,
``instacart-sample``), read from ``--data-home`` (default ``$KGREC_DATASETS`` or /work/datasets) where
their converters write them; each runs in turn, one after the other, or with ``--jobs N`` in N processes at once
(one data set per process, one thread each: ``OMP_NUM_THREADS=1``; a log per data set beside its results; the docs
are written by this process once all have finished).

Protocol (docs/evaluation.md): chronological per-user split (last 20% test, last 10% of the
rest validation), selection on validation only, full ranking over all items with the items
seen in training excluded, Recall@20 / NDCG@20 overall, on cold items and by user activity,
item coverage. Writes ``benchmarks/results/quality-<data>.json`` and a plot per data set; with
``--write-docs`` also each data set's table and plot into docs/benchmarks.md (between its markers).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from kgrec import loaders
from kgrec._atomic import write_text_atomic
from kgrec.evaluation.benchmark import BenchmarkResult, ModelSpec, default_models, run_benchmark
from kgrec.evaluation.beyond import beyond_table
from kgrec.evaluation.report import (
    bucket_frame,
    cold_note,
    comparison,
    load_result,
    markdown,
    plot_quality,
    result_json,
    summary_table,
)
from kgrec.evaluation.split import assert_no_leak, make_split
from kgrec.loaders.schema import Dataset

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
#: the converted data sets: name → (converter module, whether it has a tags table, a triples table)
CONVERTED: dict[str, tuple[str, bool, bool]] = {
    "lastfm-hetrec2011": ("benchmarks.datasets.lastfm", True, False),
    "instacart-sample": ("benchmarks.datasets.instacart", False, False),
    "ml-100k": ("benchmarks.datasets.ml100k", False, True),
}
DATASETS = ("movielens", *CONVERTED)


def code_version() -> str:
    """The commit measured (``git rev-parse``), marked ``+changes`` when the checkout differs from it;
    ``$KGREC_CODE`` when set (e.g. for a copy of the tree that is not a git checkout)."""
    if os.environ.get("KGREC_CODE"):
        return os.environ["KGREC_CODE"]
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout; set KGREC_CODE)"
    return head + ("+changes" if dirty else "")


def markers(name: str) -> tuple[str, str]:
    """The docs/benchmarks.md markers of one data set's section (MovieLens keeps the original ones)."""
    if name == "ml-latest-small":
        return "<!-- quality:begin -->", "<!-- quality:end -->"
    return f"<!-- quality-{name}:begin -->", f"<!-- quality-{name}:end -->"


def load_named(name: str, data_home: Path, movielens_root: str | None) -> Dataset:
    """One of :data:`DATASETS`; a converted set missing from ``data_home`` is an error naming its converter."""
    if name == "movielens":
        root = movielens_root or os.environ.get("KGREC_DATA")
        if not root:
            raise SystemExit("--datasets movielens: set KGREC_DATA (the folder holding ml-latest-small/) or give --movielens ROOT")
        return loaders.movielens(root)
    module, has_tags, has_triples = CONVERTED[name]
    folder = data_home / name
    if not (folder / "interactions.csv").exists():
        raise SystemExit(f"{folder / 'interactions.csv'}: not found; convert the data set first: "
                         f"python -m {module} --out {folder} (see benchmarks/datasets/README.md)")
    return loaders.load_files(folder / "interactions.csv", folder / "items.csv",
                              folder / "triples.csv" if has_triples else None,
                              folder / "tags.csv" if has_tags else None, name=name)


def run_one(ds: Dataset, models: list[ModelSpec], seeds: list[int], out: Path, progress: bool,
            write_docs: bool) -> str:
    """Benchmark ``ds``; write its result JSON and plot, and (``write_docs``) its section of docs/benchmarks.md."""
    t0 = time.perf_counter()
    split = make_split(ds)
    assert_no_leak(split)
    res = run_benchmark(split, models, seeds=seeds, progress=progress)
    total = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    name = ds.name.replace("/", "-")
    meta = {"data": ds.name, "split": res.split, "seeds": seeds, "total_seconds": total,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch threads {__import__('torch').get_num_threads()}",
            "date": time.strftime("%Y-%m-%d", time.gmtime()), "code": code_version()}
    write_text_atomic(out / f"quality-{name}.json", result_json(res, meta))
    return write_outputs(res, meta, write_docs, out)


def model_minutes(res: BenchmarkResult) -> tuple[float, float]:
    """Minutes the result's models took as recorded: (selection on validation, the final fits of every seed). The
    whole run is their sum plus loading, splitting and scoring."""
    sel = float(res.selection["seconds"].sum()) if "seconds" in res.selection else 0.0
    fit = float(res.runs["fit_seconds"].sum()) if "fit_seconds" in res.runs else 0.0
    return sel / 60.0, fit / 60.0


def write_outputs(res: BenchmarkResult, meta: dict[str, Any], write_docs: bool, out: Path | None = None) -> str:
    """The plot and the markdown section of one result; with ``write_docs`` the plot goes into docs/img and the
    section into docs/benchmarks.md between the data set's markers (appended, with a heading, when they are missing),
    without it the plot goes into ``out`` (beside the results) and nothing under docs/ is written."""
    name = str(meta["data"]).replace("/", "-")
    png = (REPO / "docs" / "img" if write_docs or out is None else out) / f"quality-{name}.png"
    png.parent.mkdir(parents=True, exist_ok=True)
    tmp = png.with_suffix(".tmp.png")
    plot_quality(res).savefig(tmp, dpi=110)
    os.replace(tmp, png)
    code = f" Code: {meta['code']}." if meta.get("code") else ""
    text = (f"Data: {meta['data']} ({res.split['users']} users, {res.split['items']} items; train {res.split['train']}, "
            f"validation {res.split['validation']}, test {res.split['test']} interactions of {res.split['test_users']} users). "
            f"Seeds {meta['seeds']}. Machine: {meta['machine']}. Date {meta['date']}.{code} "
            f"Whole run: {meta['total_seconds'] / 60:.1f} min. {_model_time(res)}\n\n"
            + markdown(summary_table(res)) + "\n\nBeyond accuracy (docs/evaluation.md; ILD by vectors with the fused row's "
            "item vectors for every row):\n\n" + markdown(beyond_table(res.summary())) + "\n\n" + "\n".join(comparison(res)) + "\n\n" + cold_note(res) + "\n\nNDCG@20 by user activity "
            "(interactions in fit):\n\n" + markdown(bucket_frame(res), index=True)
            + f"\n\n![quality](img/quality-{name}.png)\n")
    if write_docs:
        begin, end = markers(name)
        doc = REPO / "docs" / "benchmarks.md"
        cur = doc.read_text()
        section = f"{begin}\n{text}\n{end}"
        if begin in cur and end in cur:
            cur = cur[: cur.index(begin)] + section + cur[cur.index(end) + len(end) :]
        else:
            cur = cur.rstrip() + f"\n\n### {name}\n\n" + section + "\n"
        write_text_atomic(doc, cur)
    return text


def _model_time(res: BenchmarkResult) -> str:
    sel, fit = model_minutes(res)
    return (f"Model time recorded in the results (reruns included): selection {sel:.1f} min, final fits {fit:.1f} min "
            f"(together {sel + fit:.1f} min).")


def run_parallel(names: list[str], jobs: int, argv: list[str], out: Path) -> list[Path]:
    """Each named data set in its own ``python -m benchmarks.quality`` process, at most ``jobs`` at once, one thread
    each; ``argv``: the options every process gets (not ``--datasets``, ``--jobs``, ``--write-docs``). Returns the
    result files; a process that fails stops the run with its log named."""
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    waiting, running, failed = list(names), [], []
    t0, started = time.perf_counter(), time.time()
    while waiting or running:
        while waiting and len(running) < jobs:
            name = waiting.pop(0)
            log_path = out / f"quality-{name}.log"
            fh = log_path.open("w")
            cmd = [sys.executable, "-m", "benchmarks.quality", "--datasets", name, *argv]
            log.info("started %s (log %s)", name, log_path)
            running.append((name, subprocess.Popen(cmd, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT), fh))
        time.sleep(1.0)
        for item in list(running):
            name, proc, fh = item
            if proc.poll() is None:
                continue
            fh.close()
            running.remove(item)
            log.info("%s finished (exit %d) after %.1f min", name, proc.returncode, (time.perf_counter() - t0) / 60)
            if proc.returncode:
                failed.append(name)
    if failed:
        raise SystemExit(f"the benchmark failed on {failed}: see {[str(out / f'quality-{n}.log') for n in failed]}")
    log.info("whole benchmark: %d data sets in %.1f min with %d processes", len(names),
             (time.perf_counter() - t0) / 60, jobs)
    results = [out / f"quality-{'ml-latest-small' if n == 'movielens' else n}.json" for n in names]
    stale = [str(p) for p in results if not p.exists() or p.stat().st_mtime < started]
    if stale:
        raise SystemExit(f"the benchmark processes finished but did not write {stale}")
    return results


def merge_results(base: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``base`` with the runs and selection rows of ``new``'s models replaced by ``new``'s (a rerun of some rows on
    the same split: the splits must agree); ``meta.code`` and ``meta.reruns`` say which rows came from which code."""
    if base["meta"]["split"] != new["meta"]["split"]:
        raise SystemExit(f"cannot merge: the splits differ ({base['meta']['split']} vs {new['meta']['split']})")
    models = list(dict.fromkeys(r["model"] for r in new["runs"]))

    def replace(rows: list[dict[str, Any]], fresh: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out, placed = [], False
        for r in rows:
            if r.get("model") in models:
                if not placed:
                    out += fresh
                    placed = True
            else:
                out.append(r)
        return out if placed else out + fresh

    reruns = [*base["meta"].get("reruns", []),
              {"models": models, "code": new["meta"].get("code"), "date": new["meta"].get("date"),
               "seeds": new["meta"].get("seeds")}]
    runs = replace(base["runs"], new["runs"])
    selection = replace(base.get("selection", []), new.get("selection", []))
    meta = {**base["meta"], "reruns": reruns,
            "code": f"{base['meta'].get('code')}; rerun of {', '.join(models)}: {new['meta'].get('code')}"}
    res = BenchmarkResult(pd.DataFrame(runs), pd.DataFrame(selection), meta["split"])
    return json.loads(result_json(res, meta))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_argument_group("data (named data sets, MovieLens, or bring-your-own files)")
    src.add_argument("--datasets", nargs="+", choices=DATASETS, help="named data sets, run one after the other")
    src.add_argument("--data-home", type=Path, default=Path(os.environ.get("KGREC_DATASETS", "/work/datasets")),
                     help="where the converters of benchmarks/datasets/ wrote the converted sets")
    src.add_argument("--movielens", metavar="ROOT", help="folder holding ml-latest-small/ (downloaded when missing)")
    src.add_argument("--interactions")
    src.add_argument("--items")
    src.add_argument("--triples")
    src.add_argument("--tags")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--models", nargs="+", default=None, help="subset of model names (default: all)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    ap.add_argument("--write-docs", action="store_true", help="write each table and plot into docs/benchmarks.md")
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--jobs", type=int, default=1,
                    help="with --datasets: run that many data sets at once, one process and one thread each")
    ap.add_argument("--from-results", nargs="+", type=Path, metavar="JSON",
                    help="run nothing: rebuild the plot and docs section of finished results (quality-<data>.json)")
    ap.add_argument("--merge", type=Path, default=None, metavar="NEW_JSON",
                    help="with one --from-results BASE: replace BASE's rows of the models rerun in NEW_JSON (same "
                         "split), rewrite BASE, then rebuild as --from-results does")
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if a.merge:
        if not a.from_results or len(a.from_results) != 1:
            ap.error("--merge NEW.json needs exactly one --from-results BASE.json (rewritten with NEW's rows)")
        base = a.from_results[0]
        merged = merge_results(json.loads(base.read_text()), json.loads(a.merge.read_text()))
        write_text_atomic(base, json.dumps(merged, indent=2, default=float) + "\n")
    if a.from_results:
        for path in a.from_results:
            meta = json.loads(path.read_text())["meta"]
            print(write_outputs(load_result(path), meta, a.write_docs), flush=True)
        return
    models = default_models()
    if a.models:
        unknown = set(a.models) - {m.name for m in models}
        if unknown:
            ap.error(f"unknown models {sorted(unknown)}; choose from {[m.name for m in models]}")
        models = [m for m in models if m.name in a.models]
    if a.jobs < 1:
        ap.error(f"--jobs must be >= 1 (got {a.jobs})")
    if a.datasets and a.jobs > 1:
        argv = ["--seeds", *map(str, a.seeds), "--out", a.out, "--data-home", str(a.data_home)]
        argv += ["--models", *a.models] if a.models else []
        argv += ["--movielens", a.movielens] if a.movielens else []
        for path in run_parallel(list(dict.fromkeys(a.datasets)), a.jobs, argv, Path(a.out)):
            meta = json.loads(path.read_text())["meta"]
            print(write_outputs(load_result(path), meta, a.write_docs, Path(a.out)), flush=True)
        return
    if a.datasets:
        sets = [lambda n=n: load_named(n, a.data_home, a.movielens) for n in a.datasets]
    elif a.movielens:
        sets = [lambda: loaders.movielens(a.movielens)]
    elif a.interactions and a.items:
        sets = [lambda: loaders.load_files(a.interactions, a.items, a.triples, a.tags)]
    else:
        ap.error("give --datasets NAME..., --movielens ROOT, or --interactions and --items")
    for load in sets:
        ds = load()
        log.info("data set %s: %s", ds.name, ds)
        text = run_one(ds, models, a.seeds, Path(a.out), a.progress, a.write_docs)
        print(text, flush=True)


if __name__ == "__main__":
    main()
