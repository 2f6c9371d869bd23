"""The web API under load on loopback: `kgrec serve` driven by wrk (closed loop) and by an open-loop client.

    apt-get install -y wrk          # the closed-loop load generator (Debian package; C, light on the CPU)
    kgrec ingest --store /tmp/kgrec-serve-bench --movielens ../shared/data && kgrec train --store /tmp/kgrec-serve-bench
    python -m benchmarks.serve_load --store /tmp/kgrec-serve-bench [--scenarios closed,open,mixed] [--workers 1]

(``--store ~/.cache/kgrec/demo-store`` after ``kgrec demo`` works as well; ``--store bolt://… --model DIR`` runs
on Neo4j.) Starts ``python -m kgrec serve`` on a free loopback port (token auth on, as in production) with the
model trained in the store, and builds the request mix from it: every user's top-10 recommendations
(``GET /api/users/U/recommendations?k=10``) and, for every user, the explanations of the items ranked 1-20
(``GET /api/users/U/explanations/I``: ranks 11-20 are "why not?" answers), shuffled.

Scenario ``closed`` (wrk, ``--duration`` s per run, ``--connections`` connections):

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

Scenario ``open`` (uncached answers at a fixed rate, open loop): on a freshly started server, every user's
``GET /api/users/U/recommendations?k=10`` once (``--open-users`` of them), the n-th sent at ``t0 + n / rate``
whether or not earlier ones have answered (asyncio, keep-alive connections, a new one whenever none is idle;
wrk2-style: latency counts from the time a request was due, so a slow server is not hidden by a client that
waits). First at ``--open-rate`` (200/s), then, if that rate was not sustained, at lower rates (each on a fresh
server) down from 90% of the throughput measured at 200/s, by 25% a step, until one is: *sustained* means
every request answered with 2xx, throughput at least 95% of the offered rate and p99 at most 1 s.

Scenario ``mixed`` (reads plus a stream of events, open loop): a fresh server with a write token, on a copy of
the embedded store (on Neo4j: in the store itself, with ``--write-to-neo4j``). One first event moves the store
past the training data (every user's live key changes once: reported on its own); then ``--mixed-warm`` users'
lists are asked for once (their lists and their items' explanations are then cached). For
``--mixed-duration`` s, reads at ``--mixed-read-rate``/s: a fraction ``--mixed-uncached`` of them new
questions (alternately the list of a user nobody asked for yet, and the explanation of a warm user's item
ranked 11-20), the others a warm user's list or the explanation of an item of it; and events at each of
``--mixed-event-rates``/s (one run per rate, each on a fresh server): ``POST /api/events`` with the write
token, each a warm user taking the top item of their list as last seen (a user with an event in flight is
skipped). After each accepted event that user's list is asked for again (``--poll-interval`` s after each
answer) until the item is gone from it. Reported: read latency p50/p99 (all, warm, new), event accept
latency p50/p99 (from the time it was due), and the time from the accept's answer to the first answer
without the item, p50/p99; requests still unanswered ``--drain`` s after the last one was due are errors.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import platform
import random
import resource
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


def url_lists(
    store: str, model: str | None, k: int, pairs_rank: int, seed: int
) -> tuple[list[str], list[str], dict[str, list[str]]]:
    """Recommendation URLs (one per user) and explanation URLs (each user's top ``pairs_rank`` items), shuffled;
    and each user's top ``pairs_rank`` items, best first."""
    from kgrec import Recommender
    from kgrec.graph import open_store

    with open_store(store) as st:  # recommend before the store closes (Neo4j reads it)
        root = st.model_root()
        rec = Recommender.load(model or (root / "default" if root else "model"), store=st)
        users = rec.vocabs.user.to_list()
        top = rec.recommend(users, pairs_rank)
    q = urllib.parse.quote
    recs = [f"/api/users/{q(u, safe='')}/recommendations?k={k}" for u in users]
    expl = [f"/api/users/{q(u, safe='')}/explanations/{q(i, safe='')}?k={k}" for u, i in zip(top["user"], top["item"], strict=False)]
    tops: dict[str, list[str]] = {}
    for u, i in zip(top["user"], top["item"], strict=True):
        tops.setdefault(str(u), []).append(str(i))
    rng = random.Random(seed)
    rng.shuffle(recs)
    rng.shuffle(expl)
    return recs, expl, tops


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
def serving(cmd: list[str], token: str, write_token: str | None = None) -> Iterator[int]:
    """``kgrec serve`` on a free loopback port with the token(s) in its environment; yields the port."""
    port = free_port()
    env = {**os.environ, "KGREC_API_TOKEN": token}
    env.pop("KGREC_WRITE_TOKEN", None)
    if write_token:
        env["KGREC_WRITE_TOKEN"] = write_token
    server = subprocess.Popen([*cmd, "--port", str(port)], env=env,
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


# ---------------------------------------------------------------------------------------------- open loop
#: a keep-alive connection idle for longer is not reused (uvicorn closes idle connections after 5 s)
IDLE_S = 3.0

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class OpenLoopClient:
    """HTTP/1.1 over asyncio streams with keep-alive connections: an idle one is reused, else a new one is opened
    (up to ``limit``; beyond that a request waits for one, and that wait counts in its latency)."""

    def __init__(self, port: int, limit: int = 1000) -> None:
        self.port = port
        self.limit = limit
        self.idle: list[tuple[Conn, float]] = []
        self.opened = 0
        self.peak = 0
        self.retries = 0
        self.free = asyncio.Condition()

    async def _conn(self) -> tuple[Conn, bool]:
        """A connection, and whether it was idle in the pool (the server may have closed it meanwhile)."""
        now = asyncio.get_running_loop().time()
        async with self.free:
            while True:
                while self.idle and now - self.idle[-1][1] > IDLE_S:
                    (_, w), _ = self.idle.pop()
                    w.close()
                    self.opened -= 1
                if self.idle or self.opened < self.limit:
                    break
                await self.free.wait()
                now = asyncio.get_running_loop().time()
            if self.idle:
                return self.idle.pop()[0], True
            self.opened += 1
            self.peak = max(self.peak, self.opened)
        try:
            return await asyncio.open_connection("127.0.0.1", self.port), False
        except OSError:
            await self._drop(None)
            raise

    async def _drop(self, conn: Conn | None) -> None:
        if conn is not None:
            conn[1].close()
        async with self.free:
            self.opened -= 1
            self.free.notify()

    async def _give_back(self, conn: Conn) -> None:
        async with self.free:
            self.idle.append((conn, asyncio.get_running_loop().time()))
            self.free.notify()

    async def call(self, method: str, path: str, headers: dict[str, str], body: bytes = b"",
                   timeout: float = 120.0) -> tuple[int, bytes]:
        """(status, body); status 0 for a socket error or a timeout. A reused connection the server closed
        before answering (nothing came back) is retried once on a new one, as HTTP clients do."""
        for _ in range(2):
            status, data, retry = await self._call(method, path, headers, body, timeout)
            if not retry:
                break
            self.retries += 1
        return status, data

    async def _call(self, method: str, path: str, headers: dict[str, str], body: bytes,
                    timeout: float) -> tuple[int, bytes, bool]:
        conn = None
        reused = False
        got_any = False
        try:
            conn, reused = await self._conn()
            reader, writer = conn
            head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}", *(f"{k}: {v}" for k, v in headers.items())]
            if body or method == "POST":
                head.append(f"Content-Length: {len(body)}")
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)

            async def answer() -> tuple[int, bytes, bool]:
                nonlocal got_any
                first = await reader.readline()
                got_any = bool(first)
                status = int(first.split()[1])
                length, close, chunked = 0, False, False
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = line.decode("latin-1").partition(":")
                    name, value = name.strip().lower(), value.strip().lower()
                    if name == "content-length":
                        length = int(value)
                    elif name == "connection" and value == "close":
                        close = True
                    elif name == "transfer-encoding" and "chunked" in value:
                        chunked = True
                if not chunked:
                    return status, await reader.readexactly(length), close
                parts = []
                while (n := int((await reader.readline()).strip() or b"0", 16)) > 0:
                    parts.append(await reader.readexactly(n))
                    await reader.readline()
                await reader.readline()
                return status, b"".join(parts), close

            status, data, close = await asyncio.wait_for(answer(), timeout)
        except asyncio.TimeoutError:
            if conn is not None:
                await self._drop(conn)
            return 0, b"", False
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            if conn is not None:
                await self._drop(conn)
            return 0, b"", reused and not got_any
        if close:
            await self._drop(conn)
        else:
            await self._give_back(conn)
        return status, data, False

    async def close(self) -> None:
        for (_, w), _ in self.idle:
            w.close()
        self.idle.clear()


