"""Explained export against the plain export (issue 15): the per-row explanations it replaced, the batch, the same run.

    OMP_NUM_THREADS=1 python -m benchmarks.explain_export --store S [--model M] [--movielens ROOT] \
        [--users20 610] [--users100 100] [--old-users 610 100] [--neo4j bolt://127.0.0.1:7687] [--out results.json]

With ``--movielens ROOT`` and no model in the store, MovieLens latest-small is ingested into ``--store`` and a model
trained there first (``kgrec ingest`` + ``kgrec train``, defaults). Then, for k = 20 (``--users20`` users) and
k = 100 (``--users100`` users), in one process on one loaded model:

  plain:    ``kgrec.fusion.export.export(...)`` to Parquet, no explanations (median of three runs);
  batched:  the same with ``explain=True`` (kgrec.fusion.explain_batch; median of three);
  per-row:  what ``--explain`` did before: the plain export plus ``rec.explain(user, item, top=1, k=k, listed=True)`` row by row
            (the loop the export ran), timed on the first ``--old-users`` users of the same lists, once.

Reported: seconds, rows, the ratios batched/plain and per-row/plain (the per-row one scaled to all users from its
subset), the rows the batch scored one by one or handed to the per-row code, and whether every sentence and path of
the subset is identical between the batch and the per-row loop. With ``--neo4j``, the data go to that server too
(wiped before and after: run it under ``flock /tmp/neo4j-tests.lock``) and the same is measured there. Also the whole
``kgrec export`` command, plain and ``--explain``, as a process (k = 20, the embedded store).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks._report import report
from kgrec import Recommender
from kgrec.fusion.export import export
from kgrec.graph import GraphStore, open_store


def per_row(rec: Recommender, users: list[str], items: list[str], k: int) -> tuple[list[str], list[str | None]]:
    """The explained export's loop before the batch: one ``rec.explain(..., k=k, listed=True)`` per row (a row of the list is a recommendation)."""
    sentences, paths = [], []
    for u, i in zip(users, items, strict=True):
        e = rec.explain(u, i, top=1, k=k, listed=True)
        sentences.append(e.headline())
        paths.append(json.dumps([[n.type, n.id] for n in e.paths[0].nodes], ensure_ascii=False) if e.paths else None)
    return sentences, paths


def timed_export(
    rec: Recommender, users: list[str], k: int, explain: bool, work: Path, runs: int
) -> tuple[float, pd.DataFrame, list[float]]:
    times = []
    df = pd.DataFrame()
    for n in range(runs):
        out = work / f"recs-{k}-{int(explain)}-{n}.parquet"
        t0 = time.perf_counter()
        export(rec, out, k, users=users, explain=explain, progress=False)
        times.append(time.perf_counter() - t0)
        df = pd.read_parquet(out)
        out.unlink()
    return statistics.median(times), df, times


def measure(rec: Recommender, users: list[str], k: int, old_users: int, work: Path, runs: int) -> dict[str, Any]:
    from kgrec.fusion import explain_batch

    counts: dict[str, int] = {"one_by_one": 0, "per_row": 0}
    original = explain_batch.explain_rows

    def counting(*a: Any, **kw: Any) -> explain_batch.Explained:
        got = original(*a, **kw)
        counts["one_by_one"] += got.one_by_one
        counts["per_row"] += got.per_row
        return got

    plain, plain_df, plain_runs = timed_export(rec, users, k, False, work, runs)
    explain_batch.explain_rows = counting
    try:
        batched, df, batched_runs = timed_export(rec, users, k, True, work, runs)
    finally:
        explain_batch.explain_rows = original
    sub = users[:old_users]
    rows = df[df["user"].isin(set(sub))]
    t_sub_plain, _, _ = timed_export(rec, sub, k, False, work, 1)
    t0 = time.perf_counter()
    sentences, paths = per_row(rec, rows["user"].tolist(), rows["item"].tolist(), k)
    loop = time.perf_counter() - t0
    got_paths = [None if not isinstance(p, str) else p for p in rows["path"].tolist()]
    same = sentences == rows["explanation"].tolist() and paths == got_paths
    old = t_sub_plain + loop
    old_all = plain + loop * len(df) / max(1, len(rows))
    return {
        "k": k,
        "users": len(users),
        "rows": len(df),
        "plain_s": round(plain, 3),
        "batched_s": round(batched, 3),
        "batched_over_plain": round(batched / plain, 2),
        "plain_runs_s": [round(x, 3) for x in plain_runs],
        "batched_runs_s": [round(x, 3) for x in batched_runs],
        "rows_scored_one_by_one": counts["one_by_one"] // runs,
        "rows_by_the_per_row_code": counts["per_row"] // runs,
        "per_row": {
            "users": len(sub),
            "rows": len(rows),
            "seconds": round(old, 2),
            "per_row_explain_s": round(loop, 2),
            "ms_per_row": round(1000 * loop / max(1, len(rows)), 2),
            "seconds_scaled_to_all_users": round(old_all, 1),
            "over_plain": round(old_all / plain, 1),
        },
        "identical_to_per_row": bool(same),
        "plain_rows_equal": bool(plain_df[["user", "item", "rank"]].equals(df[["user", "item", "rank"]])),
    }


