"""Validate raw tables and turn them into a canonical :class:`~kgrec.loaders.schema.Dataset`.

Every error names the source (a file, or ``<interactions frame>``), the row, the
column and what was expected. Validation happens completely before anything is
returned, so a failed load leaves nothing behind.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

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
    """

    label: str
    header_lines: int | None = None

    def where(self, row: int, column: str | None = None) -> str:
        pos = f"line {row + self.header_lines + 1}" if self.header_lines is not None else f"row {row + 1}"
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


def _ids(df: pd.DataFrame, column: str, table: str, src: Source) -> pd.Series:
    """An id column as non-empty stripped strings; error on the first empty one."""
    raw = df[column]
    s = raw.astype("string").str.strip()
    bad = s.isna() | (s == "")
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataValidationError(
            f"{src.where(row, column)}: empty {column} id; expected a non-empty id in every {table} row"
        )
    # integers read from Parquet/frames as floats would print as "1.0": refuse them
    if pd.api.types.is_float_dtype(raw.dtype):
        frac = raw.to_numpy() != np.floor(raw.to_numpy())
        if frac.any():
            row = int(np.flatnonzero(frac)[0])
            raise DataValidationError(
                f"{src.where(row, column)}: id {raw.iloc[row]!r} is a fractional number; expected a string or integer id"
            )
        s = raw.astype("int64").astype("string")
    return s


def _text(df: pd.DataFrame, column: str) -> pd.Series:
    if column not in df.columns:
        return pd.Series([""] * len(df), dtype="string", index=df.index)
    return df[column].astype("string").fillna("").str.strip()


