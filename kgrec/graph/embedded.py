"""The embedded default store: a directory of Parquet tables plus a manifest.

Layout::

    STORE/
      CURRENT                 name of the live data folder (replaced atomically)
      data-<fingerprint16>/   one immutable snapshot: <table>.parquet + manifest.json (kgrec.graph.snapshot)
      models/<name>/          models trained on this store (kgrec train)

An ingest merges the new data into the live snapshot, writes the result into a
temporary folder, renames it to ``data-<fingerprint>`` and then swaps
``CURRENT``. A crash at any point leaves the previous snapshot live. Equal data
give the same folder name and byte-identical files, so ingesting twice is a
no-op.

Writers (ingest, wipe) hold an exclusive ``flock`` on ``STORE/.lock`` for the whole
read-merge-write, so two ingests at once run one after the other and the second merges
into the first's result (nothing of either is lost); a writer that waits longer than
``KGREC_LOCK_TIMEOUT`` seconds (default 600) fails naming the holder's pid. Under the lock a
writer first sweeps what killed writers left: temporary ``.data-*.tmp`` folders of dead
processes and old ``data-*`` snapshots that ``CURRENT`` no longer names (half-deleted ones too).

Every table file's sha256 is in ``manifest.json``; the first read of a snapshot in a process
checks them all (0.02 s for MovieLens latest-small, 1 MB of Parquet) and a mismatch is a
:class:`~kgrec.errors.StoreError` naming the file. ``manifest.json`` also keeps the
:meth:`~EmbeddedStore.lineage` (every fingerprint the data have had, oldest first).

A live store: :meth:`~EmbeddedStore.append` writes a new snapshot of the merged data under the
same lock and swap as an ingest, so a batch is applied whole or not at all and two writers
take turns. Reads follow ``CURRENT``: each read checks which snapshot it names (one small file
read) and drops what was read of an older one, so a reader sees another process's append on its
next call (a store folder that went away keeps answering from memory). :meth:`~EmbeddedStore.forget_users`
writes a snapshot without the users and deletes every other one.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from kgrec._atomic import recover_dir, write_text_atomic
from kgrec._fs import check_writable, disk_error, is_disk_error, writer_lock
from kgrec.errors import StoreError
from kgrec.graph.batch import (
    add_unknown_items,
    count_delta,
    empty_dataset,
    prepare_batch,
    unknown_users,
    without_users,
)
from kgrec.graph.paths import PathIndex, PathRow
from kgrec.graph.snapshot import history_index, load, read_manifest, verify, write_snapshot
from kgrec.graph.store import GraphStore, IngestReport
from kgrec.loaders import schema as S
from kgrec.loaders.schema import Dataset
from kgrec.loaders.tables import merge

log = logging.getLogger(__name__)

#: reads of one snapshot's user histories answered by a scan before the per-user index is built
SCANS = 16

#: what :meth:`EmbeddedStore._pointer` says when the store folder cannot be read any more
GONE = "\0gone"


class EmbeddedStore(GraphStore):
    """A graph store in a local directory; no server needed."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self.location = str(self.path)
        if self.path.exists() and not self.path.is_dir():
            raise StoreError(f"{self.path}: exists and is not a directory; expected an embedded store directory")

    # ---- snapshot handling
    def _current(self) -> Path | None:
        cur = self.path / "CURRENT"
        if not cur.is_file():
            return None
        snap = self.path / cur.read_text().strip()
        if not (snap / "manifest.json").is_file():
            raise StoreError(
                f"{self.path}: CURRENT names {snap.name}, which has no manifest.json; the store is damaged"
            )
        return snap

    def exists(self) -> bool:
        """Whether data have been ingested (``CURRENT`` names a snapshot)."""
        return self._current() is not None

    def _require(self) -> Path:
        snap = self._current()
        if snap is None:
            raise StoreError(f"{self.path}: no data yet; run `kgrec ingest --store {self.path} ...` first")
        return snap

    def _pointer(self) -> str | None:
        """The snapshot ``CURRENT`` names; None when there is none (empty or wiped); :data:`GONE` when the store
        folder itself cannot be read any more (removed)."""
        try:
            return (self.path / "CURRENT").read_text().strip() or None
        except FileNotFoundError:
            return None if self.path.is_dir() else GONE
        except OSError:
            return GONE

    def manifest(self) -> dict[str, Any]:
        """The live snapshot's manifest: ``schema_version``, ``name``, ``fingerprint``, ``lineage``, ``counts``,
        ``tables``. Read once per snapshot (each call reads ``CURRENT`` only); from memory once the folder is gone."""
        name = self._pointer()
        cached = self.__dict__.get("_man")
        if cached is not None and (name == GONE or (name, self._stamp(name)) == cached[0]):
            return dict(cached[1])
        snap = self._require()
        man = read_manifest(self.path, snap)
        self.__dict__["_man"] = ((snap.name, self._stamp(snap.name)), man)
        return dict(man)

    def _stamp(self, name: str | None) -> tuple[int, int] | None:
        """Inode and mtime of a snapshot's manifest: a snapshot written again under the same name (the data came
        back to an earlier state) has a new one."""
        try:
            st = (self.path / str(name) / "manifest.json").stat()
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns

    def verify(self) -> None:
        """Check every table file of the live snapshot against the sha256 in its manifest.

        Raises:
            StoreError: naming the first file that is missing or whose bytes changed.
        """
        verify(self.path, self._require())

    def check_writable(self) -> None:
        """Fail before any work when the store folder cannot be written (read-only, no permission)."""
        check_writable(self.path, "the store", "pass another --store folder")

    def _lock(self) -> Any:
        self.path.mkdir(parents=True, exist_ok=True)
        return writer_lock(
            self.path / ".lock",
            f"another ingest is running on {self.path}",
            "wait for it to finish, or raise KGREC_LOCK_TIMEOUT (seconds) to wait longer",
        )

    def _sweep(self) -> None:
        """Remove what killed writers left (call with the lock held): ``.data-*.tmp`` / ``.data-*.old-*``
        folders of dead processes, and ``data-*`` snapshots that ``CURRENT`` no longer names."""
        for leftover in self.path.glob(".data-*"):
            recover_dir(self.path / leftover.name[1:].split(".", 1)[0])  # removes those of dead processes
        cur = self.path / "CURRENT"
        live = cur.read_text().strip() if cur.is_file() else None
        for stale in self.path.glob("data-*"):
            if stale.name != live and stale.is_dir():
                log.info("%s: removing old snapshot %s", self.path, stale.name)
                shutil.rmtree(stale, ignore_errors=True)

    def _drop_cache(self) -> None:
        """Drop everything read from the previous snapshot (tables, path index, id sets, history index)."""
        for name in ("_data", "_snap", "_man", "_index", "_users", "_items", "_history", "_scans", "_user_column"):
            self.__dict__.pop(name, None)

    def _fresh(self) -> None:
        """Drop what was read of a snapshot that ``CURRENT`` no longer names (another writer swapped in a newer
        one, or wiped the store). One small file read; a store folder that went away keeps answering from memory."""
        loaded = self.__dict__.get("_snap")
        if loaded is not None and self._pointer() not in (loaded, GONE):
            self._drop_cache()

    def wipe(self) -> None:
        """Delete the data snapshots and ``CURRENT``; ``models/`` is kept."""
        if self.path.is_dir():
            with self._lock():
                cur = self.path / "CURRENT"
                cur.unlink(missing_ok=True)
                for snap in self.path.glob("data-*"):
                    shutil.rmtree(snap, ignore_errors=True)
                self._sweep()
        self._drop_cache()

    def _locked(self, work: Callable[[], IngestReport]) -> IngestReport:
        """Run a write under the writers' lock, after sweeping leftovers; disk errors become one clear error."""
        self.check_writable()
        with self._lock():
            self._drop_cache()  # another writer may have changed the store since this object read it
            self._sweep()
            try:
                return work()
            except OSError as e:
                if is_disk_error(e):
                    raise disk_error(e, f"the store {self.path}") from None
                raise

    def ingest(self, dataset: Dataset, progress: bool = False) -> IngestReport:
        def work() -> IngestReport:
            old = self.dataset() if self.exists() else None
            # merging into nothing puts a hand-built data set in the canonical order, as Neo4j reads it back
            return self._commit(old, merge(old if old is not None else empty_dataset(), dataset), progress)

        return self._locked(work)

    def append(self, data: Dataset, *, allow_unknown_items: bool = False, progress: bool = False) -> IngestReport:
        """Merge the batch into a new snapshot swapped in atomically (as :meth:`ingest` does), under the writers'
        lock: the batch is checked whole first, and a refused one leaves the live snapshot as it was."""
        batch = prepare_batch(data)

        def work() -> IngestReport:
            old = self.dataset() if self.exists() else None
            held = self._items if old is not None else set()
            full = add_unknown_items(batch, held, allow=allow_unknown_items, location=self.location)
            return self._commit(old, full if old is None else merge(old, full), progress)

        return self._locked(work)

    def forget_users(self, users: Sequence[str]) -> IngestReport:
        """Write a snapshot without the users, then delete every other snapshot and leftover folder (each held
        their data); the lineage restarts from the new fingerprint."""
        ids = list(dict.fromkeys(str(u) for u in users))

        def work() -> IngestReport:
            old = self.dataset() if self.exists() else None
            missing = [u for u in ids if old is None or u not in self._users]
            if missing:
                raise unknown_users(missing, self.location)
            if old is None or not ids:
                return IngestReport(self.counts(), self.fingerprint(), False, count_delta({}, {}))
            return self._commit(old, without_users(old, ids), False, forget=True)

        return self._locked(work)

    def _commit(self, old: Dataset | None, ds: Dataset, progress: bool, *, forget: bool = False) -> IngestReport:
        """Make ``ds`` the live snapshot (call with the lock held): unchanged when it is the live one already."""
        fp = ds.fingerprint()
        name = f"data-{fp[:16]}"
        counts = ds.counts()
        before = old.counts() if old is not None else {}
        live = self._current()
        if old is not None and live is not None and live.name == name:
            log.info("%s: ingest changed nothing (fingerprint %s)", self.path, fp[:12])
            return IngestReport(counts, fp, changed=False, delta=count_delta(counts, counts))
        lineage = [fp] if forget or old is None else [*self.lineage(), fp]
        self.path.mkdir(parents=True, exist_ok=True)
        write_snapshot(self.path / name, ds, fp, lineage, progress)
        write_text_atomic(self.path / "CURRENT", name + "\n")
        for stale in self.path.glob("data-*"):
            if stale.name != name:
                shutil.rmtree(stale, ignore_errors=True)
        self._drop_cache()
        if forget:  # every other copy of the data held the users: none may stay
            self._purge(name)
        else:  # this process just wrote those tables: it answers from them, as a fresh read of the snapshot would
            self.__dict__["_data"], self.__dict__["_snap"] = ds, name
        log.info("%s: wrote %s", self.path, ds)
        return IngestReport(counts, fp, changed=True, delta=count_delta(before, counts))

    def _purge(self, live: str) -> None:
        """Delete every snapshot but ``live`` and every leftover folder; raise when one cannot be deleted."""
        for old in [*self.path.glob("data-*"), *self.path.glob(".data-*")]:
            if old.name == live:
                continue
            try:
                if old.is_dir():
                    shutil.rmtree(old)
                else:
                    old.unlink()
            except OSError as e:
                raise StoreError(
                    f"{old}: cannot delete this old snapshot ({e.strerror or e}); the live data no longer hold the "
                    f"forgotten users, but this folder still does: delete it by hand"
                ) from None

    @cached_property
    def _data(self) -> Dataset:
        for attempt in range(3):
            snap = self._require()
            try:
                ds = load(self.path, snap)
            except (OSError, StoreError):
                # a writer may have swapped in a newer snapshot and removed this one while it was read
                if attempt == 2 or self._current() == snap:
                    raise
                continue
            self.__dict__["_snap"] = snap.name
            return ds
        raise AssertionError("unreachable")  # pragma: no cover

    @cached_property
    def _history(self) -> dict[str, slice | np.ndarray]:
        return history_index(self._data.interactions)

    @cached_property
    def _index(self) -> PathIndex:
        return PathIndex(self._data)

    @cached_property
    def _users(self) -> set[str]:
        ds = self._data
        return set(ds.interactions[S.USER].tolist()) | set(ds.tags[S.USER].tolist()) | set(ds.users[S.USER].tolist())

    @cached_property
    def _items(self) -> set[str]:
        return set(self._data.items[S.ITEM].tolist())

    def dataset(self) -> Dataset:
        self._fresh()
        return self._data

    def counts(self) -> dict[str, int]:
        return dict(self.manifest()["counts"])

    def fingerprint(self) -> str:
        return str(self.manifest()["fingerprint"])

    def _loaded(self) -> bool:
        """Whether there are data to look ids up in (read once; an empty store knows no ids)."""
        return "_data" in self.__dict__ or self.exists()

    def lineage(self) -> list[str]:
        """From the live snapshot's ``manifest.json`` (a store written before lineages: its fingerprint alone)."""
        name = self._pointer()
        if name is None or (name == GONE and "_man" not in self.__dict__):  # empty, or never there
            return []
        man = self.manifest()
        return [str(f) for f in man.get("lineage") or [man["fingerprint"]]]

    def has_user(self, user: str) -> bool:
        self._fresh()
        return self._loaded() and str(user) in self._users

    def has_item(self, item: str) -> bool:
        self._fresh()
        return self._loaded() and str(item) in self._items

    def item_ids(self) -> list[str]:
        self._fresh()
        return self._data.items[S.ITEM].tolist() if self._loaded() else []

    def user_history(self, user: str) -> pd.DataFrame:
        """The first reads of a snapshot scan the user column (vectorised, no index to build: a live store takes a
        new snapshot with every append); from the :data:`SCANS`-th read on, a per-user index built once answers."""
        self._fresh()
        if not self._loaded():
            return S.empty_table("interactions")
        inter = self._data.interactions
        scans = self.__dict__.get("_scans", 0)
        if "_history" not in self.__dict__ and scans < SCANS:
            self.__dict__["_scans"] = scans + 1
            hit = np.flatnonzero(pc.equal(self._user_column, str(user)).to_numpy(zero_copy_only=False))
            if len(hit) > 1:  # snapshots are in (user, timestamp, item) order; an older one may not be
                sub = inter.iloc[hit]
                hit = hit[np.lexsort((sub[S.ITEM].to_numpy(dtype=object), sub[S.TIMESTAMP].to_numpy()))]
            return inter.iloc[hit].reset_index(drop=True)
        rows = self._history.get(str(user))
        if rows is None:
            return S.empty_table("interactions")
        return inter.iloc[rows].reset_index(drop=True)

    @cached_property
    def _user_column(self) -> pa.ChunkedArray | pa.Array:
        return pa.array(self._data.interactions[S.USER])

    def _paths(self, user: str, item: str, anchors: list[str] | None, kinds: Sequence[str]) -> list[PathRow]:
        self._fresh()
        return self._index.paths(user, item, anchors, kinds)

    def model_root(self) -> Path:
        return self.path / "models"

    def __repr__(self) -> str:
        return f"EmbeddedStore({str(self.path)!r})"