def _ms(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(np.array(values) * 1000, q)), 1) if values else None


def latency_summary(lat: list[float]) -> dict:
    """p50/p90/p99/max in ms of latencies in seconds."""
    return {"n": len(lat), "p50_ms": _ms(lat, 50), "p90_ms": _ms(lat, 90), "p99_ms": _ms(lat, 99),
            "max_ms": round(max(lat) * 1000, 1) if lat else None}


def open_loop_pass(port: int, token: str, urls: list[str], rate: float, limit: int, timeout: float) -> dict:
    """Every URL once, the n-th due at ``t0 + n / rate`` (open loop); latency counted from the due time."""
    headers = {"Authorization": f"Bearer {token}"}

    async def go() -> dict:
        client = OpenLoopClient(port, limit)
        loop = asyncio.get_running_loop()
        t0 = loop.time() + 0.05
        lat: list[float] = []
        late: list[float] = []
        done: list[float] = []
        errors = 0

        async def one(n: int, path: str) -> None:
            nonlocal errors
            due = t0 + n / rate
            await asyncio.sleep(max(0.0, due - loop.time()))
            late.append(loop.time() - due)
            status, _ = await client.call("GET", path, headers, timeout=timeout)
            end = loop.time()
            done.append(end)
            if 200 <= status < 300:
                lat.append(end - due)
            else:
                errors += 1
                codes[str(status)] = codes.get(str(status), 0) + 1

        codes: dict[str, int] = {}
        await asyncio.gather(*(one(n, u) for n, u in enumerate(urls)))
        await client.close()
        span = max(done) - t0 if done else 0.0
        ok = len(lat)
        res = {"offered_rps": rate, "requests": len(urls), "ok": ok, "errors": errors, "error_statuses": codes,
               "throughput_rps": round(ok / span, 1) if span > 0 else None, "seconds": round(span, 1),
               **{k: v for k, v in latency_summary(lat).items() if k != "n"},
               "sender_late_p99_ms": _ms(late, 99), "connections_peak": client.peak,
               "retried_on_closed_connection": client.retries}
        res["sustained"] = bool(errors == 0 and res["throughput_rps"] and res["throughput_rps"] >= 0.95 * rate
                                and res["p99_ms"] is not None and res["p99_ms"] <= 1000)
        return res

    return asyncio.run(go())


