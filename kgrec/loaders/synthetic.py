"""A synthetic data set with planted communities and a known answer.

Users and items belong to communities (themes). Item titles and descriptions
use the theme's words, categories and keywords follow the theme, and users
mostly interact with items of their own community, with power-law activity and
item popularity and increasing timestamps. Tests use it for known-answer
checks; the offline demo uses it when MovieLens cannot be had.

With ``user_attributes=True`` a users table is generated too, with planted
attribute effects: ``occupation`` is the user's community's occupation with
probability ``attribute_signal`` (else any occupation), ``age`` is drawn around
an age that depends on the community, ``gender`` is noise (independent of the
community), and ``profile`` is a free-text line naming one of the community's
keywords with probability ``attribute_signal``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kgrec.errors import ConfigError
from kgrec.loaders import schema as S
from kgrec.loaders.tables import from_frames

THEMES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # theme: (title nouns, keywords)
    "space": (
        ("galaxy", "rocket", "astronaut", "planet", "nebula", "orbit", "comet", "starship"),
        ("astronomy", "spaceflight", "aliens", "zero gravity"),
    ),
    "ocean": (
        ("reef", "whale", "submarine", "lighthouse", "tide", "harbor", "coral", "sailor"),
        ("sea", "diving", "pirates", "islands"),
    ),
    "kitchen": (
        ("recipe", "bakery", "chef", "feast", "spice", "noodle", "pastry", "soup"),
        ("cooking", "food", "restaurant", "baking"),
    ),
    "castle": (
        ("dragon", "knight", "kingdom", "sword", "wizard", "throne", "quest", "crown"),
        ("fantasy", "medieval", "magic", "legends"),
    ),
    "city": (
        ("detective", "subway", "alley", "precinct", "heist", "skyline", "witness", "casino"),
        ("crime", "noir", "police", "mystery"),
    ),
    "garden": (
        ("orchid", "meadow", "beekeeper", "harvest", "seedling", "greenhouse", "blossom", "willow"),
        ("nature", "plants", "farming", "seasons"),
    ),
    "circuit": (
        ("robot", "algorithm", "hacker", "android", "network", "startup", "cyborg", "server"),
        ("technology", "artificial intelligence", "computers", "future"),
    ),
    "mountain": (
        ("summit", "glacier", "avalanche", "climber", "canyon", "trail", "eagle", "blizzard"),
        ("adventure", "survival", "hiking", "wilderness"),
    ),
}
#: the planted occupation of each community (same order as THEMES)
OCCUPATIONS = ("astronomer", "sailor", "cook", "historian", "lawyer", "gardener", "programmer", "guide")
ADJECTIVES = ("silent", "golden", "hidden", "last", "brave", "secret", "wild", "lost", "bright", "ancient")


@dataclass(frozen=True)
class SyntheticConfig:
    """Sizes and shape of a synthetic data set.

    Attributes:
        users: number of users (>= 1).
        items: number of items (>= communities).
        communities: planted communities, at most ``len(THEMES)``.
        interactions_per_user: mean interactions per user (power-law spread).
        in_community: probability that an interaction stays in the user's community.
        tags_per_user: mean tags applied per user.
        seed: random seed; equal configs give equal data.
        user_attributes: also generate a users table (occupation, age, gender, profile).
        attribute_signal: probability that a user's occupation and profile follow their community.
    """

    users: int = 200
    items: int = 400
    communities: int = 4
    interactions_per_user: float = 20.0
    in_community: float = 0.9
    tags_per_user: float = 1.0
    seed: int = 0
    user_attributes: bool = False
    attribute_signal: float = 0.8

    def validate(self) -> None:
        if self.users < 1:
            raise ConfigError(f"users={self.users}: expected at least 1")
        if not 1 <= self.communities <= len(THEMES):
            raise ConfigError(f"communities={self.communities}: expected 1 to {len(THEMES)}")
        if self.items < self.communities:
            raise ConfigError(f"items={self.items}: expected at least communities={self.communities}")
        if not 0.0 <= self.in_community <= 1.0:
            raise ConfigError(f"in_community={self.in_community}: expected a probability in [0, 1]")
        if not 0.0 <= self.attribute_signal <= 1.0:
            raise ConfigError(f"attribute_signal={self.attribute_signal}: expected a probability in [0, 1]")
        if self.interactions_per_user < 1:
            raise ConfigError(f"interactions_per_user={self.interactions_per_user}: expected at least 1")


def theme_names(n: int) -> list[str]:
    return list(THEMES)[:n]


def item_text_frame(item_ids: np.ndarray, community: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """Titles, descriptions, categories and keywords that follow each item's theme."""
    themes = list(THEMES)
    nouns = [THEMES[t][0] for t in themes]
    kws = [THEMES[t][1] for t in themes]
    adj = rng.integers(0, len(ADJECTIVES), len(item_ids))
    n1 = rng.integers(0, 8, len(item_ids))
    n2 = rng.integers(0, 8, len(item_ids))
    k1 = rng.integers(0, 4, len(item_ids))
    k2 = rng.integers(0, 4, len(item_ids))
    titles, descs, cats, keys = [], [], [], []
    for i, c in enumerate(community):
        a, b = nouns[c][n1[i]], nouns[c][n2[i]]
        titles.append(f"The {ADJECTIVES[adj[i]].title()} {a.title()} #{item_ids[i]}")
        descs.append(f"A story about a {a} and a {b}, full of {kws[c][k1[i]]}.")
        cats.append(f"{themes[c].title()}|Genre {i % 3}")
        keys.append(f"{kws[c][k1[i]]}|{kws[c][k2[i]]}")
    return pd.DataFrame({S.ITEM: item_ids, S.TITLE: titles, S.DESCRIPTION: descs, S.CATEGORIES: cats, S.KEYWORDS: keys})


