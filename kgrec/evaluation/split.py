"""The evaluation split: chronological per-user hold-out, as numbered arrays.

Protocol (``docs/evaluation.md``): implicit feedback; every user with at least
``min_interactions`` interactions has the last ``test_fraction`` of their
time-ordered history held out as **test**; the last ``val_fraction`` of the rest
is **validation**; the remainder is **train**. Models are selected on
validation after training on train, then refit on *fit* = train + validation and
read the test set once. Users and items are numbered over the whole data set so
that items seen only in the test set (cold items) are still ranked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from kgrec.fusion.evaluate import chronological_split
from kgrec.graph.hetero import Vocabularies
from kgrec.loaders import schema as S
from kgrec.loaders.schema import Dataset


@dataclass(frozen=True)
class Interactions:
    """Numbered interactions (parallel arrays) over fixed user / item spaces."""

    users: np.ndarray  # int64
    items: np.ndarray  # int64
    times: np.ndarray  # int64 (seconds)
    n_users: int
    n_items: int

    def __len__(self) -> int:
        return len(self.users)

    def by_user(self) -> list[np.ndarray]:
        """Item numbers per user, each in time order (ties by item id order of the split)."""
        order = np.lexsort((self.times, self.users))
        u, i = self.users[order], self.items[order]
        bounds = np.searchsorted(u, np.arange(self.n_users + 1))
        return [i[bounds[k] : bounds[k + 1]] for k in range(self.n_users)]

    def csr(self):  # noqa: ANN201 - scipy-free: torch sparse CSR of ones (duplicates summed)
        import torch

        idx = torch.from_numpy(np.stack([self.users, self.items]))
        m = torch.sparse_coo_tensor(idx, torch.ones(len(self.users)), (self.n_users, self.n_items)).coalesce()
        return m


@dataclass(frozen=True)
class EvalSplit:
    """Train / validation / test of one data set, as frames and as numbered arrays."""

    dataset: Dataset
    vocabs: Vocabularies
    train_frame: pd.DataFrame
    val_frame: pd.DataFrame
    test_frame: pd.DataFrame

    def _numbered(self, df: pd.DataFrame) -> Interactions:
        return Interactions(
            self.vocabs.user.numbers(df[S.USER]).astype(np.int64),
            self.vocabs.item.numbers(df[S.ITEM]).astype(np.int64),
            df[S.TIMESTAMP].to_numpy(dtype=np.int64),
            len(self.vocabs.user),
            len(self.vocabs.item),
        )

    @property
    def fit_frame(self) -> pd.DataFrame:
        """Train + validation: what final models are refit on before reading the test set."""
        return pd.concat([self.train_frame, self.val_frame], ignore_index=True)

    @property
    def train(self) -> Interactions:
        return self._numbered(self.train_frame)

    @property
    def val(self) -> Interactions:
        return self._numbered(self.val_frame)

    @property
    def fit(self) -> Interactions:
        return self._numbered(self.fit_frame)

    @property
    def test(self) -> Interactions:
        return self._numbered(self.test_frame)

    def dataset_of(self, frame: pd.DataFrame) -> Dataset:
        """The data set restricted to ``frame``'s interactions, with nothing from the held-out part.

        Tags carry no time, so a tag is kept only when its (user, item) pair is one of ``frame``'s
        interactions: a tag on a held-out item would reveal it. An item keyword that only such a
        dropped tag supports is dropped as well (it would describe a cold item by its future users).
        Items, categories and triples are item facts and stay.
        """
        ds = self.dataset
        frame = frame.reset_index(drop=True)
        tags, keywords = ds.tags, ds.item_keywords
        if len(tags):
            pairs = pd.MultiIndex.from_frame(frame[[S.USER, S.ITEM]])
            keep = pd.MultiIndex.from_frame(tags[[S.USER, S.ITEM]]).isin(pairs)
            dropped = tags[~keep]
            tags = tags[keep].reset_index(drop=True)
            if len(dropped) and len(keywords):
                kw_key = pd.MultiIndex.from_frame(keywords[[S.ITEM, S.KEYWORD]])
                only_dropped = kw_key.isin(pd.MultiIndex.from_arrays([dropped[S.ITEM], dropped[S.TAG]])) & ~kw_key.isin(
                    pd.MultiIndex.from_arrays([tags[S.ITEM], tags[S.TAG]])
                )
                keywords = keywords[~only_dropped].reset_index(drop=True)
        return Dataset(
            frame,
            ds.items,
            ds.item_categories,
            keywords,
            ds.triples,
            tags,
            ds.name,
            users=ds.users,
            user_attributes=ds.user_attributes,
        )


def make_split(
    ds: Dataset, test_fraction: float = 0.2, val_fraction: float = 0.1, min_interactions: int = 5
) -> EvalSplit:
    """Split ``ds`` per the protocol. Deterministic (ties in time broken by item id)."""
    inter = ds.interactions.drop_duplicates([S.USER, S.ITEM], keep="last")
    train, val, test = chronological_split(inter, test_fraction, val_fraction, min_interactions)
    return EvalSplit(ds, Vocabularies.from_dataset(ds), train, val, test)


def assert_no_leak(split: EvalSplit) -> None:
    """Raise AssertionError when a test interaction reaches train/validation (or validation reaches train),
    or when any held-out interaction is older than the same user's newest training interaction."""
    key = [S.USER, S.ITEM, S.TIMESTAMP]
    tr, va, te = (
        set(map(tuple, f[key].itertuples(index=False))) for f in (split.train_frame, split.val_frame, split.test_frame)
    )
    assert not (te & tr), "test interactions found in train"
    assert not (te & va), "test interactions found in validation"
    assert not (va & tr), "validation interactions found in train"
    newest_fit = split.fit_frame.groupby(S.USER)[S.TIMESTAMP].max()
    oldest_test = split.test_frame.groupby(S.USER)[S.TIMESTAMP].min()
    both = oldest_test.index.intersection(newest_fit.index)
    assert (oldest_test[both] >= newest_fit[both]).all(), "a test interaction is older than the user's training data"
    newest_train = split.train_frame.groupby(S.USER)[S.TIMESTAMP].max()
    oldest_val = split.val_frame.groupby(S.USER)[S.TIMESTAMP].min()
    both = oldest_val.index.intersection(newest_train.index)
    assert (oldest_val[both] >= newest_train[both]).all(), (
        "a validation interaction is older than the user's training data"
    )
