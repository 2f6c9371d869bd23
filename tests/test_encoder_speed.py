"""The text encoder's speed settings (issue 15, kgrec.encoders.speed): length-bucketed batches are exact and keep
the caller's order, bf16 agrees with fp32, and a precision other than fp32 has its own fingerprint and cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kgrec.encoders import speed
from kgrec.encoders.text import TextEncoder, TextEncoderConfig
from kgrec.errors import ConfigError

pytestmark = pytest.mark.slow

#: a few dozen texts of very different lengths, scripts and mixtures (the MiniLM vocabulary is English, uncased)
TEXTS = [
    "Toy Story (1995). Categories: Adventure, Animation, Children, Comedy, Fantasy. Keywords: fun, pixar",
    "Heat (1995)",
    "x",
    "東京物語 (1953). Categories: Drama",
    "千と千尋の神隠し Spirited Away (2001). Keywords: 宮崎駿, anime, 動画",
    "霸王别姬 Farewell My Concubine (1993); 卧虎藏龙 Crouching Tiger, Hidden Dragon (2000)",
    "기생충 Parasite (2019). Categories: Thriller",
    "Амели (2001) — Le Fabuleux Destin d'Amélie Poulain",
    "Das Leben der Anderen (2006): Stasi, Überwachung, Berlin",
    "ล่องจุ๊ม 🎬 emoji and Thai script ✨",
    "Tags: dark comedy, twist ending. " + "; ".join(f"Movie number {n} ({1950 + n})" for n in range(60)),
    "The Matrix (1999); Inception (2010); Interstellar (2014); Blade Runner (1982)",
    "a " * 200,
    "Reviews: loved it!!! would watch again 10/10",
] + [f"Item {n}: " + "word " * (n * 7 % 40) for n in range(24)]


@pytest.fixture(scope="module")
def fp32_vectors() -> np.ndarray:
    return TextEncoder(TextEncoderConfig(cache=False, precision="fp32", length_buckets=False)).encode(
        TEXTS, progress=False
    )


def test_length_buckets_give_the_unbucketed_vectors_in_the_callers_order(fp32_vectors: np.ndarray) -> None:
    enc = TextEncoder(TextEncoderConfig(cache=False, precision="fp32", batch_size=4))
    got = enc.encode(TEXTS, progress=False)
    assert np.abs(got - fp32_vectors).max() < 1e-5
    # one text alone (no padding at all) gives its own row
    for r in (0, 3, 10):
        alone = TextEncoder(TextEncoderConfig(cache=False, precision="fp32")).encode([TEXTS[r]], progress=False)
        assert np.abs(alone[0] - got[r]).max() < 1e-5


def test_chunked_tokenisation_gives_the_same_vectors_and_batch_count(fp32_vectors: np.ndarray) -> None:
    """Texts are tokenised a chunk at a time (a million texts' token lists at once would hold gigabytes): every row
    still comes back once, with its own vector, and batch_count says how many batches come."""
    enc = TextEncoder(TextEncoderConfig(cache=False, precision="fp32"))
    enc._load(progress=False)
    out = list(speed.encode_batches(enc._model, enc._tokenizer, TEXTS, max_length=128, batch_size=4, chunk=7))
    rows = [r for batch_rows, _ in out for r in batch_rows]
    assert sorted(rows) == list(range(len(TEXTS)))
    assert len(out) == speed.batch_count(len(TEXTS), 4, 7) == 5 * 2 + 1  # 38 texts: 5 full chunks of 7 (2 batches each), 3 left
    got = np.zeros_like(fp32_vectors)
    for batch_rows, vecs in out:
        got[batch_rows] = vecs
    assert np.abs(got - fp32_vectors).max() < 1e-5
    with pytest.raises(ValueError, match="chunk"):
        next(speed.encode_batches(enc._model, enc._tokenizer, TEXTS, max_length=32, batch_size=4, chunk=0))


def test_an_interrupted_encode_keeps_every_finished_chunk_in_the_cache(tmp_path, fp32_vectors: np.ndarray) -> None:
    """Encoding a million behaviour texts takes hours: a crash in the last chunk must not lose the others."""
    cfg = TextEncoderConfig(cache_dir=str(tmp_path), precision="fp32", batch_size=4, encode_chunk=8)
    enc = TextEncoder(cfg)
    enc._load(progress=False)
    model, calls = enc._model, {"n": 0}

    class Failing:  # the real model, which fails on its 5th forward pass (the 3rd chunk)
        def __call__(self, **batch):
            calls["n"] += 1
            if calls["n"] == 5:
                raise RuntimeError("out of memory (planted)")
            return model(**batch)

    enc._model = Failing()
    with pytest.raises(RuntimeError, match="planted"):
        enc.encode(TEXTS, progress=False)
    assert len(list((tmp_path / "text").glob("*/*.npz"))) == 2  # the two finished chunks of 8 texts
    again = TextEncoder(cfg)
    again._load(progress=False)
    model2, seen = again._model, []

    def counting(**batch):
        seen.append(len(batch["input_ids"]))
        return model2(**batch)

    again._model = counting
    vecs = again.encode(TEXTS, progress=False)
    assert sum(seen) == len(TEXTS) - 16  # only what was not finished is encoded again
    assert np.abs(vecs - fp32_vectors).max() < 1e-5


def test_batches_sort_by_length_and_keep_every_row_once() -> None:
    lengths = [5, 1, 9, 1, 3, 7, 2]
    bucketed = speed.batches(lengths, 3)
    assert bucketed == [[1, 3, 6], [4, 0, 5], [2]]
    assert speed.batches(lengths, 3, bucket=False) == [[0, 1, 2], [3, 4, 5], [6]]
    assert speed.batch_count(len(lengths), 3) == len(bucketed)
    assert speed.batches([], 3) == []


def test_bf16_agrees_with_fp32(fp32_vectors: np.ndarray) -> None:
    bf16 = TextEncoder(TextEncoderConfig(cache=False, precision="bf16")).encode(TEXTS, progress=False)
    assert bf16.dtype == np.float32
    assert np.allclose(np.linalg.norm(bf16, axis=1), 1, atol=1e-5)
    cos = (bf16 * fp32_vectors).sum(1)
    assert cos.min() >= 0.99, cos.min()


def test_a_precision_other_than_fp32_has_its_own_fingerprint_and_cache(tmp_path: Path) -> None:
    fp32 = TextEncoder(TextEncoderConfig(cache_dir=str(tmp_path), precision="fp32"))
    bf16 = TextEncoder(TextEncoderConfig(cache_dir=str(tmp_path), precision="bf16"))
    assert fp32.fingerprint != bf16.fingerprint
    assert fp32._cache_path() != bf16._cache_path()
    text = ["Toy Story (1995)"]
    a = fp32.encode(text, progress=False)
    # bf16 does not read the vector fp32 cached: it encodes anew, into its own folder
    b = TextEncoder(TextEncoderConfig(cache_dir=str(tmp_path), precision="bf16")).encode(text, progress=False)
    assert not np.array_equal(a, b)
    assert sorted(p.name for p in (tmp_path / "text").iterdir()) == sorted(
        [fp32._cache_path().name, bf16._cache_path().name]
    )
    # and a second fp32 encoder reads fp32's vector back, bit for bit
    again = TextEncoder(TextEncoderConfig(cache_dir=str(tmp_path), precision="fp32"))
    assert np.array_equal(again.encode(text, progress=False), a)


def test_auto_is_bf16_only_on_a_cpu_with_bf16_matrix_units(monkeypatch: pytest.MonkeyPatch) -> None:
    auto = TextEncoderConfig(precision="auto")
    monkeypatch.setattr(speed, "fast_bf16", lambda: False)
    assert TextEncoder(auto).precision == "fp32"
    fp32_fingerprint = TextEncoder(TextEncoderConfig(precision="fp32")).fingerprint
    assert TextEncoder(auto).fingerprint == fp32_fingerprint
    monkeypatch.setattr(speed, "fast_bf16", lambda: True)
    assert TextEncoder(auto).precision == "bf16"
    assert TextEncoder(auto).fingerprint == TextEncoder(TextEncoderConfig(precision="bf16")).fingerprint
    # the default stays fp32 on every CPU until bf16 is measured on more seeds (docs/scale.md)
    assert TextEncoder(TextEncoderConfig()).precision == "fp32"


def test_the_fp32_fingerprint_is_the_one_before_issue_15() -> None:
    """fp32 vectors cached before the precision setting existed are still found (the key did not change)."""
    import hashlib

    from kgrec.encoders.text import file_digest

    enc = TextEncoder(TextEncoderConfig(precision="fp32"))
    h = hashlib.sha256()
    h.update((enc.model_path / "config.json").read_bytes())
    for f in sorted(enc.model_path.iterdir()):
        if f.is_file() and (
            f.suffix in {".safetensors", ".bin"} or f.name.startswith("tokenizer") or f.name == "vocab.txt"
        ):
            h.update(f.name.encode())
            h.update(file_digest(f).encode())
    h.update(f"mean-pool-l2/{enc.config.max_length}".encode())
    assert enc.fingerprint == h.hexdigest()[:16]


def test_a_bad_precision_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"precision"):
        TextEncoderConfig.model_validate({"precision": "int4"})


def test_int8_quantisation_is_a_copy_and_runs() -> None:
    """The benchmark's int8 variant: the fp32 model is left as it was; the copy's vectors are unit length."""
    import torch

    enc = TextEncoder(TextEncoderConfig(cache=False, precision="fp32"))
    enc._load(progress=False)
    q = speed.quantize_int8(enc._model)
    assert isinstance(enc._model.encoder.layer[0].intermediate.dense, torch.nn.Linear)
    assert not isinstance(q.encoder.layer[0].intermediate.dense, torch.nn.Linear)
    rows, vecs = next(speed.encode_batches(q, enc._tokenizer, TEXTS[:4], max_length=32, batch_size=4))
    assert sorted(rows) == [0, 1, 2, 3]
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)


def test_fast_bf16_reads_the_cpu_flags(tmp_path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f amx_tile amx_bf16 avx512_bf16 amx_int8\n")
    assert speed.fast_bf16(str(info)) is True
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16\n")  # no AMX: emulated, slow
    assert speed.fast_bf16(str(info)) is False
    assert speed.fast_bf16(str(tmp_path / "missing")) is False
