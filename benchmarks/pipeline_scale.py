"""The whole job at growing sizes: ``kgrec generate → ingest → train → export --k 100``, each stage its own process.

    python -m benchmarks.pipeline_scale --users 10000 100000 [--items 100000] [--precision auto] [--user-text auto]
        [--work DIR] [--out JSON] [--write-docs [--mark pipeline-scale]]

Each stage runs as the CLI a pipeline would run, under ``/usr/bin/time -v`` (wall time and peak resident memory of
the stage's process), with one torch thread when ``OMP_NUM_THREADS`` says so. The text cache is a fresh folder per
size (no vector is reused from an earlier size or run). Results go to ``benchmarks/results/pipeline-scale.json``
(one row per size and stage; a rerun of a size replaces its rows) and, with ``--write-docs``, as a table with the
log-log slope of each stage against the number of interactions between consecutive sizes into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks._report import replace_between

LOG = logging.getLogger("benchmarks.pipeline_scale")
RESULTS = Path(__file__).parent / "results" / "pipeline-scale.json"
DOCS = Path(__file__).parents[1] / "docs" / "benchmarks.md"
MARK = "pipeline-scale"
STAGES = ("generate", "ingest", "train", "export")


def _rss_kb(pid: int) -> int:
    """Resident memory (kB) of ``pid`` and its descendants, 0 when it is gone."""
    total = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total += _rss_kb(int(child))
    except (OSError, ValueError):
        pass
    return total


def _last_line(log: Path) -> str:
    """The log's last line or progress-bar state (what the stage was doing), at most 160 characters."""
    try:
        with log.open("rb") as fh:
            fh.seek(max(0, log.stat().st_size - 4000))
            tail = fh.read().decode(errors="replace")
    except OSError:
        return ""
    parts = [p.strip() for p in re.split(r"[\r\n]", tail) if p.strip()]
    return parts[-1][:160] if parts else ""


def timed(cmd: list[str], log: Path, env: dict[str, str], every: float = 2.0) -> dict[str, Any]:
    """Run ``cmd`` under ``/usr/bin/time -v``: its wall seconds and peak RSS (GB), plus, sampled every ``every``
    seconds, what its log said when the resident memory was highest (``peak_during``); RuntimeError with the log's
    tail when it fails."""
    t0 = time.perf_counter()
    peak = {"kb": 0, "during": ""}
    with log.open("w") as fh:
        proc = subprocess.Popen(["/usr/bin/time", "-v", *cmd], stdout=fh, stderr=subprocess.STDOUT, env=env)
        while proc.poll() is None:
            kb = _rss_kb(proc.pid)
            if kb > peak["kb"]:
                peak = {"kb": kb, "during": _last_line(log)}
            time.sleep(every)
        rc = proc.returncode
    wall = time.perf_counter() - t0
    text = log.read_text(errors="replace")
    if rc != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {rc}); the end of {log}:\n{text[-3000:]}")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    return {
        "seconds": round(wall, 1),
        "peak_rss_gb": round(int(rss.group(1)) / 1e6, 2) if rss else None,
        "peak_during": peak["during"],
    }


def run_size(
    users: int, items: int, per_user: float, work: Path, precision: str, epochs: int | None, user_text: str = "auto"
) -> list[dict]:
    """The four stages at one size; one row each."""
    here = work / f"u{users}"
    data, store, cache = here / "data", here / "store", here / "text-cache"
    here.mkdir(parents=True, exist_ok=True)
    cfg = here / "config.json"
    cfg.write_text(
        json.dumps({"text": {"precision": precision, "cache_dir": str(cache)}, "model": {"user_text": user_text}})
    )
    env = {**os.environ, "KGREC_CACHE": str(cache)}
    kgrec = [sys.executable, "-m", "kgrec"]
    train = [*kgrec, "train", "-s", str(store), "--config", str(cfg)]
    if epochs is not None:
        train += ["--epochs", str(epochs)]
    cmds = {
        "generate": [
            *kgrec,
            "generate",
            "-o",
            str(data),
            "--n-users",
            str(users),
            "--n-items",
            str(items),
            "--interactions-per-user",
            str(per_user),
        ],
        "ingest": [
            *kgrec,
            "ingest",
            "-s",
            str(store),
            "--interactions",
            str(data / "interactions.parquet"),
            "--items-file",
            str(data / "items.parquet"),
            "--triples",
            str(data / "triples.parquet"),
            "--tags",
            str(data / "tags.parquet"),
        ],
        "train": train,
        "export": [*kgrec, "export", "-s", str(store), "-o", str(here / "recs.parquet"), "--k", "100"],
    }
    rows = []
    n_inter = None
    for stage in STAGES:
        LOG.info("%d users: %s", users, stage)
        r = timed(cmds[stage], here / f"{stage}.log", env)
        if stage == "generate":
            n_inter = len(pd.read_parquet(data / "interactions.parquet", columns=["user"]))
        row = {"users": users, "items": items, "interactions": n_inter, "stage": stage, **r}
        if stage == "train":
            m = json.loads((store / "models" / "default" / "metrics.json").read_text())
            row["epochs"] = len(m.get("validation", []))
            row["user_text"] = m.get("user_text")
        LOG.info("%s", row)
        rows.append(row)
    return rows