def open_scenario(cmd: list[str], token: str, urls: list[str], args: argparse.Namespace) -> dict:
    """Uncached lists at ``--open-rate``, then (if not sustained) at lower rates, each on a fresh server."""
    runs = []
    rate = float(args.open_rate)
    for attempt in range(args.open_tries + 1):
        with serving(cmd, token) as port:
            load = os.getloadavg()[0]
            r = open_loop_pass(port, token, urls, rate, args.max_connections, args.request_timeout)
        r["load_avg_1m_before"] = round(load, 2)
        runs.append(r)
        print(f"open loop {rate:g}/s: {json.dumps(r)}", file=sys.stderr, flush=True)
        if r["sustained"]:
            break
        if attempt == 0:
            rate = max(0.5, round(0.9 * min(rate, r["throughput_rps"] or 1.0), 1))
        else:
            rate = max(0.5, round(rate * 0.75, 1))
    best = max((r["offered_rps"] for r in runs if r["sustained"]), default=None)
    return {"runs": runs, "highest_sustained_rps": best}


def copy_store(store: str, workdir: Path) -> str:
    """A private copy of an embedded store (events are appended to it); a Neo4j URI as it is."""
    if "://" in store:
        return store
    dst = workdir / "mixed-store"
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(store, dst, ignore=shutil.ignore_patterns(".lock"))
    return str(dst)


