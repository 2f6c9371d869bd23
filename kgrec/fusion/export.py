"""Batch export of top-K recommendations for many users, streamed in chunks, written atomically."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from kgrec._atomic import atomic_file
from kgrec.fusion.recommender import Recommender

log = logging.getLogger(__name__)

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}


def output_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    fmt = FORMATS.get(suffix)
    if fmt is None:
        raise ValueError(f"{path}: unknown output type {suffix!r}; expected .parquet, .csv or .jsonl")
    return fmt


def iter_chunks(
    rec: Recommender, users: Sequence[str], k: int, *, chunk_size: int = 1024, explain: bool = False,
    items: Iterable[str] | None = None, exclude: Iterable[str] | None = None,
) -> Iterator[pd.DataFrame]:
    """Recommendation frames (``user, item, rank, score, model_version[, explanation]``) per chunk of users."""
    items = list(items) if items is not None else None
    exclude = list(exclude) if exclude is not None else None
    for start in range(0, len(users), chunk_size):
        chunk = list(users[start : start + chunk_size])
        df = rec.recommend(chunk, k, items=items, exclude=exclude)
        df["model_version"] = rec.model_version
        if explain:
            sentences = []
            for u, i in zip(df["user"].tolist(), df["item"].tolist()):
                e = rec.explain(u, i, top=1)
                sentences.append(e.paths[0].sentence if e.paths else e.message)
            df["explanation"] = sentences
        yield df


def export(
    rec: Recommender, out: str | Path, k: int, *, users: Sequence[str] | None = None, explain: bool = False,
    items: Iterable[str] | None = None, exclude: Iterable[str] | None = None, chunk_size: int = 1024,
    progress: bool = True,
) -> dict[str, int]:
    """Write top-``k`` recommendations of ``users`` (default: all) to ``out`` atomically.

    The format follows the extension (.parquet, .csv, .jsonl). Readers never see
    a half-written file: it is written to a temporary file and renamed.
    """
    from tqdm.auto import tqdm

    fmt = output_format(out)
    users = list(users) if users is not None else rec.vocabs.user.to_list()
    rows = 0
    with atomic_file(out) as tmp:
        writer = None
        fh = open(tmp, "w", encoding="utf-8", newline="") if fmt in {"csv", "jsonl"} else None
        try:
            bar = tqdm(total=len(users), desc="exporting", unit="user", disable=not progress)
            for n, df in enumerate(iter_chunks(rec, users, k, chunk_size=chunk_size, explain=explain, items=items, exclude=exclude)):
                if fmt == "parquet":
                    table = pa.Table.from_pandas(df, preserve_index=False)
                    if writer is None:
                        import pyarrow.parquet as pq

                        writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
                    writer.write_table(table)
                elif fmt == "csv":
                    df.to_csv(fh, index=False, header=(n == 0))
                else:
                    for rec_row in df.to_dict(orient="records"):
                        fh.write(json.dumps({k2: (v.item() if isinstance(v, np.generic) else v) for k2, v in rec_row.items()}, ensure_ascii=False) + "\n")  # type: ignore[union-attr]
                rows += len(df)
                bar.update(df["user"].nunique())
            bar.close()
            if fmt == "parquet" and writer is None:  # no users: an empty file with the schema
                import pyarrow.parquet as pq

                cols = {"user": pa.string(), "item": pa.string(), "rank": pa.int64(), "score": pa.float64(), "model_version": pa.string()}
                if explain:
                    cols["explanation"] = pa.string()
                pq.write_table(pa.schema(cols).empty_table(), tmp)
        finally:
            if writer is not None:
                writer.close()
            if fh is not None:
                fh.close()
    log.info("wrote %d recommendations for %d users to %s", rows, len(users), out)
    return {"users": len(users), "rows": rows}
