"""A synthetic data set with planted communities and a known answer.

Users and items belong to communities (themes). Item titles and descriptions
use the theme's words, categories and keywords follow the theme, and users
mostly interact with items of their own community, with power-law activity and
item popularity and increasing timestamps. Tests use it for known-answer
checks; the offline demo uses it when MovieLens cannot be had.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from kgrec.errors import ConfigError
from kgrec.loaders import schema as S
from kgrec.loaders.tables import from_frames

THEMES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # theme: (title nouns, keywords)
    "space": (("galaxy", "rocket", "astronaut", "planet", "nebula", "orbit", "comet", "starship"),
              ("astronomy", "spaceflight", "aliens", "zero gravity")),
    "ocean": (("reef", "whale", "submarine", "lighthouse", "tide", "harbor", "coral", "sailor"),
              ("sea", "diving", "pirates", "islands")),
    "kitchen": (("recipe", "bakery", "chef", "feast", "spice", "noodle", "pastry", "soup"),
                ("cooking", "food", "restaurant", "baking")),
    "castle": (("dragon", "knight", "kingdom", "sword", "wizard", "throne", "quest", "crown"),
               ("fantasy", "medieval", "magic", "legends")),
    "city": (("detective", "subway", "alley", "precinct", "heist", "skyline", "witness", "casino"),
             ("crime", "noir", "police", "mystery")),
    "garden": (("orchid", "meadow", "beekeeper", "harvest", "seedling", "greenhouse", "blossom", "willow"),
               ("nature", "plants", "farming", "seasons")),
    "circuit": (("robot", "algorithm", "hacker", "android", "network", "startup", "cyborg", "server"),
                ("technology", "artificial intelligence", "computers", "future")),
    "mountain": (("summit", "glacier", "avalanche", "climber", "canyon", "trail", "eagle", "blizzard"),
                 ("adventure", "survival", "hiking", "wilderness")),
}
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
    """

    users: int = 200
    items: int = 400
    communities: int = 4
    interactions_per_user: float = 20.0
    in_community: float = 0.9
    tags_per_user: float = 1.0
    seed: int = 0

    def validate(self) -> None:
        if self.users < 1:
            raise ConfigError(f"users={self.users}: expected at least 1")
        if not 1 <= self.communities <= len(THEMES):
            raise ConfigError(f"communities={self.communities}: expected 1 to {len(THEMES)}")
        if self.items < self.communities:
            raise ConfigError(f"items={self.items}: expected at least communities={self.communities}")
        if not 0.0 <= self.in_community <= 1.0:
            raise ConfigError(f"in_community={self.in_community}: expected a probability in [0, 1]")
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
    return pd.DataFrame(
        {S.ITEM: item_ids, S.TITLE: titles, S.DESCRIPTION: descs, S.CATEGORIES: cats, S.KEYWORDS: keys}
    )


def generate_frames(cfg: SyntheticConfig) -> dict[str, pd.DataFrame]:
    """The bring-your-own tables (interactions, items, triples, tags) plus truth.

    Returns a dict with ``interactions``, ``items``, ``triples``, ``tags`` and
    ``communities`` (``kind, id, community``: the planted answer).
    """
    cfg.validate()
    rng = np.random.default_rng(cfg.seed)
    C = cfg.communities
    user_ids = np.array([f"u{u}" for u in range(cfg.users)], dtype=object)
    item_ids = np.array([f"i{i}" for i in range(cfg.items)], dtype=object)
    ucom = np.arange(cfg.users) % C
    icom = np.arange(cfg.items) % C
    # power-law popularity within each community, power-law activity per user
    pop = rng.pareto(1.5, cfg.items) + 1.0
    act = rng.pareto(2.0, cfg.users) + 1.0
    act = np.maximum(3, np.round(act / act.mean() * cfg.interactions_per_user)).astype(int)
    act = np.minimum(act, cfg.items // 2)
    by_com = [np.flatnonzero(icom == c) for c in range(C)]
    prob_in = [pop[ix] / pop[ix].sum() for ix in by_com]
    prob_all = pop / pop.sum()
    rows_u, rows_i, rows_t = [], [], []
    for u in range(cfg.users):
        n = int(act[u])
        n_in = int(rng.binomial(n, cfg.in_community))
        own = by_com[ucom[u]]
        k_in = min(n_in, len(own))
        chosen = list(rng.choice(own, size=k_in, replace=False, p=prob_in[ucom[u]]))
        rest = n - k_in
        if rest:
            others = rng.choice(cfg.items, size=rest * 2, replace=True, p=prob_all)
            chosen.extend([i for i in dict.fromkeys(others.tolist()) if i not in set(chosen)][:rest])
        start = 1_600_000_000 + int(rng.integers(0, 86_400 * 30))
        times = start + np.cumsum(rng.integers(60, 86_400, len(chosen)))
        rows_u.extend([user_ids[u]] * len(chosen))
        rows_i.extend(item_ids[chosen].tolist())
        rows_t.extend(times.tolist())
    interactions = pd.DataFrame(
        {S.USER: rows_u, S.ITEM: rows_i, S.TIMESTAMP: np.asarray(rows_t, dtype=np.int64)}
    )
    interactions[S.RATING] = rng.integers(3, 11, len(interactions)) / 2.0
    items = item_text_frame(item_ids, icom, rng)
    themes = theme_names(C)
    triples = pd.DataFrame(
        {S.ITEM: item_ids, S.RELATION: "set_in", S.ENTITY: [f"{themes[c]} world" for c in icom]}
    )
    n_tags = rng.poisson(cfg.tags_per_user, cfg.users)
    tag_rows = []
    inter_by_user = interactions.groupby(S.USER, sort=False)[S.ITEM].apply(list).to_dict()
    for u in range(cfg.users):
        hist = inter_by_user.get(user_ids[u], [])
        for _ in range(int(n_tags[u])):
            if not hist:
                break
            it = hist[int(rng.integers(0, len(hist)))]
            kw = THEMES[themes[ucom[u]]][1][int(rng.integers(0, 4))]
            tag_rows.append((user_ids[u], it, kw))
    tags = pd.DataFrame(tag_rows, columns=[S.USER, S.ITEM, S.TAG])
    truth = pd.concat(
        [
            pd.DataFrame({"kind": "user", "id": user_ids, "community": ucom}),
            pd.DataFrame({"kind": "item", "id": item_ids, "community": icom}),
        ],
        ignore_index=True,
    )
    return {"interactions": interactions, "items": items, "triples": triples, "tags": tags, "communities": truth}


def synthetic(cfg: SyntheticConfig | None = None) -> S.Dataset:
    """A canonical :class:`Dataset` from :func:`generate_frames`."""
    cfg = cfg or SyntheticConfig()
    f = generate_frames(cfg)
    return from_frames(f["interactions"], f["items"], f["triples"], f["tags"], name=f"synthetic-{cfg.seed}")
