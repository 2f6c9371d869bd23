"""Contrastive fine-tuning of the text encoder's top layers on (behaviour text, item text) pairs.

The model is cut below its top ``N`` transformer layers (``text.finetune.layers``). The embeddings and the
bottom layers stay frozen, so their output (the token hidden states) is computed once per distinct text, with
no gradient, and kept: item texts always (popular items come back step after step), behaviour texts when there
is more than one epoch (float16, in memory). Only the top ``N`` layers are trained, on those states. The pooling
is kgrec's own (mean over the attention mask, L2-normalised; it has no weights).

The loss is InfoNCE with in-batch negatives: each behaviour text against its item and the other items of the
step, at ``temperature``; an item that another pair with the same behaviour text led to is not counted as a
negative (nor is an item twice: the step's items are deduplicated). AdamW, linear warm-up over the first 10% of
the steps, then a linear decay to zero.

The result is written as a local Hugging Face folder (``config.json``, ``model.safetensors``, tokenizer files):
:class:`~kgrec.encoders.text.TextEncoder` reads it like any model folder, and its fingerprint (a hash of the
weights) keys its own text cache. The pairs come from the caller (:func:`kgrec.fusion.inputs.finetune_pairs`
builds them from the training interactions).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from kgrec.encoders.text import TextEncoder, TextEncoderConfig
from kgrec.errors import ConfigError, KgrecError

log = logging.getLogger(__name__)

__all__ = ["FinetuneReport", "Pairs", "finetune_encoder", "resolve_device", "transformer_layers"]

#: largest difference allowed between the split forward pass (bottom, then top layers) and the model's own
SPLIT_TOLERANCE = 1e-4


@dataclass
class Pairs:
    """Training pairs: behaviour text ``queries[query[p]]`` was followed by item text ``items[item[p]]``."""

    queries: list[str]
    items: list[str]
    query: np.ndarray  # int64 per pair, into queries
    item: np.ndarray  # int64 per pair, into items
    eligible: int = 0  # interactions that had a behaviour text before them (the pairs are sampled from these)

    def __len__(self) -> int:
        return len(self.query)


@dataclass
class FinetuneReport:
    """What was fine-tuned, and how it went (kept in the model's ``metrics["text_finetune"]``)."""

    layers: int  # top layers trained
    of_layers: int  # transformer layers of the model
    epochs: int
    pairs: int  # pairs per epoch
    eligible_pairs: int
    steps: int
    batch_size: int
    temperature: float
    lr: float
    device: str
    loss_first: float  # mean loss of the first tenth of the steps
    loss_last: float  # mean loss of the last tenth
    epoch_losses: list[float]
    seconds: float  # the whole fine-tuning: loading, frozen layers, training, saving
    frozen_seconds: float  # of which: the frozen layers' forward passes
    trained_parameters: int
    distinct_queries: int
    distinct_items: int
    cached_mb: float  # frozen-layer states kept in memory at the end
    base_model: str  # name-fingerprint of the model fine-tuned
    model: str  # name-fingerprint of the fine-tuned folder

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_device(setting: str) -> str:
    """``"cuda"`` when the setting asks for it (``"cuda"`` or ``"auto"``) and torch sees a GPU, else ``"cpu"``."""
    if setting == "cpu":
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    if setting == "cuda":
        log.warning("text.finetune.device='cuda' but torch sees no GPU: fine-tuning on the CPU")
    return "cpu"


def transformer_layers(model: Any, where: Path) -> torch.nn.ModuleList:
    """The list of transformer layers of a BERT-style model (``model.encoder.layer``).

    Raises:
        ConfigError: the model has no such list.
    """
    layers = getattr(getattr(model, "encoder", None), "layer", None)
    if not isinstance(layers, torch.nn.ModuleList) or len(layers) == 0:
        raise ConfigError(
            f"text.finetune: the model at {where} ({type(model).__name__}) has no list of transformer layers at "
            "encoder.layer; fine-tuning supports BERT-style encoders (bert, roberta, xlm-roberta, electra, ...)"
        )
    return layers


@contextlib.contextmanager
def _cut(model: Any, layers: torch.nn.ModuleList, keep: int) -> Iterator[None]:
    """The model runs only its first ``keep`` transformer layers inside the block."""
    model.encoder.layer = torch.nn.ModuleList(list(layers)[:keep])
    try:
        yield
    finally:
        model.encoder.layer = layers


def _attention_mask(model: Any, h: torch.Tensor, mask: torch.Tensor) -> Any:
    """The attention mask the model's own layers take, for hidden states ``h`` and a 0/1 ``mask``."""
    try:
        from transformers.masking_utils import create_bidirectional_mask
    except ImportError:  # transformers 4: the additive mask
        return model.get_extended_attention_mask(mask, tuple(mask.shape))
    return create_bidirectional_mask(config=model.config, inputs_embeds=h, attention_mask=mask)


class _SplitModel:
    """A BERT-style model run in two parts: frozen bottom (embeddings and layers below the cut), trained top."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        layers: torch.nn.ModuleList,
        cut: int,
        *,
        max_length: int,
        batch_size: int,
        device: str,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.layers = layers
        self.cut = cut
        self.top = list(self.layers)[cut:]
        self.max_length = max_length
        self.batch_size = batch_size
        self.device = device
        self.frozen_seconds = 0.0

    def bottom(self, texts: Sequence[str]) -> list[torch.Tensor]:
        """The frozen layers' output of each text, ``[tokens, hidden]`` (float32, on the CPU), no gradient."""
        t0 = time.perf_counter()
        out: list[torch.Tensor | None] = [None] * len(texts)
        order = sorted(range(len(texts)), key=lambda j: len(texts[j]))  # little padding per batch
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad(), _cut(self.model, self.layers, self.cut):
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                enc = self.tokenizer(
                    [texts[j] for j in idx],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                h = self.model(**enc).last_hidden_state
                keep = enc["attention_mask"].bool()
                for r, j in enumerate(idx):
                    out[j] = h[r][keep[r]].float().cpu()
        self.model.train(was_training)
        self.frozen_seconds += time.perf_counter() - t0
        return [o for o in out if o is not None]

    def pooled(self, states: Sequence[torch.Tensor]) -> torch.Tensor:
        """``[n, hidden]`` L2-normalised mean-pooled output of the top layers over the given bottom states."""
        h = torch.nn.utils.rnn.pad_sequence([s.to(self.device, torch.float32) for s in states], batch_first=True)
        lengths = torch.tensor([s.shape[0] for s in states], device=self.device)
        mask = (torch.arange(h.shape[1], device=self.device)[None, :] < lengths[:, None]).long()
        m4 = _attention_mask(self.model, h, mask)
        for layer in self.top:
            o = layer(h, m4)
            h = o[0] if isinstance(o, tuple) else o
        w = mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * w).sum(1) / w.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, dim=-1)

    def check(self, texts: Sequence[str]) -> float:
        """The largest difference between the split pass and the model's own forward pass on ``texts``."""
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            enc = self.tokenizer(
                list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
            ).to(self.device)
            full = self.model(**enc).last_hidden_state
            w = enc["attention_mask"].unsqueeze(-1).to(full.dtype)
            want = F.normalize((full * w).sum(1) / w.sum(1).clamp(min=1e-9), dim=-1)
            got = self.pooled(self.bottom(texts))
        self.model.train(was_training)
        return float((want - got).abs().max())


