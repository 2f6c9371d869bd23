"""From a data set to a trained :class:`~kgrec.fusion.state.ModelState`: fine-tune the text encoder (when
``text.finetune.enabled``), encode the item text, train, collect.

What :meth:`kgrec.fusion.recommender.Recommender.fit` runs; the training loop itself is :mod:`kgrec.fusion.train`.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import math
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import torch

from kgrec.encoders.behaviour import item_texts
from kgrec.encoders.finetune import finetune_encoder
from kgrec.encoders.graph import GraphLayout
from kgrec.encoders.text import TextEncoder
from kgrec.errors import KgrecError
from kgrec.fusion.config import RecommenderConfig
from kgrec.fusion.distributed import world
from kgrec.fusion.inputs import finetune_pairs
from kgrec.fusion.model import FusedModel
from kgrec.fusion.persist import TEXT_ENCODER_DIR
from kgrec.fusion.remap import remap_weights
from kgrec.fusion.state import ModelState
from kgrec.fusion.ties import holdout_newest_groups
from kgrec.fusion.train import TrainResult, fit_model, warm_fit_model
from kgrec.fusion.vectors import connector_degrees, tower_arrays
from kgrec.graph.hetero import Vocabularies
from kgrec.loaders import schema as S
from kgrec.loaders.schema import Dataset

__all__ = ["encode_items", "finetune_text", "fit_state", "new_model_version", "warm_state"]

log = logging.getLogger(__name__)


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


def _scratch_folder() -> Path:
    """A folder for a fine-tuned encoder until the model is saved (removed when the process ends)."""
    d = Path(tempfile.mkdtemp(prefix="kgrec-finetuned-"))
    atexit.register(shutil.rmtree, d, ignore_errors=True)
    return d / TEXT_ENCODER_DIR


def finetune_text(
    ds: Dataset, vocabs: Vocabularies, config: RecommenderConfig, progress: bool
) -> tuple[RecommenderConfig, dict[str, Any] | None]:
    """With ``text.finetune.enabled``: fine-tune the text encoder (:mod:`kgrec.encoders.finetune`) on the
    interactions the model trains on (``ds`` less the internal validation hold-out, so early stopping still reads
    behaviour the encoder never saw), in a scratch folder; returns a copy of ``config`` whose
    ``text.finetuned_path`` names it, and the report. Otherwise ``config`` without a fine-tuned path (a new fit
    never reuses an old fit's encoder), and None.

    Raises:
        KgrecError: fine-tuning inside a torch.distributed process group.
    """
    ft = config.text.finetune
    uses_text = config.model.use_text or config.model.item_text_in_gnn
    if not ft.enabled or not uses_text:
        if ft.enabled:
            log.warning("text.finetune.enabled with a model that reads no text: nothing to fine-tune")
        if config.text.finetuned_path is None:
            return config, None
        out = config.model_copy(deep=True)
        out.text.finetuned_path = None
        return out, None
    if world() is not None:
        raise KgrecError("fine-tuning the text encoder runs in one process; train with --workers 1")
    inter = ds.interactions
    if config.train.val_fraction > 0:
        inter, _ = holdout_newest_groups(inter, config.train.val_fraction, min_interactions=3)
    pairs = finetune_pairs(dataclasses.replace(ds, interactions=inter), vocabs, ft.pairs, config.train.seed)
    folder = _scratch_folder()
    report = finetune_encoder(config.text, pairs, folder, seed=config.train.seed, progress=progress)
    out = config.model_copy(deep=True)
    out.text.finetuned_path = str(folder)
    return out, report.to_dict()


#: ``metrics["towers"]`` of a model whose data has no text at all
NO_TEXT = (
    "structure only: the data has no text (item titles, descriptions, categories, keywords, tags, interaction "
    "text and user profiles are all empty), so the text tower would only add noise"
)


def has_any_text(ds: Dataset, item_text: torch.Tensor) -> bool:
    """Whether any item or user has text: an item's encoding (title, description, categories, keywords) is
    not zero, or an interaction carries text, or a user has tags or a profile line."""
    if bool((item_text != 0).any()):
        return True
    blank = lambda col: col.fillna("").astype(str).str.strip().eq("")  # noqa: E731
    return bool(
        (S.TEXT in ds.interactions and not blank(ds.interactions[S.TEXT]).all())
        or len(ds.tags)
        or (S.PROFILE in ds.users and not blank(ds.users[S.PROFILE]).all())
    )


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
    config, tuned = finetune_text(ds, vocabs, config, progress)
    item_text, encoder, text_model = encode_items(ds, vocabs, config, progress)
    towers = None
    if config.model.use_text and config.model.use_structure and not has_any_text(ds, item_text):
        towers = NO_TEXT
        log.info("the data has no text: training the graph tower alone (model.use_text off for this model)")
        config = config.model_copy(update={"model": config.model.model_copy(update={"use_text": False})})
    res = fit_model(ds, vocabs, config, item_text, encoder, progress)
    if towers is not None:
        res.metrics["towers"] = towers
    config = res.config or config  # with the model settings fit chose on validation
    lineage = {"fit_on": ds.fingerprint(), "warm_starts": []}
    metrics = {**res.metrics, "fit_seconds": time.perf_counter() - t0, "text_model": text_model, "lineage": lineage}
    if tuned is not None:
        metrics["text_finetune"] = tuned
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
    if base.metrics.get("text_finetune"):  # the fine-tuned encoder is kept as it is
        metrics["text_finetune"] = base.metrics["text_finetune"]
    return _state(ds, vocabs, cfg, res, metrics), encoder
