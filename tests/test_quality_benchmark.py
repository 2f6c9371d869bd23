"""The quality benchmark's command (benchmarks/quality.py) run as a user runs it, on tiny generated data sets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]


def _data_set(folder: Path, seed: int, tags: bool) -> None:
    """A small bring-your-own data set: 60 users, 40 items in two taste groups, daily timestamps with ties."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(60):
        lo = 0 if u % 2 else 20
        for n, i in enumerate(rng.choice(np.arange(lo, lo + 20), 12, replace=False).tolist()):
            rows.append((u, i, 1_600_000_000 + 86_400 * (n // 2)))
    folder.mkdir(parents=True)
    inter = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    inter.to_csv(folder / "interactions.csv", index=False)
    pd.DataFrame({"item": range(40), "title": [f"item {i}" for i in range(40)]}).to_csv(folder / "items.csv", index=False)
    if tags:
        inter.assign(tag=np.where(inter["item"] < 20, "calm", "loud"))[["user", "item", "tag"]].head(50).to_csv(
            folder / "tags.csv", index=False
        )


def _run(home: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "benchmarks.quality", "--datasets", "lastfm-hetrec2011", "instacart-sample"]
    cmd += ["--data-home", str(home), "--out", str(out), "--seeds", "0", "--models", "Popularity", "ItemKNN", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.slow
def test_jobs_run_the_data_sets_in_processes_with_the_answers_of_one_process(tmp_path):
    home = tmp_path / "sets"
    _data_set(home / "lastfm-hetrec2011", 0, tags=True)
    _data_set(home / "instacart-sample", 1, tags=False)
    docs = (REPO / "docs" / "benchmarks.md").read_bytes()
    one, two = tmp_path / "one", tmp_path / "two"
    a = _run(home, one)
    assert a.returncode == 0, a.stderr[-3000:]
    b = _run(home, two, "--jobs", "2")
    assert b.returncode == 0, b.stderr[-3000:]
    for name in ("lastfm-hetrec2011", "instacart-sample"):
        ra, rb = (json.loads((d / f"quality-{name}.json").read_text()) for d in (one, two))
        assert ra["meta"]["split"] == rb["meta"]["split"]
        cols = ["model", "recall@20", "ndcg@20", "coverage@20"]
        assert pd.DataFrame(ra["runs"])[cols].equals(pd.DataFrame(rb["runs"])[cols])
        assert [r["model"] for r in rb["runs"]] == ["Popularity", "ItemKNN"]
        assert (two / f"quality-{name}.log").stat().st_size > 0  # each process's log beside its results
        assert (two / f"quality-{name}.png").exists()  # without --write-docs the plot stays beside the results
    assert "whole benchmark: 2 data sets" in b.stderr
    assert "Model time recorded in the results" in b.stdout
    assert (REPO / "docs" / "benchmarks.md").read_bytes() == docs  # nothing under docs/ without --write-docs


@pytest.mark.slow
def test_jobs_name_the_data_set_that_failed_and_its_log(tmp_path):
    home = tmp_path / "sets"
    _data_set(home / "lastfm-hetrec2011", 0, tags=True)  # instacart-sample is missing
    r = _run(home, tmp_path / "out", "--jobs", "2")
    assert r.returncode != 0
    assert "failed on ['instacart-sample']" in r.stderr and "quality-instacart-sample.log" in r.stderr
    assert "convert the data set first" in (tmp_path / "out" / "quality-instacart-sample.log").read_text()
