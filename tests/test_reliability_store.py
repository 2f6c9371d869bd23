"""Durability of the embedded store and the model directory (issue 19: cases 4, 5, 6, 11 and the ingest part of 14).

Read-only folders and full disks are real: a tmpfs mounted read-only or with a few KB free (tests run as root, where
chmod does not stop writes). Where ``mount`` is refused, a read-only folder is an immutable one (``chattr +i``) and a
full disk is a file size limit (RLIMIT_FSIZE: EFBIG through the same code path). Every mount is undone in a finally.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from kgrec.cli import main
from kgrec.errors import KgrecError, StoreError
from kgrec.graph.embedded import EmbeddedStore

REPO = Path(__file__).resolve().parents[1]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture(scope="module")
def byo(tmp_path_factory: pytest.TempPathFactory, synth_frames: dict[str, pd.DataFrame]) -> Path:
    d = tmp_path_factory.mktemp("byo")
    for name in ("interactions", "items", "triples", "tags"):
        synth_frames[name].to_csv(d / f"{name}.csv", index=False)
    (d / "config.json").write_text(json.dumps({"model": {"dim": 16}, "train": {"epochs": 3, "lr": 0.01}}))
    # two halves with disjoint users, for the concurrent ingests
    inter = synth_frames["interactions"]
    users = sorted(inter["user"].unique())
    for half, sel in (("a", users[: len(users) // 2]), ("b", users[len(users) // 2 :])):
        inter[inter["user"].isin(sel)].to_csv(d / f"inter_{half}.csv", index=False)
    return d


def ingest_args(byo: Path, store: Path | str, inter: str = "interactions.csv") -> list[str]:
    return ["ingest", "--store", str(store), "--interactions", str(byo / inter), "--items", str(byo / "items.csv")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, byo: Path) -> Path:
    """A store with a tiny trained model (copied by the tests that change it)."""
    store = tmp_path_factory.mktemp("trained") / "store"
    assert main(ingest_args(byo, store)) == 0
    assert main(["train", "--store", str(store), "--config", str(byo / "config.json")]) == 0
    return store


# ---------------------------------------------------------------- mounts (undone in finally)
def _mount(*args: str) -> bool:
    if os.environ.get("KGREC_TEST_NO_MOUNT"):  # try the fallbacks of a sandbox without mount
        return False
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[bool]:
    """A tmpfs of ``size`` at ``path``; yields False (nothing mounted) where mount is refused."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = _mount("-t", "tmpfs", "-o", f"size={size},mode=0777", "tmpfs", str(path))
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], check=True)


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Make the existing folder ``path`` read-only for root: a read-only bind mount, else ``chattr +i``."""
    if _mount("--bind", str(path), str(path)):
        try:
            assert _mount("-o", "remount,bind,ro", str(path)), "remounting the bind mount read-only failed"
            yield
        finally:
            subprocess.run(["umount", "-l", str(path)], check=True)
        return
    assert subprocess.run(["chattr", "+i", str(path)]).returncode == 0, "neither mount nor chattr +i works here"
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


@contextlib.contextmanager
def disk_full(folder: Path, free_bytes: int) -> Iterator[None]:
    """``folder`` on a tmpfs with about ``free_bytes`` left; where mount is refused, a file size limit instead."""
    with tmpfs(folder, "4m") as mounted:
        if mounted:
            st = os.statvfs(folder)
            (folder / ".filler").write_bytes(b"\0" * max(0, st.f_bavail * st.f_frsize - free_bytes))
            try:
                yield
            finally:
                (folder / ".filler").unlink(missing_ok=True)
            return
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (free_bytes, hard))
        try:
            yield
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def one_error(err: str) -> bool:
    """One ``kgrec: error:`` line and no traceback (other lines are warnings or progress bars)."""
    lines = err.strip().splitlines()
    return sum(line.startswith("kgrec: error: ") for line in lines) == 1 and "Traceback" not in err


def no_leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".tmp") or ".old-" in p.name)


# ---------------------------------------------------------------- 4: corrupted store and model files
def test_corrupted_store_file_is_refused(byo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "s"
    assert run(capsys, *ingest_args(byo, store))[0] == 0
    snap = next(store.glob("data-*"))
    f = snap / "interactions.parquet"
    raw = bytearray(f.read_bytes())
    raw[len(raw) // 2 : len(raw) // 2 + 8] = b"\xff" * 8
    f.write_bytes(bytes(raw))
    with pytest.raises(StoreError, match=r"interactions\.parquet: sha256 .* expected .*manifest\.json.*Re-ingest"):
        EmbeddedStore(store).dataset()
    rc, out, err = run(capsys, *ingest_args(byo, store))  # the damage does not spread into a new snapshot
    assert rc == 2 and "interactions.parquet" in err and "damaged" in err and one_error(err)
    assert [p.name for p in store.glob("data-*")] == [snap.name]


def test_corrupted_model_file_is_refused(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    shutil.copytree(trained, store)
    model = store / "models" / "default"
    sums = json.loads((model / "checksums.json").read_text())
    assert {"weights.pt", "vectors.npz", "model.json", "items.parquet"} <= set(sums)
    v = model / "vectors.npz"
    raw = bytearray(v.read_bytes())
    raw[len(raw) // 2 : len(raw) // 2 + 8] = b"\x01" * 8
    v.write_bytes(bytes(raw))
    rc, _, err = run(capsys, "recommend", "--store", str(store), "--user", "u0")
    assert rc == 2 and "vectors.npz: sha256" in err and "retrain with `kgrec train`" in err


# ---------------------------------------------------------------- 5: two ingests at once
def test_two_ingests_at_once_serialise(byo: Path, tmp_path: Path) -> None:
    """Two real processes ingest different files into one store at the same moment: both succeed, one after the
    other, and the store holds both files' rows (the second ingest merges into the first's result)."""
    store = tmp_path / "s"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    go = tmp_path / "go"
    starter = ("import os,sys,time\nimport kgrec.cli.app\nfrom kgrec.cli import main\nopen(sys.argv[2],'w').close()\n"
               "while not os.path.exists(sys.argv[1]): time.sleep(0.002)\nsys.exit(main(sys.argv[3:]))")
    procs = [subprocess.Popen([sys.executable, "-c", starter, str(go), str(tmp_path / f"ready-{h}"),
                               *ingest_args(byo, store, f"inter_{h}.csv")],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for h in "ab"]
    deadline = time.time() + 120
    while time.time() < deadline and not all((tmp_path / f"ready-{h}").exists() for h in "ab"):
        time.sleep(0.01)
    go.touch()  # both have imported kgrec: they start the ingest at the same moment
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    got = EmbeddedStore(store).dataset().interactions
    want = pd.concat([pd.read_csv(byo / "inter_a.csv"), pd.read_csv(byo / "inter_b.csv")])
    assert len(got) == len(want) == len(pd.read_csv(byo / "interactions.csv"))
    assert set(zip(got["user"], got["item"], strict=True)) == set(zip(want["user"].astype(str), want["item"].astype(str), strict=True))
    assert len(list(store.glob("data-*"))) == 1 and no_leftovers(store) == []


def test_ingest_waiting_too_long_names_the_other_writer(byo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "s"
    assert run(capsys, *ingest_args(byo, store, "inter_a.csv"))[0] == 0
    holder = subprocess.Popen([sys.executable, "-c",
                               "import fcntl,os,sys,time\nfd=os.open(sys.argv[1],os.O_RDWR|os.O_CREAT)\n"
                               "fcntl.flock(fd,fcntl.LOCK_EX)\nos.write(fd,b'%d 1700000000.0\\n'%os.getpid())\n"
                               "print('held',flush=True)\ntime.sleep(60)", str(store / ".lock")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        monkeypatch.setenv("KGREC_LOCK_TIMEOUT", "0.5")
        rc, _, err = run(capsys, *ingest_args(byo, store, "inter_b.csv"))
    finally:
        holder.kill()
        holder.wait()
    assert rc == 2
    assert f"another ingest is running on {store} (pid {holder.pid} since 2023-11-14 22:13:20 UTC)" in err
    assert "KGREC_LOCK_TIMEOUT" in err
    assert len(EmbeddedStore(store).dataset().interactions) == len(pd.read_csv(byo / "inter_a.csv"))
    with open(store / ".lock", "rb+") as fh:  # the kernel dropped the dead holder's lock
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)


# ---------------------------------------------------------------- 14: leftovers of a killed ingest
def test_leftovers_of_killed_writers_are_swept(byo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "s"
    assert run(capsys, *ingest_args(byo, store))[0] == 0
    live = next(store.glob("data-*")).name
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)  # a process that has exited
    tmp = store / f".data-0123456789abcdef.{pid}-x1y2.tmp"
    tmp.mkdir()
    (tmp / "interactions.parquet").write_bytes(b"half")
    half = store / "data-fedcba9876543210"  # an old snapshot whose removal was cut short
    half.mkdir()
    (half / "items.parquet").write_bytes(b"rest")
    mine = store / f".data-aaaaaaaaaaaaaaaa.{os.getpid()}-live.tmp"  # a live writer's folder stays
    mine.mkdir()
    rc, out, _ = run(capsys, *ingest_args(byo, store))
    assert rc == 0 and out.startswith("unchanged")
    assert sorted(p.name for p in store.iterdir() if p.is_dir()) == sorted([live, mine.name])
    mine.rmdir()


# ---------------------------------------------------------------- 6: crash between the two renames
def test_recommend_after_a_crashed_model_swap(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    shutil.copytree(trained, store)
    rc, before, _ = run(capsys, "recommend", "--store", str(store), "--user", "u0", "--k", "5", "--format", "csv")
    assert rc == 0
    models = store / "models"
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout)
    # the old two-rename swap, killed between its renames: the old model moved aside, the new one not yet in
    os.replace(models / "default", models / f".default.old-{dead}")
    new = models / f".default.{dead}-k9z.tmp"
    new.mkdir()
    (new / "config.json").write_text("{}")
    rc, after, err = run(capsys, "recommend", "--store", str(store), "--user", "u0", "--k", "5", "--format", "csv")
    assert rc == 0, err
    assert after == before  # the old model answers
    assert sorted(p.name for p in models.iterdir()) == ["default"]


# ---------------------------------------------------------------- 11: read-only folder, full disk
def test_read_only_store_fails_before_work(byo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    with read_only(ro):
        rc, _, err = run(capsys, *ingest_args(byo, ro / "store"))
        assert rc == 2 and one_error(err), err
        assert f"cannot write the store to {ro / 'store'}" in err and "pass another --store folder" in err
        assert "Traceback" not in err


def test_read_only_model_folder_fails_before_training(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      byo: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(trained, store)
    with read_only(store / "models"):
        t0 = time.monotonic()
        rc, out, err = run(capsys, "train", "--store", str(store), "--config", str(byo / "config.json"))
        took = time.monotonic() - t0
    assert rc == 2 and "cannot write the model to" in err and "--model DIR" in err, err
    assert "trained" not in out and took < 10  # refused before training (training takes longer)
    assert (store / "models" / "default" / "weights.pt").is_file()


def test_full_disk_ingest_is_one_line_and_leaves_nothing(byo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    disk = tmp_path / "disk"
    with disk_full(disk, 8 << 10):
        rc, _, err = run(capsys, *ingest_args(byo, disk / "store"))
        assert rc == 2 and one_error(err), err
        assert ("No space left on device" in err and "free space there" in err) or "file size limit" in err, err
        assert not (disk / "store" / "CURRENT").exists() and no_leftovers(disk) == []
        assert not list((disk / "store").glob("data-*"))


def test_full_disk_train_is_one_line_and_keeps_the_old_model(trained: Path, tmp_path: Path, byo: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    disk = tmp_path / "disk"
    with tmpfs(disk, "8m") as mounted:
        store = disk / "store"
        shutil.copytree(trained, store)
        size = sum(f.stat().st_size for f in (store / "models" / "default").iterdir())
        if mounted:  # leave room for half a model
            st = os.statvfs(disk)
            (disk / ".filler").write_bytes(b"\0" * max(0, st.f_bavail * st.f_frsize - size // 2))
        with contextlib.nullcontext() if mounted else _fsize_limit(size // 8):
            rc, _, err = run(capsys, "train", "--store", str(store), "--config", str(byo / "config.json"))
        assert rc == 2 and one_error(err), err
        assert "basic_ios" not in err and ("No space left on device" in err or "File too large" in err), err
        assert no_leftovers(store) == [] and sorted(p.name for p in (store / "models").iterdir()) == ["default"]
        (disk / ".filler").unlink(missing_ok=True)
        assert run(capsys, "recommend", "--store", str(store), "--user", "u0")[0] == 0  # the old model is whole


@contextlib.contextmanager
def _fsize_limit(limit: int) -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def test_disk_error_messages_say_what_to_do() -> None:
    from kgrec._fs import os_error_message

    for code, hint in ((errno.EROFS, "write somewhere else"), (errno.ENOSPC, "free space there"),
                       (errno.EDQUOT, "quota"), (errno.EFBIG, "file size limit"), (errno.EACCES, "permissions")):
        msg = os_error_message(OSError(code, os.strerror(code), "/x/y"))
        assert msg.startswith("cannot write /x/y: ") and hint in msg
    with pytest.raises(KgrecError, match="KGREC_LOCK_TIMEOUT='soon': expected a number of seconds"):
        os.environ["KGREC_LOCK_TIMEOUT"] = "soon"
        try:
            from kgrec._fs import lock_timeout

            lock_timeout()
        finally:
            del os.environ["KGREC_LOCK_TIMEOUT"]
