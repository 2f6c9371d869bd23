"""The CLI end to end on bring-your-own CSV files: ingest -> train -> export -> explain."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from kgrec.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def byo(tmp_path_factory, synth_frames) -> Path:
    d = tmp_path_factory.mktemp("byo")
    for name in ("interactions", "items", "triples", "tags"):
        synth_frames[name].to_csv(d / f"{name}.csv", index=False)
    (d / "config.json").write_text(json.dumps({"model": {"dim": 32}, "train": {"epochs": 12, "lr": 0.01}}))
    return d


def run(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_whole_job_from_csv(byo: Path, tmp_path: Path, capsys) -> None:
    store = str(tmp_path / "store")
    rc, out, _ = run(capsys, "ingest", "--store", store, "--interactions", str(byo / "interactions.csv"),
                     "--items-file", str(byo / "items.csv"), "--triples", str(byo / "triples.csv"), "--tags", str(byo / "tags.csv"))
    assert rc == 0 and "ingested: 160 users, 240 items" in out
    rc, out, _ = run(capsys, "ingest", "--store", store, "--interactions", str(byo / "interactions.csv"),
                     "--items-file", str(byo / "items.csv"), "--triples", str(byo / "triples.csv"), "--tags", str(byo / "tags.csv"))
    assert rc == 0 and out.startswith("unchanged")
    rc, out, err = run(capsys, "train", "--store", store, "--config", str(byo / "config.json"))
    assert rc == 0, err
    assert "trained" in out and (tmp_path / "store" / "models" / "default" / "weights.pt").is_file()
    for ext in ("csv", "parquet", "jsonl"):
        target = tmp_path / f"recs.{ext}"
        rc, out, err = run(capsys, "export", "--store", store, "--k", "5", "--explain", "--out", str(target))
        assert rc == 0, err
        df = {"csv": pd.read_csv, "parquet": pd.read_parquet, "jsonl": lambda p: pd.read_json(p, lines=True)}[ext](target)
        assert list(df.columns) == ["user", "item", "rank", "score", "model_version", "explanation", "path"]
        assert len(df) == 160 * 5 and df["explanation"].str.startswith("Recommended because").mean() > 0.99
        first = json.loads(df["path"].iloc[0])
        assert first[0] == ["user", str(df["user"].iloc[0])] and first[-1] == ["item", str(df["item"].iloc[0])]
    recs = pd.read_parquet(tmp_path / "recs.parquet")
    u, i = recs.iloc[0]["user"], recs.iloc[0]["item"]
    # a 12-long list explains every row as a recommendation (ranks 11, 12 were worded "..., but that is not enough",
    # the why-not wording of the default k = 10)
    rc, out, err = run(capsys, "recommend", "--store", store, "--user", u, "--k", "12", "--explain", "--format", "json")
    assert rc == 0, err
    listed = pd.DataFrame(json.loads(out))
    assert len(listed) == 12 and not listed["explanation"].str.contains("not enough").any()
    assert listed["explanation"].str.startswith("Recommended because").mean() > 0.9
    rc, out, _ = run(capsys, "explain", "--store", store, "--user", u, "--item", i, "--format", "json")
    assert rc == 0
    e = json.loads(out)
    assert {"user", "item", "rank", "score", "paths", "attribution"} <= set(e)
    assert e["rank"] == 1 and e["paths"][0]["nodes"][0] == {"type": "user", "id": u, "name": f"user {u}"}
    assert e["paths"][0]["nodes"][-1]["id"] == i
    rc, out, _ = run(capsys, "explain", "--store", store, "--user", u, "--item", i)
    assert rc == 0 and "1. [+" in out and "Recommended because" in out
    rc, out, _ = run(capsys, "recommend", "--store", store, "--user", u, "--k", "3", "--format", "csv")
    assert rc == 0 and out.splitlines()[0] == "user,item,title,rank,score"
    # bad input: one-line errors and exit code 2
    rc, _, err = run(capsys, "recommend", "--store", store, "--user", "nobody")
    assert rc == 2 and "unknown user id 'nobody'" in err
    rc, _, err = run(capsys, "export", "--store", store, "--out", str(tmp_path / "missing" / "x.csv"))
    assert rc != 0 and "does not exist" in err
    rc, _, err = run(capsys, "export", "--store", store, "--out", str(tmp_path / "x.xlsx"))
    assert rc == 2 and "unknown output type '.xlsx'" in err


def test_failed_ingest_writes_nothing(tmp_path: Path, byo: Path, capsys) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("user,item,timestamp\nu0,i1,12\nu0,i2,soon\n")
    rc, _, err = run(capsys, "ingest", "--store", str(tmp_path / "s"), "--interactions", str(bad), "--items-file", str(byo / "items.csv"))
    assert rc == 2 and "bad.csv, line 3, column 'timestamp'" in err and "\n" not in err.strip()
    assert not (tmp_path / "s").exists()


def test_help_for_every_command(capsys) -> None:
    for cmd in ("ingest", "train", "recommend", "explain", "export", "demo"):
        rc, out, _ = run(capsys, cmd, "--help")
        assert rc == 0 and "Usage" in out


def test_demo_offline_falls_back_to_synthetic(tmp_path: Path, capsys) -> None:
    """With no MovieLens files and no network, the demo says so in one line and runs on synthetic data."""
    rc, out, err = run(capsys, "demo", "--root", str(tmp_path / "empty"), "--store", str(tmp_path / "s"), "--epochs", "4", "--n-users", "1")
    assert rc == 0, err
    assert "offline: MovieLens is not available" in out
    assert "test (" in out and "fused recall@20" in out and "Recommended because" in out
    assert (tmp_path / "s" / "models" / "default" / "model.json").is_file()


def test_export_resumes_after_sigkill_byte_identical(byo: Path, tmp_path: Path, capsys) -> None:
    """Kill an export midway (SIGKILL), resume it, and compare with an uninterrupted run byte for byte."""
    import signal
    import subprocess
    import sys
    import time

    store = str(tmp_path / "store")
    assert run(capsys, "ingest", "--store", store, "--interactions", str(byo / "interactions.csv"), "--items-file", str(byo / "items.csv"),
               "--triples", str(byo / "triples.csv"), "--tags", str(byo / "tags.csv"))[0] == 0
    assert run(capsys, "train", "--store", store, "--config", str(byo / "config.json"))[0] == 0
    clean = tmp_path / "clean.parquet"
    assert run(capsys, "export", "--store", store, "--k", "10", "--explain", "--chunk-size", "8", "--out", str(clean))[0] == 0
    out = tmp_path / "resumed.parquet"
    parts = tmp_path / ".resumed.parquet.parts"
    cmd = [sys.executable, "-m", "kgrec", "export", "--store", store, "--k", "10", "--explain", "--chunk-size", "8", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(parts.glob("part-*.parquet"))) < 3:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = len(list(parts.glob("part-*.parquet")))
    assert 3 <= finished < 20 and not out.exists()  # midway: some parts, no output file
    rc, text, err = run(capsys, "export", "--store", store, "--k", "10", "--explain", "--chunk-size", "8", "--out", str(out), "--resume")
    assert rc == 0, err
    assert f"resumed {finished} of 20 chunks" in text
    assert out.read_bytes() == clean.read_bytes()
    assert not parts.exists()
    # a different job does not resume silently
    parts.mkdir()
    (parts / "job.json").write_text('{"k": 5}')
    rc, _, err = run(capsys, "export", "--store", store, "--k", "10", "--out", str(out), "--resume")
    assert rc == 2 and "unfinished export of a different job" in err


def test_export_users_exclusions_and_candidates(byo: Path, tmp_path: Path, capsys) -> None:
    store = str(tmp_path / "store")
    run(capsys, "ingest", "--store", store, "--interactions", str(byo / "interactions.csv"), "--items-file", str(byo / "items.csv"))
    assert run(capsys, "train", "--store", store, "--config", str(byo / "config.json"))[0] == 0
    (tmp_path / "users.txt").write_text("u1\nu2\nghost\n")
    (tmp_path / "cand.txt").write_text("\n".join(f"i{n}" for n in range(0, 240, 2)))
    (tmp_path / "excl.txt").write_text("i0\ni2\n")
    rc, _, err = run(capsys, "export", "--store", store, "--users-file", str(tmp_path / "users.txt"), "--out", str(tmp_path / "r.csv"))
    assert rc == 2 and "1 unknown user id(s), first: ['ghost']" in err and not (tmp_path / "r.csv").exists()
    rc, _, err = run(capsys, "export", "--store", store, "--users-file", str(tmp_path / "users.txt"), "--unknown-users", "skip",
                     "--candidates", str(tmp_path / "cand.txt"), "--exclude", str(tmp_path / "excl.txt"), "--k", "5",
                     "--out", str(tmp_path / "r.csv"))
    assert rc == 0 and "ghost" in err
    df = pd.read_csv(tmp_path / "r.csv", dtype={"user": str, "item": str})
    assert set(df["user"]) == {"u1", "u2"} and len(df) == 10
    assert df["item"].str[1:].astype(int).mod(2).eq(0).all() and not set(df["item"]) & {"i0", "i2"}
    rc, _, err = run(capsys, "export", "--store", store, "--out", str(tmp_path / "nope" / "r.csv"))
    assert rc == 2 and "does not exist" in err
