"""Data-parallel training (issue 15.2): ``kgrec train --workers 2`` against one process, in the same run.

    OMP_NUM_THREADS=1 python -m benchmarks.distributed_train --movielens ../shared/data --seeds 0 1 [--write-docs]
    OMP_NUM_THREADS=1 python -m benchmarks.distributed_train --synthetic --seeds 0 1 2 3 4

Ingests the data once into a temporary embedded store, then for each seed and each setting runs the real command,
``kgrec train --store S --config C [--workers N]``, as its own process (the default RecommenderConfig with that seed
and ``train.threads`` set per setting): one process with one thread, one process with all the cores' threads
(``--threads-one``, default 2), and N processes (``--workers``, default 2) with cores / N threads each. Per run: seconds
per epoch (rank 0's mean over its validation and refit epochs: the training steps, validation excluded), epochs,
best validation NDCG@20 and Recall@20 (the model's own chronological hold-out), fit seconds, wall seconds of the
command, and for the data-parallel runs whether every rank ended with the same weights. The load average
(``/proc/loadavg``) before and after each run is recorded: on a shared machine it says how busy the cores were.

Writes ``benchmarks/results/distributed-train-<data>.json``; ``--write-docs`` puts the table into docs/benchmarks.md
between ``<!-- distributed-train:begin -->`` and ``<!-- distributed-train:end -->``.
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

import numpy as np

from benchmarks._report import report
from benchmarks.quality import code_version

REPO = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- distributed-train:begin -->", "<!-- distributed-train:end -->"


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def dataset(args: argparse.Namespace) -> tuple[Any, str]:
    from kgrec.loaders import SyntheticConfig, default_data_root, from_frames, generate_frames, movielens

    if args.synthetic:
        f = generate_frames(SyntheticConfig(users=160, items=240, communities=4, interactions_per_user=16, seed=1))
        return from_frames(f["interactions"], f["items"], f["triples"], f["tags"], name="synthetic-test"), "synthetic"
    root = Path(args.movielens) if args.movielens else default_data_root()
    return movielens(root), "ml-latest-small"


def steps_per_epoch(n: int, batch_size: int, workers: int) -> int:
    """Optimizer steps of an epoch over ``n`` interactions (kgrec.fusion.train's cut; the refit's n)."""
    from kgrec.fusion.distributed import rank_batches
    from kgrec.fusion.train import effective_batch_size

    return len(rank_batches(np.arange(n), effective_batch_size(-(-n // workers), batch_size), 0, workers))


def one_run(
    store: Path, work: Path, seed: int, workers: int, threads: int, n: int, args: argparse.Namespace
) -> dict[str, Any]:
    from kgrec.fusion.config import RecommenderConfig

    raw: dict[str, Any] = {"train": {"seed": seed, "threads": threads, "workers": workers}}
    if args.epochs:
        raw["train"]["epochs"] = args.epochs
    if args.synthetic:
        raw["model"] = {"dim": 32}
        raw["train"].update({"epochs": args.epochs or 30, "batch_size": 256, "lr": 0.01, "patience": 4})
    cfg = work / f"config-{workers}-{threads}-{seed}.json"
    cfg.write_text(json.dumps(raw))
    model = work / f"model-{workers}-{threads}-{seed}"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    rss = work / f"rss-{workers}-{threads}-{seed}.txt"
    cmd = ["/usr/bin/time", "-f", "%M", "-o", str(rss), sys.executable, "-m", "kgrec", "train", "--store", str(store)]
    cmd += ["--config", str(cfg), "--model", str(model)]
    before = loadavg()
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-4000:]}")
    m = json.loads((model / "metrics.json").read_text())
    batch_size = RecommenderConfig.model_validate(raw).train.batch_size
    d = m.get("distributed") or {}
    epochs = len(m.get("validation", [])) + len(m.get("refit", []))
    best = m.get("best_epoch")
    return {
        "workers": workers,
        "threads_per_process": threads,
        "seed": seed,
        "seconds_per_epoch": m["seconds_per_epoch"],
        "epochs": epochs,
        "steps_per_epoch": steps_per_epoch(n, batch_size, workers),
        "best_epoch": best,
        "val_ndcg@20": m.get("best_val_ndcg@20"),
        "val_recall@20": m.get("best_val_recall@20"),
        "fit_seconds": m["fit_seconds"],
        "wall_seconds": wall,
        "identical_weights": (len(set(d["checksums"])) == 1) if d else None,
        # wait4's ru_maxrss: the largest of the command's processes (a training rank with --workers)
        "peak_rss_mb": int(rss.read_text().split()[-1]) / 1024,
        "load_before": before,
        "load_after": loadavg(),
    }


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for key in dict.fromkeys((r["workers"], r["threads_per_process"]) for r in rows):
        rs = [r for r in rows if (r["workers"], r["threads_per_process"]) == key]
        nd = [r["val_ndcg@20"] for r in rs]
        out.append(
            {
                "workers": key[0],
                "threads_per_process": key[1],
                "seeds": [r["seed"] for r in rs],
                "seconds_per_epoch": statistics.mean(r["seconds_per_epoch"] for r in rs),
                "val_ndcg@20": statistics.mean(nd),
                "val_ndcg@20_sd": statistics.stdev(nd) if len(nd) > 1 else None,
                "epochs": statistics.mean(r["epochs"] for r in rs),
                "fit_seconds": statistics.mean(r["fit_seconds"] for r in rs),
                "peak_rss_mb": max(r["peak_rss_mb"] for r in rs),
                "load": statistics.mean((r["load_before"] + r["load_after"]) / 2 for r in rs),
            }
        )
    return out


def table(result: dict[str, Any]) -> str:
    base = next(s for s in result["summary"] if s["workers"] == 1 and s["threads_per_process"] == 1)
    lines = [
        "| processes × threads | seeds | s/epoch | vs 1 × 1 | epochs (val + refit) | val ndcg@20 (mean ± sd) | fit s "
        "| peak RSS of one process | load |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in result["summary"]:
        sd = f" ± {s['val_ndcg@20_sd']:.4f}" if s["val_ndcg@20_sd"] is not None else ""
        lines.append(
            f"| {s['workers']} × {s['threads_per_process']} | {', '.join(map(str, s['seeds']))} | "
            f"{s['seconds_per_epoch']:.3f} | {s['seconds_per_epoch'] / base['seconds_per_epoch']:.2f}× | "
            f"{s['epochs']:.0f} | {s['val_ndcg@20']:.4f}{sd} | {s['fit_seconds']:.0f} | {s['peak_rss_mb']:.0f} MB "
            f"| {s['load']:.1f} |"
        )
    lines += [
        "",
        "| processes × threads | seed | s/epoch | epochs | best epoch | val ndcg@20 | val recall@20 | same weights on every rank |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["runs"]:
        same = "" if r["identical_weights"] is None else ("yes" if r["identical_weights"] else "**no**")
        lines.append(
            f"| {r['workers']} × {r['threads_per_process']} | {r['seed']} | {r['seconds_per_epoch']:.3f} | {r['epochs']} | "
            f"{r['best_epoch']} | {r['val_ndcg@20']:.4f} | {r['val_recall@20']:.4f} | {same} |"
        )
    p = result.get("allreduce")
    if p:
        lines += [
            "",
            f"all_reduce of one step's gradients ({p['numel']:,} floats, {p['numel'] * 4 / 1e6:.1f} MB) between "
            f"{p['workers']} gloo processes on this machine: median {p['median_ms']:.2f} ms, p90 {p['p90_ms']:.2f} ms "
            f"over {p['reps']} calls; a 1 × 1 step takes {p['step_ms']:.0f} ms.",
        ]
    return "\n".join(lines)


def _probe(rank: Any, numel: int, reps: int, out: str) -> None:
    """One rank of the all_reduce probe: ``reps`` all_reduces of ``numel`` floats, timed on rank 0."""
    import torch
    import torch.distributed as dist

    x = torch.randn(numel)
    for _ in range(5):
        dist.all_reduce(x)
    times = []
    for _ in range(reps):
        dist.barrier()
        t0 = time.perf_counter()
        dist.all_reduce(x)
        times.append(time.perf_counter() - t0)
    if rank.main:
        Path(out).write_text(json.dumps(times))


def allreduce_probe(numel: int, workers: int, reps: int = 200) -> dict[str, Any]:
    from kgrec.fusion.distributed import launch

    with tempfile.TemporaryDirectory(prefix="kgrec-allreduce-") as tmp:
        out = Path(tmp) / "times.json"
        launch(_probe, workers, (numel, reps, str(out)))
        times = sorted(json.loads(out.read_text()))
    return {
        "numel": numel,
        "workers": workers,
        "reps": reps,
        "median_ms": 1000 * statistics.median(times),
        "p90_ms": 1000 * times[int(0.9 * len(times))],
    }


def write_docs(result: dict[str, Any]) -> None:
    path = REPO / "docs" / "benchmarks.md"
    text = path.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{path}: no {BEGIN} … {END} block to fill")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    m = result["machine"]
    block = (
        f"{BEGIN}\nData: {result['data']} ({result['interactions']} interactions). Seeds {result['seeds']}. Machine: "
        f"{m['machine']}, {m['cores']} cores, load average {result['load_start']:.1f} at the start. Date {result['date']}. "
        f"Code: {result['code']}. Whole run: {result['minutes']:.1f} min.\n\n{table(result)}\n{END}"
    )
    path.write_text(head + block + tail)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--movielens", help="folder holding ml-latest-small (default: the data root)")
    ap.add_argument("--synthetic", action="store_true", help="the tests' synthetic communities instead")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--workers", type=int, default=2, help="processes of the data-parallel runs")
    ap.add_argument(
        "--threads-one", type=int, default=2, help="threads of the one-process run that uses every core (0: skip)"
    )
    ap.add_argument("--epochs", type=int, default=None, help="maximum epochs (default: the config's)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()
    from kgrec.fusion.distributed import threads_per_worker
    from kgrec.graph import open_store

    t0 = time.perf_counter()
    ds, name = dataset(args)
    settings = (
        [(1, 1)]
        + ([(1, args.threads_one)] if args.threads_one > 1 else [])
        + [(args.workers, threads_per_worker(args.workers))]
    )
    rows = []
    load_start = loadavg()
    with tempfile.TemporaryDirectory(prefix="kgrec-dist-bench-") as tmp:
        work = Path(tmp)
        st = open_store(work / "store")
        st.ingest(ds)
        for seed in args.seeds:
            for workers, threads in settings:
                r = one_run(work / "store", work, seed, workers, threads, len(ds.interactions), args)
                print(json.dumps(r), file=sys.stderr, flush=True)
                rows.append(r)
        from kgrec import Recommender

        sd = Recommender.load(next(work.glob(f"model-{args.workers}-*"))).state.state_dict
        numel = sum(t.numel() for t in sd.values() if t.is_floating_point())
        probe = allreduce_probe(numel, args.workers)
        one = [r for r in rows if r["workers"] == 1 and r["threads_per_process"] == 1]
        probe["step_ms"] = 1000 * statistics.mean(r["seconds_per_epoch"] / r["steps_per_epoch"] for r in one)
    result = {
        "data": name,
        "interactions": len(ds.interactions),
        "seeds": args.seeds,
        "machine": {"machine": platform.machine(), "cores": len(os.sched_getaffinity(0))},
        "load_start": load_start,
        "date": time.strftime("%Y-%m-%d"),
        "code": code_version(),
        "minutes": (time.perf_counter() - t0) / 60,
        "runs": rows,
        "summary": summary(rows),
        "allreduce": probe,
    }
    report(result, args.out or str(REPO / "benchmarks" / "results" / f"distributed-train-{name}.json"))
    print(table(result))
    if args.write_docs:
        write_docs(result)


if __name__ == "__main__":
    main()
