"""``POST /api/events``: a batch of interactions from a pipeline, checked whole before the store sees any of it.

The body is a JSON array of event objects (``Content-Type: application/json``) or one object per
line (``application/x-ndjson``). Each event has ``user`` and ``item`` (JSON strings), and optional
``timestamp`` (epoch seconds or ISO 8601; default: now, UTC) and ``rating`` (a number). Rows are
the events in body order, from 1 (blank lines of JSON lines are not events). JSON-level checks
(shape, field names, JSON types) are made here; the values then go through the file loaders' own
validation (:func:`kgrec.loaders.from_frames`: ids, timestamps, ratings), so an event is accepted
exactly when the same row in an interactions file appended with ``kgrec ingest --append`` would be. Every message names the row and the
field and says what was expected.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd

from kgrec.errors import DataValidationError
from kgrec.loaders import Source, batch_from_frames
from kgrec.loaders import schema as S

#: content types of the two body formats (parameters such as ``; charset=utf-8`` are ignored)
JSON_TYPE = "application/json"
NDJSON_TYPE = "application/x-ndjson"
#: the fields an event may have; the first two are required
FIELDS = (S.USER, S.ITEM, S.TIMESTAMP, S.RATING)
#: how rows are named in messages: ``request body, row 3, column 'timestamp': …``
SOURCE = Source("request body")
#: the data set name of an appended batch (kept by the store only when it has none)
DATASET_NAME = "api-events"


class BatchRejected(Exception):
    """The batch is refused whole: ``status`` is the HTTP status (400, 413, 415 or 422), ``str(e)`` the reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Batch:
    """A checked batch: the events as an interactions frame (body order) and as a canonical data set."""

    #: ``user, item, timestamp, rating`` as sent (ids stripped), one row per event, body order
    events: pd.DataFrame
    #: the interactions only (canonical, repeated pairs folded as the loaders fold them); no items
    dataset: S.Dataset

    def __len__(self) -> int:
        return len(self.events)


def body_format(content_type: str | None) -> str:
    """``"json"`` or ``"ndjson"`` from a ``Content-Type`` header.

    Raises:
        BatchRejected: 415 for anything else.
    """
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind == JSON_TYPE:
        return "json"
    if kind == NDJSON_TYPE:
        return "ndjson"
    raise BatchRejected(
        415,
        f"Content-Type {kind or '(none)'!r} is not accepted; expected {JSON_TYPE} (a JSON array of events) or "
        f"{NDJSON_TYPE} (one event object per line)",
    )


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (numbers must be finite)")


def _loads(text: str, where: str, expected: str) -> Any:
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise BatchRejected(
            400, f"{where}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); expected {expected}"
        ) from None
    except (ValueError, RecursionError) as e:  # NaN/Infinity, an integer of over 4,300 digits, deep nesting
        raise BatchRejected(400, f"{where}: not valid JSON ({e or 'nested too deeply'}); expected {expected}") from None


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise BatchRejected(
            400, f"request body: bytes that are not UTF-8 (at byte {e.start}); expected JSON in UTF-8"
        ) from None


def _too_many(limit: int) -> BatchRejected:
    return BatchRejected(413, f"request body: more than {limit:,} events; send at most {limit:,} events per request")


def parse_rows(body: bytes, fmt: str, max_events: int) -> list[Any]:
    """The events of a body, as parsed JSON values (objects, if the body is right), in body order.

    Raises:
        BatchRejected: 400 for a body that is not JSON / JSON lines or not an array, 413 for
            more than ``max_events`` events.
    """
    text = _text(body)
    if fmt == "json":
        rows = _loads(text, "request body", "a JSON array of event objects")
        if not isinstance(rows, list):
            raise BatchRejected(
                400,
                f"request body: a JSON {_kind(rows)}; expected a JSON array of event objects "
                f'([{{"user": "1", "item": "1240"}}, …]), or Content-Type {NDJSON_TYPE} for one object per line',
            )
        if len(rows) > max_events:
            raise _too_many(max_events)
        return rows
    out: list[Any] = []
    for line_no, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        if len(out) == max_events:
            raise _too_many(max_events)
        out.append(_loads(line, f"request body, row {len(out) + 1} (line {line_no})", "one JSON object per line"))
    return out


def _kind(v: object) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true/false"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def _show(v: object) -> str:
    r = json.dumps(v, ensure_ascii=False) if not isinstance(v, float) or math.isfinite(v) else repr(v)
    return r if len(r) <= 60 else r[:59] + "…"


