"""Embedded-store specifics (files on disk, snapshots). The behaviour both stores share is in test_store_contract.py."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from kgrec.errors import StoreError
from kgrec.graph import open_store, to_hetero_data
from kgrec.graph.embedded import EmbeddedStore
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


def test_wipe_removes_the_data_and_keeps_the_models(tmp_path: Path, synth_dataset: Dataset) -> None:
    st = open_store(tmp_path / "s")
    rep = st.ingest(synth_dataset)
    (st.model_root() / "default").mkdir(parents=True)
    (st.model_root() / "default" / "model.json").write_text("{}")
    st.wipe()
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [".lock", "models"]  # .lock: the writers' flock file
    assert (st.model_root() / "default" / "model.json").is_file()
    with pytest.raises(StoreError, match=r"no data yet; run `kgrec ingest --store"):
        open_store(tmp_path / "s").dataset()
    assert st.ingest(synth_dataset).fingerprint == rep.fingerprint
    open_store(tmp_path / "never-created").wipe()  # nothing there: nothing to do
    assert not (tmp_path / "never-created").exists()


def test_the_manifest_describes_the_snapshot(tmp_path: Path, synth_dataset: Dataset) -> None:
    st = open_store(tmp_path / "s")
    st.ingest(synth_dataset)
    m = st.manifest()
    snap = tmp_path / "s" / (tmp_path / "s" / "CURRENT").read_text().strip()
    assert snap.name == f"data-{m['fingerprint'][:16]}" and m["schema_version"] == 1
    for table, meta in m["tables"].items():
        assert meta["rows"] == len(synth_dataset.tables()[table])
        assert hashlib.sha256((snap / meta["file"]).read_bytes()).hexdigest() == meta["sha256"]