class _World:
    """Item popularity, communities and user activity of one configuration (vectorised sampling)."""

    def __init__(self, cfg: SyntheticConfig) -> None:
        cfg.validate()
        self.cfg = cfg
        rng = np.random.default_rng(cfg.seed)
        C = cfg.communities
        self.icom = np.arange(cfg.items) % C
        pop = rng.pareto(1.5, cfg.items) + 1.0  # power-law item popularity
        self.by_com = [np.flatnonzero(self.icom == c) for c in range(C)]
        self.cdf_com = [np.cumsum(pop[ix]) / pop[ix].sum() for ix in self.by_com]
        self.cdf_all = np.cumsum(pop) / pop.sum()
        self.item_rng_state = rng.integers(0, 2**32)
        self.user_seed = int(rng.integers(0, 2**32))

    def interactions(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(user number, item number, timestamp) rows of users ``start..stop-1``, deduplicated per pair."""
        cfg = self.cfg
        rng = np.random.default_rng([self.user_seed, start])
        users = np.arange(start, stop)
        activity = rng.pareto(2.0, len(users)) + 1.0  # mean of pareto(2)+1 is 2
        act: np.ndarray[tuple[int], np.dtype[np.int64]] = np.minimum(
            np.maximum(3, np.round(activity / 2.0 * cfg.interactions_per_user)).astype(np.int64), max(3, cfg.items // 2)
        )
        u = np.repeat(users, act)
        n = len(u)
        r = rng.random(n)
        items = np.empty(n, dtype=np.int64)
        inside = rng.random(n) < cfg.in_community
        ucom = u % cfg.communities
        for c in range(cfg.communities):
            m = inside & (ucom == c)
            idx = np.minimum(np.searchsorted(self.cdf_com[c], r[m]), len(self.by_com[c]) - 1)
            items[m] = self.by_com[c][idx]
        items[~inside] = np.minimum(np.searchsorted(self.cdf_all, r[~inside]), cfg.items - 1)
        gaps = rng.integers(60, 86_400, n)
        first = np.r_[0, np.cumsum(act)[:-1]]
        cs = np.cumsum(gaps)
        base = np.repeat(cs[first] - gaps[first], act)
        t = 1_600_000_000 + np.repeat(rng.integers(0, 86_400 * 30, len(users)), act) + (cs - base)
        keys = u * cfg.items + items
        _, keep = np.unique(keys, return_index=True)
        keep.sort()
        return u[keep], items[keep], t[keep]

    def tags(
        self, u: np.ndarray, items: np.ndarray, start: int, stop: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(user, item, keyword) tag rows: each user tags some of their items with their theme's keywords."""
        rng = np.random.default_rng([self.user_seed, start, 1])
        users = np.arange(start, stop)
        counts = np.bincount(u - start, minlength=len(users))
        first = np.r_[0, np.cumsum(counts)[:-1]]
        n_tags = np.where(counts > 0, rng.poisson(self.cfg.tags_per_user, len(users)), 0)
        tu = np.repeat(users, n_tags)
        row = np.repeat(first, n_tags) + (rng.random(len(tu)) * np.repeat(np.maximum(counts, 1), n_tags)).astype(
            np.int64
        )
        themes = list(THEMES)
        kw = np.array([THEMES[themes[c]][1][k] for c in range(self.cfg.communities) for k in range(4)], dtype=object)
        tk = kw[(tu % self.cfg.communities) * 4 + rng.integers(0, 4, len(tu))]
        return tu, items[row], tk


def user_frame(cfg: SyntheticConfig, user_seed: int, start: int, stop: int) -> pd.DataFrame:
    """The users table of users ``start..stop-1``: ``user, occupation, age, gender, profile`` with the
    planted effects described in the module docstring."""
    rng = np.random.default_rng([user_seed, start, 3])
    users = np.arange(start, stop)
    com = users % cfg.communities
    n = len(users)
    follows = rng.random(n) < cfg.attribute_signal
    occ = np.where(follows, com, rng.integers(0, cfg.communities, n))
    occupations = np.array(OCCUPATIONS, dtype=object)[occ]
    age = np.clip(np.round(18 + 45 * (com + 0.5) / cfg.communities + rng.normal(0, 4, n)), 16, 90).astype(np.int64)
    gender = np.array(["f", "m"], dtype=object)[rng.integers(0, 2, n)]
    themes = list(THEMES)
    kw_com = np.where(rng.random(n) < cfg.attribute_signal, com, rng.integers(0, cfg.communities, n))
    kw = [THEMES[themes[c]][1][k] for c, k in zip(kw_com.tolist(), rng.integers(0, 4, n).tolist(), strict=True)]
    profile = [f"I enjoy {k}" for k in kw]
    return pd.DataFrame(
        {S.USER: _ids("u", users), "occupation": occupations, "age": age, "gender": gender, S.PROFILE: profile}
    )


def _ids(prefix: str, numbers: np.ndarray) -> np.ndarray:
    return np.char.add(prefix, numbers.astype(str)).astype(object)


def generate_frames(cfg: SyntheticConfig) -> dict[str, pd.DataFrame]:
    """The bring-your-own tables (interactions, items, triples, tags) plus truth, in memory.

    Returns a dict with ``interactions``, ``items``, ``triples``, ``tags`` and
    ``communities`` (``kind, id, community``: the planted answer). For large
    sizes use :func:`write_synthetic`, which streams to files.
    """
    w = _World(cfg)
    u, i, t = w.interactions(0, cfg.users)
    rng = np.random.default_rng(w.item_rng_state)
    interactions = pd.DataFrame({S.USER: _ids("u", u), S.ITEM: _ids("i", i), S.TIMESTAMP: t.astype(np.int64)})
    interactions[S.RATING] = rng.integers(3, 11, len(interactions)) / 2.0
    item_ids = _ids("i", np.arange(cfg.items))
    items = item_text_frame(item_ids, w.icom, rng)
    themes = theme_names(cfg.communities)
    triples = pd.DataFrame({S.ITEM: item_ids, S.RELATION: "set_in", S.ENTITY: [f"{themes[c]} world" for c in w.icom]})
    tu, ti, tk = w.tags(u, i, 0, cfg.users)
    tags = pd.DataFrame({S.USER: _ids("u", tu), S.ITEM: _ids("i", ti), S.TAG: tk})
    user_ids = _ids("u", np.arange(cfg.users))
    truth = pd.concat(
        [
            pd.DataFrame({"kind": "user", "id": user_ids, "community": np.arange(cfg.users) % cfg.communities}),
            pd.DataFrame({"kind": "item", "id": item_ids, "community": w.icom}),
        ],
        ignore_index=True,
    )
    out = {"interactions": interactions, "items": items, "triples": triples, "tags": tags, "communities": truth}
    if cfg.user_attributes:
        out["users"] = user_frame(cfg, w.user_seed, 0, cfg.users)
    return out


def write_synthetic(
    cfg: SyntheticConfig, out: str | Path, *, chunk_users: int = 100_000, progress: bool = True
) -> dict[str, int]:
    """Write the bring-your-own files (Parquet) for ``cfg`` into ``out``, streaming users in chunks.

    Memory stays bounded by one chunk of users; the files are moved into place
    only when complete. Returns row counts.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tqdm.auto import tqdm

    from kgrec._atomic import atomic_dir

    w = _World(cfg)
    rng = np.random.default_rng(w.item_rng_state)
    out = Path(out)
    counts = {"interactions": 0, "tags": 0}
    with atomic_dir(out) as tmp:
        schema_i = pa.schema(
            [(S.USER, pa.string()), (S.ITEM, pa.string()), (S.TIMESTAMP, pa.int64()), (S.RATING, pa.float64())]
        )
        schema_t = pa.schema([(S.USER, pa.string()), (S.ITEM, pa.string()), (S.TAG, pa.string())])
        with (
            pq.ParquetWriter(tmp / "interactions.parquet", schema_i, compression="zstd") as wi,
            pq.ParquetWriter(tmp / "tags.parquet", schema_t, compression="zstd") as wt,
        ):
            for start in tqdm(
                range(0, cfg.users, chunk_users), desc="generating users", unit="chunk", disable=not progress
            ):
                stop = min(cfg.users, start + chunk_users)
                u, i, t = w.interactions(start, stop)
                ratings = np.random.default_rng([w.user_seed, start, 2]).integers(3, 11, len(u)) / 2.0
                wi.write_table(
                    pa.table(
                        {S.USER: _arrow_ids("u", u), S.ITEM: _arrow_ids("i", i), S.TIMESTAMP: t, S.RATING: ratings},
                        schema=schema_i,
                    )
                )
                tu, ti, tk = w.tags(u, i, start, stop)
                wt.write_table(
                    pa.table(
                        {
                            S.USER: _arrow_ids("u", tu),
                            S.ITEM: _arrow_ids("i", ti),
                            S.TAG: pa.array(tk.tolist(), pa.string()),
                        },
                        schema=schema_t,
                    )
                )
                counts["interactions"] += len(u)
                counts["tags"] += len(tu)
                if cfg.user_attributes:
                    uf = user_frame(cfg, w.user_seed, start, stop)
                    if start == 0:
                        wu = pq.ParquetWriter(
                            tmp / "users.parquet", pa.Schema.from_pandas(uf, preserve_index=False), compression="zstd"
                        )
                    wu.write_table(pa.Table.from_pandas(uf, preserve_index=False))
            if cfg.user_attributes:
                wu.close()
        item_ids = _ids("i", np.arange(cfg.items))
        item_text_frame(item_ids, w.icom, rng).to_parquet(tmp / "items.parquet", index=False)
        themes = theme_names(cfg.communities)
        pd.DataFrame(
            {S.ITEM: item_ids, S.RELATION: "set_in", S.ENTITY: [f"{themes[c]} world" for c in w.icom]}
        ).to_parquet(tmp / "triples.parquet", index=False)
    counts.update(users=cfg.users, items=cfg.items)
    return counts


def _arrow_ids(prefix: str, numbers: np.ndarray):  # noqa: ANN202 - a pyarrow array; pyarrow is imported lazily
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.binary_join_element_wise(pa.scalar(prefix), pc.cast(pa.array(numbers), pa.string()), "")


def synthetic(cfg: SyntheticConfig | None = None) -> S.Dataset:
    """A canonical :class:`Dataset` from :func:`generate_frames`."""
    cfg = cfg or SyntheticConfig()
    f = generate_frames(cfg)
    return from_frames(
        f["interactions"], f["items"], f["triples"], f["tags"], users=f.get("users"), name=f"synthetic-{cfg.seed}"
    )
