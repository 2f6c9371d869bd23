"""Read bring-your-own tables from CSV or Parquet files, with clear errors."""

from __future__ import annotations

import csv
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd

from kgrec.errors import DataValidationError
from kgrec.loaders.schema import Dataset
from kgrec.loaders.tables import Source, batch_from_frames, from_frames

SUFFIXES = (".csv", ".parquet", ".pq")


def _line_of_offset(path: Path, offset: int) -> int:
    with open(path, "rb") as fh:
        return fh.read(offset).count(b"\n") + 1


def _record_start(path: Path, n: int, *, count_blank: bool) -> int | None:
    """Physical line on which CSV record ``n`` (from 1, the header is record 1) starts; ``None`` past the end.

    With ``count_blank`` blank lines count as records (pandas' tokenizer numbers its
    "lines" that way); otherwise they are skipped, as pandas skips them as rows.
    """
    limit = csv.field_size_limit(sys.maxsize)  # the fields of a bad file may be huge: that may be the error
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            prev, seen = 0, 0
            for rec in reader:
                start, prev = prev + 1, reader.line_num
                if not rec and not count_blank:
                    continue
                seen += 1
                if seen == n:
                    return start
    except (csv.Error, OSError, UnicodeDecodeError):
        return None
    finally:
        csv.field_size_limit(limit)
    return None


_PANDAS_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def _parser_error(p: Path, e: Exception) -> DataValidationError:
    """pandas' "Expected 2 fields in line 4, saw 3", with the physical line (pandas counts records)."""
    m = _PANDAS_FIELDS.search(str(e))
    if m is None:
        detail = " ".join(str(e).split())
        return DataValidationError(
            f"{p}: malformed CSV ({detail}); expected one row per line with a fixed number of fields"
        )
    want, rec, got = (int(g) for g in m.groups())
    line = _record_start(p, rec, count_blank=True) or rec
    return DataValidationError(
        f"{p}, line {line}: {got} fields where the header has {want}; expected one row per line with a fixed number "
        "of fields (a field holding a comma or a line break needs double quotes)"
    )


def _csv_line_of(path: Path) -> Callable[[int], int | None]:
    """A function giving the physical line on which data row ``row`` of a CSV file starts.

    Reads the file again with the csv module up to that row, so it costs nothing
    unless an error names a row: a quoted field with line breaks makes one row
    span several lines, and pandas skips blank lines, so the line is not always
    ``row + 2``. ``None`` if the file has fewer rows (the caller falls back).
    """

    def line_of(row: int) -> int | None:
        return _record_start(path, row + 2, count_blank=False)  # data row 0 is record 2

    return line_of


def read_table(path: str | Path, table: str) -> tuple[pd.DataFrame, Source]:
    """Read one table file (CSV with a header row, or Parquet).

    Every column is read as text from CSV (ids keep leading zeros); the
    validation in :func:`~kgrec.loaders.tables.from_frames` converts types.

    Raises:
        DataValidationError: missing file, unknown suffix, empty file, bad encoding
            or malformed CSV, naming the file and line.
    """
    p = Path(path)
    if not p.is_file():
        raise DataValidationError(f"{p}: no such file; expected the {table} table as a .csv or .parquet file")
    suffix = p.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataValidationError(f"{p}: unsupported file type {suffix!r}; expected one of {', '.join(SUFFIXES)}")
    if p.stat().st_size == 0:
        raise DataValidationError(f"{p}: the file is empty; expected a header row and at least one {table} row")
    if suffix == ".csv":
        raw = p.read_bytes()
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as e:
            line = _line_of_offset(p, e.start)
            raise DataValidationError(
                f"{p}, line {line}: bytes that are not UTF-8 (at byte {e.start}); expected a UTF-8 encoded CSV file "
                "(re-save it as UTF-8, e.g. `iconv -f latin1 -t utf-8`)"
            ) from None
        try:
            df = pd.read_csv(
                p, dtype=str, keep_default_na=False, na_values=[], encoding="utf-8", quoting=csv.QUOTE_MINIMAL
            )
        except pd.errors.EmptyDataError:
            raise DataValidationError(
                f"{p}: the file has no header row; expected a header row and at least one {table} row"
            ) from None
        except pd.errors.ParserError as e:
            raise _parser_error(p, e) from None
        df.columns = [str(c).strip() for c in df.columns]
        # empty cells stay "" for text columns; numeric columns treat "" as missing
        return df, Source(str(p), header_lines=1, line_of=_csv_line_of(p))
    try:
        df = pd.read_parquet(p)
    except Exception as e:  # pyarrow raises several types for corrupt files
        raise DataValidationError(
            f"{p}: not a readable Parquet file ({e}); expected a Parquet file with the {table} columns"
        ) from None
    return df, Source(str(p))


