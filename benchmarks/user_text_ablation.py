"""User text vectors encoded vs composed from item text vectors (issue 15), on MovieLens's validation split only.

    OMP_NUM_THREADS=1 python -m benchmarks.user_text_ablation --movielens ../shared/data --seeds 0 1 2

Two parts, in one run:

1. **Speed.** The user text vectors of the benchmark's *train* part made both ways from a cold text cache (a fresh
   encoder with ``text.cache`` off, the item text encodings given to both, as training has them): ``encode`` runs the
   encoder on every user's behaviour text, ``compose`` only on the users' own texts (MovieLens: the tags) and pools
   the item text vectors (:mod:`kgrec.encoders.compose`). Seconds, texts encoded, ratio; best of ``--repeats``.
2. **Quality.** The ``kgrec train`` default with ``model.user_text`` set to ``encode`` and to ``compose``, fitted on
   *train* (its own selection inside ``fit``), Recall/NDCG@20 on *validation*; mean and standard deviation (ddof 1)
   over the seeds. The test set is never read.

Writes ``--out`` (JSON) after each fit, so an interrupted run keeps what it measured.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._validation import MovieLensValidation
from benchmarks.quality import REPO, code_version
from kgrec._atomic import write_text_atomic
from kgrec.encoders.behaviour import item_texts, own_texts, user_texts
from kgrec.encoders.text import TextEncoder
from kgrec.fusion.config import RecommenderConfig
from kgrec.fusion.inputs import build_inputs
from kgrec.graph.hetero import Vocabularies

log = logging.getLogger(__name__)

MODES = ("encode", "compose")


def mode_config(mode: str) -> RecommenderConfig:
    return RecommenderConfig.model_validate({"model": {"user_text": mode}})


def speed(ml: MovieLensValidation, repeats: int) -> dict[str, Any]:
    """Seconds to make the train part's user text vectors each way, from a cold cache (best of ``repeats``), and the
    cosine between the two ways' vectors."""
    ds = ml.dataset
    vocabs = Vocabularies.from_dataset(ds)
    base = RecommenderConfig()
    item_enc = TextEncoder(base.text).encode(item_texts(ds, vocabs), progress=False)  # both ways have these
    out: dict[str, Any] = {"users": len(vocabs.user)}
    vecs = {}
    for mode in MODES:
        cfg = mode_config(mode)
        cfg.text.cache = False
        best = float("inf")
        for _ in range(repeats):
            enc = TextEncoder(cfg.text)
            enc.encode(["warm up the model"], progress=False)  # loading the model is not the part measured
            t0 = time.perf_counter()
            inp = build_inputs(ds, vocabs, cfg, enc, item_enc.shape[1], progress=False, item_text=item_enc)
            best = min(best, time.perf_counter() - t0)
        vecs[mode] = inp.user_text.numpy()
        texts = user_texts(ds, vocabs) if mode == "encode" else own_texts(ds, vocabs)
        out[f"{mode}_seconds"] = best
        out[f"{mode}_texts_encoded"] = sum(bool(t.strip()) for t in texts)
    out["speedup"] = out["encode_seconds"] / out["compose_seconds"]
    cos = (vecs["encode"] * vecs["compose"]).sum(1)
    ok = (np.abs(vecs["encode"]).sum(1) > 0) & (np.abs(vecs["compose"]).sum(1) > 0)
    out["cosine_mean"], out["cosine_min"] = float(cos[ok].mean()), float(cos[ok].min())
    out["note"] = "build_inputs seconds (graph, windows and user text vectors); the encoder loaded before timing"
    return out


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for mode in MODES:
        mine = [r for r in rows if r["mode"] == mode]
        if not mine:
            continue
        row: dict[str, Any] = {"mode": mode, "seeds": len(mine)}
        for key in ("val_ndcg@20", "val_recall@20", "val_cold_recall@20", "fit_seconds"):
            vals = np.array([r[key] for r in mine], dtype=float)
            row[key] = float(vals.mean())
            row[key + "_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else None
        out.append(row)
    return out


def markdown(result: dict[str, Any]) -> str:
    s = result.get("speed") or {}
    lines = []
    if s:
        lines += [
            "| user text vectors of the train part (610 users) | texts encoded | seconds |",
            "|---|---|---|",
            f"| encode (every behaviour text) | {s['encode_texts_encoded']} | {s['encode_seconds']:.1f} |",
            f"| compose (own texts only) | {s['compose_texts_encoded']} | {s['compose_seconds']:.1f} |",
            "",
            f"speed-up {s['speedup']:.1f}x; cosine between the two ways' raw vectors: mean {s['cosine_mean']:.3f}, "
            f"min {s['cosine_min']:.3f}",
            "",
        ]

    def cell(r: dict[str, Any], key: str, digits: int = 4) -> str:
        sd = r.get(key + "_std")
        return f"{r[key]:.{digits}f}" + (f" ± {sd:.{digits}f}" if sd is not None else "")

    lines += [
        "| model.user_text | seeds | val NDCG@20 | val Recall@20 | cold recall@20 | fit s |",
        "|---|---|---|---|---|---|",
    ]
    for r in result.get("summary", []):
        lines.append(
            f"| {r['mode']} | {r['seeds']} | {cell(r, 'val_ndcg@20')} | {cell(r, 'val_recall@20')} | "
            f"{cell(r, 'val_cold_recall@20')} | {cell(r, 'fit_seconds', 0)} |"
        )
    return "\n".join(lines)


def merge(out: Path, others: list[Path]) -> None:
    """Add the rows of ``others`` to ``out`` (a (mode, seed) already there is an error), summarise, print."""
    result = json.loads(out.read_text())
    have = {(r["mode"], r["seed"]) for r in result["rows"]}
    for path in others:
        for r in json.loads(path.read_text())["rows"]:
            if (r["mode"], r["seed"]) in have:
                raise SystemExit(f"{path}: mode {r['mode']!r} seed {r['seed']} is already in {out}")
            have.add((r["mode"], r["seed"]))
            result["rows"].append(r)
    result["seeds"] = sorted({r["seed"] for r in result["rows"]})
    result["summary"] = summarise(result["rows"])
    write_text_atomic(out, json.dumps(result, indent=2, default=float) + "\n")
    print(markdown(result))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--movielens", required=True, metavar="ROOT", help="folder holding ml-latest-small/")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    ap.add_argument("--repeats", type=int, default=2, help="speed part: runs of each way (best kept)")
    ap.add_argument("--no-speed", action="store_true", help="leave out the speed part")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "user-text-ablation.json"))
    ap.add_argument(
        "--merge",
        nargs="+",
        metavar="JSON",
        help="no fits: add these files' rows (seeds run apart) to --out, summarise again and print the tables",
    )
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if a.merge:
        merge(Path(a.out), [Path(m) for m in a.merge])
        return
    t_all = time.perf_counter()
    ml = MovieLensValidation(a.movielens)
    result: dict[str, Any] = {
        "data": "ml-latest-small",
        "split": "train -> validation (the test set is not read)",
        "seeds": a.seeds,
        "threads": os.environ.get("OMP_NUM_THREADS"),
        "code": code_version(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "rows": [],
    }
    if not a.no_speed:
        result["speed"] = speed(ml, a.repeats)
        log.info("speed: %s", result["speed"])
        write_text_atomic(Path(a.out), json.dumps(result, indent=2, default=float) + "\n")
    for seed in a.seeds:
        for mode in a.modes:
            fit = ml.fit(mode, mode_config(mode), seed)
            used = fit.scorer.recommender.metrics.get("user_text")
            if used != mode:
                raise SystemExit(f"model.user_text={mode!r} trained with {used!r}")
            result["rows"].append({"mode": mode, "seed": seed, **fit.figures, "fit_seconds": fit.fit_seconds})
            log.info("%s", result["rows"][-1])
            result["summary"] = summarise(result["rows"])
            result["wall_seconds"] = time.perf_counter() - t_all
            write_text_atomic(Path(a.out), json.dumps(result, indent=2, default=float) + "\n")
    print(markdown(result))


if __name__ == "__main__":
    main()
