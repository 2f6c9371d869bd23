"""The web API under load on loopback: `kgrec serve` driven by wrk, 50 connections for 60 s per scenario.

    apt-get install -y wrk          # the load generator (Debian package; C, light on the CPU)
    kgrec ingest --store /tmp/kgrec-serve-bench --movielens ../shared/data && kgrec train --store /tmp/kgrec-serve-bench
    python -m benchmarks.serve_load --store /tmp/kgrec-serve-bench [--duration 60] [--connections 50] [--workers 1]

(``--store ~/.cache/kgrec/demo-store`` after ``kgrec demo`` works as well.) Starts ``python -m kgrec serve`` on a
free loopback port (token auth on, as in production) with the model trained in the store, and builds the request
mix from it: every user's top-10
recommendations (``GET /api/users/U/recommendations?k=10``) and, for every user, the explanations of the
items ranked 1-20 (``GET /api/users/U/explanations/I``: ranks 11-20 are "why not?" answers), shuffled.

1. cold passes, each on a freshly started server (nothing cached): every recommendations URL once; then,
   on a second fresh server, every explanations URL once; from 50 client threads (Python, keep-alive):
   latency of answers computed on demand. The second server then answers every recommendations URL once
   more (filling its list cache) and serves the wrk runs below;
2. ``GET /health`` with wrk: the floor of the HTTP stack (no model work);
3. recommendations with wrk, cycling through all users;
4. explanations with wrk, cycling through all (user, item) pairs.

wrk runs 2 threads and ``--connections`` connections (closed loop: each connection sends its next request
as soon as the last answer arrives) for ``--duration`` seconds, on the same 2-core machine as the server.
Reported per scenario: requests/s, p50 and p99 latency, errors (sockets, timeouts, non-2xx), and ratios
to the /health floor.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from benchmarks._report import report

# wrk script: each thread walks its own slice of the URL list (one URL per line), round and round;
# done() prints one JSON line with the figures.
WRK_LUA = r"""
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
function init(args)
  paths = {}
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
  step = tonumber(args[2])
  auth = "Bearer " .. args[3]
  i = id + 1
end
function request()
  local p = paths[i]
  i = i + step
  if i > #paths then i = (i - 1) % step + 1 end
  return wrk.format("GET", p, {["Authorization"] = auth})
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "mean_us": %.1f, "errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def url_lists(store: str, model: str | None, k: int, pairs_rank: int, seed: int) -> tuple[list[str], list[str]]:
    """Recommendation URLs (one per user) and explanation URLs (each user's top ``pairs_rank`` items), shuffled."""
    from kgrec import Recommender
    from kgrec.graph import open_store

    with open_store(store) as st:
        rec = Recommender.load(model or st.model_root() / "default", store=st)
    users = rec.vocabs.user.to_list()
    top = rec.recommend(users, pairs_rank)
    q = urllib.parse.quote
    recs = [f"/api/users/{q(u, safe='')}/recommendations?k={k}" for u in users]
    expl = [f"/api/users/{q(u, safe='')}/explanations/{q(i, safe='')}?k={k}" for u, i in zip(top["user"], top["item"], strict=False)]
    rng = random.Random(seed)
    rng.shuffle(recs)
    rng.shuffle(expl)
    return recs, expl


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 180.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"kgrec serve exited with code {proc.returncode} before it answered")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"kgrec serve did not answer on port {port} within {timeout:.0f} s")


