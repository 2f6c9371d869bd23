"""Plots a data scientist expects (issue 18 point 8): the training curve, the item projection, the comparison plot
and the explanation drawing, on the small trained web-test store (real model) and a committed benchmark result."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from _webdata import build_web_store

from kgrec import Recommender
from kgrec.evaluation import report
from kgrec.graph import open_store

matplotlib.use("Agg")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def rec(tmp_path_factory: pytest.TempPathFactory) -> Recommender:
    store = build_web_store(tmp_path_factory.getbasetemp())
    return Recommender.load(store / "models" / "default", store=open_store(store))


def test_training_curve_draws_the_validated_epochs_only(rec: Recommender) -> None:
    curve = report.training_curve(rec)
    every = rec.config.train.eval_every
    assert every > 1 and curve["loss"].notna().all()
    validated = curve.dropna(subset=["val_ndcg@20"])["epoch"].tolist()
    assert validated and all(e % every == 0 or e == curve["epoch"].max() for e in validated)
    assert curve["val_ndcg@20"].isna().any()  # the epochs between validations
    fig = report.plot_training_curve(rec)
    loss_ax, val_ax = fig.axes
    assert loss_ax.get_xlabel() == "epoch" and loss_ax.get_ylabel() == "training loss"
    assert val_ax.get_ylabel() and "validated" in val_ax.get_xlabel()
    ndcg = next(line for line in val_ax.get_lines() if line.get_label() == "ndcg@20")
    assert list(ndcg.get_xdata()) == validated and not np.isnan(ndcg.get_ydata()).any()


def test_projection_colours_by_the_most_frequent_category(rec: Recommender) -> None:
    cats = pd.DataFrame({"item": ["a", "a", "b", "c"], "category": ["Action", "Drama", "Drama", "Drama"]})
    main = report.main_category(cats)  # a table where the first and the most frequent category differ
    assert main["a"] == "Drama"  # the alphabetically first would be Action
    proj = report.item_projection(rec)
    fig = report.plot_projection(proj)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "principal component 1" and ax.get_ylabel() == "principal component 2"


def test_comparison_plot_has_y_labels() -> None:
    res = report.load_result(next(iter(sorted((REPO / "benchmarks" / "results").glob("quality-*.json")))))
    fig = report.plot_quality(res)
    assert all(ax.get_ylabel() for ax in fig.axes)


def test_explanation_drawing_labels_do_not_overlap(rec: Recommender) -> None:
    from kgrec.graph.draw import draw_explanation

    item = rec.recommend("u2", 3)["item"].iloc[2]
    ax = draw_explanation(rec.explain("u2", item, top=8))
    fig = ax.figure
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    names = [t for t in ax.texts if getattr(t, "xy", None) is not None]
    boxes = [t.get_window_extent(r) for t in names]
    assert len(boxes) >= 3
    for n, a in enumerate(boxes):
        for b in boxes[n + 1 :]:
            assert not a.overlaps(b), "two node labels overlap"
