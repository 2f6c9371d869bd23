"""From a data set to a trained :class:`~kgrec.fusion.state.ModelState`: encode the item text, train, collect.

What :meth:`kgrec.fusion.recommender.Recommender.fit` runs; the training loop itself is :mod:`kgrec.fusion.train`.
"""

from __future__ import annotations

import math
import time
import uuid
from typing import Any

import torch

from kgrec.encoders.behaviour import item_texts
from kgrec.encoders.graph import GraphLayout
from kgrec.encoders.text import TextEncoder
from kgrec.errors import KgrecError
from kgrec.fusion.config import RecommenderConfig
from kgrec.fusion.model import FusedModel
from kgrec.fusion.remap import remap_weights
from kgrec.fusion.state import ModelState
from kgrec.fusion.train import TrainResult, fit_model, warm_fit_model
from kgrec.fusion.vectors import connector_degrees, tower_arrays
from kgrec.graph.hetero import Vocabularies
from kgrec.loaders.schema import Dataset

__all__ = ["encode_items", "fit_state", "new_model_version", "warm_state"]


def new_model_version() -> str:
    """A version stamp for a newly trained model: UTC time and 8 random hex digits."""
    return f"{time.strftime('%Y%m%d%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"


def encode_items(
    ds: Dataset, vocabs: Vocabularies, config: RecommenderConfig, progress: bool
) -> tuple[torch.Tensor, TextEncoder | None, str | None]:
    """The item text vectors (zeros for a model without text), the encoder and its name-fingerprint."""
    encoder = TextEncoder(config.text) if config.model.use_text or config.model.item_text_in_gnn else None
    if encoder is None:
        return torch.zeros((len(vocabs.item), 1)), None, None
    item_text = encoder.encode(item_texts(ds, vocabs), progress=progress, desc="encoding item text")
    return torch.from_numpy(item_text), encoder, f"{encoder.name}-{encoder.fingerprint}"


def _state(
    ds: Dataset, vocabs: Vocabularies, config: RecommenderConfig, res: TrainResult, metrics: dict[str, Any]
) -> ModelState:
    return ModelState(
        config=config,
        vocabs=vocabs,
        arrays=tower_arrays(res.towers),
        pos_users=res.inputs.pos_users,
        pos_items=res.inputs.pos_items,
        edge_norm=res.inputs.edge_norm,
        items=ds.items,
        degrees=connector_degrees(ds),
        data_fingerprint=ds.fingerprint(),
        metrics=metrics,
        model_version=new_model_version(),
        state_dict=res.model.state_dict(),
    )


def fit_state(ds: Dataset, config: RecommenderConfig, progress: bool = True) -> tuple[ModelState, TextEncoder | None]:
    """Train on ``ds``; returns the state and the text encoder used (None for a model without text).

    Raises:
        KgrecError: ``ds`` has no interactions.
    """
    if ds.interactions.empty:
        raise KgrecError("cannot train on a dataset without interactions")
    t0 = time.perf_counter()
    vocabs = Vocabularies.from_dataset(ds)
    item_text, encoder, text_model = encode_items(ds, vocabs, config, progress)
    res = fit_model(ds, vocabs, config, item_text, encoder, progress)
    lineage = {"fit_on": ds.fingerprint(), "warm_starts": []}
    metrics = {**res.metrics, "fit_seconds": time.perf_counter() - t0, "text_model": text_model, "lineage": lineage}
    return _state(ds, vocabs, config, res, metrics), encoder


def warm_state(ds: Dataset, base: ModelState, progress: bool = True) -> tuple[ModelState, TextEncoder | None]:
    """Continue ``base`` on ``ds`` (its data and whatever was appended since): users and items new since keep the
    rows they get, the others keep theirs (:func:`kgrec.fusion.remap.remap_weights`), then a short schedule
    (``train.warm_fraction`` of the base's best epoch count) at half the learning rate; the co-occurrence weight
    chosen before is kept. The lineage (``metrics["lineage"]``) records the snapshot of the first fit and each warm
    start (the model it came from and the data it was fit on).

    Raises:
        KgrecError: ``ds`` has no interactions.
    """
    if ds.interactions.empty:
        raise KgrecError("cannot train on a dataset without interactions")
    t0 = time.perf_counter()
    cfg = base.config
    vocabs = Vocabularies.from_dataset(ds)
    item_text, encoder, text_model = encode_items(ds, vocabs, cfg, progress)
    model = FusedModel(GraphLayout(vocabs.sizes()), cfg.model, item_text.shape[1])
    model.load_state_dict(remap_weights(base, vocabs))
    best = int(base.metrics.get("best_epoch") or cfg.train.epochs)
    epochs = max(1, math.ceil(cfg.train.warm_fraction * best))
    chosen = dict(base.metrics.get("chosen") or {"cooc_weight": 0.0, "cooc_l2": 0.0})
    res = warm_fit_model(ds, vocabs, cfg, item_text, encoder, model, epochs, chosen, progress)
    old = dict(base.metrics.get("lineage") or {"fit_on": base.data_fingerprint, "warm_starts": []})
    lineage = {
        "fit_on": old.get("fit_on", base.data_fingerprint),
        "warm_starts": [
            *old.get("warm_starts", []),
            {"from_model": base.model_version, "from_data": base.data_fingerprint, "data": ds.fingerprint()},
        ],
    }
    metrics = {
        **res.metrics,
        "best_epoch": base.metrics.get("best_epoch"),
        "fit_seconds": time.perf_counter() - t0,
        "text_model": text_model,
        "lineage": lineage,
    }
    return _state(ds, vocabs, cfg, res, metrics), encoder
