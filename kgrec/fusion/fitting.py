"""From a data set to a trained :class:`~kgrec.fusion.state.ModelState`: encode the item text, train, collect.

What :meth:`kgrec.fusion.recommender.Recommender.fit` runs; the training loop itself is :mod:`kgrec.fusion.train`.
"""

from __future__ import annotations

import time
import uuid

import numpy as np
import torch

from kgrec.encoders.behaviour import item_texts
from kgrec.encoders.text import TextEncoder
from kgrec.errors import KgrecError
from kgrec.fusion.config import RecommenderConfig
from kgrec.fusion.state import ModelState
from kgrec.fusion.train import fit_model
from kgrec.fusion.vectors import connector_degrees, tower_arrays
from kgrec.graph.hetero import Vocabularies
from kgrec.loaders.schema import Dataset

__all__ = ["fit_state", "new_model_version"]


def new_model_version() -> str:
    """A version stamp for a newly trained model: UTC time and 8 random hex digits."""
    return f"{time.strftime('%Y%m%d%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"


def fit_state(ds: Dataset, config: RecommenderConfig, progress: bool = True) -> tuple[ModelState, TextEncoder | None]:
    """Train on ``ds``; returns the state and the text encoder used (None for a model without text).

    Raises:
        KgrecError: ``ds`` has no interactions.
    """
    if ds.interactions.empty:
        raise KgrecError("cannot train on a dataset without interactions")
    t0 = time.perf_counter()
    vocabs = Vocabularies.from_dataset(ds)
    encoder = TextEncoder(config.text) if config.model.use_text or config.model.item_text_in_gnn else None
    if encoder is not None:
        item_text = encoder.encode(item_texts(ds, vocabs), progress=progress, desc="encoding item text")
        text_model = f"{encoder.name}-{encoder.fingerprint}"
    else:
        item_text = np.zeros((len(vocabs.item), 1), dtype=np.float32)
        text_model = None
    res = fit_model(ds, vocabs, config, torch.from_numpy(item_text), encoder, progress)
    state = ModelState(
        config=config,
        vocabs=vocabs,
        arrays=tower_arrays(res.towers),
        pos_users=res.inputs.pos_users,
        pos_items=res.inputs.pos_items,
        edge_norm=res.inputs.edge_norm,
        items=ds.items,
        degrees=connector_degrees(ds),
        data_fingerprint=ds.fingerprint(),
        metrics={**res.metrics, "fit_seconds": time.perf_counter() - t0, "text_model": text_model},
        model_version=new_model_version(),
        state_dict=res.model.state_dict(),
    )
    return state, encoder
