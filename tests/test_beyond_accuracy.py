"""Beyond-accuracy measures (kgrec.evaluation.beyond) on tiny hand-made lists with known answers, and their
place in every row of the quality benchmark."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from kgrec.evaluation.benchmark import default_models, run_benchmark
from kgrec.evaluation.beyond import (
    beyond_accuracy,
    beyond_table,
    category_matrix,
    coverage,
    exposure_gini,
    ild_categories,
    ild_vectors,
    item_users,
    long_tail_share,
    novelty,
    short_head,
)
from kgrec.evaluation.split import Interactions, make_split
from kgrec.graph.hetero import Vocabularies


def inter(users: list[int], items: list[int], n_users: int, n_items: int) -> Interactions:
    return Interactions(np.array(users, dtype=np.int64), np.array(items, dtype=np.int64),
                        np.arange(len(users), dtype=np.int64), n_users, n_items)


def test_ild_by_categories() -> None:
    # item 0: {a}; 1: {a, b}; 2: {c}; 3: no category
    C = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 0, 0]], dtype=np.float32)
    # pairs of [0, 1, 2]: 1 − 1/2, 1 − 0, 1 − 0 → 2.5 / 3; [0, 1] (one empty place): 0.5
    assert ild_categories(np.array([[0, 1, 2], [0, 1, -1]]), C, k=3) == pytest.approx((2.5 / 3 + 0.5) / 2)
    # identical sets are at distance 0, two empty sets too; a one-item list has no pair and is left out
    assert ild_categories(np.array([[0, 0, 3], [2, -1, -1]]), np.vstack([C[:3], [[0, 0, 0]]]), k=3) == pytest.approx(
        (0 + 1 + 1) / 3)
    assert ild_categories(np.array([[3, 3]]), C, k=2) == 0.0
    assert math.isnan(ild_categories(np.array([[1, -1]]), C, k=2))


def test_ild_by_vectors() -> None:
    V = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [-3.0, 0.0]])
    assert ild_vectors(np.array([[0, 1]]), V, k=2) == pytest.approx(1.0)
    assert ild_vectors(np.array([[0, 3]]), V, k=2) == pytest.approx(2.0)  # opposite directions
    assert ild_vectors(np.array([[0, 2], [0, 1]]), V, k=2) == pytest.approx(((1 - 1 / math.sqrt(2)) + 1) / 2)
    # only the first k places count
    assert ild_vectors(np.array([[0, 1, 3]]), V, k=2) == pytest.approx(1.0)


def test_novelty_uses_distinct_users_of_fit() -> None:
    # 4 users; item 0 used by 3 users (user 0 twice), item 1 by 1, item 2 by none
    fit = inter([0, 0, 1, 2, 3], [0, 0, 0, 0, 1], 4, 3)
    assert item_users(fit).tolist() == [3, 1, 0]
    want = np.mean([-math.log2(4 / 5), -math.log2(2 / 5), -math.log2(1 / 5), -math.log2(4 / 5)])
    assert novelty(np.array([[0, 1], [2, 0]]), fit, k=2) == pytest.approx(want)
    assert novelty(np.array([[1, -1]]), fit, k=2) == pytest.approx(-math.log2(2 / 5))


def test_long_tail_share_and_short_head() -> None:
    # 10 interactions: item 0 has 8 (80% exactly: the head is item 0 alone), items 1 and 2 one each, item 3 none
    fit = inter([0] * 8 + [1, 2], [0] * 8 + [1, 2], 3, 4)
    assert short_head(fit).tolist() == [True, False, False, False]
    assert long_tail_share(np.array([[0, 1], [2, 0]]), fit, k=2) == 0.5
    assert long_tail_share(np.array([[3, 2]]), fit, k=2) == 1.0
    # 7 of 10 for item 0: it does not reach 80% alone, so the next item (by count, then number) joins it
    fit2 = inter([0] * 7 + [1, 1, 2], [0] * 7 + [2, 1, 1], 3, 4)
    assert short_head(fit2).tolist() == [True, True, False, False]
    fit3 = inter([0] * 7 + [1, 2, 2], [0] * 7 + [1, 2, 3], 3, 4)  # 1, 2, 3 tie: the lowest number joins
    assert short_head(fit3).tolist() == [True, True, False, False]


def test_exposure_gini_and_coverage() -> None:
    one = np.array([[0], [0]])
    assert exposure_gini(one, 4, k=1) == pytest.approx(0.75)  # Σ(2r−n−1)x = 3·2, n·Σx = 4·2
    assert exposure_gini(np.array([[0, 1], [2, 3]]), 4, k=2) == pytest.approx(0.0)
    # x sorted = [0, 1, 1, 2]: (−3·0 − 1·1 + 1·1 + 3·2) / (4·4) = 6/16
    assert exposure_gini(np.array([[0, 1], [0, 2]]), 4, k=2) == pytest.approx(6 / 16)
    assert coverage(np.array([[0, 1], [0, 2]]), 4, k=2) == 0.75
    assert coverage(np.array([[0, -1]]), 4, k=2) == 0.25


def test_category_matrix_and_all_measures_at_once() -> None:
    from kgrec.loaders import from_frames

    ds = from_frames(pd.DataFrame({"user": ["u", "u"], "item": ["a", "b"], "timestamp": [1, 2]}),
                     pd.DataFrame({"item": ["a", "b", "c"], "title": ["A", "B", "C"], "categories": ["x|y", "y", ""]}))
    vocabs = Vocabularies.from_dataset(ds)
    cats = ds.item_categories
    C = category_matrix(cats, vocabs)
    n = {i: vocabs.item.number(i) for i in "abc"}
    assert C.shape == (3, 2) and C[n["a"]].tolist() == [1, 1] and C[n["b"]].tolist() == [0, 1] and C[n["c"]].sum() == 0
    fit = inter([0, 0], [n["a"], n["b"]], 1, 3)
    top = np.array([[n["a"], n["b"], n["c"]]])
    got = beyond_accuracy(top, fit, 3, categories=C, vectors=np.eye(3))
    assert got["ild_categories@3"] == pytest.approx((0.5 + 1 + 1) / 3)
    assert got["ild_vectors@3"] == pytest.approx(1.0) and got["coverage@3"] == 1.0 and got["gini@3"] == pytest.approx(0.0)
    assert got["long_tail@3"] == pytest.approx(1 / 3)  # a and b hold all of fit: only c is in the tail
    assert math.isnan(beyond_accuracy(top, fit, 3)["ild_vectors@3"])


def test_every_benchmark_row_has_the_measures() -> None:
    from kgrec.loaders.synthetic import SyntheticConfig, synthetic

    ds = synthetic(SyntheticConfig(users=80, items=60, seed=5))
    split = make_split(ds)
    models = [m for m in default_models() if m.name in ("Popularity", "ItemKNN")]
    res = run_benchmark(split, models, seeds=[0])
    for col in ("ild_categories@20", "ild_vectors@20", "novelty@20", "long_tail@20", "gini@20", "coverage@20"):
        assert col in res.runs.columns
    pop = res.runs.set_index("model").loc["Popularity"]
    knn = res.runs.set_index("model").loc["ItemKNN"]
    assert pop["long_tail@20"] < knn["long_tail@20"] and pop["gini@20"] > knn["gini@20"]
    assert 0 <= knn["ild_categories@20"] <= 1 and pop["novelty@20"] < knn["novelty@20"]
    assert res.runs["ild_vectors@20"].isna().all() and (res.runs["ild_vectors_of"] == "").all()  # no fused row here
    table = beyond_table(res.summary())
    assert list(table.columns) == ["model", "ndcg@20", "ild_categories@20", "ild_vectors@20", "novelty@20",
                                   "long_tail@20", "gini@20", "coverage@20"]
    assert (table["ild_vectors@20"] == "").all()
