"""The model directory on disk: what :meth:`kgrec.fusion.state.ModelState.save` writes and ``load`` reads.

Layout (written atomically, :func:`kgrec._atomic.atomic_dir`; ``checksums.json`` last)::

    MODEL/
      config.json  vocabs.json  metrics.json  model.json   (format version, model version, data fingerprint, degrees)
      weights.pt   vectors.npz  items.parquet  checksums.json (sha256 of every other file)
      text-encoder/  (only with text.finetune: the fine-tuned encoder, a Hugging Face folder: config.json,
                      model.safetensors, tokenizer files; config.json says text.finetuned_path "text-encoder")

A loaded model's ``text.finetuned_path`` is that folder's absolute path, so everything that encodes text for it
(new users, new items, the text cache) reads the fine-tuned encoder.

A load first finishes or rolls back a swap cut short by a crash (:func:`kgrec._atomic.recover_dir`),
then checks every file against ``checksums.json``.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from kgrec._atomic import atomic_dir, recover_dir, sha256_file
from kgrec._fs import disk_error, is_disk_error
from kgrec.errors import KgrecError
from kgrec.fusion.config import RecommenderConfig
from kgrec.graph.hetero import Vocabularies
from kgrec.loaders import schema as S

FORMAT_VERSION = 2
#: the model directory's file of sha256 sums (``{file name: hex}``), written last by :meth:`ModelState.save`
CHECKSUMS = "checksums.json"
#: the saved per-user / per-item arrays (``vectors.npz``)
ARRAYS = (
    "users",
    "items",
    "user_struct",
    "user_text",
    "user_gate",
    "item_struct",
    "item_text",
    "item_gate",
    "nodes",
    "user_recent_struct",
    "user_recent_text",
)
#: optional saved array: the recent-interest weight of every interaction (aligned with ``pos_users``; tie groups
#: share their positions, kgrec.fusion.ties); models saved before it recompute it from the logits
INTERACTION_RECENT = "interaction_recent"
#: optional saved arrays: the co-occurrence part (kgrec.fusion.itemitem) of a model that has one; its blocks
#: are also the last columns of ``users`` / ``items``, so a score stays one dot product
USER_COOC, ITEM_COOC = "user_cooc", "item_cooc"
#: optional saved array: the history side ``e_j`` of the co-occurrence part (``user_cooc = alpha * sum_j e_j``),
#: where ``item_cooc`` is the candidate side ``d_i e_i`` (EASE's zero diagonal); models saved before it have one
#: factor for both sides (``item_cooc``)
HIST_COOC = "hist_cooc"
#: optional saved array: the item text encodings of a model whose user text vectors are composed from them
#: (``model.user_text = "compose"``, kgrec.encoders.compose), so that a new user's vector is composed the same way
ITEM_ENCODING = "item_encoding"
OPTIONAL_ARRAYS = (INTERACTION_RECENT, USER_COOC, ITEM_COOC, HIST_COOC, ITEM_ENCODING)
#: the folder of a model's fine-tuned text encoder (text.finetune), inside the model directory
TEXT_ENCODER_DIR = "text-encoder"


def write_model_dir(
    path: Path,
    *,
    config: RecommenderConfig,
    vocabs: Vocabularies,
    metrics: dict[str, Any],
    meta: dict[str, Any],
    state_dict: dict[str, torch.Tensor],
    vectors: dict[str, Any],
    items: pd.DataFrame,
) -> Path:
    """Write a model directory atomically; a full disk is a :class:`~kgrec.errors.KgrecError` saying so."""
    try:
        with atomic_dir(path) as tmp:
            if config.text.finetuned_path:  # the fine-tuned encoder travels with the model
                shutil.copytree(config.text.finetuned_path, tmp / TEXT_ENCODER_DIR)
                config = config.model_copy(deep=True)
                config.text.finetuned_path = TEXT_ENCODER_DIR
            (tmp / "config.json").write_text(config.model_dump_json(indent=2) + "\n")
            (tmp / "vocabs.json").write_text(json.dumps(vocabs.to_dict()) + "\n")
            (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float) + "\n")
            (tmp / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
            with open(tmp / "weights.pt", "wb") as fh:  # through a Python file, so a full disk is an OSError
                try:
                    torch.save(state_dict, fh)
                except RuntimeError as e:  # torch wraps the write error of its zip writer
                    if isinstance(e.__context__, OSError):
                        raise e.__context__ from None
                    raise
            np.savez(tmp / "vectors.npz", **vectors)
            items.to_parquet(tmp / "items.parquet", index=False)
            sums = {f.relative_to(tmp).as_posix(): sha256_file(f) for f in sorted(tmp.rglob("*")) if f.is_file()}
            (tmp / CHECKSUMS).write_text(json.dumps(sums, indent=2, sort_keys=True) + "\n")
    except OSError as e:
        if is_disk_error(e):
            raise disk_error(e, f"the model {path}") from None
        raise
    return path


def verify(path: str | Path) -> None:
    """Check the files of a model directory against its ``checksums.json`` (models saved before it
    existed have none and are not checked).

    Raises:
        KgrecError: naming the file that is missing or whose bytes changed.
    """
    path = Path(path)
    f = path / CHECKSUMS
    if not f.is_file():
        return
    try:
        sums = json.loads(f.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise KgrecError(f"{f}: not valid JSON ({e}); the model is damaged: retrain with `kgrec train`") from None
    for name, want in sorted(sums.items()):
        got = sha256_file(path / name) if (path / name).is_file() else "missing"
        if got != want:
            raise KgrecError(
                f"{path / name}: {'missing' if got == 'missing' else f'sha256 {got[:16]}…, expected {want[:16]}…'} "
                f"(from {CHECKSUMS}); the model is damaged: retrain with `kgrec train` (or restore the folder from a backup)"
            )


def read_model_dir(path: str | Path) -> dict[str, Any]:
    """The keyword arguments of :class:`~kgrec.fusion.state.ModelState` read from a model directory."""
    path = Path(path)
    with contextlib.suppress(OSError):  # a read-only model folder is still readable
        recover_dir(path)  # a swap cut short by a crash: the old model comes back
    if not (path / "model.json").is_file():
        raise KgrecError(f"{path}: not a kgrec model directory (no model.json); train one with `kgrec train`")
    meta = json.loads((path / "model.json").read_text())
    if meta.get("format_version") != FORMAT_VERSION:
        raise KgrecError(
            f"{path}: model format {meta.get('format_version')}, this kgrec reads {FORMAT_VERSION}; retrain"
        )
    verify(path)
    config = RecommenderConfig.model_validate_json((path / "config.json").read_text())
    if config.text.finetuned_path:
        tuned = Path(config.text.finetuned_path)
        tuned = (tuned if tuned.is_absolute() else path / tuned).resolve()
        if not (tuned / "config.json").is_file():
            raise KgrecError(
                f"{path}: its fine-tuned text encoder {tuned} is missing (text.finetuned_path in config.json); "
                "retrain with `kgrec train --finetune-text`"
            )
        config.text.finetuned_path = str(tuned)
    with np.load(path / "vectors.npz") as z:
        arrays = {k: z[k] for k in ARRAYS}
        arrays.update({k: z[k] for k in OPTIONAL_ARRAYS if k in z.files})
        pos_users, pos_items, edge_norm = z["pos_users"], z["pos_items"], z["edge_norm"]
    return {
        "config": config,
        "vocabs": Vocabularies.from_dict(json.loads((path / "vocabs.json").read_text())),
        "arrays": arrays,
        "pos_users": pos_users,
        "pos_items": pos_items,
        "edge_norm": edge_norm,
        "items": pd.read_parquet(path / "items.parquet").astype(S.ITEMS_SCHEMA),
        "degrees": meta["degrees"],
        "data_fingerprint": meta["data_fingerprint"],
        "metrics": json.loads((path / "metrics.json").read_text()),
        "model_version": meta["model_version"],
        "state_dict": torch.load(path / "weights.pt", weights_only=True),
    }
