"""Deletion test of explanation faithfulness.

For a recommendation (u, i), remove from the user's history the interactions that form a path
(its anchor item; for a tag path, the user's tags of that keyword), run the trained model again
on the changed graph and behaviour text (same weights, no retraining), and record how far ``i``
falls in the user's ranking. A faithful explanation's top path should cause a larger drop than a
randomly chosen path of the same recommendation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from kgrec.encoders.behaviour import item_texts
from kgrec.encoders.text import TextEncoder
from kgrec.fusion.explain import anchor_weights, candidate_paths, score_paths
from kgrec.fusion.inputs import build_inputs
from kgrec.fusion.ranking import rank_in
from kgrec.fusion.recommender import Recommender
from kgrec.graph.paths import PathRow
from kgrec.loaders import schema as S
from kgrec.loaders.schema import Dataset


@dataclass
class Deletion:
    user: str
    item: str
    rank: int
    top_path: PathRow
    top_rank_after: int
    random_path: PathRow
    random_rank_after: int

    @property
    def top_drop(self) -> int:
        return self.top_rank_after - self.rank

    @property
    def random_drop(self) -> int:
        return self.random_rank_after - self.rank


class Rescorer:
    """Runs a trained model on a changed copy of its data."""

    def __init__(self, rec: Recommender, ds: Dataset) -> None:
        self.rec = rec
        self.ds = ds
        enc = TextEncoder(rec.config.text) if rec.config.model.use_text or rec.config.model.item_text_in_gnn else None
        self.encoder = enc
        if enc is not None:
            self.item_text = torch.from_numpy(enc.encode(item_texts(ds, rec.vocabs), progress=False))
        else:
            self.item_text = torch.zeros(len(rec.vocabs.item), 1)
        self.model = rec.state.build_model(self.item_text.shape[1])

    def rank_without(self, user: str, item: str, items: set[str], tags: set[str]) -> int:
        """Rank of ``item`` for ``user`` after removing the user's interactions with ``items`` and tags ``tags``."""
        ds = self.ds
        it = ds.interactions
        drop = (it[S.USER] == user) & it[S.ITEM].isin(list(items))
        tg = ds.tags
        drop_t = (tg[S.USER] == user) & tg[S.TAG].isin(list(tags))
        changed = Dataset(
            it[~drop],
            ds.items,
            ds.item_categories,
            ds.item_keywords,
            ds.triples,
            tg[~drop_t],
            ds.name,
            users=ds.users,
            user_attributes=ds.user_attributes,
        )
        inp = build_inputs(
            changed,
            self.rec.vocabs,
            self.rec.config,
            self.encoder,
            self.item_text.shape[1],
            progress=False,
            item_text=self.item_text,
        )
        with torch.no_grad():
            towers = self.model(
                inp.adj, inp.id_mask, self.item_text, inp.user_text, inp.recent_idx, inp.recent_mask, inp.recent_span
            )
        st = self.rec.state
        u, i = st.user_number(user), st.item_number(item)
        s = (towers.items @ towers.users[u]).numpy()
        if st.cooc_alpha:  # the co-occurrence part of the changed history
            left = changed.interactions[changed.interactions[S.USER] == user][S.ITEM]
            nums = st.vocabs.item.numbers(left.astype(str).to_numpy())
            s = s + st.arrays["item_cooc"] @ st.cooc_user(nums)[0]
        return rank_in(s, i, st.history(u)[0])  # the original history: ranks stay comparable


def removal_of(path: PathRow) -> tuple[set[str], set[str]]:
    kind, anchor, via, _, _ = path
    return (set(), {via}) if kind == "tag" else ({anchor}, set())


def deletion_test(rec: Recommender, ds: Dataset, pairs: list[tuple[str, str]], seed: int = 0) -> pd.DataFrame:
    """Run the deletion test on ``pairs`` (recommendations); returns one row per tested pair.

    Pairs whose paths all share one removal (nothing random to compare with) are skipped.
    """
    rng = np.random.default_rng(seed)
    rescorer = Rescorer(rec, ds)
    rows = []
    st = rec.state
    find = rec.path_finder()
    for user, item in pairs:
        u, i = st.user_number(user), st.item_number(item)
        hist_items, hist_w = st.history(u)
        weights = anchor_weights(st, u, hist_w)
        paths = candidate_paths(st, find, user, item, i, hist_items, weights)
        if len(paths) < 2:
            continue
        scores = score_paths(st, u, i, hist_items, weights, paths, st.score(u, i))
        top = paths[int(np.lexsort((np.arange(len(paths)), -scores))[0])]
        others = [p for p in paths if removal_of(p) != removal_of(top)]
        if not others:
            continue
        rnd = others[int(rng.integers(len(others)))]
        base = st.rank(u, i, hist_items)
        top_after = rescorer.rank_without(user, item, *removal_of(top))
        rnd_after = rescorer.rank_without(user, item, *removal_of(rnd))
        d = Deletion(user, item, base, top, top_after, rnd, rnd_after)
        rows.append(
            {
                "user": user,
                "item": item,
                "rank": base,
                "top_kind": top[0],
                "random_kind": rnd[0],
                "top_rank_after": top_after,
                "random_rank_after": rnd_after,
                "top_drop": d.top_drop,
                "random_drop": d.random_drop,
            }
        )
    return pd.DataFrame(rows)


def summary(df: pd.DataFrame) -> dict[str, float]:
    """Mean and median rank drops, and how often the top path's drop is the larger one."""
    return {
        "pairs": int(len(df)),
        "top_mean_drop": float(df["top_drop"].mean()),
        "random_mean_drop": float(df["random_drop"].mean()),
        "top_median_drop": float(df["top_drop"].median()),
        "random_median_drop": float(df["random_drop"].median()),
        "top_larger_share": float((df["top_drop"] > df["random_drop"]).mean()),
        "tie_share": float((df["top_drop"] == df["random_drop"]).mean()),
    }
