"""One snapshot of the embedded store on disk: ``data-<fingerprint16>/`` with ``<table>.parquet`` files and
``manifest.json`` (``schema_version``, ``name``, ``fingerprint``, ``lineage``, ``counts``, and each table's file,
rows and sha256). Written whole into a temporary folder and swapped in (:func:`write_snapshot`); read back checked
against the sha256s (:func:`load`). Also the per-snapshot index of each user's rows (:func:`history_index`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from kgrec._atomic import atomic_dir, sha256_file
from kgrec.errors import StoreError
from kgrec.loaders import schema as S
from kgrec.loaders.schema import Dataset

SCHEMA_VERSION = 1


def damaged(store: Path, what: str) -> StoreError:
    """The error for a damaged snapshot of the store at ``store``: what is wrong and how to recover."""
    return StoreError(
        f"{what}; the store {store} is damaged. Re-ingest from the source files into a new store "
        f"(or delete {store / 'CURRENT'} and the data-* folders, keeping models/, then run `kgrec ingest --store "
        f"{store} ...` again)"
    )


def read_manifest(store: Path, snap: Path) -> dict[str, Any]:
    """``snap``'s manifest.json (a :class:`StoreError` naming the file when it is not a manifest)."""
    f = snap / "manifest.json"
    try:
        man = json.loads(f.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise damaged(store, f"{f}: not valid JSON ({e})") from None
    if not isinstance(man, dict) or not isinstance(man.get("tables"), dict):
        raise damaged(store, f"{f}: no 'tables' object")
    return dict(man)


def verify(store: Path, snap: Path) -> None:
    """Check every table file of ``snap`` against the sha256 in its manifest.

    Raises:
        StoreError: naming the first file that is missing or whose bytes changed.
    """
    for table, meta in sorted(read_manifest(store, snap)["tables"].items()):
        f = snap / str(meta.get("file", f"{table}.parquet"))
        if not f.is_file():
            raise damaged(store, f"{f}: missing (manifest.json lists it for table {table!r})")
        got = sha256_file(f)
        if got != meta.get("sha256"):
            raise damaged(
                store,
                f"{f}: sha256 {got[:16]}…, expected {str(meta.get('sha256'))[:16]}… from manifest.json (the file was "
                f"changed or corrupted after the ingest)",
            )


def load(store: Path, snap: Path) -> Dataset:
    """Every table of ``snap``, after :func:`verify`."""
    man = read_manifest(store, snap)
    if man.get("schema_version") != SCHEMA_VERSION:
        raise StoreError(
            f"{snap}: schema version {man.get('schema_version')}, this kgrec reads {SCHEMA_VERSION}; re-ingest the data"
        )
    verify(store, snap)
    tables = {}
    for table, meta in man["tables"].items():
        df = pq.read_table(snap / meta["file"]).to_pandas()
        tables[table] = df.astype(S.TABLES[table])
    return Dataset(**tables, name=man.get("name", "dataset"))


def write_snapshot(target: Path, ds: Dataset, fp: str, lineage: list[str], progress: bool) -> None:
    """Write ``ds`` as the snapshot folder ``target`` (replaced as a whole; equal data give equal files)."""
    from tqdm.auto import tqdm

    with atomic_dir(target) as tmp:
        files = {}
        tables = ds.tables()
        for table, df in tqdm(
            tables.items(), total=len(tables), desc="writing the store", unit="table", disable=not progress
        ):
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
            "lineage": lineage,
            "counts": ds.counts(),
            "tables": files,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def history_index(inter: pd.DataFrame) -> dict[str, slice | np.ndarray]:
    """Each user's rows in an interactions table, oldest first (ties by item): a slice where the table is in the
    canonical order (user, timestamp, item: every snapshot this kgrec writes), else their positions (a snapshot an
    older kgrec wrote from a hand-built data set)."""
    users = inter[S.USER].to_numpy(dtype=object)
    if not len(users):
        return {}
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    ends = np.r_[starts[1:], len(users)]
    ts = inter[S.TIMESTAMP].to_numpy()
    items = inter[S.ITEM].to_numpy(dtype=object)
    same = users[1:] == users[:-1]
    ordered = (
        len(starts) == len(set(users[starts].tolist()))
        and not (same & ((ts[1:] < ts[:-1]) | ((ts[1:] == ts[:-1]) & (items[1:] < items[:-1])))).any()
    )
    if ordered:
        return {users[s]: slice(int(s), int(e)) for s, e in zip(starts.tolist(), ends.tolist(), strict=True)}
    order = inter.sort_values([S.USER, S.TIMESTAMP, S.ITEM], kind="stable").index.to_numpy()
    return dict(pd.Series(order).groupby(users[order], sort=False).apply(np.asarray))
