"""Throughput of the text encoder (issue 15): length-bucketed batches and the precision it runs in.

Two settings of :class:`~kgrec.encoders.text.TextEncoderConfig` come here:

* ``length_buckets`` (default on): every text to encode is tokenised once, the texts are sorted by their token
  count (truncated at ``max_length``) and cut into batches of neighbours, so a batch pads to little more than its
  own longest text. It is exact: each text's vector is the one an unsorted batch gives (up to float rounding), in
  the caller's order.
* ``precision``: ``"fp32"`` (the model as saved), ``"bf16"`` (the weights and activations in bfloat16; the pooled
  vector is computed in float32) or ``"auto"``: bf16 where the CPU has bfloat16 matrix units (Intel AMX with
  AVX-512 BF16), where it is measured 3-4x faster than fp32 at a cosine agreement above 0.999, fp32 elsewhere (a
  CPU without them emulates bf16 and is several times slower). A precision other than fp32 is part of the encoder's
  fingerprint, so its vectors never share a cache with fp32 ones.

:func:`quantize_int8` (torch's dynamic int8 quantisation of the Linear layers) is here for the benchmark
(``benchmarks/encoder_speed.py``) only: it is faster than fp32 but agrees with it at a cosine well below 0.99 on
MovieLens texts, so no setting selects it.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import numpy as np

log = logging.getLogger(__name__)

Precision = Literal["auto", "fp32", "bf16"]
Resolved = Literal["fp32", "bf16"]


#: the CPU flags (Linux ``/proc/cpuinfo``) of bfloat16 matrix units: Intel AMX tiles with bf16, and AVX-512 BF16
BF16_FLAGS = frozenset({"amx_tile", "amx_bf16", "avx512_bf16"})


def fast_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (every flag of :data:`BF16_FLAGS` in ``cpuinfo``;
    False where the file is missing, e.g. not Linux, or names no flags)."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return BF16_FLAGS <= set(line.partition(":")[2].split())
    except OSError:
        pass
    return False


def resolve_precision(precision: Precision) -> Resolved:
    """The precision ``precision`` stands for on this machine (``"auto"``: bf16 with :func:`fast_bf16`, else fp32)."""
    if precision == "auto":
        return "bf16" if fast_bf16() else "fp32"
    return precision


TOKENIZE_CHUNK = 8192
"""Texts tokenised (and, by the text encoder, cached) at a time."""


def prepare_model(model: Any, precision: Resolved) -> Any:
    """``model`` ready to encode in ``precision`` (eval mode; cast to bfloat16 for bf16)."""
    import torch

    model.eval()
    if precision == "bf16":
        model = model.to(torch.bfloat16)
    return model


def quantize_int8(model: Any, per_channel: bool = True) -> Any:
    """A copy of ``model`` whose Linear layers are dynamically quantised to int8 (per output channel, or one scale
    per tensor). Benchmark only: see the module docstring."""
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization is deprecated in favour of torchao
        spec: Any = {torch.nn.Linear: per_channel_dynamic_qconfig} if per_channel else {torch.nn.Linear}
        return quantize_dynamic(copy.deepcopy(model).eval(), spec, dtype=torch.qint8)


def batches(lengths: Sequence[int], batch_size: int, bucket: bool = True) -> list[list[int]]:
    """Row numbers grouped into batches of at most ``batch_size``: by length (shortest first, ties in row order)
    with ``bucket``, else in row order."""
    order = sorted(range(len(lengths)), key=lambda r: lengths[r]) if bucket else list(range(len(lengths)))
    return [order[s : s + batch_size] for s in range(0, len(order), batch_size)]


def mean_pool(hidden: Any, mask: Any) -> np.ndarray:
    """Mean of ``hidden`` [n, tokens, dim] over the tokens where ``mask`` is 1, L2-normalised, as float32 numpy."""
    import torch

    hidden = hidden.float()
    m = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return np.asarray(torch.nn.functional.normalize(pooled, dim=-1).numpy(), dtype=np.float32)


def encode_batches(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    max_length: int,
    batch_size: int,
    bucket: bool = True,
    chunk: int = TOKENIZE_CHUNK,
) -> Iterator[tuple[list[int], np.ndarray]]:
    """Encode ``texts``: yields ``(rows, vectors)`` per batch, ``rows`` the positions in ``texts`` of the
    ``vectors`` (float32, L2-normalised mean pooling). Texts are tokenised ``chunk`` at a time, each once (the token
    lists of a million texts at once would hold gigabytes of Python integers); with ``bucket`` the batches of a chunk
    group texts of like token counts. Runs under ``torch.inference_mode``; the caller sets threads."""
    import torch

    if chunk < 1:
        raise ValueError(f"chunk must be at least 1 text, got {chunk}")
    with torch.inference_mode():
        for start in range(0, len(texts), chunk):
            enc = tokenizer(list(texts[start : start + chunk]), truncation=True, max_length=max_length)
            fields = list(enc.keys())
            lengths = [len(ids) for ids in enc["input_ids"]]
            for rows in batches(lengths, batch_size, bucket):
                batch = tokenizer.pad({f: [enc[f][r] for r in rows] for f in fields}, return_tensors="pt")
                out = model(**batch).last_hidden_state
                yield [start + r for r in rows], mean_pool(out, batch["attention_mask"])
            del enc


def batch_count(n: int, batch_size: int, chunk: int = TOKENIZE_CHUNK) -> int:
    """How many batches :func:`encode_batches` yields for ``n`` texts."""
    full, rest = divmod(n, chunk)
    return full * -(-chunk // batch_size) + -(-rest // batch_size)
