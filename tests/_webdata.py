"""A small trained store with hostile strings, shared by tests/test_web.py and tests/test_browser.py.

Built once per test session under pytest's base temp folder (real BERT, real GNN, embedded store).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

#: an item title that would run a script if it reached HTML unescaped
HOSTILE_TITLE = "<script>alert(1)</script>\"'"
#: a user id with markup, quotes and a slash (the API takes it as one path segment, %2F-encoded)
HOSTILE_USER = "u<script>alert('u')</script>\""
#: an item id with quotes and markup
HOSTILE_ITEM = "i\"'><img src=x onerror=alert(2)>"
#: a keyword (appears in path sentences and in the SVG drawing)
HOSTILE_KEYWORD = "<b>kw</b>&amp;"
TOKEN = "test-token-0123456789abcdef"
CONFIG = {"model": {"dim": 32}, "train": {"epochs": 20, "batch_size": 256, "lr": 0.01, "patience": 4, "seed": 0}}


def hostile_frames() -> dict[str, pd.DataFrame]:
    """Synthetic communities with a hostile user id, item id, title and keyword planted."""
    from kgrec.loaders import SyntheticConfig, generate_frames

    f = generate_frames(SyntheticConfig(users=60, items=90, communities=3, interactions_per_user=12, seed=3))
    users = {"u0": HOSTILE_USER}
    items = {"i1": HOSTILE_ITEM}
    out = {}
    for name in ("interactions", "items", "triples", "tags"):
        df = f[name].copy()
        if "user" in df:
            df["user"] = df["user"].replace(users)
        df["item"] = df["item"].replace(items)
        out[name] = df
    it = out["items"]
    it.loc[it["item"] == "i0", "title"] = HOSTILE_TITLE
    first = it.index[:12]
    it.loc[first, "keywords"] = it.loc[first, "keywords"] + "|" + HOSTILE_KEYWORD
    return out


def hostile_dataset():  # noqa: ANN201
    from kgrec.loaders import from_frames

    f = hostile_frames()
    return from_frames(f["interactions"], f["items"], f["triples"], f["tags"], name="web-test")


def build_web_store(base: Path) -> Path:
    """An embedded store at ``base/web-store`` with the hostile data and a trained default model (built once)."""
    from kgrec import Recommender, RecommenderConfig
    from kgrec.graph import open_store

    path = base / "web-store"
    if (path / "models" / "default" / "model.json").is_file():
        return path
    with open_store(path) as st:
        st.ingest(hostile_dataset())
        rec = Recommender(RecommenderConfig.model_validate(CONFIG)).fit(st, progress=False)
        rec.save(st.model_root() / "default")
    return path