def slopes(df: pd.DataFrame) -> pd.DataFrame:
    """Per stage, the log-log slope of seconds (and of peak memory) against interactions between consecutive sizes."""
    out = []
    for stage, g in df.groupby("stage", sort=False):
        g = g.sort_values("interactions")
        for a, b in zip(g.itertuples(), g.iloc[1:].itertuples(), strict=False):
            dx = math.log(b.interactions / a.interactions)
            out.append(
                {
                    "stage": stage,
                    "from": a.users,
                    "to": b.users,
                    "time_slope": round(math.log(b.seconds / a.seconds) / dx, 2),
                    "memory_slope": round(math.log(b.peak_rss_gb / a.peak_rss_gb) / dx, 2),
                }
            )
    return pd.DataFrame(out)


def report(result: dict[str, Any]) -> str:
    df = pd.DataFrame(result["rows"])
    lines = ["| users | interactions | stage | wall | peak memory |", "|---|---|---|---|---|"]
    for r in df.sort_values(["users"], kind="stable").itertuples():
        mins = f"{r.seconds / 60:.1f} min" if r.seconds >= 120 else f"{r.seconds:.0f} s"
        lines.append(f"| {r.users:,} | {r.interactions:,} | {r.stage} | {mins} | {r.peak_rss_gb:.2f} GB |")
    for users, g in df.groupby("users"):
        lines.append(
            f"| {users:,} | | **whole job** | **{g.seconds.sum() / 60:.1f} min** | "
            f"{g.peak_rss_gb.max():.2f} GB (largest stage) |"
        )
    s = slopes(df)
    if len(s):
        lines += [
            "",
            "Growth against interactions (log-log slope between consecutive sizes; 1 = linear):",
            "",
            "| stage | sizes | time slope | memory slope |",
            "|---|---|---|---|",
        ]
        lines += [f"| {r.stage} | {r._2:,} → {r.to:,} | {r.time_slope} | {r.memory_slope} |" for r in s.itertuples()]
    meta = result["meta"]
    lines += [
        "",
        f"Machine {meta['machine']}, {meta['cpus']} cores, OMP_NUM_THREADS={meta['threads']}; items "
        f"{meta['items']:,}, ~{meta['per_user']:g} draws per user; text.precision {meta['precision']}; "
        f"model.user_text {meta.get('user_text', 'encode (before the option)')}; "
        f"code {meta['code']}; {meta['date']}.",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--per-user", type=float, default=20.0, help="mean draws per user (kgrec generate)")
    ap.add_argument("--precision", default="auto", choices=["fp32", "bf16", "auto"], help="text.precision")
    ap.add_argument("--epochs", type=int, default=None, help="maximum epochs (default: kgrec train's)")
    ap.add_argument("--user-text", default="auto", choices=["auto", "encode", "compose"], help="model.user_text")
    ap.add_argument("--work", type=Path, default=Path("/tmp/kgrec-pipeline-scale"))
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--write-docs", action="store_true")
    ap.add_argument("--mark", default=MARK, help="the docs/benchmarks.md markers the table goes between")
    ap.add_argument("--from-results", action="store_true", help="run nothing: rewrite the docs table from --out")
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    result: dict[str, Any] = json.loads(a.out.read_text()) if a.out.exists() else {"rows": []}
    if not a.from_results:
        code = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        result["meta"] = {
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "threads": os.environ.get("OMP_NUM_THREADS", "default"),
            "items": a.items,
            "per_user": a.per_user,
            "precision": a.precision,
            "user_text": a.user_text,
            "code": code or "unknown",
            "date": time.strftime("%Y-%m-%d"),
        }
        for users in a.users:
            rows = run_size(users, a.items, a.per_user, a.work, a.precision, a.epochs, a.user_text)
            result["rows"] = [r for r in result["rows"] if r["users"] != users] + rows
            a.out.parent.mkdir(parents=True, exist_ok=True)
            a.out.write_text(json.dumps(result, indent=1))
    text = report(result)
    print(text)
    if a.write_docs:
        DOCS.write_text(replace_between(DOCS.read_text(), a.mark, text))


if __name__ == "__main__":
    main()