class _StateCache:
    """Bottom states by text number, computed on first use; kept (float16) when ``keep``."""

    def __init__(self, split: _SplitModel, texts: Sequence[str], keep: bool) -> None:
        self.split = split
        self.texts = texts
        self.keep = keep
        self.kept: dict[int, torch.Tensor] = {}

    def get(self, ids: np.ndarray) -> list[torch.Tensor]:
        wanted = list(dict.fromkeys(int(i) for i in ids))
        missing = [i for i in wanted if i not in self.kept]
        fresh = dict(zip(missing, self.split.bottom([self.texts[i] for i in missing]), strict=True))
        if self.keep:
            self.kept.update({i: s.half() for i, s in fresh.items()})
            return [self.kept[int(i)].float() for i in ids]
        return [fresh[int(i)] if int(i) in fresh else self.kept[int(i)].float() for i in ids]

    @property
    def megabytes(self) -> float:
        return sum(s.numel() * s.element_size() for s in self.kept.values()) / 2**20


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No progress bars of transformers' own (loading and writing weights) inside the block."""
    from transformers.utils import logging as hf_logging

    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()


def _load(path: Path) -> tuple[Any, Any]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer

    with _quiet():
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        model = AutoModel.from_pretrained(str(path), local_files_only=True)
    return model.float(), tokenizer


def _schedule(total: int) -> Any:
    warm = max(1, round(0.1 * total))
    return lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm)))


