"""Why-not answers (issue 18 point 1): an item outside the top k is said to be NOT recommended, with its rank and
what the recommended items have that it lacks; its path sentences never claim a recommendation. CLI and page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from _webdata import TOKEN, build_web_store
from fastapi.testclient import TestClient
from markupsafe import escape

from kgrec import Recommender
from kgrec.cli import main
from kgrec.graph import open_store
from kgrec.web import WebConfig, create_app

AUTH = {"Authorization": f"Bearer {TOKEN}"}
USER = "u2"


@pytest.fixture(scope="module")
def web_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_web_store(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def rec(web_store: Path) -> Recommender:
    return Recommender.load(web_store / "models" / "default", store=open_store(web_store))


def _low_item(rec: Recommender) -> tuple[str, int]:
    """The lowest-ranked item whose categories miss at least one category of the user's top 10."""
    ranked = rec.recommend(USER, len(rec.vocabs.item))
    cats = rec.dataset().item_categories
    cat_of = cats.groupby("item")["category"].apply(set).to_dict()
    top_cats = set().union(*(cat_of.get(i, set()) for i in ranked["item"].iloc[:10]))
    for item, rank in zip(ranked["item"].iloc[::-1], ranked["rank"].iloc[::-1], strict=True):
        if top_cats - cat_of.get(item, set()) and rank > 50:
            return str(item), int(rank)
    raise AssertionError("the synthetic data has no low-ranked item lacking a top category")


def _check(text: str, rec: Recommender, item: str, rank: int) -> None:
    assert "NOT recommended" in text
    assert f"ranked {rank}, outside the top 10" in text
    assert "Recommended because" not in text
    cats = rec.dataset().item_categories
    mine = set(cats[cats["item"] == item]["category"])
    top = rec.recommend(USER, 10)["item"]
    lacked = set(cats[cats["item"].isin(top)]["category"]) - mine
    named = re.search(r"history through (.+?); ", text)
    assert named, text
    assert any(c in named.group(1) for c in lacked), (named.group(1), lacked)
    assert not any(c in named.group(1) for c in mine), (named.group(1), mine)


def test_why_not_in_python_and_cli(rec: Recommender, web_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    item, rank = _low_item(rec)
    e = rec.explain(USER, item, top=5, k=10)
    assert e.rank == rank
    _check(e.message, rec, item, rank)
    assert e.paths and all(p.sentence.startswith("Linked to") for p in e.paths)
    assert main(["explain", "--store", str(web_store), "-u", USER, "-i", item, "--n-paths", "5"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].endswith(f"· rank {rank} · NOT recommended (top 10) · score {e.score:.3f}")
    _check(out, rec, item, rank)


def test_why_not_on_the_page(rec: Recommender, web_store: Path) -> None:
    item, rank = _low_item(rec)
    with TestClient(create_app(WebConfig(store=str(web_store), token=TOKEN))) as c:
        page = c.get(f"/?user={USER}&whynot={item}", headers=AUTH)
    assert page.status_code == 200
    detail = page.text.split('id="detail"', 1)[1]
    text = re.sub(r"<[^>]+>", " ", detail)
    _check(str(escape(rec.explain(USER, item, top=5, k=10).message)).replace("&#39;", "'"), rec, item, rank)
    assert str(escape(rec.explain(USER, item, top=5, k=10).message)) in detail
    assert "Recommended because" not in text
    assert "strongest of" not in text