def cli(store: str, model: str | None, k: int, explain: bool, work: Path) -> float:
    cmd = [sys.executable, "-m", "kgrec", "export", "--store", store, "--k", str(k), "--out", str(work / "cli.parquet")]
    cmd += ["--model", model] if model else []
    cmd += ["--explain"] if explain else []
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t0


def prepare(store: str, movielens: str | None) -> None:
    st = open_store(store)
    if st.exists() and (st.model_root() / "default" / "model.json").is_file():
        return
    if movielens is None:
        raise SystemExit(f"{store} holds no model: pass --movielens ROOT to ingest MovieLens latest-small and train")
    for cmd in (["ingest", "--store", store, "--movielens", movielens], ["train", "--store", store]):
        subprocess.run([sys.executable, "-m", "kgrec", *cmd], check=True)


def backend(rec: Recommender, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    users = rec.vocabs.user.to_list()
    out = {}
    for k, n, old in ((20, args.users20, args.old_users[0]), (100, args.users100, args.old_users[1])):
        out[f"k{k}"] = measure(rec, users[:n], k, old, work, args.runs)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", required=True)
    ap.add_argument("--model", default=None)
    ap.add_argument("--movielens", default=None, help="root folder holding ml-latest-small (to ingest and train)")
    ap.add_argument("--users20", type=int, default=610)
    ap.add_argument("--users100", type=int, default=100)
    ap.add_argument("--old-users", type=int, nargs=2, default=[610, 100], help="per-row subset at k=20, k=100")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--neo4j", default=None, help="also on this Neo4j server (wiped before and after)")
    ap.add_argument("--neo4j-old-users", type=int, nargs=2, default=[60, 10])
    ap.add_argument("--no-cli", action="store_true")
    ap.add_argument("--skip-embedded", action="store_true", help="only the Neo4j part (with --neo4j)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    prepare(args.store, args.movielens)
    emb: GraphStore = open_store(args.store)
    model = args.model or str(emb.model_root() / "default")
    rec = Recommender.load(model, store=emb)
    res: dict[str, Any] = {
        "data": emb.dataset().name,
        "model": rec.model_version,
        "co_occurrence_alpha": rec.state.cooc_alpha,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "threads": torch.get_num_threads()},
        "load_average_before": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        if not args.skip_embedded:
            res["embedded"] = backend(rec, args, work)
        if not (args.no_cli or args.skip_embedded):
            plain = [cli(args.store, args.model, 20, False, work) for _ in range(2)]
            explained = [cli(args.store, args.model, 20, True, work) for _ in range(2)]
            res["cli_k20_all_users"] = {
                "plain_s": round(min(plain), 2),
                "explain_s": round(min(explained), 2),
                "explain_over_plain": round(min(explained) / min(plain), 2),
            }
        if args.neo4j:
            neo = open_store(args.neo4j)
            neo.wipe()
            try:
                neo.ingest(emb.dataset(), progress=False)
                nrec = Recommender.load(model, store=neo)
                args.old_users = args.neo4j_old_users
                res["neo4j"] = backend(nrec, args, work)
            finally:
                neo.wipe()
                neo.close()
    res["load_average_after"] = os.getloadavg()
    report(res, args.out)


if __name__ == "__main__":
    main()