def read_id_file(path: str | Path, what: str) -> list[str]:
    """Ids from a text file, one per line (UTF-8; stripped of surrounding white space; blank lines skipped).

    For the lists of users, candidates and excluded items given to ``kgrec export``.

    Raises:
        DataValidationError: missing file or bytes that are not UTF-8, naming the file and line.
    """
    p = Path(path)
    if not p.is_file():
        raise DataValidationError(f"{p}: no such file; expected one {what} id per line")
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataValidationError(
            f"{p}, line {line}: bytes that are not UTF-8 (at byte {e.start}); expected one {what} id per line in a "
            "UTF-8 encoded file (re-save it as UTF-8, e.g. `iconv -f latin1 -t utf-8`)"
        ) from None
    return [x.strip() for x in text.splitlines() if x.strip()]


def _read_all(paths: dict[str, str | Path | None]) -> tuple[dict[str, pd.DataFrame], dict[str, Source]]:
    """Each given table file read as :func:`read_table` does, with empty ratings and timestamps as missing."""
    frames: dict[str, pd.DataFrame] = {}
    sources: dict[str, Source] = {}
    for table, path in paths.items():
        if path is None:
            continue
        df, src = read_table(path, table)
        if table == "interactions" and "rating" in df.columns and df["rating"].dtype == object:
            df["rating"] = df["rating"].replace("", None)
        if table == "interactions" and "timestamp" in df.columns and df["timestamp"].dtype == object:
            df["timestamp"] = df["timestamp"].replace("", None)
        frames[table] = df
        sources[table] = src
    return frames, sources


def load_batch_files(
    interactions: str | Path | None = None,
    items: str | Path | None = None,
    triples: str | Path | None = None,
    tags: str | Path | None = None,
    *,
    users: str | Path | None = None,
    known_items: Iterable[str] = (),
    allow_unknown_items: bool = False,
    name: str = "batch",
) -> Dataset:
    """Load a batch to append (``kgrec ingest --append``) from files: every file optional, rows may name the
    ``known_items`` a store holds (see :func:`~kgrec.loaders.tables.batch_from_frames`); errors name file and line."""
    frames, sources = _read_all(
        {"interactions": interactions, "items": items, "triples": triples, "tags": tags, "users": users}
    )
    return batch_from_frames(
        frames.get("interactions"),
        frames.get("items"),
        frames.get("triples"),
        frames.get("tags"),
        users=frames.get("users"),
        sources=sources,
        known_items=known_items,
        allow_unknown_items=allow_unknown_items,
        name=name,
    )


def load_files(
    interactions: str | Path,
    items: str | Path,
    triples: str | Path | None = None,
    tags: str | Path | None = None,
    *,
    users: str | Path | None = None,
    allow_unknown_items: bool = False,
    name: str | None = None,
) -> Dataset:
    """Load the bring-your-own format (see ``docs/data-format.md``) from files; ``users`` is the optional
    users file (``user`` then attribute columns)."""
    frames, sources = _read_all(
        {"interactions": interactions, "items": items, "triples": triples, "tags": tags, "users": users}
    )
    return from_frames(
        frames["interactions"],
        frames["items"],
        frames.get("triples"),
        frames.get("tags"),
        users=frames.get("users"),
        sources=sources,
        allow_unknown_items=allow_unknown_items,
        name=name or Path(interactions).parent.name or "dataset",
    )
