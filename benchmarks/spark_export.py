"""Spark export (issue 15): kgrec's local export against ``kgrec export --engine spark`` on Spark local[2].

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python -m benchmarks.spark_export [--users 100000] [--items 100000] [--k 100]
        [--dim 64] [--master local[2]] [--out results.json]

One process, one model, one run of each: synthetic data from the public generator (power-law histories, about 20
interactions per user, seen items excluded), 64-d vectors around community centres given to
``Recommender.from_vectors`` (the cost of an export depends only on their shape), then

  local: kgrec.fusion.export.export(...) to one Parquet file, torch on one thread (OMP_NUM_THREADS=1);
  spark: kgrec.fusion.export_spark.export_spark(...) on ``--master`` (two Python workers, one torch thread each),
         Parquet parts written by Spark; timed as the session start (JVM, once per process) and the job.

Wall times and CPU seconds are both reported: on a shared, busy machine the wall time of two workers depends on what
else runs, their CPU time much less (local: this process; Spark: this process during the Spark part plus the JVM and
the Python workers, read from /proc). Both outputs are then compared: the Spark parts, read in order, must be the local file row for row (same users,
items, ranks and scores to the bit: the tasks score the local export's chunks). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def load() -> str:
    """The 1, 5 and 15 minute load averages (the machine is shared)."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def spark_cpu() -> float:
    """CPU seconds (user + system, with exited children) of Spark's processes: the JVM and the Python workers."""
    tick, total = os.sysconf("SC_CLK_TCK"), 0.0
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if proc.name == str(os.getpid()) or b"pyspark" not in (proc / "cmdline").read_bytes():
                continue
            f = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in f[11:15]) / tick
    return total


def build(users: int, items: int, dim: int):
    from kgrec.fusion.recommender import Recommender
    from kgrec.loaders.synthetic import SyntheticConfig, generate_frames

    f = generate_frames(SyntheticConfig(users=users, items=items, communities=8, interactions_per_user=20, seed=0))
    inter = f["interactions"]
    hu = inter["user"].str[1:].astype(np.int64).to_numpy()
    hi = inter["item"].str[1:].astype(np.int64).to_numpy()
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(8, dim)).astype(np.float32)
    U = centres[np.arange(users) % 8] + 0.5 * rng.normal(size=(users, dim)).astype(np.float32)
    V = centres[np.arange(items) % 8] + 0.5 * rng.normal(size=(items, dim)).astype(np.float32)
    uid = [f"u{n}" for n in range(users)]
    iid = [f"i{n}" for n in range(items)]
    return Recommender.from_vectors(uid, U, iid, V, history_index=(hu, hi), model_version="bench"), len(hu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch

    from kgrec.fusion.export import export
    from kgrec.fusion.export_spark import export_spark, spark_session

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    load_before = load()
    t0 = time.perf_counter()
    rec, n_inter = build(args.users, args.items, args.dim)
    build_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="kgrec-bench-spark-") as d:
        local_out, spark_out = Path(d) / "recs.parquet", Path(d) / "recs_dir"
        t0, c0 = time.perf_counter(), time.process_time()
        rep_local = export(rec, local_out, args.k, progress=False)
        local_s, local_cpu = time.perf_counter() - t0, time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        with spark_session(args.master, app_name="kgrec-bench") as spark:
            start_s = time.perf_counter() - t0
            t1, s1 = time.perf_counter(), spark_cpu()
            rep_spark = export_spark(rec, spark_out, args.k, master=args.master)
            job_s = time.perf_counter() - t1
            workers = spark.sparkContext.defaultParallelism
            spark_side_cpu = spark_cpu()  # the JVM and the workers, before they stop (includes the JVM's start)
        spark_s = time.perf_counter() - t0
        spark_cpu_s = time.process_time() - c0 + spark_side_cpu
        local_t = pq.read_table(local_out)
        parts = sorted(spark_out.glob("part-*.parquet"))
        spark_t = pa.concat_tables([pq.read_table(p) for p in parts])  # the parts in order: users in order
        identical = all(local_t.column(c).equals(spark_t.column(c)) for c in local_t.schema.names)
        sizes = (local_out.stat().st_size, sum(p.stat().st_size for p in parts))
    res = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_before": load_before,
        "load_after": load(),
        "users": args.users,
        "items": args.items,
        "k": args.k,
        "dim": args.dim,
        "interactions": n_inter,
        "rows": rep_local["rows"],
        "spark_rows": rep_spark["rows"],
        "identical": identical,
        "build_seconds": round(build_s, 1),
        "local_seconds": round(local_s, 1),
        "local_users_per_s": round(args.users / local_s),
        "local_cpu_seconds": round(local_cpu, 1),
        "local_torch_threads": torch.get_num_threads(),
        "spark_master": args.master,
        "spark_workers": workers,
        "spark_partitions": rep_spark["partitions"],
        "spark_session_start_seconds": round(start_s, 1),
        "spark_job_seconds": round(job_s, 1),
        "spark_total_seconds": round(spark_s, 1),
        "spark_users_per_s": round(args.users / spark_s),
        "spark_cpu_seconds": round(spark_cpu_s, 1),
        "spark_job_cpu_seconds_jvm_and_workers": round(spark_side_cpu - s1, 1),
        "overhead_ratio_total": round(spark_s / local_s, 2),
        "overhead_ratio_job": round(job_s / local_s, 2),
        "overhead_ratio_cpu": round(spark_cpu_s / local_cpu, 2),
        "local_mb": round(sizes[0] / 2**20, 1),
        "spark_mb": round(sizes[1] / 2**20, 1),
    }
    print(json.dumps(res), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
