"""Shared parts of the converters: where data sets live, checksums, writing the four tables."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

#: where converted data sets are written (outside the repository: their licences forbid shipping them)
DATA_HOME = Path(os.environ.get("KGREC_DATASETS", "/work/datasets"))


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_sha256(path: Path, expected: str) -> None:
    """Raise ValueError when ``path`` is not the file the converter was written for."""
    found = sha256(path)
    if found != expected:
        raise ValueError(
            f"{path}: sha256 {found}, expected {expected}; this is not the file the converter was written "
            "for (see benchmarks/datasets/README.md for where to get it)"
        )


def user_subsample(users: pd.Series, fraction: float) -> pd.Series:
    """A deterministic subsample of user ids: those whose sha1(id) falls below ``fraction`` (stable across runs
    and machines, independent of row order)."""
    if fraction >= 1.0:
        return pd.Series(True, index=users.index)
    cut = int(fraction * 2**32)
    return users.astype(str).map(lambda u: int(hashlib.sha1(u.encode()).hexdigest()[:8], 16) < cut)


def write_tables(out: Path, tables: dict[str, pd.DataFrame]) -> None:
    """Write each table as ``out/<name>.csv`` (UTF-8, header row), each via a temporary file and a rename."""
    if tables["interactions"].empty:
        raise ValueError(f"{out}: no interactions left after conversion; expected at least one (loosen the filters)")
    out.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        tmp = out / f".{name}.csv.tmp"
        df.to_csv(tmp, index=False)
        os.replace(tmp, out / f"{name}.csv")
    inter = tables["interactions"]
    n_u, n_i = inter["user"].nunique(), inter["item"].nunique()
    log.info("wrote %s: %d users, %d items, %d interactions (density %.4f%%), %d distinct timestamps",
             out, n_u, n_i, len(inter), 100 * len(inter) / (n_u * n_i), inter["timestamp"].nunique())
