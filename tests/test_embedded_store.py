from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest
import torch

from kgrec.errors import StoreError, UnknownIdError
from kgrec.graph import PATH_COLUMNS, open_store, to_hetero_data
from kgrec.graph.embedded import EmbeddedStore
from kgrec.loaders import from_frames
from kgrec.loaders.schema import Dataset


def tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_ingest_is_atomic_idempotent_and_byte_identical(tmp_path: Path, synth_dataset: Dataset) -> None:
    st = open_store(tmp_path / "s")
    assert isinstance(st, EmbeddedStore)
    first = st.ingest(synth_dataset)
    assert first.changed
    h1 = tree_hashes(tmp_path / "s")
    again = open_store(tmp_path / "s").ingest(synth_dataset)
    assert not again.changed and again.counts == first.counts
    assert tree_hashes(tmp_path / "s") == h1
    # a separate store from the same data is byte-identical too
    open_store(tmp_path / "t").ingest(synth_dataset)
    assert tree_hashes(tmp_path / "t") == h1
    assert open_store(tmp_path / "s").dataset().fingerprint() == synth_dataset.fingerprint()
    assert not list((tmp_path).glob(".*tmp"))


def test_later_ingest_adds_interactions(tmp_path: Path, synth_frames) -> None:
    f = synth_frames
    inter = f["interactions"]
    first, second = inter.iloc[: len(inter) // 2], inter.iloc[len(inter) // 2 :]
    st = open_store(tmp_path / "s")
    st.ingest(from_frames(first, f["items"], f["triples"], f["tags"], name="x"))
    rep = st.ingest(from_frames(second, f["items"], name="x"))
    full = from_frames(inter, f["items"], f["triples"], f["tags"], name="x")
    assert rep.counts["interactions"] == len(full.interactions)
    assert st.dataset().fingerprint() == full.fingerprint()


def test_reading_an_empty_store_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"no data yet; run `kgrec ingest --store"):
        open_store(tmp_path / "nothing").dataset()


def test_hetero_data_is_stable_and_valid(synth_dataset: Dataset) -> None:
    a, va = to_hetero_data(synth_dataset)
    b, vb = to_hetero_data(synth_dataset)
    assert va.user == vb.user and va.item == vb.item
    for et in a.edge_types:
        assert torch.equal(a[et].edge_index, b[et].edge_index)
    ui = a["user", "interacts", "item"]
    assert ui.edge_index.shape[1] == len(synth_dataset.interactions)
    assert a["user"].num_nodes == synth_dataset.counts()["users"]
    # ids round-trip through the vocabularies
    u0, i0 = ui.edge_index[:, 0].tolist()
    pair = (va.user.id(u0), va.item.id(i0))
    assert pair in set(zip(synth_dataset.interactions["user"], synth_dataset.interactions["item"]))


def test_paths_have_the_documented_shapes(tmp_path: Path) -> None:
    inter = pd.DataFrame({"user": ["u", "u", "v", "v"], "item": ["a", "b", "a", "c"], "timestamp": [1, 2, 3, 4]})
    items = pd.DataFrame({"item": ["a", "b", "c"], "title": ["A", "B", "C"], "categories": ["Drama", "X", "Drama"], "keywords": ["k", "", "k"]})
    triples = pd.DataFrame({"item": ["a", "c"], "relation": ["directed_by", "directed_by"], "entity": ["Ann", "Ann"]})
    tags = pd.DataFrame({"user": ["u"], "item": ["b"], "tag": ["K"]})
    st = open_store(tmp_path / "s")
    st.ingest(from_frames(inter, items, triples, tags))
    p = st.paths("u", "c")
    assert list(p.columns) == PATH_COLUMNS
    got = set(map(tuple, p.to_numpy().tolist()))
    assert got == {
        ("category", "a", "Drama", "", ""),
        ("keyword", "a", "k", "", ""),
        ("keyword", "b", "k", "", ""),  # b carries keyword k because u tagged it so
        ("tag", "", "k", "", ""),
        ("entity", "a", "Ann", "directed_by", "directed_by"),
        ("user", "a", "v", "", ""),
    }
    assert set(st.paths("u", "c", anchors=["b"])["kind"]) == {"tag", "keyword"}
    with pytest.raises(UnknownIdError, match=r"unknown user id 'nobody'"):
        st.paths("nobody", "c")
    with pytest.raises(UnknownIdError, match=r"unknown item id 'zz'"):
        st.paths("u", "zz")
    g = st.subgraph("u", hops=2)
    assert g.has_node("item:c") and g.nodes["item:a"]["name"] == "A"
