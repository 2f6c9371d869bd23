"""A smaller data set from a larger one: a seeded sample of users, everything they touch.

:func:`movielens_sample` is the notebooks' data: MovieLens latest-small, or a
sample of its users, from ``$KGREC_DATA`` unless told otherwise.

Meant for notebooks, demos and quick experiments: MovieLens latest-small has 610
users and 9,742 items; ``sample_users(ds, 150)`` keeps 150 of the users with their
whole histories and tags, the items those users interacted with or tagged, and
every category, keyword and knowledge-graph fact of those items. The result is a
canonical :class:`~kgrec.loaders.schema.Dataset` like any loader's.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from kgrec.errors import ConfigError
from kgrec.loaders import schema as S
from kgrec.loaders.schema import Dataset

log = logging.getLogger(__name__)


def sample_users(ds: Dataset, users: int | None, *, seed: int = 0, min_interactions: int = 1) -> Dataset:
    """A seeded random sample of ``users`` users with everything they touch.

    Args:
        ds: the data set to sample from.
        users: how many users to keep (``None``: all, the data set is returned unchanged).
            Users are drawn among those with at least ``min_interactions`` interactions.
        seed: random seed; the same seed gives the same sample.
        min_interactions: only users with at least this many interactions are drawn.

    Returns:
        A :class:`Dataset` named ``"<name>-<users>u"``: the drawn users' interactions
        and tags; the items they interacted with or tagged (in canonical item order);
        those items' categories, keywords (including keywords from other users' tags,
        which describe the item) and triples.

    Raises:
        ConfigError: ``users`` below 1, ``min_interactions`` below 1, or more users
            asked for than the data set has.
    """
    if users is None:
        return ds
    if min_interactions < 1:
        raise ConfigError(f"min_interactions={min_interactions}: expected at least 1")
    counts = ds.interactions.groupby(S.USER, sort=True).size()
    eligible = counts.index[counts >= min_interactions].to_numpy(dtype=object)
    if not 1 <= users <= len(eligible):
        raise ConfigError(
            f"users={users}: expected 1 to {len(eligible)} (the users of {ds.name!r} with at least "
            f"{min_interactions} interaction(s)); pass users=None for all of them"
        )
    rng = np.random.default_rng(seed)
    keep = set(rng.choice(eligible, size=users, replace=False).tolist())
    inter = ds.interactions[ds.interactions[S.USER].isin(keep)]
    tags = ds.tags[ds.tags[S.USER].isin(keep)]
    item_ids = set(inter[S.ITEM].tolist()) | set(tags[S.ITEM].tolist())

    def of_items(df: pd.DataFrame) -> pd.DataFrame:
        return df[df[S.ITEM].isin(item_ids)].reset_index(drop=True)

    out = Dataset(
        interactions=inter.reset_index(drop=True),
        items=of_items(ds.items),
        item_categories=of_items(ds.item_categories),
        item_keywords=of_items(ds.item_keywords),
        triples=of_items(ds.triples),
        tags=tags.reset_index(drop=True),
        name=f"{ds.name}-{users}u",
        users=ds.users[ds.users[S.USER].isin(keep)].reset_index(drop=True),
        user_attributes=ds.user_attributes[ds.user_attributes[S.USER].isin(keep)].reset_index(drop=True),
    )
    log.info("sampled %s from %s (seed %d)", out, ds.name, seed)
    return out


#: ``../shared/data`` beside this kgrec checkout (the tests' default data folder)
SHARED_DATA: Path = Path(__file__).resolve().parents[3] / "shared" / "data"


def default_data_root() -> Path:
    """Where MovieLens is looked for when no root is given: the one rule (loaders, notebooks, ``kgrec demo``).

    ``$KGREC_DATA`` when set. Otherwise the first of :data:`SHARED_DATA`
    (``../shared/data`` beside this kgrec checkout, the tests' default) and
    ``~/.cache/kgrec/data`` that already holds ``ml-latest-small``; when neither
    does, ``~/.cache/kgrec/data``, where :func:`~kgrec.loaders.movielens` downloads it.
    """
    env = os.environ.get("KGREC_DATA")
    if env:
        return Path(env).expanduser()
    cache = Path.home() / ".cache" / "kgrec" / "data"
    for root in (SHARED_DATA, cache):
        if (root / "ml-latest-small" / "ratings.csv").is_file():
            return root
    return cache


def movielens_sample(
    root: str | Path | None = None, users: int | None = 100, *, seed: int = 0, download_missing: bool = True
) -> Dataset:
    """MovieLens latest-small, or a seeded sample of its users (see :func:`sample_users`).

    Args:
        root: the folder holding ``ml-latest-small`` (default :func:`default_data_root`).
            Missing files are downloaded from GroupLens unless ``download_missing`` is False.
        users: users to keep (1 to 610); ``None`` for the full data set.
        seed: random seed of the sample.

    Raises:
        DatasetNotFoundError: the files are missing and cannot be downloaded.
        ConfigError: ``users`` outside 1 to 610.
    """
    from kgrec.loaders.movielens import movielens

    ds = movielens(root if root is not None else default_data_root(), download_missing=download_missing)
    return sample_users(ds, users, seed=seed)
