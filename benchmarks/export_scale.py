"""Batch export at scale: kgrec export against a bare torch matmul + top-k loop over the same vectors.

    python -m benchmarks.export_scale [--users 10000 100000 1000000] [--items 100000] [--k 100] [--dim 64]

For each user count, a child process builds synthetic data (power-law histories from the synthetic
generator, 64-d vectors around community centres), then times, in the same process:
  bare:  for each chunk of 1,024 users, scores = U @ I.T and torch.topk (no exclusions, no output);
  kgrec: kgrec.fusion.export.export(...) to Parquet: seen items excluded, parts written per chunk
         (resumable), assembled into one file, atomically.
Users per second for both, their ratio, and the child's peak memory (max RSS) are reported. The
vectors are given, not trained: export cost depends only on their shape.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def child(users: int, items: int, k: int, dim: int) -> dict:
    import torch

    from kgrec.fusion.export import export
    from kgrec.fusion.recommender import Recommender
    from kgrec.loaders.synthetic import SyntheticConfig, _World

    cfg = SyntheticConfig(users=users, items=items, communities=8, interactions_per_user=20, seed=0)
    w = _World(cfg)
    hu, hi = [], []
    for start in range(0, users, 200_000):
        u, i, _ = w.interactions(start, min(users, start + 200_000))
        hu.append(u)
        hi.append(i)
    hu, hi = np.concatenate(hu), np.concatenate(hi)
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(8, dim)).astype(np.float32)
    U = centres[np.arange(users) % 8] + 0.5 * rng.normal(size=(users, dim)).astype(np.float32)
    I = centres[np.arange(items) % 8] + 0.5 * rng.normal(size=(items, dim)).astype(np.float32)
    uid = np.char.add("u", np.arange(users).astype(str))
    iid = np.char.add("i", np.arange(items).astype(str))
    rec = Recommender.from_vectors(uid, U, iid, I, history_index=(hu, hi))
    n_interactions = int(len(hu))
    del U, I, hu, hi, uid
    Ut, It = torch.from_numpy(rec.arrays["users"]), torch.from_numpy(rec.arrays["items"])
    t0 = time.perf_counter()
    with torch.no_grad():
        for s in range(0, users, 1024):
            torch.topk(Ut[s : s + 1024] @ It.T, k, dim=1)
    bare = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "recs.parquet"
        t0 = time.perf_counter()
        rep = export(rec, out, k, progress=False)
        kg = time.perf_counter() - t0
        size = out.stat().st_size
    return {
        "users": users, "items": items, "k": k, "dim": dim, "interactions": n_interactions, "rows": rep["rows"],
        "bare_seconds": round(bare, 1), "kgrec_seconds": round(kg, 1),
        "bare_users_per_s": round(users / bare), "kgrec_users_per_s": round(users / kg),
        "ratio": round(bare / kg, 3), "parquet_mb": round(size / 2**20, 1),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--out", default=None)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.users[0], args.items, args.k, args.dim)))
        return
    results = []
    for n in args.users:
        cmd = [sys.executable, "-m", "benchmarks.export_scale", "--child", "--users", str(n), "--items", str(args.items),
               "--k", str(args.k), "--dim", str(args.dim)]
        res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        print(json.dumps(res), flush=True)
        results.append(res)
    summary = {"machine": f"{platform.machine()}, 2 cores", "runs": results}
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
