"""The files of a batch export: output formats, the resumable parts folder and the final assembly.

A part ``part-N.parquet`` counts as finished only when its ``part-N.done`` record (sha256, rows) still matches
its bytes and the schema; :func:`assemble` streams the parts, in order, into the output through a temporary
file renamed into place. :mod:`kgrec.fusion.export` computes the parts.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from kgrec._atomic import atomic_file, sha256_file
from kgrec._fs import write_probe
from kgrec.errors import KgrecError

__all__ = [
    "FORMATS",
    "assemble",
    "check_writable",
    "digest",
    "finished_parts",
    "output_format",
    "part_ok",
    "parts_dir",
    "schema",
]

log = logging.getLogger(__name__)

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}


def output_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    fmt = FORMATS.get(suffix)
    if fmt is None:
        raise ValueError(f"{path}: unknown output type {suffix!r}; expected .parquet, .csv or .jsonl")
    return fmt


def check_writable(out: str | Path) -> None:
    """Fail before any work when the output's folder is missing or not writable."""
    if Path(out).expanduser().is_dir():
        raise KgrecError(
            f"{out}: is a directory; give a file name, e.g. --out {Path(out) / ('recs' + Path(out).suffix)}"
        )
    parent = Path(out).expanduser().resolve().parent
    if not parent.is_dir():
        raise KgrecError(f"{out}: the output folder {parent} does not exist")
    err = write_probe(parent)
    if err is not None:
        raise KgrecError(f"{out}: cannot write to {parent} ({err.strerror})")


def schema(explain: bool) -> pa.Schema:
    cols = [
        ("user", pa.string()),
        ("item", pa.string()),
        ("rank", pa.int64()),
        ("score", pa.float64()),
        ("model_version", pa.string()),
    ]
    if explain:
        cols += [("explanation", pa.string()), ("path", pa.string())]
    return pa.schema(cols)


def digest(values: Iterable[str] | None) -> str | None:
    if values is None:
        return None
    h = hashlib.sha256()
    for v in values:
        h.update(v.encode("utf-8") + b"\0")
    return h.hexdigest()


def parts_dir(out: str | Path) -> Path:
    out = Path(out)
    return out.parent / f".{out.name}.parts"


def part_ok(part: Path, sch: pa.Schema) -> bool:
    """Whether a finished part is whole: its ``.done`` record matches its bytes, rows and schema."""
    done = part.with_suffix(".done")
    try:
        rec = json.loads(done.read_text(encoding="utf-8"))
        if rec.get("sha256") != sha256_file(part):
            return False
        meta = pq.read_metadata(part)
        return bool(meta.num_rows == rec.get("rows") and meta.schema.to_arrow_schema().equals(sch))
    except (OSError, ValueError, pa.ArrowException):
        return False


def finished_parts(work: Path, sch: pa.Schema, out: str | Path) -> set[int]:
    done = set()
    for p in sorted(work.glob("part-*.parquet")):
        if part_ok(p, sch):
            done.add(int(p.stem.split("-")[1]))
        else:
            log.warning("%s: --resume: part %s is damaged or unfinished; computing it again", out, p.name)
            p.unlink(missing_ok=True)
            p.with_suffix(".done").unlink(missing_ok=True)
    return done


def assemble(
    work: Path,
    n_chunks: int,
    out: str | Path,
    fmt: str,
    sch: pa.Schema,
    on_chunk: Callable[[pd.DataFrame], object] | None = None,
) -> int:
    """Stream the parts, in order, into the final file (atomically)."""
    rows = 0
    with atomic_file(out) as tmp:
        if fmt == "parquet":
            with pq.ParquetWriter(tmp, sch, compression="zstd") as writer:
                for c in range(n_chunks):
                    t = pq.read_table(work / f"part-{c:06d}.parquet", schema=sch)
                    writer.write_table(t)
                    rows += t.num_rows
                    if on_chunk is not None:
                        on_chunk(t.to_pandas())
        else:
            with open(tmp, "w", encoding="utf-8", newline="") as fh:
                if fmt == "csv":
                    fh.write(",".join(sch.names) + "\n")
                for c in range(n_chunks):
                    df = pq.read_table(work / f"part-{c:06d}.parquet", schema=sch).to_pandas()
                    rows += len(df)
                    if on_chunk is not None:
                        on_chunk(df)
                    if fmt == "csv":
                        df.to_csv(fh, index=False, header=False)
                    else:
                        for rec_row in df.to_dict(orient="records"):
                            fh.write(
                                json.dumps(
                                    {key: (v.item() if isinstance(v, np.generic) else v) for key, v in rec_row.items()},
                                    ensure_ascii=False,
                                )
                                + "\n"
                            )
    return rows
