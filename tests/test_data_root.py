"""One data-root rule: $KGREC_DATA, else ../shared/data beside the checkout, else ~/.cache/kgrec/data; the demo uses it."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

import kgrec
from kgrec.cli import demo
from kgrec.loaders import sample

REPO = Path(__file__).resolve().parents[1]


def _movielens_at(root: Path) -> Path:
    (root / "ml-latest-small").mkdir(parents=True)
    (root / "ml-latest-small" / "ratings.csv").write_text("userId,movieId,rating,timestamp\n")
    return root


@pytest.fixture
def fresh_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No $KGREC_DATA and an empty home: what a fresh clone sees."""
    monkeypatch.delenv("KGREC_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_kgrec_data_comes_first(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KGREC_DATA", str(tmp_path / "mine"))
    assert kgrec.loaders.default_data_root() == tmp_path / "mine"
    monkeypatch.setenv("KGREC_DATA", "~/data")
    assert kgrec.loaders.default_data_root() == Path.home() / "data"


def test_then_shared_data_beside_the_checkout(fresh_home: Path) -> None:
    assert sample.SHARED_DATA == REPO.parent / "shared" / "data"
    assert (sample.SHARED_DATA / "ml-latest-small" / "ratings.csv").is_file(), "the tests read MovieLens from ../shared/data"
    assert kgrec.loaders.default_data_root() == REPO.parent / "shared" / "data"
    _movielens_at(fresh_home / ".cache" / "kgrec" / "data")
    assert kgrec.loaders.default_data_root() == REPO.parent / "shared" / "data"  # beside wins over the cache


def test_then_the_cache(fresh_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sample, "SHARED_DATA", tmp_path / "no-checkout-data")
    cache = fresh_home / ".cache" / "kgrec" / "data"
    assert kgrec.loaders.default_data_root() == cache  # nothing anywhere: where movielens() downloads it
    _movielens_at(cache)
    assert kgrec.loaders.default_data_root() == cache


def test_the_demo_has_no_rule_of_its_own() -> None:
    assert not hasattr(demo, "default_data_root")


def test_the_demo_reads_movielens_beside_a_fresh_checkout(fresh_home: Path) -> None:
    """The bug: on a fresh clone (no $KGREC_DATA, empty cache) `kgrec demo` ignored ../shared/data."""
    out = io.StringIO()
    ds, verb = demo.demo_data(Console(file=out, width=200))
    assert ds.name == "ml-latest-small" and verb == "watched"
    assert ds.counts()["users"] == 610
    assert "offline" not in out.getvalue()
    assert not (fresh_home / ".cache").exists()  # nothing downloaded