def finetune_encoder(
    config: TextEncoderConfig, pairs: Pairs, out: Path, *, seed: int = 0, progress: bool = True
) -> FinetuneReport:
    """Fine-tune the top ``config.finetune.layers`` layers of ``config``'s pre-trained model on ``pairs`` and save
    the whole model (the frozen layers bit for bit as they were) as a Hugging Face folder at ``out``.

    Raises:
        ConfigError: more layers asked for than the model has; a model that is not BERT-style.
        KgrecError: fewer than two pairs; the split forward pass does not reproduce the model's.
    """
    from tqdm.auto import tqdm

    ft = config.finetune
    if len(pairs) < 2:
        raise KgrecError(
            f"fine-tuning the text encoder needs at least 2 (behaviour text, item) pairs; the training data gave "
            f"{len(pairs)} (an interaction has a behaviour text when the user did something earlier)"
        )
    t0 = time.perf_counter()
    base = TextEncoder(config.model_copy(update={"finetuned_path": None}))
    model, tokenizer = _load(base.model_path)
    layers = transformer_layers(model, base.model_path)
    if ft.layers > len(layers):
        raise ConfigError(
            f"text.finetune.layers={ft.layers}: expected an integer from 1 to {len(layers)} (the transformer layers "
            f"of the model at {base.model_path})"
        )
    device = resolve_device(ft.device)
    torch.manual_seed(seed)
    if device == "cuda":
        torch.cuda.manual_seed_all(seed)
    rng = np.random.default_rng(seed)
    model.to(device)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    split = _SplitModel(
        model,
        tokenizer,
        layers,
        len(layers) - ft.layers,
        max_length=config.max_length,
        batch_size=config.batch_size,
        device=device,
    )
    params = [p for layer in split.top for p in layer.parameters()]
    for p in params:
        p.requires_grad_(True)
    probe = [pairs.items[int(i)] for i in dict.fromkeys(pairs.item[:4].tolist())]
    diff = split.check(probe)
    if not diff <= SPLIT_TOLERANCE:
        raise KgrecError(
            f"fine-tuning: the model at {base.model_path} run in two parts differs from its own forward pass by "
            f"{diff:.2e} (over {SPLIT_TOLERANCE:g}); its architecture is not supported"
        )
    queries = _StateCache(split, pairs.queries, keep=ft.epochs > 1)
    items = _StateCache(split, pairs.items, keep=True)
    n, bs = len(pairs), min(ft.batch_size, len(pairs))
    steps_per_epoch = sum(1 for s in range(0, n, bs) if n - s >= 2)
    total = steps_per_epoch * ft.epochs
    opt = torch.optim.AdamW(params, lr=ft.lr, weight_decay=ft.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(total))
    losses: list[float] = []
    epoch_losses: list[float] = []
    bar = tqdm(total=total, desc="fine-tuning text encoder", unit="step", disable=not progress, leave=False)
    for layer in split.top:
        layer.train()
    for _ in range(ft.epochs):
        perm = rng.permutation(n)
        mine: list[float] = []
        for s in range(0, n, bs):
            b = perm[s : s + bs]
            if len(b) < 2:
                continue
            q_ids, i_ids = pairs.query[b], pairs.item[b]
            uniq, target = np.unique(i_ids, return_inverse=True)
            u = split.pooled(queries.get(q_ids))
            v = split.pooled(items.get(uniq))
            # another pair's item is no negative for a behaviour text that led to it too
            same_q = q_ids[:, None] == q_ids[None, :]
            rows, cols = np.nonzero(same_q)
            not_neg = np.zeros((len(b), len(uniq)), dtype=bool)
            not_neg[rows, target[cols]] = True
            not_neg[np.arange(len(b)), target] = False
            logits = (u @ v.T) / ft.temperature
            logits = logits.masked_fill(torch.from_numpy(not_neg).to(device), float("-inf"))
            loss = F.cross_entropy(logits, torch.from_numpy(target.astype(np.int64)).to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.item()))
            mine.append(losses[-1])
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        epoch_losses.append(float(np.mean(mine)) if mine else float("nan"))
    bar.close()
    model.eval()
    for p in params:
        p.requires_grad_(False)
    model.to("cpu")
    out.mkdir(parents=True, exist_ok=True)
    with _quiet():
        model.save_pretrained(str(out))
        tokenizer.save_pretrained(str(out))
    tuned = TextEncoder(config.model_copy(update={"finetuned_path": str(out)}))
    tenth = max(1, len(losses) // 10)
    report = FinetuneReport(
        layers=ft.layers,
        of_layers=len(layers),
        epochs=ft.epochs,
        pairs=n,
        eligible_pairs=int(pairs.eligible),
        steps=len(losses),
        batch_size=bs,
        temperature=ft.temperature,
        lr=ft.lr,
        device=device,
        loss_first=float(np.mean(losses[:tenth])) if losses else math.nan,
        loss_last=float(np.mean(losses[-tenth:])) if losses else math.nan,
        epoch_losses=epoch_losses,
        seconds=time.perf_counter() - t0,
        frozen_seconds=split.frozen_seconds,
        trained_parameters=sum(p.numel() for p in params),
        distinct_queries=len(np.unique(pairs.query)),
        distinct_items=len(np.unique(pairs.item)),
        cached_mb=queries.megabytes + items.megabytes,
        base_model=f"{base.name}-{base.fingerprint}",
        model=f"{tuned.name}-{tuned.fingerprint}",
    )
    log.info(
        "fine-tuned the top %d of %d layers of %s on %d pairs x %d epoch(s), %d steps on %s: loss %.3f -> %.3f, "
        "%.1f s (%.1f s in the frozen layers)",
        report.layers,
        report.of_layers,
        base.name,
        n,
        ft.epochs,
        report.steps,
        device,
        report.loss_first,
        report.loss_last,
        report.seconds,
        report.frozen_seconds,
    )
    return report