def items_of(body: bytes) -> list[str]:
    return [x["item"] for x in json.loads(body)["items"]]


def mixed_pass(port: int, token: str, write: str, tops: dict[str, list[str]], args: argparse.Namespace,
               event_rate: float, seed: int) -> dict:
    """Reads at ``--mixed-read-rate`` and events at ``event_rate`` for ``--mixed-duration`` s (see the module doc)."""
    q = urllib.parse.quote
    k = args.k
    read_h = {"Authorization": f"Bearer {token}"}
    write_h = {"Authorization": f"Bearer {write}", "Content-Type": "application/json"}
    rng = random.Random(seed)
    users = sorted(tops)
    rng.shuffle(users)
    warm, fresh = users[: args.mixed_warm], users[args.mixed_warm :]

    def list_url(u: str) -> str:
        return f"/api/users/{q(u, safe='')}/recommendations?k={k}"

    def expl_url(u: str, i: str) -> str:
        return f"/api/users/{q(u, safe='')}/explanations/{q(i, safe='')}?k={k}"

    async def go() -> dict:
        client = OpenLoopClient(port, args.max_connections)
        loop = asyncio.get_running_loop()
        out: dict = {}
        # the first event moves the store past the training data: every user's live key changes once
        first = warm[0]
        status, body = await client.call("GET", list_url(first), read_h, timeout=args.request_timeout)
        assert status == 200, status
        top = items_of(body)[0]
        t = loop.time()
        status, _ = await client.call("POST", "/api/events", write_h, json.dumps([{"user": first, "item": top}]).encode(),
                                      timeout=args.request_timeout)
        accepted = loop.time()
        assert status == 200, f"the first event got {status}"
        status, body = await client.call("GET", list_url(first), read_h, timeout=args.request_timeout)
        out["first_event"] = {"accept_ms": round((accepted - t) * 1000, 1),
                              "changed_answer_ms": round((loop.time() - accepted) * 1000, 1),
                              "changed": status == 200 and top not in items_of(body)}
        # warm: each warm user's list once (it caches the explanations of its items too), 2 at a time
        known: dict[str, list[str]] = {}
        sem = asyncio.Semaphore(2)
        t = loop.time()

        async def warm_one(u: str) -> None:
            async with sem:
                st, b = await client.call("GET", list_url(u), read_h, timeout=args.request_timeout)
                if st == 200:
                    known[u] = items_of(b)

        await asyncio.gather(*(warm_one(u) for u in warm))
        out["warm"] = {"users": len(warm), "lists_ok": len(known), "seconds": round(loop.time() - t, 1)}
        warm_ok = [u for u in warm if known.get(u)]
        # the run
        t0 = loop.time() + 0.05
        duration = args.mixed_duration
        n_reads = int(duration * args.mixed_read_rate)
        n_events = int(duration * event_rate)
        reads: dict[str, list[float]] = {"warm_list": [], "warm_explanation": [], "new_list": [], "new_explanation": []}
        errors = {"reads": 0, "events": 0, "polls": 0, "events_skipped": 0}
        accept: list[float] = []
        change: list[float] = []
        polls: list[int] = []
        busy: set[str] = set()
        new_users = iter(fresh)
        why_not = iter([(u, i) for u in warm_ok for i in tops[u][10:20]])
        plan = []
        for n in range(n_reads):
            if rng.random() < args.mixed_uncached:
                kind = "new_list" if n % 2 == 0 else "new_explanation"
            else:
                kind = "warm_list" if rng.random() < 0.5 else "warm_explanation"
            plan.append(kind)

        async def read(n: int, kind: str) -> None:
            due = t0 + n / args.mixed_read_rate
            await asyncio.sleep(max(0.0, due - loop.time()))
            if kind == "new_list":
                u = next(new_users, None)
                if u is None:
                    kind, path = "warm_list", list_url(rng.choice(warm_ok))
                else:
                    path = list_url(u)
            elif kind == "new_explanation":
                pair = next(why_not, None)
                if pair is None:
                    kind = "warm_explanation"
                    u = rng.choice(warm_ok)
                    path = expl_url(u, rng.choice(known[u]))
                else:
                    path = expl_url(*pair)
            elif kind == "warm_list":
                path = list_url(rng.choice(warm_ok))
            else:
                u = rng.choice(warm_ok)
                path = expl_url(u, rng.choice(known[u]))
            status, _ = await client.call("GET", path, read_h, timeout=args.request_timeout)
            if 200 <= status < 300:
                reads[kind].append(loop.time() - due)
            else:
                errors["reads"] += 1

        event_users = list(warm_ok)
        rng.shuffle(event_users)

        async def event(n: int) -> None:
            due = t0 + n / event_rate
            await asyncio.sleep(max(0.0, due - loop.time()))
            u = next((x for x in event_users[n % len(event_users):] + event_users[: n % len(event_users)]
                      if x not in busy and known.get(x)), None)
            if u is None:
                errors["events_skipped"] += 1
                return
            busy.add(u)
            try:
                item = known[u][0]
                status, _ = await client.call("POST", "/api/events", write_h,
                                              json.dumps([{"user": u, "item": item}]).encode(),
                                              timeout=args.request_timeout)
                got = loop.time()
                if status != 200:
                    errors["events"] += 1
                    return
                accept.append(got - due)
                tries = 0
                while loop.time() - got < args.request_timeout:
                    tries += 1
                    st, body = await client.call("GET", list_url(u), read_h, timeout=args.request_timeout)
                    if st != 200:
                        errors["polls"] += 1
                        break
                    now_items = items_of(body)
                    if item not in now_items:
                        change.append(loop.time() - got)
                        polls.append(tries)
                        known[u] = now_items
                        break
                    await asyncio.sleep(args.poll_interval)
            finally:
                busy.discard(u)

        tasks = [asyncio.ensure_future(read(n, kind)) for n, kind in enumerate(plan)]
        tasks += [asyncio.ensure_future(event(n)) for n in range(n_events)]
        load = os.getloadavg()[0]
        _, pending = await asyncio.wait(tasks, timeout=duration + args.drain)
        for task in pending:
            task.cancel()
        await client.close()
        all_reads = [x for v in reads.values() for x in v]
        out.update({
            "read_rate": args.mixed_read_rate, "event_rate": event_rate, "seconds": duration,
            "reads_planned": n_reads, "events_planned": n_events,
            "reads": latency_summary(all_reads), **{f"reads_{k}": latency_summary(v) for k, v in reads.items()},
            "event_accept": latency_summary(accept), "event_to_changed_answer": latency_summary(change),
            "polls_per_event_mean": round(float(np.mean(polls)), 2) if polls else None,
            "errors": errors, "unanswered_after_drain": len(pending), "connections_peak": client.peak,
            "retried_on_closed_connection": client.retries,
            "load_avg_1m_at_start": round(load, 2), "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
        })
        return out

    return asyncio.run(go())


