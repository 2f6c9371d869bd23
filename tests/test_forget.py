"""Forgetting a user (kgrec.fusion.forget): store, models and text cache hold nothing of them afterwards."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from kgrec import Recommender
from kgrec.errors import UnknownIdError
from kgrec.fusion.forget import behaviour_texts_of, forget_users
from kgrec.graph import open_store
from kgrec.loaders import batch_from_frames
from kgrec.loaders import schema as S

URI = os.environ.get("KGREC_TEST_NEO4J_URI", "bolt://127.0.0.1:7687")
GONE = "forget-me-7f3a"


def _traces(folder: Path, needles: list[str]) -> list[str]:
    """Files under ``folder`` whose Parquet cells or raw bytes hold one of ``needles``."""
    hits = []
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        if f.suffix == ".parquet":
            t = pq.read_table(f).to_pandas()
            cells = {str(v) for c in t.columns for v in t[c].tolist()}
            if any(n in cells or any(n in c for c in cells) for n in needles):
                hits.append(str(f))
        elif f.suffix == ".npz":  # numpy keeps strings as UTF-32: read the arrays of strings
            with np.load(f, allow_pickle=False) as z:
                cells = {str(v) for k in z.files if z[k].dtype.kind == "U" for v in z[k].ravel().tolist()}
            if any(n in c for c in cells for n in needles) or any(n.encode() in f.read_bytes() for n in needles):
                hits.append(str(f))
        elif any(n.encode() in f.read_bytes() for n in needles):
            hits.append(str(f))
    return hits


@pytest.mark.parametrize("backend", ["embedded", pytest.param("neo4j", marks=pytest.mark.neo4j)])
def test_a_forgotten_user_leaves_no_trace(backend, tmp_path, synth_dataset, small_config):
    cache = Path(os.environ["KGREC_CACHE"])
    st = open_store(tmp_path / "store" if backend == "embedded" else URI)
    st.wipe()
    try:
        st.ingest(synth_dataset)
        rec = Recommender(small_config).fit(st, progress=False)
        model = rec.save(tmp_path / "store" / "models" / "default" if backend == "embedded" else tmp_path / "model")
        t = int(synth_dataset.interactions[S.TIMESTAMP].max()) + 100
        items = rec.vocabs.item.to_list()
        stay = rec.vocabs.user.id(1)
        rows = [(GONE, items[n], t + n) for n in range(4)] + [(stay, items[7], t + 9)]
        st.append(batch_from_frames(pd.DataFrame(rows, columns=["user", "item", "timestamp"]), known_items=items))
        live = Recommender.load(model, store=st)
        assert len(live.recommend(GONE, k=5)) == 5  # the new user is answered (their behaviour text is encoded)
        texts = [x for x in behaviour_texts_of(st, [GONE]) if x]
        assert texts
        keys = [hashlib.sha256(x.encode()).hexdigest()[:32] for x in texts]
        assert _traces(cache, keys)  # the cold-start path cached their behaviour text's vector

        rep = forget_users(st, [GONE], [model])
        assert rep.store_changed and rep.cache_entries >= 1
        assert not st.has_user(GONE)
        folders = [cache, model] + ([tmp_path / "store"] if backend == "embedded" else [])
        assert _traces(model, [f'"{GONE}"', GONE]) == []
        titles = set(synth_dataset.items[S.TITLE].tolist())
        private = [x for x in texts if x not in titles]  # a one-title prefix is the item's own public title
        assert private
        for folder in folders:
            assert _traces(folder, [GONE, *private, *keys]) == [], folder
        after = Recommender.load(model, store=st)  # usable on the store's new data
        assert GONE not in after.vocabs.user
        assert json.loads((model / "metrics.json").read_text())["lineage"]["forgotten_users"] is True
        # the user who stays keeps their appended event: it is still seen
        assert items[7] not in set(after.recommend(stay, k=50)["item"])
        with pytest.raises(UnknownIdError):
            forget_users(st, [GONE], [model])
    finally:
        st.wipe()
        st.close()


def test_a_running_recommender_follows_a_forget_done_elsewhere(tmp_path, synth_dataset, small_config):
    """A long-lived model (a web server's) whose store and model folder another process rewrote by ``forget``: it
    reads the new model folder and keeps answering the others; the forgotten user is unknown."""
    st = open_store(tmp_path / "store")
    st.ingest(synth_dataset)
    model = Recommender(small_config).fit(st, progress=False).save(tmp_path / "store" / "models" / "default")
    server = Recommender.load(model, store=st)
    gone, stay = server.vocabs.user.id(0), server.vocabs.user.id(1)
    before = server.model_version
    forget_users(open_store(tmp_path / "store"), [gone], [model])  # "another process"
    assert len(server.recommend(stay, k=5)) == 5
    assert server.model_version != before and gone not in server.vocabs.user
    with pytest.raises(UnknownIdError):
        server.recommend(gone, k=5)


def test_a_forgotten_user_leaves_the_users_per_attribute_value_counts(tmp_path, small_config):
    """The model's attribute specificity counts (users per attribute value) lose the forgotten user too."""
    from kgrec.loaders import SyntheticConfig, synthetic

    ds = synthetic(
        SyntheticConfig(users=40, items=30, communities=2, interactions_per_user=8, seed=4, user_attributes=True)
    )
    st = open_store(tmp_path / "store")
    st.ingest(ds)
    cfg = small_config.model_copy(update={"train": small_config.train.model_copy(update={"epochs": 2})})
    model = Recommender(cfg).fit(st, progress=False).save(tmp_path / "store" / "models" / "default")
    gone = "u3"
    ua = ds.user_attributes
    values = [f"{a}={v}" for a, v in zip(ua.loc[ua[S.USER] == gone, "attribute"], ua.loc[ua[S.USER] == gone, "value"])]
    assert values
    before = json.loads((model / "model.json").read_text())["degrees"]["attribute"]
    forget_users(st, [gone], [model])
    after = json.loads((model / "model.json").read_text())["degrees"]["attribute"]
    assert after == {a: n - (a in values) for a, n in before.items() if n - (a in values) > 0}
    left = st.dataset().user_attributes
    want = left.groupby(["attribute", "value"])[S.USER].nunique()
    assert after == {f"{a}={v}": int(n) for (a, v), n in want.items()}
