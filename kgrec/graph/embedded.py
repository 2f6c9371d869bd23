"""The embedded default store: a directory of Parquet tables plus a manifest.

Layout::

    STORE/
      CURRENT                 name of the live data folder (replaced atomically)
      data-<fingerprint16>/   one immutable snapshot: <table>.parquet + manifest.json
      models/<name>/          models trained on this store (kgrec train)

An ingest merges the new data into the live snapshot, writes the result into a
temporary folder, renames it to ``data-<fingerprint>`` and then swaps
``CURRENT``. A crash at any point leaves the previous snapshot live. Equal data
give the same folder name and byte-identical files, so ingesting twice is a
no-op.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from kgrec._atomic import atomic_dir, sha256_file, write_text_atomic
from kgrec.errors import StoreError
from kgrec.graph.paths import PathIndex, PathRow
from kgrec.graph.store import GraphStore, IngestReport
from kgrec.loaders import schema as S
from kgrec.loaders.schema import Dataset
from kgrec.loaders.tables import merge

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1


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
            raise StoreError(f"{self.path}: CURRENT names {snap.name}, which has no manifest.json; the store is damaged")
        return snap

    def exists(self) -> bool:
        """Whether data have been ingested (``CURRENT`` names a snapshot)."""
        return self._current() is not None

    def _require(self) -> Path:
        snap = self._current()
        if snap is None:
            raise StoreError(
                f"{self.path}: no data yet; run `kgrec ingest --store {self.path} ...` first"
            )
        return snap

    def manifest(self) -> dict[str, Any]:
        """The live snapshot's manifest: ``schema_version``, ``name``, ``fingerprint``, ``counts``, ``tables``."""
        return dict(json.loads((self._require() / "manifest.json").read_text()))

    def _forget(self) -> None:
        """Drop everything read from the previous snapshot (tables, path index, id sets)."""
        for name in ("_data", "_index", "_users", "_items"):
            self.__dict__.pop(name, None)

    def wipe(self) -> None:
        """Delete the data snapshots and ``CURRENT``; ``models/`` is kept."""
        if self.path.is_dir():
            cur = self.path / "CURRENT"
            cur.unlink(missing_ok=True)
            for snap in self.path.glob("data-*"):
                shutil.rmtree(snap, ignore_errors=True)
        self._forget()

    def ingest(self, dataset: Dataset, progress: bool = False) -> IngestReport:
        old = self.dataset() if self.exists() else None
        ds = dataset if old is None else merge(old, dataset)
        fp = ds.fingerprint()
        name = f"data-{fp[:16]}"
        if old is not None and self._current().name == name:  # type: ignore[union-attr]
            log.info("%s: ingest changed nothing (fingerprint %s)", self.path, fp[:12])
            return IngestReport(ds.counts(), fp, changed=False)
        self.path.mkdir(parents=True, exist_ok=True)
        target = self.path / name
        if not (target / "manifest.json").is_file():
            from tqdm.auto import tqdm

            with atomic_dir(target) as tmp:
                files = {}
                tables = ds.tables()
                for table, df in tqdm(tables.items(), total=len(tables), desc="writing the store", unit="table",
                                      disable=not progress):
                    f = tmp / f"{table}.parquet"
                    pq.write_table(
                        pa.Table.from_pandas(df, preserve_index=False),
                        f,
                        compression="zstd",
                        write_statistics=False,
                    )
                    files[table] = {"file": f.name, "rows": int(len(df)), "sha256": sha256_file(f)}
                manifest = {
                    "schema_version": SCHEMA_VERSION,
                    "name": ds.name,
                    "fingerprint": fp,
                    "counts": ds.counts(),
                    "tables": files,
                }
                (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        write_text_atomic(self.path / "CURRENT", name + "\n")
        for stale in self.path.glob("data-*"):
            if stale.name != name:
                shutil.rmtree(stale, ignore_errors=True)
        self._forget()
        log.info("%s: ingested %s", self.path, ds)
        return IngestReport(ds.counts(), fp, changed=True)

    @cached_property
    def _data(self) -> Dataset:
        snap = self._require()
        man = json.loads((snap / "manifest.json").read_text())
        if man.get("schema_version") != SCHEMA_VERSION:
            raise StoreError(
                f"{snap}: schema version {man.get('schema_version')}, this kgrec reads {SCHEMA_VERSION}; re-ingest the data"
            )
        tables = {}
        for table, meta in man["tables"].items():
            df = pq.read_table(snap / meta["file"]).to_pandas()
            tables[table] = df.astype(S.TABLES[table])
        return Dataset(**tables, name=man.get("name", "dataset"))

    @cached_property
    def _index(self) -> PathIndex:
        return PathIndex(self._data)

    @cached_property
    def _users(self) -> set[str]:
        ds = self._data
        return set(ds.interactions[S.USER].tolist()) | set(ds.tags[S.USER].tolist())

    @cached_property
    def _items(self) -> set[str]:
        return set(self._data.items[S.ITEM].tolist())

    def dataset(self) -> Dataset:
        return self._data

    def counts(self) -> dict[str, int]:
        return dict(self.manifest()["counts"])

    def fingerprint(self) -> str:
        return str(self.manifest()["fingerprint"])

    def _loaded(self) -> bool:
        """Whether there are data to look ids up in (read once; an empty store knows no ids)."""
        return "_data" in self.__dict__ or self.exists()

    def has_user(self, user: str) -> bool:
        return self._loaded() and str(user) in self._users

    def has_item(self, item: str) -> bool:
        return self._loaded() and str(item) in self._items

    def _paths(self, user: str, item: str, anchors: list[str] | None, kinds: Sequence[str]) -> list[PathRow]:
        return self._index.paths(user, item, anchors, kinds)

    def model_root(self) -> Path:
        return self.path / "models"

    def __repr__(self) -> str:
        return f"EmbeddedStore({str(self.path)!r})"
