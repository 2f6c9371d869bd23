"""Validate raw tables and turn them into a canonical :class:`~kgrec.loaders.schema.Dataset`.

Every error names the source (a file, or ``<interactions frame>``), the row, the
column and what was expected. Validation happens completely before anything is
returned, so a failed load leaves nothing behind.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from kgrec.errors import DataValidationError
from kgrec.loaders import schema as S

log = logging.getLogger(__name__)

#: required and optional columns of each bring-your-own input
INPUT_COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "interactions": ((S.USER, S.ITEM), (S.TIMESTAMP, S.RATING, S.TEXT)),
    "items": ((S.ITEM,), (S.TITLE, S.DESCRIPTION, S.CATEGORIES, S.KEYWORDS)),
    "triples": ((S.ITEM, S.RELATION, S.ENTITY), ()),
    "tags": ((S.USER, S.ITEM, S.TAG), ()),
}


@dataclass(frozen=True)
class Source:
    """Where a table came from, to name rows in error messages.

    Attributes:
        label: the file path, or ``<interactions frame>`` for an in-memory table.
        header_lines: lines before the first data row (1 for a CSV with a header,
            so that data row 0 is *line 2*); ``None`` for sources without lines
            (Parquet, DataFrames), whose rows are counted from 1.
        line_of: for a CSV file, a function giving the physical line (from 1) on
            which data row ``row`` starts, so that rows after a quoted line break
            or a blank line are named by the line an editor shows; ``None`` when a
            row's line is ``row + header_lines + 1``. Only called for an error.
    """

    label: str
    header_lines: int | None = None
    line_of: Callable[[int], int | None] | None = field(default=None, compare=False, repr=False)

    def where(self, row: int, column: str | None = None) -> str:
        """``file, line N, column 'c'`` (CSV) or ``file, row N, column 'c'`` (Parquet, frames)."""
        if self.header_lines is not None:
            line = self.line_of(row) if self.line_of is not None else None
            pos = f"line {line if line is not None else row + self.header_lines + 1}"
        else:
            pos = f"row {row + 1}"
        col = f", column '{column}'" if column else ""
        return f"{self.label}, {pos}{col}"


def _frame_source(table: str) -> Source:
    return Source(f"<{table} frame>")


def _check_columns(df: pd.DataFrame, table: str, src: Source) -> None:
    required, optional = INPUT_COLUMNS[table]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataValidationError(
            f"{src.label}: missing required column {missing[0]!r} for {table}; "
            f"expected columns {list(required)} (optional {list(optional)}), found {list(df.columns)}"
        )
    if len(df) == 0:
        raise DataValidationError(f"{src.label}: no data rows; expected at least one {table} row")


def _first(mask: np.ndarray | pd.Series) -> int:
    return int(np.flatnonzero(np.asarray(mask, dtype=bool))[0])


def _is_container(v: object) -> bool:
    """A list, array, tuple, set, dict or other collection (what a Parquet list/struct/map cell becomes)."""
    return not isinstance(v, (str, bytes, bytearray)) and (pd.api.types.is_list_like(v) or pd.api.types.is_dict_like(v))


def _show(v: object, width: int = 60) -> str:
    """A short repr of a value for a message."""
    if isinstance(v, np.ndarray):
        v = v.tolist()
    r = repr(v)
    return r if len(r) <= width else r[: width - 1] + "…"


def _plain(raw: pd.Series) -> pd.Series:
    """A column of pyarrow-backed nested type (list, struct, map) as Python objects, to be checked like any other."""
    dtype = raw.dtype
    if isinstance(dtype, pd.ArrowDtype):
        import pyarrow as pa

        if pa.types.is_nested(dtype.pyarrow_dtype):
            return pd.Series(raw.to_numpy(dtype=object), index=raw.index, dtype=object)
    return raw


def _as_string(
    raw: pd.Series, column: str, table: str, src: Source, what: str, rows: np.ndarray | None = None
) -> pd.Series:
    """Any scalar column as a pandas ``string`` Series (missing values stay missing).

    Text stays text, numbers become their decimal text, bytes (a Parquet binary
    column) are decoded as UTF-8; a container (list, struct, map) is refused, never
    turned into its repr. ``rows`` maps positions to the source rows named in errors
    (default: the position itself). Columns of text, the usual case, are converted
    without a Python loop.
    """
    raw = _plain(raw)
    kind = pd.api.types.infer_dtype(raw, skipna=True)
    if kind in ("string", "empty") or raw.dtype != object:
        return raw.astype("string")

    def row_of(pos: int) -> int:
        return int(rows[pos]) if rows is not None else pos

    arr = raw.to_numpy(dtype=object)
    container = np.fromiter((_is_container(v) for v in arr), dtype=bool, count=len(arr))
    if container.any():
        pos = _first(container)
        v = arr[pos]
        shape = "a struct/map" if pd.api.types.is_dict_like(v) else "a list"
        raise DataValidationError(
            f"{src.where(row_of(pos), column)}: {shape} value {_show(v)} in the {table} table; expected {what} "
            "(one value per cell; only the categories and keywords columns of items take lists)"
        )
    binary = np.fromiter((isinstance(v, (bytes, bytearray)) for v in arr), dtype=bool, count=len(arr))
    if binary.any():
        out = arr.copy()
        for p in np.flatnonzero(binary):  # only for bytes columns (Parquet binary)
            try:
                out[p] = bytes(arr[p]).decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataValidationError(
                    f"{src.where(row_of(int(p)), column)}: bytes that are not UTF-8 (at byte {e.start} of the value "
                    f"{_show(bytes(arr[p])[: max(e.start + 4, 8)])}); expected {what} in UTF-8 (write the "
                    "column as strings, or re-encode it as UTF-8)"
                ) from None
        return pd.Series(out, index=raw.index, dtype=object).astype("string")
    return raw.astype("string")


def _check_id_size(s: pd.Series, column: str, src: Source, rows: np.ndarray | None = None) -> None:
    """Every id at most :data:`~kgrec.loaders.schema.MAX_ID_BYTES` UTF-8 bytes (no NA in ``s``)."""
    chars = s.str.len().to_numpy(dtype="int64", na_value=0)
    # a character takes 1 to 4 bytes: only ids longer than a quarter of the limit can exceed it
    maybe = np.flatnonzero(chars > S.MAX_ID_BYTES // 4)
    if not len(maybe):
        return
    nbytes = s.iloc[maybe].str.encode("utf-8").str.len().to_numpy(dtype="int64")
    over = nbytes > S.MAX_ID_BYTES
    if over.any():
        k = _first(over)
        pos = int(maybe[k])
        row = int(rows[pos]) if rows is not None else pos
        raise DataValidationError(
            f"{src.where(row, column)}: {column} {_show(s.iloc[pos], 40)} is {nbytes[k]:,} UTF-8 bytes long; "
            f"expected ids of at most {S.MAX_ID_BYTES:,} bytes (an id is a key: use a short code, and put long "
            "text in the title or description)"
        )


#: largest integer that a float stands for exactly (2**53)
_FLOAT_INT_MAX = 2**53


def _ids(df: pd.DataFrame, column: str, table: str, src: Source) -> pd.Series:
    """An id column as non-empty stripped strings of at most MAX_ID_BYTES; error on the first bad one.

    Integers become their decimal text; a float column (what pandas makes of an
    integer column with gaps) is accepted when every value is a whole number of at
    most 2**53 in size (``1.0`` becomes ``"1"``); other floats are refused.
    """
    raw = df[column]
    if pd.api.types.is_float_dtype(raw.dtype):
        v = raw.to_numpy(dtype="float64", na_value=np.nan)
        nan = np.isnan(v)
        if nan.any():
            raise DataValidationError(
                f"{src.where(_first(nan), column)}: empty {column} id; expected a non-empty id in every {table} row"
            )
        inf = ~np.isfinite(v)
        if inf.any():
            row = _first(inf)
            raise DataValidationError(
                f"{src.where(row, column)}: id {float(v[row])!r} is not a finite number; expected a string or integer id"
            )
        frac = v != np.floor(v)
        if frac.any():
            row = _first(frac)
            raise DataValidationError(
                f"{src.where(row, column)}: id {float(v[row])!r} is a fractional number; expected a string or integer id"
            )
        big = np.abs(v) > _FLOAT_INT_MAX
        if big.any():
            row = _first(big)
            raise DataValidationError(
                f"{src.where(row, column)}: id {float(v[row])!r} is a float too large to stand for one integer "
                f"exactly; expected a string or integer id (float ids must be whole numbers of at most 2**53 = "
                f"{_FLOAT_INT_MAX}; write the column as integers or strings)"
            )
        s = pd.Series(v.astype("int64"), index=raw.index).astype("string")
    else:
        s = _as_string(raw, column, table, src, f"a {column} id").str.strip()
    bad = s.isna() | (s == "")
    if bad.any():
        raise DataValidationError(
            f"{src.where(_first(bad), column)}: empty {column} id; expected a non-empty id in every {table} row"
        )
    _check_id_size(s, column, src)
    return s


def _text(df: pd.DataFrame, column: str, table: str, src: Source, limit: int, *, truncate: bool) -> pd.Series:
    """A text column as stripped strings ("" when absent or missing), at most ``limit`` characters.

    Longer values are an error naming the first one, or with ``truncate`` are cut
    to ``limit`` characters with one logged warning giving the count.
    """
    if column not in df.columns:
        return pd.Series([""] * len(df), dtype="string", index=df.index)
    s = _as_string(df[column], column, table, src, "text").fillna("").str.strip()
    n = s.str.len().to_numpy(dtype="int64", na_value=0)
    over = n > limit
    if over.any():
        row = _first(over)
        if not truncate:
            raise DataValidationError(
                f"{src.where(row, column)}: {column} of {n[row]:,} characters (starting {_show(s.iloc[row], 40)}); "
                f"expected at most {limit:,} characters (a quote left open in a CSV file makes one field run on to "
                "the next quote: check the quoting near that line)"
            )
        log.warning(
            "%s: %d %s value(s) longer than %d characters cut to %d, the first at %s (%d characters)",
            src.label,
            int(over.sum()),
            column,
            limit,
            limit,
            src.where(row, column),
            int(n[row]),
        )
        s = s.mask(pd.Series(over, index=s.index), s.str.slice(0, limit).str.rstrip())
    return s


def _epoch_seconds(dt: pd.Series) -> np.ndarray:
    """Whole seconds since 1970 (floored) of datetimes of any resolution, as float64 (NaN for NaT)."""
    utc = pd.to_datetime(dt, utc=True).dt.tz_convert(None).to_numpy()
    out = utc.astype("datetime64[s]").astype("int64").astype("float64")
    out[np.isnat(utc)] = np.nan
    return out


_TS_RANGE = (
    f"from {S.TIMESTAMP_MIN} to {S.TIMESTAMP_MAX} seconds since 1970 (1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z)"
)


def _check_ts_range(secs: np.ndarray, shown: pd.Series, src: Source, rows: np.ndarray | None = None) -> None:
    """Seconds (float, NaN = not checked here) within the documented timestamp range."""
    out = ~np.isnan(secs) & ~((secs >= S.TIMESTAMP_MIN) & (secs <= S.TIMESTAMP_MAX))
    if out.any():
        pos = _first(out)
        row = int(rows[pos]) if rows is not None else pos
        raise DataValidationError(
            f"{src.where(row, S.TIMESTAMP)}: {str(shown.iloc[pos])!r} is out of range; expected a timestamp "
            f"{_TS_RANGE}, as integer seconds or an ISO-8601 date"
        )


def _iso_seconds(texts: pd.Series, src: Source, rows: np.ndarray) -> np.ndarray:
    """Seconds since 1970 of ISO-8601 strings; error naming the first one that is not a date."""
    secs = _epoch_seconds(pd.to_datetime(texts, errors="coerce", utc=True, format="ISO8601"))
    nat = np.isnan(secs)
    if nat.any():
        # one column mixing nanosecond precision with dates after 2262 parses the latter as NaT: retry them
        again = np.flatnonzero(nat)
        secs[again] = _epoch_seconds(pd.to_datetime(texts.iloc[again], errors="coerce", utc=True, format="ISO8601"))
        for pos in np.flatnonzero(np.isnan(secs)):  # errors (or that rare mix): one by one
            try:
                secs[pos] = _epoch_seconds(pd.to_datetime(texts.iloc[[pos]], utc=True, format="ISO8601"))[0]
            except (ValueError, OverflowError):
                pass
            if np.isnan(secs[pos]):  # pandas reads 'nan', 'NaT', 'none' as a missing date
                raise DataValidationError(
                    f"{src.where(int(rows[pos]), S.TIMESTAMP)}: {str(texts.iloc[pos])!r} is not a timestamp; "
                    "expected integer seconds since 1970 or an ISO-8601 date such as 2024-05-01T12:00:00"
                )
    return secs


def _timestamps(df: pd.DataFrame, src: Source) -> pd.Series:
    """Integer seconds in the documented range; accepts integers or ISO-8601 date strings. Absent: row order."""
    if S.TIMESTAMP not in df.columns:
        return pd.Series(np.arange(len(df), dtype=np.int64), index=df.index)
    raw = df[S.TIMESTAMP]
    if raw.isna().any():
        raise DataValidationError(
            f"{src.where(_first(raw.isna()), S.TIMESTAMP)}: empty timestamp; expected integer seconds since 1970 or an ISO-8601 date in every row (or no timestamp column at all)"
        )
    if pd.api.types.is_bool_dtype(raw.dtype):
        raise DataValidationError(
            f"{src.where(0, S.TIMESTAMP)}: a true/false column; expected integer seconds since 1970 or ISO-8601 dates"
        )
    if pd.api.types.is_integer_dtype(raw.dtype):
        v = raw.to_numpy()
        out = (v < S.TIMESTAMP_MIN) | (v > S.TIMESTAMP_MAX)  # in the column's own type: uint64 never wraps
        if out.any():
            _check_ts_range(np.where(out, np.inf, 0.0), raw, src)
        return raw.astype("int64")
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        secs = _epoch_seconds(raw)
        _check_ts_range(secs, raw, src)
        return pd.Series(secs.astype("int64"), index=raw.index)
    if raw.dtype == object:
        raw = _as_string(raw, S.TIMESTAMP, "interactions", src, "a timestamp")
    num = pd.to_numeric(raw, errors="coerce")
    v = np.array(num.to_numpy(dtype="float64", na_value=np.nan), dtype="float64", copy=True)
    isnum = ~np.isnan(v)
    frac = isnum & np.isfinite(v) & (v != np.floor(v))
    if frac.any():
        row = _first(frac)
        raise DataValidationError(
            f"{src.where(row, S.TIMESTAMP)}: {raw.iloc[row]!r} is not whole seconds; expected integer seconds since 1970 or an ISO-8601 date"
        )
    _check_ts_range(v, raw, src)  # inf and -inf are out of range too
    if not isnum.all():
        rows = np.flatnonzero(~isnum)
        texts = raw.iloc[rows].astype("string")
        secs = _iso_seconds(texts, src, rows)
        _check_ts_range(secs, texts, src, rows)
        v[rows] = secs
    return pd.Series(v.astype("int64"), index=raw.index)


def _ratings(df: pd.DataFrame, src: Source) -> pd.Series:
    if S.RATING not in df.columns:
        return pd.Series(np.full(len(df), np.nan), index=df.index, dtype="float64")
    raw = df[S.RATING]
    if raw.dtype == object:
        raw = _as_string(raw, S.RATING, "interactions", src, "a numeric rating")
    num = pd.to_numeric(raw, errors="coerce")
    bad = num.isna() & raw.notna() & (raw.astype("string").str.strip() != "")
    if bad.any():
        row = _first(bad)
        raise DataValidationError(
            f"{src.where(row, S.RATING)}: {str(raw.iloc[row])!r} is not a number; expected a numeric rating or an empty cell"
        )
    v = num.to_numpy(dtype="float64", na_value=np.nan)
    inf = np.isinf(v)
    if inf.any():
        row = _first(inf)
        raise DataValidationError(
            f"{src.where(row, S.RATING)}: {str(raw.iloc[row])!r} is not a finite number; expected a numeric rating or an empty cell"
        )
    return pd.Series(v, index=df.index, dtype="float64")


def _split_multi(
    items: pd.DataFrame, ids: pd.Series, column: str, val_col: str, src: Source, *, keyword: bool = False
) -> pd.DataFrame:
    """Explode a multi-valued column into one (item, value) row each; blanks dropped.

    A cell is either text with values separated by ``|`` (``Drama|Comedy``) or a
    list (a Parquet ``list<string>`` column): its elements are the values, taken
    whole. Each value is an id (at most MAX_ID_BYTES, after keyword normalisation
    with ``keyword``); at most MAX_VALUES_PER_ITEM values per row.
    """
    if column not in items.columns:
        return S.empty_table("item_categories" if val_col == S.CATEGORY else "item_keywords")
    raw = _plain(items[column])
    arr = raw.to_numpy(dtype=object)
    if pd.api.types.infer_dtype(raw, skipna=True) in ("string", "empty") or raw.dtype != object:
        parts = _as_string(raw, column, "items", src, "text").fillna("").str.split(S.MULTI_SEP, regex=False)
        cells = parts.to_numpy(dtype=object)
    else:
        listlike = np.fromiter((_is_container(v) for v in arr), dtype=bool, count=len(arr))
        dicts = np.flatnonzero([pd.api.types.is_dict_like(v) for v in arr[listlike]])
        if len(dicts):
            pos = int(np.flatnonzero(listlike)[dicts[0]])
            raise DataValidationError(
                f"{src.where(pos, column)}: a struct/map value {_show(arr[pos])}; expected text with values "
                f"separated by {S.MULTI_SEP!r} or a list of strings"
            )
        scalars = pd.Series(np.where(listlike, None, arr), dtype=object)
        text = _as_string(scalars, column, "items", src, "text").fillna("").str.split(S.MULTI_SEP, regex=False)
        cells = np.where(listlike, arr, text.to_numpy(dtype=object))
    out = pd.DataFrame({"_row": np.arange(len(arr)), S.ITEM: ids.to_numpy(), val_col: cells})
    out = out.explode(val_col, ignore_index=True)
    rows = out["_row"].to_numpy(dtype="int64")
    vals = _as_string(out[val_col], column, "items", src, "a list of strings", rows=rows).str.strip()
    if keyword:
        vals = _normalise_keyword(vals)
    keep = (vals.notna() & (vals != "")).to_numpy(dtype=bool)
    out = pd.DataFrame({S.ITEM: out[S.ITEM].to_numpy()[keep], val_col: vals.to_numpy()[keep]})
    rows = rows[keep]
    if len(rows):
        per_row = np.bincount(rows)
        if per_row.max() > S.MAX_VALUES_PER_ITEM:
            row = _first(per_row > S.MAX_VALUES_PER_ITEM)
            raise DataValidationError(
                f"{src.where(row, column)}: {int(per_row[row]):,} {column} in one item; expected at most "
                f"{S.MAX_VALUES_PER_ITEM:,} per item"
            )
        _check_id_size(out[val_col].astype("string"), column, src, rows=rows)
    return out.astype({S.ITEM: "string", val_col: "string"})


def _normalise_keyword(s: pd.Series) -> pd.Series:
    """Keywords and tags compare case-insensitively with folded white space."""
    return s.astype("string").str.lower().str.replace(r"\s+", " ", regex=True).str.strip()


def _tags(df: pd.DataFrame, src: Source) -> pd.Series:
    """The tag column, normalised as keywords; the id limit holds after lower-casing too."""
    out = _normalise_keyword(_ids(df, S.TAG, "tags", src))
    _check_id_size(out, S.TAG, src)
    return out


def _canonical(df: pd.DataFrame, name: str) -> pd.DataFrame:
    schema = S.TABLES[name]
    out = df[list(schema)].astype(schema)
    return out.reset_index(drop=True)


def canonical(df: pd.DataFrame, name: str) -> pd.DataFrame:
    """``df`` with exactly the columns and dtypes of table ``name`` (``schema.TABLES``), index reset."""
    return _canonical(df, name)


def _unknown_items(
    ids: pd.Series, known: set[str], table: str, src: Source, allow: bool, batch: str | None = None
) -> np.ndarray:
    """Which rows name an item outside ``known``; an error unless ``allow``.

    ``batch`` (a batch to append: ``"file"`` or ``"table"``, where its items came from) names the first such row
    with its column; there ``allow`` leaves the items to the store's ``append``, which creates the ones it does not
    hold (no row of the mask is set).
    """
    mask = ~ids.isin(known).to_numpy()
    n = int(mask.sum())
    if n and batch is not None:
        if allow:
            return np.zeros(len(mask), dtype=bool)
        row = _first(mask)
        raise DataValidationError(
            f"{src.where(row, S.ITEM)}: item {ids.iloc[row]!r} is neither in the store nor in the items {batch}; "
            f"expected an item the store holds or the batch adds ({n} {table} row(s) name unknown items; pass "
            "--allow-unknown-items / allow_unknown_items=True to create them with their id as title)"
        )
    if n and not allow:
        rows = np.flatnonzero(mask)
        first = ", ".join(f"{ids.iloc[r]!r} ({src.where(int(r))})" for r in rows[:3])
        raise DataValidationError(
            f"{src.label}: {n} {table} row(s) name items absent from the items table, first: {first}; "
            "expected every item to be listed in the items table (or pass --allow-unknown-items / "
            "allow_unknown_items=True to add them as items without text)"
        )
    return mask


#: the kinds of attribute column a users file may declare with a ``name:kind`` header suffix
ATTRIBUTE_KINDS = {"category": "category", "cat": "category", "number": "number", "num": "number", "text": "text"}


def _number_text(x: float) -> str:
    return f"{x:g}"


def band_edges(values: np.ndarray, bands: int = S.NUMERIC_BANDS) -> np.ndarray:
    """Edges of the quantile bands of a numeric attribute: ``bands`` bands of about equal size (fewer when
    values repeat); whole numbers when every value is one."""
    qs = np.quantile(values, np.linspace(0.0, 1.0, bands + 1))
    if np.all(values == np.floor(values)):
        qs = np.round(qs)
    return np.unique(qs)


def band_labels(values: np.ndarray, edges: np.ndarray) -> list[str]:
    """The band label ``"lo to hi"`` of each value (bands ``[lo, hi)``, the last one closed)."""
    if len(edges) == 1:
        return [f"{_number_text(edges[0])} to {_number_text(edges[0])}"] * len(values)
    pos = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
    return [f"{_number_text(edges[p])} to {_number_text(edges[p + 1])}" for p in pos.tolist()]


def band_of(value: float, labels: list[str]) -> str | None:
    """The label among ``labels`` (``"lo to hi"``, as :func:`band_labels` writes them) whose band holds
    ``value``, else the nearest band's; None when no label is a band."""
    best: tuple[float, str] | None = None
    for lab in labels:
        lo_s, sep, hi_s = lab.partition(" to ")
        try:
            lo, hi = float(lo_s), float(hi_s)
        except ValueError:
            continue
        if not sep:
            continue
        if lo <= value <= hi:
            return lab
        d = min(abs(value - lo), abs(value - hi))
        if best is None or d < best[0]:
            best = (d, lab)
    return None if best is None else best[1]


