"""Text encoder throughput (issue 15): each variant's texts/s against the fp32 baseline in the same run, its cosine
agreement with fp32, and the validation NDCG@20 change of the variants a setting selects.

    OMP_NUM_THREADS=1 flock /tmp/heavy.lock .venv/bin/python -m benchmarks.encoder_speed \\
        --movielens /work/shared/data --threads 1 2 --seeds 0

Texts are the real ones kgrec encodes for MovieLens latest-small (``kgrec.encoders.behaviour``): ``--items`` item
texts (title, categories, keywords; ~16 tokens) and every user's behaviour text (truncated at 128 tokens), all
distinct. Variants, each timed on the same texts at each ``--threads`` count after a warm-up batch:

* ``fp32, before`` — the baseline: the encoder as it was before issue 15 (fp32, batches sorted by characters,
  each batch tokenised on its own);
* ``fp32, unsorted`` — fp32, batches in key order (how much sorting matters);
* ``fp32, token buckets`` — ``precision="fp32"``: texts tokenised once and batched by token count (exact);
* ``bf16`` — ``precision="bf16"`` (what ``"auto"`` picks on a CPU with AMX), token buckets;
* ``int8 dynamic, per tensor`` / ``per channel`` — torch's dynamic int8 quantisation of the Linear layers
  (``kgrec.encoders.speed.quantize_int8``), token buckets; no setting selects them.

Agreement: cosine of each text's vector with the baseline's (min, 1st percentile, mean). Quality: the ``kgrec
train`` default fitted on the benchmark's *train* part and scored on *validation* (as benchmarks/finetune_ablation.py
does; the test set is never read), with ``text.precision`` fp32 and bf16, each in a fresh text cache (so each
fit's seconds include encoding all texts). Results go to ``--out`` (JSON) and a Markdown table to stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks._validation import MovieLensValidation
from benchmarks.quality import REPO, code_version
from kgrec import loaders
from kgrec._atomic import write_text_atomic
from kgrec.encoders import speed
from kgrec.encoders.behaviour import item_texts, user_texts
from kgrec.encoders.text import TextEncoder, TextEncoderConfig
from kgrec.evaluation.split import make_split
from kgrec.fusion.config import RecommenderConfig

log = logging.getLogger(__name__)

Encode = Callable[[Sequence[str]], np.ndarray]


def before(model: Any, tokenizer: Any, max_length: int, batch_size: int) -> Encode:
    """The encoder loop as it was before issue 15: sort by characters, tokenise each batch, fp32."""

    def run(texts: Sequence[str]) -> np.ndarray:
        order = sorted(range(len(texts)), key=lambda r: len(texts[r]))
        out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
        with torch.inference_mode():
            for s in range(0, len(order), batch_size):
                rows = order[s : s + batch_size]
                enc = tokenizer(
                    [texts[r] for r in rows],
                    padding=True,
                    truncation=True,
                    max_length=max_length,
                    return_tensors="pt",
                )
                out[rows] = speed.mean_pool(model(**enc).last_hidden_state, enc["attention_mask"])
        return out

    return run


def bucketed(model: Any, tokenizer: Any, max_length: int, batch_size: int, bucket: bool) -> Encode:
    def run(texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
        for rows, vecs in speed.encode_batches(
            model, tokenizer, texts, max_length=max_length, batch_size=batch_size, bucket=bucket
        ):
            out[rows] = vecs
        return out

    return run


def variants(max_length: int, batch_size: int) -> dict[str, Encode]:
    enc = TextEncoder(TextEncoderConfig(cache=False, precision="fp32"))
    enc._load(progress=False)
    fp32, tok = enc._model, enc._tokenizer
    bf16 = TextEncoder(TextEncoderConfig(cache=False, precision="bf16"))
    bf16._load(progress=False)
    return {
        "fp32, before": before(fp32, tok, max_length, batch_size),
        "fp32, unsorted": bucketed(fp32, tok, max_length, batch_size, False),
        "fp32, token buckets": bucketed(fp32, tok, max_length, batch_size, True),
        "bf16": bucketed(bf16._model, tok, max_length, batch_size, True),
        "int8 dynamic, per tensor": bucketed(speed.quantize_int8(fp32, False), tok, max_length, batch_size, True),
        "int8 dynamic, per channel": bucketed(speed.quantize_int8(fp32, True), tok, max_length, batch_size, True),
    }


def agreement(v: np.ndarray, base: np.ndarray) -> dict[str, float]:
    c = (v * base).sum(1)
    return {"cos_min": float(c.min()), "cos_p1": float(np.percentile(c, 1)), "cos_mean": float(c.mean())}


def speed_rows(groups: dict[str, list[str]], threads: Sequence[int], max_length: int, bs: int) -> list[dict[str, Any]]:
    encs = variants(max_length, bs)
    rows: list[dict[str, Any]] = []
    for n in threads:
        torch.set_num_threads(n)
        for f in encs.values():  # warm-up
            f(groups["items"][:bs])
        base: dict[str, np.ndarray] = {}
        times: dict[str, dict[str, float]] = {}
        for name, f in encs.items():
            per: dict[str, float] = {}
            vecs = []
            for g, texts in groups.items():
                t0 = time.perf_counter()
                vecs.append(f(texts))
                per[g] = time.perf_counter() - t0
            v = np.concatenate(vecs)
            if name == "fp32, before":
                base = {"all": v}
            times[name] = per
            total = sum(per.values())
            row: dict[str, Any] = {
                "variant": name,
                "threads": n,
                **{f"{g}_texts_per_s": len(groups[g]) / per[g] for g in groups},
                "texts_per_s": sum(len(t) for t in groups.values()) / total,
                "seconds": total,
                **agreement(v, base["all"]),
                "max_abs_diff": float(np.abs(v - base["all"]).max()),
            }
            b = times["fp32, before"]
            row["ratio"] = sum(b.values()) / total
            for g in groups:
                row[f"{g}_ratio"] = b[g] / per[g]
            rows.append(row)
            log.info("%s", row)
    return rows


def ndcg_rows(root: str, seeds: Sequence[int], precisions: Sequence[str]) -> list[dict[str, Any]]:
    ml = MovieLensValidation(root)
    rows = []
    for seed in seeds:
        for p in precisions:
            with tempfile.TemporaryDirectory(prefix="kgrec-enc-bench-") as cache:
                cfg = RecommenderConfig.model_validate({"text": {"precision": p, "cache_dir": cache}})
                fit = ml.fit(p, cfg, seed)
            f = fit.figures
            rows.append(
                {
                    "precision": p,
                    "seed": seed,
                    "val_ndcg@20": f["val_ndcg@20"],
                    "val_recall@20": f["val_recall@20"],
                    "fit_seconds": fit.fit_seconds,
                    "best_epoch": f["best_epoch"],
                    "text_model": fit.scorer.recommender.metrics.get("text_model"),
                }
            )
            log.info("%s", rows[-1])
    return rows


def markdown(speed_table: list[dict[str, Any]], ndcg: list[dict[str, Any]]) -> str:
    lines = [
        "| variant | threads | items/s | users/s | texts/s | ratio vs fp32 before | cosine min / p1 / mean |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in speed_table:
        lines.append(
            f"| {r['variant']} | {r['threads']} | {r['items_texts_per_s']:.0f} | {r['users_texts_per_s']:.1f} | "
            f"{r['texts_per_s']:.1f} | {r['ratio']:.2f}x | {r['cos_min']:.4f} / {r['cos_p1']:.4f} / "
            f"{r['cos_mean']:.4f} |"
        )
    if ndcg:
        lines += ["", "| precision | seed | val NDCG@20 | val Recall@20 | fit s |", "|---|---|---|---|---|"]
        for r in ndcg:
            lines.append(
                f"| {r['precision']} | {r['seed']} | {r['val_ndcg@20']:.4f} | {r['val_recall@20']:.4f} | "
                f"{r['fit_seconds']:.0f} |"
            )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--movielens", required=True, metavar="ROOT", help="folder holding ml-latest-small/")
    ap.add_argument("--items", type=int, default=2000, help="item texts timed (a fixed random sample)")
    ap.add_argument("--users", type=int, default=None, help="behaviour texts timed (default: every user's)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--seeds", type=int, nargs="*", default=[0], help="seeds of the NDCG fits (none: no fits)")
    ap.add_argument(
        "--more-seeds",
        action="store_true",
        help="keep the speed table and the NDCG runs already in --out; fit only --seeds not there yet",
    )
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "encoder-speed.json"))
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    t_all = time.perf_counter()
    split = make_split(loaders.movielens(a.movielens))
    ds = split.dataset_of(split.train_frame)
    items = sorted(set(item_texts(ds, split.vocabs)))
    pick = np.random.default_rng(0).choice(len(items), size=min(a.items, len(items)), replace=False)
    groups = {
        "items": [items[i] for i in sorted(pick)],
        "users": sorted({t for t in user_texts(ds, split.vocabs) if t.strip()})[: a.users],
    }
    cfg = TextEncoderConfig()
    result: dict[str, Any] = {
        "data": "ml-latest-small (train part of the benchmark split)",
        "texts": {g: len(t) for g, t in groups.items()},
        "max_length": cfg.max_length,
        "batch_size": cfg.batch_size,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "cpu_fast_bf16": speed.fast_bf16(),
        "auto_precision": speed.resolve_precision("auto"),
        "torch": torch.__version__,
        "code": code_version(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    earlier: list[dict[str, Any]] = []
    if a.more_seeds:
        old = json.loads(Path(a.out).read_text())
        earlier = list(old.get("ndcg", []))
        result = {**old, "ndcg_runs": [*old.get("ndcg_runs", [old["date"]]), result["date"]]}
    else:
        result["speed"] = speed_rows(groups, a.threads, cfg.max_length, cfg.batch_size)
        write_text_atomic(Path(a.out), json.dumps(result, indent=2) + "\n")
    torch.set_num_threads(1)
    seeds = [s for s in a.seeds if s not in {r["seed"] for r in earlier}]
    result["ndcg"] = earlier + (ndcg_rows(a.movielens, seeds, ["fp32", "bf16"]) if seeds else [])
    if result["ndcg"]:
        by = {(r["precision"], r["seed"]): r["val_ndcg@20"] for r in result["ndcg"]}
        done = sorted({r["seed"] for r in result["ndcg"]})
        change = [by[("bf16", s)] - by[("fp32", s)] for s in done]
        result["ndcg_change_bf16_minus_fp32"] = {str(s): c for s, c in zip(done, change)}
        result["ndcg_change_mean"] = float(np.mean(change))
    result["wall_seconds"] = float(result.get("wall_seconds", 0.0)) + time.perf_counter() - t_all
    write_text_atomic(Path(a.out), json.dumps(result, indent=2) + "\n")
    print(markdown(result["speed"], result["ndcg"]))
    print(f"\nwall time {result['wall_seconds']:.0f} s -> {a.out}")


if __name__ == "__main__":
    main()