def _reject(row: int, field: str | None, message: str) -> DataValidationError:
    return DataValidationError(f"{SOURCE.where(row - 1, field)}: {message}")


def events_frame(rows: list[Any], now: int | None = None) -> pd.DataFrame:
    """``rows`` (parsed JSON) as a raw interactions frame, after the JSON-level checks.

    Args:
        rows: the parsed events, in body order.
        now: the timestamp of events without one (default: the current time, whole seconds).

    Raises:
        DataValidationError: naming the row (from 1) and the field: not an object, an unknown
            field, a missing or non-string ``user`` / ``item``, a ``timestamp`` that is neither a
            number nor a string, a ``rating`` that is not a number.
    """
    stamp = int(time.time()) if now is None else int(now)
    users: list[str] = []
    items: list[str] = []
    stamps: list[Any] = []
    ratings: list[float] = []
    for row, ev in enumerate(rows, start=1):
        if not isinstance(ev, dict):
            raise _reject(
                row, None, f'a JSON {_kind(ev)}; expected an event object such as {{"user": "1", "item": "1240"}}'
            )
        extra = [k for k in ev if k not in FIELDS]
        if extra:
            raise _reject(
                row,
                None,
                f"unknown field {extra[0]!r}; expected the fields user, item, timestamp (optional), rating (optional)",
            )
        for field, out in ((S.USER, users), (S.ITEM, items)):
            v = ev.get(field)
            if v is None:
                raise _reject(row, field, f"missing; expected a {field} id as a JSON string")
            if not isinstance(v, str):
                raise _reject(
                    row,
                    field,
                    f"a {_kind(v)} ({_show(v)}); expected a {field} id as a JSON string (e.g. {json.dumps(str(v))})"
                    if isinstance(v, (int, float)) and not isinstance(v, bool)
                    else f"a {_kind(v)} ({_show(v)}); expected a {field} id as a JSON string",
                )
            out.append(v.strip())
        ts = ev.get(S.TIMESTAMP)
        if ts is None:
            ts = stamp
        elif isinstance(ts, bool) or not isinstance(ts, (int, float, str)):
            raise _reject(
                row,
                S.TIMESTAMP,
                f"a {_kind(ts)} ({_show(ts)}); expected epoch seconds (a number) or an ISO-8601 date (a string)",
            )
        stamps.append(ts)
        rating = ev.get(S.RATING)
        if rating is None:
            ratings.append(math.nan)
        elif isinstance(rating, bool) or not isinstance(rating, (int, float)):
            raise _reject(row, S.RATING, f"a {_kind(rating)} ({_show(rating)}); expected a number (or no rating)")
        else:
            try:
                ratings.append(float(rating))
            except OverflowError:
                raise _reject(row, S.RATING, f"{_show(rating)} is too large; expected a finite number") from None
    return pd.DataFrame(
        {
            S.USER: pd.Series(users, dtype=object),
            S.ITEM: pd.Series(items, dtype=object),
            S.TIMESTAMP: pd.Series(stamps, dtype=object if any(isinstance(t, (str, float)) for t in stamps) else None),
            S.RATING: pd.Series(ratings, dtype="float64"),
        }
    )


def to_dataset(events: pd.DataFrame) -> S.Dataset:
    """The events as a batch of interactions (no items), validated as an interactions file is
    (:func:`~kgrec.loaders.batch_from_frames`: the same rules, messages naming ``request body, row N``).

    Items are not checked against the store here (:meth:`RecService.append_events` does, naming the row).

    Raises:
        DataValidationError: the first bad value, naming its row and column.
    """
    return batch_from_frames(
        interactions=events, sources={"interactions": SOURCE}, allow_unknown_items=True, name=DATASET_NAME
    )


def parse_batch(body: bytes, content_type: str | None, max_events: int, now: int | None = None) -> Batch:
    """A whole request body, checked: :func:`body_format`, :func:`parse_rows`, :func:`events_frame`, :func:`to_dataset`.

    Raises:
        BatchRejected: 400 (not JSON), 413 (too many events), 415 (content type), 422 (a bad row, naming it).
    """
    rows = parse_rows(body, body_format(content_type), max_events)
    try:
        events = events_frame(rows, now)
        return Batch(events, to_dataset(events) if len(events) else _empty())
    except DataValidationError as e:
        raise BatchRejected(422, str(e)) from None


def _empty() -> S.Dataset:
    return S.Dataset(interactions=S.empty_table("interactions"), items=S.empty_table("items"), name=DATASET_NAME)