def _attribute_columns(df: pd.DataFrame, src: Source) -> list[tuple[str, str, str]]:
    """``(column, attribute name, kind)`` of every attribute column of a users table.

    A header ``name:kind`` declares the kind (``category``/``cat``, ``number``/``num``, ``text``);
    without a suffix a column named ``profile`` is text, a column whose non-empty values are all
    numbers is a number, and any other column is a category.
    """
    out: list[tuple[str, str, str]] = []
    seen: dict[str, str] = {}
    for col in df.columns:
        if col == S.USER:
            continue
        name, sep, kind = str(col).rpartition(":") if ":" in str(col) else (str(col), "", "")
        name = name.strip()
        if sep:
            k = ATTRIBUTE_KINDS.get(kind.strip().lower())
            if k is None:
                raise DataValidationError(
                    f"{src.label}: column {col!r} declares the kind {kind.strip()!r}; expected a header 'name:kind' with "
                    f"kind one of {sorted(set(ATTRIBUTE_KINDS))} (or no suffix, to infer the kind)"
                )
        else:
            k = ""
        if not name or "=" in name or len(name.encode("utf-8")) > S.MAX_ID_BYTES:
            raise DataValidationError(
                f"{src.label}: column {col!r} is not a usable attribute name; expected a non-empty name without '=' "
                f"of at most {S.MAX_ID_BYTES:,} bytes"
            )
        if name in seen:
            raise DataValidationError(
                f"{src.label}: columns {seen[name]!r} and {col!r} name the same attribute {name!r}; expected one "
                "column per attribute"
            )
        seen[name] = str(col)
        if not k:
            raw = df[col]
            if name == S.PROFILE:
                k = "text"
            elif pd.api.types.is_bool_dtype(raw.dtype):
                k = "category"
            elif pd.api.types.is_numeric_dtype(raw.dtype):
                k = "number"
            else:
                txt = _as_string(raw, str(col), "users", src, "an attribute value").fillna("").str.strip()
                filled = txt[txt != ""]
                num = pd.to_numeric(filled, errors="coerce")
                k = (
                    "number"
                    if len(filled) and num.notna().all() and np.isfinite(num.to_numpy(dtype="float64")).all()
                    else "category"
                )
        out.append((str(col), name, k))
    if len(out) > S.MAX_ATTRIBUTE_COLUMNS:
        raise DataValidationError(
            f"{src.label}: {len(out)} attribute columns; expected at most {S.MAX_ATTRIBUTE_COLUMNS}"
        )
    return out


