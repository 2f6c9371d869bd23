"""Durability of ``kgrec export`` (issue 19, case 14 and the export part of 11): an output that is a directory, two exports
to one output at once, a damaged part on --resume, a full disk."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from test_reliability_store import disk_full, one_error  # tests/ is on sys.path (no __init__.py)

from kgrec.cli import main
from kgrec.fusion.export import parts_dir


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, synth_frames: dict[str, pd.DataFrame]) -> Path:
    d = tmp_path_factory.mktemp("exp")
    for name in ("interactions", "items"):
        synth_frames[name].to_csv(d / f"{name}.csv", index=False)
    (d / "config.json").write_text(json.dumps({"model": {"dim": 16}, "train": {"epochs": 3, "lr": 0.01}}))
    s = d / "store"
    assert main(["ingest", "--store", str(s), "--interactions", str(d / "interactions.csv"), "--items", str(d / "items.csv")]) == 0
    assert main(["train", "--store", str(s), "--config", str(d / "config.json")]) == 0
    return s


def test_out_is_a_directory_fails_before_work(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "adir.csv"
    target.mkdir()
    t0 = time.monotonic()
    rc, _, err = run(capsys, "export", "--store", str(store), "--k", "5", "--explain", "--out", str(target))
    assert rc == 2 and one_error(err), err
    assert f"{target}: is a directory; give a file name, e.g. --out {target / 'recs.csv'}" in err
    assert time.monotonic() - t0 < 30 and not parts_dir(target).exists() and list(target.iterdir()) == []


def test_two_exports_to_one_output(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A second export to the same --out while the first runs fails at once, naming the first one; the first
    finishes with the right file."""
    out = tmp_path / "recs.csv"
    cmd = [sys.executable, "-m", "kgrec", "export", "--store", str(store), "--k", "10", "--explain", "--chunk-size", "4",
           "--out", str(out)]
    first = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not list(parts_dir(out).glob("part-*.parquet")):
            time.sleep(0.02)
        assert first.poll() is None, "the first export ended before the second started"
        rc, _, err = run(capsys, "export", "--store", str(store), "--k", "10", "--explain", "--chunk-size", "4",
                         "--out", str(out))
        assert rc == 2 and one_error(err), err
        assert f"{out}: another export to this file is running (pid {first.pid} since " in err
        assert "wait for it, or pass another --out" in err
        stdout, stderr = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, stderr
    df = pd.read_csv(out)
    assert len(df) == 160 * 10 and df.groupby("user")["rank"].apply(list).map(lambda r: r == list(range(1, 11))).all()


def test_damaged_part_is_recomputed_on_resume(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              caplog: pytest.LogCaptureFixture) -> None:
    clean = tmp_path / "clean.parquet"
    assert run(capsys, "export", "--store", str(store), "--k", "10", "--chunk-size", "16", "--out", str(clean))[0] == 0
    out = tmp_path / "recs.parquet"
    work = parts_dir(out)
    # an export killed midway leaves finished parts; two of them are then damaged
    cmd = [sys.executable, "-m", "kgrec", "export", "--store", str(store), "--k", "10", "--chunk-size", "16", "--out", str(out)]
    proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(work.glob("part-*.parquet"))) < 4:
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    parts = sorted(work.glob("part-*.parquet"))
    assert len(parts) >= 4 and not out.exists()
    truncated, flipped = parts[1], parts[2]
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])  # cut short
    raw = bytearray(flipped.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # one changed byte: the sha256 no longer matches
    flipped.write_bytes(bytes(raw))
    with caplog.at_level(logging.WARNING, logger="kgrec.fusion.export"):
        rc, text, err = run(capsys, "export", "--store", str(store), "--k", "10", "--chunk-size", "16",
                            "--out", str(out), "--resume")
    assert rc == 0, err
    assert f"part {truncated.name} is damaged or unfinished; computing it again" in caplog.text
    assert f"part {flipped.name} is damaged or unfinished; computing it again" in caplog.text
    assert f"(resumed {len(parts) - 2} of 10 chunks)" in text
    assert out.read_bytes() == clean.read_bytes()


def test_full_disk_export_is_one_line(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    disk = tmp_path / "disk"
    with disk_full(disk, 16 << 10):
        out = disk / "recs.csv"
        rc, _, err = run(capsys, "export", "--store", str(store), "--k", "50", "--explain", "--out", str(out))
        assert rc == 2 and one_error(err), err
        assert f"cannot write the export {out}" in err
        assert ("No space left on device" in err and "free space there" in err) or "file size limit" in err, err
        assert not out.exists() and not [p.name for p in disk.iterdir() if p.name.endswith(".tmp")]