def mixed_scenario(cmd: list[str], token: str, store: str, tops: dict[str, list[str]], args: argparse.Namespace,
                   workdir: Path) -> dict:
    runs = []
    for n, rate in enumerate(args.mixed_event_rates):
        where = copy_store(store, workdir)
        c = list(cmd)
        c[c.index("--store") + 1] = where
        write = secrets.token_hex(24)
        with serving(c, token, write) as port:
            r = mixed_pass(port, token, write, tops, args, rate, seed=n)
        print(f"mixed, events {rate:g}/s: {json.dumps(r)}", file=sys.stderr, flush=True)
        runs.append(r)
    return {"runs": runs}


def raise_open_files() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", required=True)
    ap.add_argument("--model", default=None)
    ap.add_argument("--scenarios", default="closed,open,mixed",
                    help="comma-separated: closed (cold passes + wrk), open (uncached lists, open loop), mixed")
    ap.add_argument("--duration", type=int, default=60, help="seconds per wrk scenario")
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2, help="wrk threads")
    ap.add_argument("--workers", type=int, default=1, help="kgrec serve --workers")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--pairs-rank", type=int, default=20, help="explanations for each user's items ranked 1..N")
    ap.add_argument("--skip-cold", action="store_true", help="no cold pass (the wrk runs then start cold)")
    ap.add_argument("--open-rate", type=float, default=200.0, help="open loop: first offered rate (requests/s)")
    ap.add_argument("--open-tries", type=int, default=4, help="open loop: lower rates tried when one is not sustained")
    ap.add_argument("--open-users", type=int, default=0, help="open loop: users per pass (0: all)")
    ap.add_argument("--max-connections", type=int, default=1000, help="open loop: most connections at once")
    ap.add_argument("--request-timeout", type=float, default=120.0, help="open loop: seconds before a request fails")
    ap.add_argument("--mixed-duration", type=float, default=60.0)
    ap.add_argument("--mixed-read-rate", type=float, default=20.0, help="reads per second")
    ap.add_argument("--mixed-uncached", type=float, default=0.1, help="fraction of reads that are new questions")
    ap.add_argument("--mixed-event-rates", type=lambda x: [float(v) for v in x.split(",")], default=[20.0, 1.0],
                    help="events per second, comma-separated: one run (fresh server, fresh store copy) per rate")
    ap.add_argument("--mixed-warm", type=int, default=200, help="users whose lists are cached before the run")
    ap.add_argument("--poll-interval", type=float, default=0.005, help="seconds between polls for a changed list")
    ap.add_argument("--drain", type=float, default=30.0, help="seconds to wait for answers after the last request")
    ap.add_argument("--write-to-neo4j", action="store_true",
                    help="allow the mixed scenario to append its events to a Neo4j store (wipe it afterwards)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    scenarios = [x.strip() for x in args.scenarios.split(",") if x.strip()]
    unknown = set(scenarios) - {"closed", "open", "mixed"}
    if unknown:
        raise SystemExit(f"--scenarios: unknown {', '.join(sorted(unknown))}; expected closed, open, mixed")
    if "closed" in scenarios and shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk (or leave out the closed scenario)")
    if "mixed" in scenarios and "://" in args.store and not args.write_to_neo4j:
        raise SystemExit("the mixed scenario appends events to the store: pass --write-to-neo4j for a Neo4j store")
    raise_open_files()
    recs, expl, tops = url_lists(args.store, args.model, args.k, args.pairs_rank, seed=0)
    token = secrets.token_hex(24)
    cmd = [sys.executable, "-m", "kgrec", "serve", "--store", args.store, "--workers", str(args.workers), "--k", str(args.k)]
    if args.model:
        cmd += ["--model", str(Path(args.model).resolve())]
    res: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        "store": "neo4j" if "://" in args.store else "embedded",
        "server": f"kgrec serve --workers {args.workers} (token auth on)",
        "users": len(recs), "explanation_pairs": len(expl),
    }
    with tempfile.TemporaryDirectory() as d:
        if "closed" in scenarios:
            res["load"] = f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s on loopback, same machine"
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
        if "open" in scenarios:
            urls = recs[: args.open_users] if args.open_users else recs
            res["open_uncached_recommendations"] = open_scenario(cmd, token, urls, args)
        if "mixed" in scenarios:
            res["mixed"] = mixed_scenario(cmd, token, args.store, tops, args, Path(d))
    res["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report(res, args.out)


if __name__ == "__main__":
    main()