def users_tables(df: pd.DataFrame, src: Source | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate a users table (column ``user`` then attribute columns) into the canonical ``users`` and
    ``user_attributes`` tables (see ``docs/data-format.md``, "Users").

    Raises:
        DataValidationError: naming the source, line or row, column and what was expected.
    """
    src = src or _frame_source("users")
    if S.USER not in df.columns:
        raise DataValidationError(
            f"{src.label}: missing required column 'user' for users; expected columns ['user', <attribute columns>...], "
            f"found {list(df.columns)}"
        )
    if len(df) == 0:
        raise DataValidationError(f"{src.label}: no data rows; expected at least one users row")
    users = _ids(df, S.USER, "users", src)
    dup = users.duplicated(keep="first").to_numpy()
    if dup.any():
        row = _first(dup)
        first = _first((users == users.iloc[row]).to_numpy())
        raise DataValidationError(
            f"{src.where(row, S.USER)}: user {users.iloc[row]!r} is listed again (first at {src.where(first)}); "
            "expected one row per user"
        )
    texts: list[pd.Series] = []
    attrs: list[pd.DataFrame] = []
    for col, name, kind in _attribute_columns(df, src):
        raw = df[col]
        if kind == "text":
            texts.append(_text(df, col, "users", src, S.MAX_PROFILE_CHARS, truncate=True))
            continue
        if kind == "number":
            if raw.dtype == object:
                raw = _as_string(raw, col, "users", src, "a number")
            txt = raw.astype("string").str.strip() if not pd.api.types.is_numeric_dtype(raw.dtype) else None
            num = pd.to_numeric(txt if txt is not None else raw, errors="coerce")
            v = num.to_numpy(dtype="float64", na_value=np.nan)
            empty = (txt.isna() | (txt == "")).to_numpy(dtype=bool) if txt is not None else np.isnan(v)
            bad = (np.isnan(v) | ~np.isfinite(v)) & ~empty
            if bad.any():
                row = _first(bad)
                raise DataValidationError(
                    f"{src.where(row, col)}: {str(df[col].iloc[row])!r} is not a finite number; expected a number or "
                    f"an empty cell in the numeric attribute {name!r} (declare it '{name}:category' to keep the values as text)"
                )
            keep = ~empty
            if keep.any():
                vals = v[keep]
                labels = band_labels(vals, band_edges(vals))
                attrs.append(pd.DataFrame({S.USER: users.to_numpy()[keep], S.ATTRIBUTE: name, S.VALUE: labels}))
            continue
        vals = _as_string(raw, col, "users", src, "an attribute value").str.strip()
        keep = (vals.notna() & (vals != "")).to_numpy(dtype=bool)
        rows = np.flatnonzero(keep)
        _check_id_size(vals[keep].astype("string"), col, src, rows=rows)
        attrs.append(pd.DataFrame({S.USER: users.to_numpy()[keep], S.ATTRIBUTE: name, S.VALUE: vals.to_numpy()[keep]}))
    if texts:
        profile = texts[0]
        for t in texts[1:]:
            profile = (profile + "; " + t).str.strip("; ")
        profile = profile.str.slice(0, S.MAX_PROFILE_CHARS)
    else:
        profile = pd.Series([""] * len(df), dtype="string", index=df.index)
    ut = pd.DataFrame({S.USER: users.to_numpy(), S.PROFILE: profile.to_numpy()}).sort_values(S.USER, kind="stable")
    at = pd.concat(attrs, ignore_index=True) if attrs else S.empty_table("user_attributes")
    at = at.drop_duplicates().sort_values([S.USER, S.ATTRIBUTE, S.VALUE], kind="stable")
    return _canonical(ut, "users"), _canonical(at, "user_attributes")


def from_frames(
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    triples: pd.DataFrame | None = None,
    tags: pd.DataFrame | None = None,
    *,
    users: pd.DataFrame | None = None,
    sources: Mapping[str, Source] | None = None,
    allow_unknown_items: bool = False,
    name: str = "dataset",
) -> S.Dataset:
    """Validate bring-your-own tables and return a canonical :class:`Dataset`.

    Args:
        interactions: columns ``user, item`` and optional ``timestamp`` (integer
            seconds or ISO-8601), ``rating`` (number), ``text`` (behaviour text).
        items: column ``item`` and optional ``title, description, categories,
            keywords`` (the last two ``|``-separated).
        triples: optional ``item, relation, entity`` knowledge-graph facts.
        tags: optional ``user, item, tag`` (a user applying a keyword).
        users: optional ``user`` then attribute columns (categorical, numeric, free
            text; see :func:`users_tables`); users without interactions are allowed.
        sources: where each table came from, for error messages.
        allow_unknown_items: add items named only in interactions/tags/triples as
            items without text (with a warning and a count) instead of failing.
        name: the data set's name.

    Raises:
        DataValidationError: naming the source, row, column and expectation.
    """
    return _build(interactions, items, triples, tags, users, sources, allow_unknown_items, name, None)


def batch_from_frames(
    interactions: pd.DataFrame | None = None,
    items: pd.DataFrame | None = None,
    triples: pd.DataFrame | None = None,
    tags: pd.DataFrame | None = None,
    *,
    users: pd.DataFrame | None = None,
    sources: Mapping[str, Source] | None = None,
    known_items: Iterable[str] = (),
    allow_unknown_items: bool = False,
    name: str = "batch",
) -> S.Dataset:
    """Validate a batch of new rows to append to a store (:meth:`~kgrec.graph.store.GraphStore.append`).

    The same validation as :func:`from_frames`, with two differences: every table is optional (at least one
    is given), and rows may name items the store already holds (``known_items``) without an items row. A row
    naming an item in neither is an error naming its row (its line in a CSV file), the column ``item`` and the
    id; with ``allow_unknown_items`` such items are left to the store's ``append``, which creates them (with
    their id as title) unless it holds them by then.

    Raises:
        DataValidationError: naming the source, row, column and expectation.
    """
    given = [t for t in (interactions, items, triples, tags, users) if t is not None]
    if not given:
        raise DataValidationError("nothing to append: give at least one of interactions, items, triples, tags or users")
    return _build(interactions, items, triples, tags, users, sources, allow_unknown_items, name, set(known_items))


def _build(
    interactions: pd.DataFrame | None,
    items: pd.DataFrame | None,
    triples: pd.DataFrame | None,
    tags: pd.DataFrame | None,
    users: pd.DataFrame | None,
    sources: Mapping[str, Source] | None,
    allow_unknown_items: bool,
    name: str,
    known_items: set[str] | None,
) -> S.Dataset:
    """:func:`from_frames` (``known_items`` None) or :func:`batch_from_frames` (the ids a store holds)."""
    sources = dict(sources or {})
    src = {t: sources.get(t, _frame_source(t)) for t in INPUT_COLUMNS}
    batch = None if known_items is None else ("file" if sources else "table")  # where a batch's items came from

    # ---- items
    if items is None:  # a batch without items
        items = pd.DataFrame({S.ITEM: pd.Series([], dtype="string")})
    else:
        _check_columns(items, "items", src["items"])
    item_ids = _ids(items, S.ITEM, "items", src["items"])
    it = pd.DataFrame(
        {
            S.ITEM: item_ids,
            S.TITLE: _text(items, S.TITLE, "items", src["items"], S.MAX_TITLE_CHARS, truncate=False),
            S.DESCRIPTION: _text(items, S.DESCRIPTION, "items", src["items"], S.MAX_DESCRIPTION_CHARS, truncate=True),
        }
    )
    cats = _split_multi(items, item_ids, S.CATEGORIES, S.CATEGORY, src["items"])
    kws = _split_multi(items, item_ids, S.KEYWORDS, S.KEYWORD, src["items"], keyword=True)
    dup = it.duplicated(S.ITEM, keep="first")
    if dup.any():
        same = it.duplicated(keep="first")
        conflicting = dup & ~same
        if conflicting.any():
            row = int(np.flatnonzero(conflicting.to_numpy())[0])
            raise DataValidationError(
                f"{src['items'].where(row, S.ITEM)}: item {it[S.ITEM].iloc[row]!r} is listed twice with different "
                "title/description; expected one row per item"
            )
        log.warning("%s: %d duplicated item rows kept once", src["items"].label, int(dup.sum()))
        it = it[~dup]
    known = set(it[S.ITEM].tolist()) | (known_items or set())

    # ---- interactions
    isrc = src["interactions"]
    if interactions is None:  # a batch without interactions
        interactions = pd.DataFrame({S.USER: pd.Series([], dtype="string"), S.ITEM: pd.Series([], dtype="string")})
    else:
        _check_columns(interactions, "interactions", isrc)
    inter = pd.DataFrame(
        {
            S.USER: _ids(interactions, S.USER, "interactions", isrc),
            S.ITEM: _ids(interactions, S.ITEM, "interactions", isrc),
            S.TIMESTAMP: _timestamps(interactions, isrc),
            S.RATING: _ratings(interactions, isrc),
            S.TEXT: _text(interactions, S.TEXT, "interactions", isrc, S.MAX_TEXT_CHARS, truncate=True),
        }
    )
    extra_items: list[pd.Series] = []
    unk = _unknown_items(inter[S.ITEM], known, "interactions", isrc, allow_unknown_items, batch)
    if unk.any():
        extra_items.append(inter[S.ITEM][unk])

    # ---- tags
    if tags is not None:
        _check_columns(tags, "tags", src["tags"])
        tg = pd.DataFrame(
            {
                S.USER: _ids(tags, S.USER, "tags", src["tags"]),
                S.ITEM: _ids(tags, S.ITEM, "tags", src["tags"]),
                S.TAG: _tags(tags, src["tags"]),
            }
        )
        unk = _unknown_items(tg[S.ITEM], known, "tags", src["tags"], allow_unknown_items, batch)
        if unk.any():
            extra_items.append(tg[S.ITEM][unk])
    else:
        tg = S.empty_table("tags")

    # ---- triples
    if triples is not None:
        _check_columns(triples, "triples", src["triples"])
        tsrc = src["triples"]
        tr = pd.DataFrame(
            {
                S.ITEM: _ids(triples, S.ITEM, "triples", tsrc),
                S.RELATION: _ids(triples, S.RELATION, "triples", tsrc),
                S.ENTITY: _ids(triples, S.ENTITY, "triples", tsrc),
            }
        )
        unk = _unknown_items(tr[S.ITEM], known, "triples", tsrc, allow_unknown_items, batch)
        if unk.any():
            extra_items.append(tr[S.ITEM][unk])
    else:
        tr = S.empty_table("triples")

    if extra_items:
        new = pd.Series(pd.concat(extra_items).unique(), dtype="string")
        log.warning(
            "%d item(s) named in interactions/tags/triples are absent from the items table; "
            "added as items without text (allow_unknown_items)",
            len(new),
        )
        it = pd.concat(
            [it, pd.DataFrame({S.ITEM: new, S.TITLE: "", S.DESCRIPTION: ""}).astype("string")],
            ignore_index=True,
        )

    # ---- duplicates, deterministically: one row per (user, item), the latest kept,
    # weight = number of times the pair occurred.
    n0 = len(inter)
    inter = inter.sort_values([S.USER, S.ITEM, S.TIMESTAMP], kind="stable")
    counts = inter.groupby([S.USER, S.ITEM], sort=False)[S.ITEM].transform("size")
    inter = inter.assign(**{S.WEIGHT: counts.astype("float64")})
    inter = inter.drop_duplicates([S.USER, S.ITEM], keep="last")
    if len(inter) < n0:
        log.warning(
            "%s: %d repeated (user, item) rows folded into one edge each (latest kept, weight = count)",
            isrc.label,
            n0 - len(inter),
        )
    inter = inter.sort_values([S.USER, S.TIMESTAMP, S.ITEM], kind="stable")

    it = it.sort_values(S.ITEM, kind="stable")
    kws_all = pd.concat(
        [
            kws,
            tg.rename(columns={S.TAG: S.KEYWORD})[[S.ITEM, S.KEYWORD]],
        ]
    )

    def _links(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
        return df.drop_duplicates(cols).sort_values(cols, kind="stable")

    if users is not None:
        users_t, attrs_t = users_tables(users, sources.get("users", _frame_source("users")))
    else:
        users_t, attrs_t = S.empty_table("users"), S.empty_table("user_attributes")
    return S.Dataset(
        interactions=_canonical(inter, "interactions"),
        items=_canonical(it, "items"),
        item_categories=_canonical(_links(cats, [S.ITEM, S.CATEGORY]), "item_categories"),
        item_keywords=_canonical(_links(kws_all, [S.ITEM, S.KEYWORD]), "item_keywords"),
        triples=_canonical(_links(tr, [S.ITEM, S.RELATION, S.ENTITY]), "triples"),
        tags=_canonical(_links(tg, [S.USER, S.ITEM, S.TAG]), "tags"),
        name=name,
        users=users_t,
        user_attributes=attrs_t,
    )


#: the id columns of each canonical table
ID_COLUMNS: dict[str, tuple[str, ...]] = {
    "interactions": (S.USER, S.ITEM),
    "items": (S.ITEM,),
    "item_categories": (S.ITEM, S.CATEGORY),
    "item_keywords": (S.ITEM, S.KEYWORD),
    "triples": (S.ITEM, S.RELATION, S.ENTITY),
    "tags": (S.USER, S.ITEM, S.TAG),
    "users": (S.USER,),
    "user_attributes": (S.USER, S.ATTRIBUTE, S.VALUE),
}


def check_dataset(ds: S.Dataset) -> None:
    """Check the limits of the format on an already canonical :class:`Dataset`.

    Every loader's output passes; this is for a ``Dataset`` built by hand (not by
    a loader), for a store to call before it writes anything: ids non-empty and at
    most MAX_ID_BYTES, timestamps within TIMESTAMP_MIN..TIMESTAMP_MAX.

    Raises:
        DataValidationError: naming the table (``<dataset table 'items'>``), row and column.
    """
    for name, cols in ID_COLUMNS.items():
        df = ds.tables()[name]
        src = Source(f"<dataset table {name!r}>")
        for col in cols:
            s = df[col].astype("string")
            bad = (s.isna() | (s == "")).to_numpy(dtype=bool)
            if bad.any():
                raise DataValidationError(f"{src.where(_first(bad), col)}: empty {col} id; expected a non-empty id")
            _check_id_size(s, col, src)
    ts = ds.interactions[S.TIMESTAMP]
    if len(ts):
        _check_ts_range(ts.to_numpy(dtype="float64", na_value=np.nan), ts, Source("<dataset table 'interactions'>"))


def merge(old: S.Dataset, new: S.Dataset) -> S.Dataset:
    """Add ``new`` to ``old`` (a later ingest): new rows are added, equal rows kept once.

    A (user, item) interaction present in both keeps the later row; an item
    present in both takes ``new``'s title and description. Merging a data set
    with itself gives the same data set, so re-ingesting is idempotent.
    """
    inter = pd.concat([old.interactions, new.interactions], ignore_index=True)
    inter = inter.sort_values([S.USER, S.ITEM, S.TIMESTAMP, S.WEIGHT], kind="stable")
    inter = inter.drop_duplicates([S.USER, S.ITEM], keep="last")
    inter = inter.sort_values([S.USER, S.TIMESTAMP, S.ITEM], kind="stable")
    items = pd.concat([old.items, new.items], ignore_index=True).drop_duplicates(S.ITEM, keep="last")
    items = items.sort_values(S.ITEM, kind="stable")

    def links(name: str) -> pd.DataFrame:
        cols = list(S.TABLES[name])
        df = pd.concat([getattr(old, name), getattr(new, name)], ignore_index=True)
        return _canonical(df.drop_duplicates(cols).sort_values(cols, kind="stable"), name)

    # a user in the new users table gets the new profile and attributes (old ones replaced, not added)
    renamed = set(new.users[S.USER].tolist())
    users = pd.concat([old.users[~old.users[S.USER].isin(renamed)], new.users], ignore_index=True)
    users = _canonical(users.sort_values(S.USER, kind="stable"), "users")
    old_attrs = old.user_attributes[~old.user_attributes[S.USER].isin(renamed)]
    attr_cols = list(S.USER_ATTRIBUTES_SCHEMA)
    attrs = pd.concat([old_attrs, new.user_attributes], ignore_index=True).drop_duplicates(attr_cols)
    attrs = _canonical(attrs.sort_values(attr_cols, kind="stable"), "user_attributes")

    return S.Dataset(
        interactions=_canonical(inter, "interactions"),
        items=_canonical(items, "items"),
        item_categories=links("item_categories"),
        item_keywords=links("item_keywords"),
        triples=links("triples"),
        tags=links("tags"),
        name=new.name if old.name == "dataset" else old.name,
        users=users,
        user_attributes=attrs,
    )