def _epoch_seconds(dt: pd.Series) -> pd.Series:
    """Whole seconds since 1970 of tz-aware datetimes, whatever their resolution."""
    return ((dt - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).astype("int64")


def _timestamps(df: pd.DataFrame, src: Source) -> pd.Series:
    """Integer seconds; accepts integers or ISO-8601 date strings. Absent: row order."""
    if S.TIMESTAMP not in df.columns:
        return pd.Series(np.arange(len(df), dtype=np.int64), index=df.index)
    raw = df[S.TIMESTAMP]
    if raw.isna().any():
        row = int(np.flatnonzero(raw.isna().to_numpy())[0])
        raise DataValidationError(
            f"{src.where(row, S.TIMESTAMP)}: empty timestamp; expected integer seconds since 1970 or an ISO-8601 date in every row (or no timestamp column at all)"
        )
    if pd.api.types.is_integer_dtype(raw.dtype):
        return raw.astype("int64")
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        return _epoch_seconds(pd.to_datetime(raw, utc=True))
    num = pd.to_numeric(raw, errors="coerce")
    frac = num.notna() & (num != np.floor(num))
    if frac.any():
        row = int(np.flatnonzero(frac.to_numpy())[0])
        raise DataValidationError(
            f"{src.where(row, S.TIMESTAMP)}: {raw.iloc[row]!r} is not whole seconds; expected integer seconds since 1970 or an ISO-8601 date"
        )
    out = num.astype("Float64")
    text_rows = num.isna()
    if text_rows.any():
        dt = pd.to_datetime(raw[text_rows].astype("string"), errors="coerce", utc=True, format="ISO8601")
        if dt.isna().any():
            row = int(np.flatnonzero(text_rows.to_numpy())[int(np.flatnonzero(dt.isna().to_numpy())[0])])
            raise DataValidationError(
                f"{src.where(row, S.TIMESTAMP)}: {str(raw.iloc[row])!r} is not a timestamp; expected integer seconds since 1970 or an ISO-8601 date such as 2024-05-01T12:00:00"
            )
        out[text_rows] = _epoch_seconds(dt).astype("Float64")
    return out.astype("int64")


def _ratings(df: pd.DataFrame, src: Source) -> pd.Series:
    if S.RATING not in df.columns:
        return pd.Series(np.full(len(df), np.nan), index=df.index, dtype="float64")
    raw = df[S.RATING]
    num = pd.to_numeric(raw, errors="coerce")
    bad = num.isna() & raw.notna() & (raw.astype("string").str.strip() != "")
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataValidationError(
            f"{src.where(row, S.RATING)}: {str(raw.iloc[row])!r} is not a number; expected a numeric rating or an empty cell"
        )
    return num.astype("float64")


def _split_multi(ids: pd.Series, values: pd.Series, id_col: str, val_col: str) -> pd.DataFrame:
    """Explode ``a|b|c`` cells into one (id, value) row each; blanks dropped."""
    parts = values.fillna("").astype(str).str.split(S.MULTI_SEP, regex=False)
    out = pd.DataFrame({id_col: ids.to_numpy(), val_col: parts.to_numpy()}).explode(val_col)
    out[val_col] = out[val_col].astype("string").str.strip()
    out = out[out[val_col].notna() & (out[val_col] != "")]
    return out.astype({id_col: "string", val_col: "string"})


def _normalise_keyword(s: pd.Series) -> pd.Series:
    """Keywords and tags compare case-insensitively with folded white space."""
    return s.astype("string").str.lower().str.replace(r"\s+", " ", regex=True).str.strip()


def _canonical(df: pd.DataFrame, name: str) -> pd.DataFrame:
    schema = S.TABLES[name]
    out = df[list(schema)].astype(schema)
    return out.reset_index(drop=True)


def _unknown_items(
    ids: pd.Series, known: set[str], table: str, src: Source, allow: bool
) -> np.ndarray:
    mask = ~ids.isin(known).to_numpy()
    n = int(mask.sum())
    if n and not allow:
        rows = np.flatnonzero(mask)
        first = ", ".join(f"{ids.iloc[r]!r} ({src.where(int(r))})" for r in rows[:3])
        raise DataValidationError(
            f"{src.label}: {n} {table} row(s) name items absent from the items table, first: {first}; "
            "expected every item to be listed in the items table (or pass --allow-unknown-items / "
            "allow_unknown_items=True to add them as items without text)"
        )
    return mask


def from_frames(
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    triples: pd.DataFrame | None = None,
    tags: pd.DataFrame | None = None,
    *,
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
        sources: where each table came from, for error messages.
        allow_unknown_items: add items named only in interactions/tags/triples as
            items without text (with a warning and a count) instead of failing.
        name: the data set's name.

    Raises:
        DataValidationError: naming the source, row, column and expectation.
    """
    sources = dict(sources or {})
    src = {t: sources.get(t, _frame_source(t)) for t in INPUT_COLUMNS}

    # ---- items
    _check_columns(items, "items", src["items"])
    item_ids = _ids(items, S.ITEM, "items", src["items"])
    it = pd.DataFrame(
        {S.ITEM: item_ids, S.TITLE: _text(items, S.TITLE), S.DESCRIPTION: _text(items, S.DESCRIPTION)}
    )
    cats = _split_multi(item_ids, _text(items, S.CATEGORIES), S.ITEM, S.CATEGORY)
    kws = _split_multi(item_ids, _text(items, S.KEYWORDS), S.ITEM, S.KEYWORD)
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
    known = set(it[S.ITEM].tolist())

    # ---- interactions
    _check_columns(interactions, "interactions", src["interactions"])
    isrc = src["interactions"]
    inter = pd.DataFrame(
        {
            S.USER: _ids(interactions, S.USER, "interactions", isrc),
            S.ITEM: _ids(interactions, S.ITEM, "interactions", isrc),
            S.TIMESTAMP: _timestamps(interactions, isrc),
            S.RATING: _ratings(interactions, isrc),
            S.TEXT: _text(interactions, S.TEXT),
        }
    )
    extra_items: list[pd.Series] = []
    unk = _unknown_items(inter[S.ITEM], known, "interactions", isrc, allow_unknown_items)
    if unk.any():
        extra_items.append(inter[S.ITEM][unk])

    # ---- tags
    if tags is not None:
        _check_columns(tags, "tags", src["tags"])
        tg = pd.DataFrame(
            {
                S.USER: _ids(tags, S.USER, "tags", src["tags"]),
                S.ITEM: _ids(tags, S.ITEM, "tags", src["tags"]),
                S.TAG: _normalise_keyword(_ids(tags, S.TAG, "tags", src["tags"])),
            }
        )
        unk = _unknown_items(tg[S.ITEM], known, "tags", src["tags"], allow_unknown_items)
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
        unk = _unknown_items(tr[S.ITEM], known, "triples", tsrc, allow_unknown_items)
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
            kws.assign(**{S.KEYWORD: _normalise_keyword(kws[S.KEYWORD])}),
            tg.rename(columns={S.TAG: S.KEYWORD})[[S.ITEM, S.KEYWORD]],
        ]
    )

    def _links(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
        return df.drop_duplicates(cols).sort_values(cols, kind="stable")

    return S.Dataset(
        interactions=_canonical(inter, "interactions"),
        items=_canonical(it, "items"),
        item_categories=_canonical(_links(cats, [S.ITEM, S.CATEGORY]), "item_categories"),
        item_keywords=_canonical(_links(kws_all, [S.ITEM, S.KEYWORD]), "item_keywords"),
        triples=_canonical(_links(tr, [S.ITEM, S.RELATION, S.ENTITY]), "triples"),
        tags=_canonical(_links(tg, [S.USER, S.ITEM, S.TAG]), "tags"),
        name=name,
    )


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

    return S.Dataset(
        interactions=_canonical(inter, "interactions"),
        items=_canonical(items, "items"),
        item_categories=links("item_categories"),
        item_keywords=links("item_keywords"),
        triples=links("triples"),
        tags=links("tags"),
        name=new.name if old.name == "dataset" else old.name,
    )
