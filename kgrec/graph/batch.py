"""What both stores do to a batch before appending it, and to their data when users are forgotten.

Pure functions over :class:`~kgrec.loaders.schema.Dataset`, so the embedded store and Neo4j give the
same answers: :func:`prepare_batch` (a batch in canonical form, checked), :func:`add_unknown_items`
(items a batch names that neither it nor the store holds: an error naming the row, or created), and
:func:`without_users` (the data after :meth:`~kgrec.graph.store.GraphStore.forget_users`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from kgrec.errors import DataValidationError, UnknownIdError
from kgrec.loaders import schema as S
from kgrec.loaders.schema import Dataset
from kgrec.loaders.tables import Source, canonical, check_dataset, merge

#: the tables whose rows name an item (checked against the store's items before an append)
ITEM_TABLES = ("interactions", "tags", "triples")


def empty_dataset(name: str = "dataset") -> Dataset:
    """A data set with every table empty."""
    return Dataset(**{n: S.empty_table(n) for n in S.TABLES}, name=name)


def prepare_batch(data: Dataset) -> Dataset:
    """``data`` as canonical tables (columns and dtypes of ``schema.TABLES``, sorted, one row per key), checked
    against the format's limits (:func:`~kgrec.loaders.tables.check_dataset`).

    Raises:
        DataValidationError: a missing column, a value of the wrong type, an empty or over-long id, a timestamp out
            of range, or a batch without any row; naming ``<batch table 'name'>`` and the row.
    """
    tables = {}
    for name, schema in S.TABLES.items():
        df = data.tables()[name]
        missing = [c for c in schema if c not in df.columns]
        if missing:
            raise DataValidationError(
                f"<batch table {name!r}>: missing column {missing[0]!r}; expected the columns {list(schema)}"
            )
        try:
            tables[name] = canonical(df, name)
        except (ValueError, TypeError) as e:
            raise DataValidationError(f"<batch table {name!r}>: {e}; expected the dtypes {schema}") from None
    if all(df.empty for df in tables.values()):
        raise DataValidationError("the batch has no rows to append; expected at least one row in one of its tables")
    ds = Dataset(**tables, name=data.name)
    check_dataset(ds)
    return merge(empty_dataset(), ds)


def referenced_items(batch: Dataset) -> list[str]:
    """The items the batch's interactions, tags and triples name that its own items table does not list (sorted)."""
    named = set().union(*(set(batch.tables()[t][S.ITEM].tolist()) for t in ITEM_TABLES))
    return sorted(named - set(batch.items[S.ITEM].tolist()))


def add_unknown_items(batch: Dataset, held: Iterable[str], *, allow: bool, location: str) -> Dataset:
    """``batch`` with the items it names that neither it nor the store (``held``) has.

    Without ``allow`` any such item is an error naming the first row that names it (its 1-based row in the
    batch's canonical table), the field ``item`` and the id; with ``allow`` each is created with its id as
    title and no description.
    """
    unknown = sorted(set(referenced_items(batch)) - set(held))
    if not unknown:
        return batch
    if not allow:
        for table in ITEM_TABLES:
            ids = batch.tables()[table][S.ITEM]
            mask = ids.isin(unknown).to_numpy()
            if mask.any():
                row = int(np.flatnonzero(mask)[0])
                where = Source(f"<batch table {table!r}>").where(row, S.ITEM)
                raise DataValidationError(
                    f"{where}: item {ids.iloc[row]!r} is neither in the store at {location} nor in the batch's items "
                    f"table; expected an item the store holds or the batch adds ({len(unknown)} unknown item(s); pass "
                    "allow_unknown_items=True, or `kgrec ingest --append --allow-unknown-items`, to create them with "
                    "their id as title). Nothing was appended"
                )
    new = pd.DataFrame({S.ITEM: unknown, S.TITLE: unknown, S.DESCRIPTION: [""] * len(unknown)})
    items = pd.concat([batch.items, new.astype("string")], ignore_index=True).sort_values(S.ITEM, kind="stable")
    return dataclasses.replace(batch, items=canonical(items, "items"))


def without_users(ds: Dataset, users: Iterable[str]) -> Dataset:
    """``ds`` without ``users``: their interactions, tags, users rows and attributes.

    The item keywords their tags gave (an ``(item, tag)`` link no remaining user's tag names) go too: after a
    merge they cannot be told from an item's own keyword, so a keyword an item had itself and one of them also
    tagged it with goes as well (ingesting the items file again restores it). Items stay.
    """
    gone = set(users)

    def keep(df: pd.DataFrame) -> pd.DataFrame:
        return df[~df[S.USER].isin(gone).to_numpy()].reset_index(drop=True)

    tags = ds.tags
    mine = tags[tags[S.USER].isin(gone).to_numpy()]
    others = tags[~tags[S.USER].isin(gone).to_numpy()]
    drop = set(zip(mine[S.ITEM], mine[S.TAG], strict=True)) - set(zip(others[S.ITEM], others[S.TAG], strict=True))
    ik = ds.item_keywords
    if drop:
        kept = [(i, k) not in drop for i, k in zip(ik[S.ITEM].tolist(), ik[S.KEYWORD].tolist(), strict=True)]
        ik = ik[np.array(kept, dtype=bool)].reset_index(drop=True)
    return dataclasses.replace(
        ds,
        interactions=keep(ds.interactions),
        tags=keep(tags),
        users=keep(ds.users),
        user_attributes=keep(ds.user_attributes),
        item_keywords=ik,
    )


def count_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """``after - before`` for every count (a count missing before is 0)."""
    return {k: int(v) - int(before.get(k, 0)) for k, v in after.items()}


def unknown_users(missing: Sequence[str], location: str) -> UnknownIdError:
    """The error of :meth:`~kgrec.graph.store.GraphStore.forget_users` naming every user the store lacks."""
    more = f"; also unknown: {', '.join(repr(u) for u in missing[1:])}" if len(missing) > 1 else ""
    return UnknownIdError("user", missing[0], f"not in the store at {location}{more}; nothing was removed")