@contextmanager
def serving(cmd: list[str], token: str) -> Iterator[int]:
    """``kgrec serve`` on a free loopback port with the token in its environment; yields the port."""
    port = free_port()
    server = subprocess.Popen([*cmd, "--port", str(port)], env={**os.environ, "KGREC_API_TOKEN": token},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(port, server)
        yield port
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def cold_pass(port: int, token: str, urls: list[str], clients: int) -> dict:
    """Every URL once from ``clients`` threads with keep-alive connections; per-request latency."""
    local = threading.local()
    headers = {"Authorization": f"Bearer {token}"}

    def one(path: str) -> tuple[float, int]:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        t0 = time.perf_counter()
        try:
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            resp.read()
            status = resp.status
        except OSError:
            local.conn = None
            status = 0
        return time.perf_counter() - t0, status

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one, urls))
    wall = time.perf_counter() - t0
    lat = np.array([r[0] for r in results]) * 1000
    errors = sum(1 for r in results if not 200 <= r[1] < 300)
    return {"requests": len(urls), "seconds": round(wall, 1), "rps": round(len(urls) / wall, 1),
            "p50_ms": round(float(np.percentile(lat, 50)), 1), "p99_ms": round(float(np.percentile(lat, 99)), 1),
            "errors": errors}


def run_wrk(port: int, token: str, urls: list[str], duration: int, connections: int, threads: int, workdir: Path) -> dict:
    lua = workdir / "mix.lua"
    lua.write_text(WRK_LUA)
    lst = workdir / f"urls-{secrets.token_hex(4)}.txt"
    lst.write_text("\n".join(urls) + "\n")
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s", "--timeout", "10s",
           "-s", str(lua), f"http://127.0.0.1:{port}", "--", str(lst), str(threads), token]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRKJSON "))
    r = json.loads(line[len("WRKJSON "):])
    errors = sum(r["errors"].values())
    return {"requests": r["requests"], "rps": round(r["requests"] / (r["duration_us"] / 1e6), 1),
            "p50_ms": round(r["p50_us"] / 1000, 2), "p90_ms": round(r["p90_us"] / 1000, 2),
            "p99_ms": round(r["p99_us"] / 1000, 2), "max_ms": round(r["max_us"] / 1000, 1),
            "errors": errors, "error_kinds": r["errors"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", required=True)
    ap.add_argument("--model", default=None)
    ap.add_argument("--duration", type=int, default=60, help="seconds per wrk scenario")
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2, help="wrk threads")
    ap.add_argument("--workers", type=int, default=1, help="kgrec serve --workers")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--pairs-rank", type=int, default=20, help="explanations for each user's items ranked 1..N")
    ap.add_argument("--skip-cold", action="store_true", help="no cold pass (the wrk runs then start cold)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    recs, expl = url_lists(args.store, args.model, args.k, args.pairs_rank, seed=0)
    token = secrets.token_hex(24)
    cmd = [sys.executable, "-m", "kgrec", "serve", "--store", args.store, "--workers", str(args.workers), "--k", str(args.k)]
    if args.model:
        cmd += ["--model", args.model]
    res: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "server": f"kgrec serve --workers {args.workers} (token auth on)",
        "load": f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s on loopback, same machine",
        "users": len(recs), "explanation_pairs": len(expl),
    }
    with tempfile.TemporaryDirectory() as d:
        if not args.skip_cold:
            # each cold pass on a fresh server, so that neither profits from the other's cache
            with serving(cmd, token) as port:
                res["cold_recommendations"] = cold_pass(port, token, recs, args.connections)
        with serving(cmd, token) as port:
            if not args.skip_cold:
                res["cold_explanations"] = cold_pass(port, token, expl, args.connections)
                cold_pass(port, token, recs, args.connections)  # fills the list cache; not reported
            for name, urls in {"health": ["/health"], "recommendations": recs, "explanations": expl}.items():
                res[name] = run_wrk(port, token, urls, args.duration, args.connections, args.threads, Path(d))
    floor = res["health"]
    for name in ("recommendations", "explanations"):
        r = res[name]
        r["rps_vs_health"] = round(r["rps"] / floor["rps"], 2)
        r["p99_vs_health"] = round(r["p99_ms"] / max(floor["p99_ms"], 1e-3), 2)
    report(res, args.out)


if __name__ == "__main__":
    main()
