"""Fine-tuning the text encoder (issue 16): frozen MiniLM vs its top N layers fine-tuned, on the validation split only.

    OMP_NUM_THREADS=1 flock /tmp/heavy.lock .venv/bin/python -m benchmarks.finetune_ablation \\
        --movielens /work/shared/data --seeds 0 1 2 --layers 1 2 --pairs 2000

Every row is the ``kgrec train`` default (``RecommenderConfig()``) fitted on the benchmark's *train* part (its own
selection inside ``fit`` as usual), with ``text.finetune`` on for the fine-tuned rows (``--pairs`` pairs, ``--epochs``
epochs, the other fine-tuning settings at their defaults unless given); it is scored on the *validation* part
(docs/evaluation.md): the test set is never read. Reports validation NDCG@20, Recall@20, the cold-item recall of the
full ranking (``cold_recall@20``) and of a ranking over the cold items only (``cold_only_recall@20``), the
fine-tuning's seconds and loss, and the whole fit's seconds; mean and standard deviation (ddof 1) over the seeds.
Each finished run is written to ``--out`` at once, so an interrupted ablation keeps what it measured; ``--resume``
keeps the runs already in ``--out`` (same data, pairs, epochs and learning rate) and does only the missing ones.
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
from kgrec.fusion.config import RecommenderConfig

log = logging.getLogger(__name__)

METRICS = (
    "val_ndcg@20",
    "val_recall@20",
    "val_cold_recall@20",
    "val_cold_only_recall@20",
    "finetune_seconds",
    "fit_seconds",
    "loss_first",
    "loss_last",
)


def variant_config(layers: int, pairs: int, epochs: int, lr: float | None) -> RecommenderConfig:
    """The ``kgrec train`` default; with ``layers`` > 0, its text encoder's top ``layers`` fine-tuned first."""
    if layers == 0:
        return RecommenderConfig()
    ft: dict[str, Any] = {"enabled": True, "layers": layers, "pairs": pairs, "epochs": epochs}
    if lr is not None:
        ft["lr"] = lr
    return RecommenderConfig.model_validate({"text": {"finetune": ft}})


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation (ddof 1) of each variant's figures over its seeds."""
    out = []
    for name in dict.fromkeys(r["variant"] for r in sorted(rows, key=lambda r: r["layers"])):
        mine = [r for r in rows if r["variant"] == name]
        row: dict[str, Any] = {"variant": name, "seeds": len(mine)}
        for key in METRICS:
            vals = np.array([r[key] for r in mine if r.get(key) is not None], dtype=float)
            row[key] = float(vals.mean()) if len(vals) else None
            row[key + "_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else None
        out.append(row)
    return out


def markdown(summary: list[dict[str, Any]]) -> str:
    def cell(r: dict[str, Any], key: str, digits: int) -> str:
        if r.get(key) is None:
            return "–"
        sd = r.get(key + "_std")
        return f"{r[key]:.{digits}f}" + (f" ± {sd:.{digits}f}" if sd is not None else "")

    lines = [
        "| variant | seeds | val NDCG@20 | val Recall@20 | cold recall@20 (full ranking) | cold-only recall@20 | "
        "fine-tune s | fit s (total) | loss first → last |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary:
        loss = "–" if r.get("loss_first") is None else f"{r['loss_first']:.3f} → {r['loss_last']:.3f}"
        lines.append(
            f"| {r['variant']} | {r['seeds']} | {cell(r, 'val_ndcg@20', 4)} | {cell(r, 'val_recall@20', 4)} | "
            f"{cell(r, 'val_cold_recall@20', 4)} | {cell(r, 'val_cold_only_recall@20', 4)} | "
            f"{cell(r, 'finetune_seconds', 0)} | {cell(r, 'fit_seconds', 0)} | {loss} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--movielens", required=True, metavar="ROOT", help="folder holding ml-latest-small/")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--layers", type=int, nargs="+", default=[1, 2], help="fine-tuned rows: top layers (0 = frozen)")
    ap.add_argument("--no-frozen", action="store_true", help="leave out the frozen row")
    ap.add_argument("--pairs", type=int, default=2000, help="text.finetune.pairs of the fine-tuned rows")
    ap.add_argument("--epochs", type=int, default=1, help="text.finetune.epochs of the fine-tuned rows")
    ap.add_argument("--lr", type=float, default=None, help="text.finetune.lr (default: the config's)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "finetune-ablation.json"))
    ap.add_argument("--resume", action="store_true", help="keep the runs already in --out, do the missing ones")
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    t_all = time.perf_counter()
    ml = MovieLensValidation(a.movielens)
    variants = ([0] if not a.no_frozen else []) + [n for n in a.layers if n > 0]
    rows: list[dict[str, Any]] = []
    earlier: dict[str, Any] = {}
    if a.resume and Path(a.out).is_file():
        earlier = json.loads(Path(a.out).read_text())
        rows = list(earlier.get("rows", []))
    meta = {
        "data": "ml-latest-small",
        "split": "train -> validation (the test set is not read)",
        "seeds": a.seeds,
        "pairs": a.pairs,
        "epochs": a.epochs,
        "lr": a.lr or RecommenderConfig().text.finetune.lr,
        "threads": os.environ.get("OMP_NUM_THREADS"),
        "code": code_version(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    if earlier:
        for key in ("data", "pairs", "epochs", "lr"):
            if earlier.get(key) != meta[key]:
                raise SystemExit(f"--resume: {a.out} has {key}={earlier.get(key)!r}, this run {meta[key]!r}")
        meta["seeds"] = sorted({*earlier.get("seeds", []), *a.seeds})
        meta["runs"] = [*earlier.get("runs", [earlier.get("date")]), meta["date"]]
        meta["code"] = (
            f"{earlier.get('code')} / {meta['code']}" if earlier.get("code") != meta["code"] else meta["code"]
        )
    wall_before = float(earlier.get("wall_seconds", 0.0))
    done = {(r["variant"], r["seed"]) for r in rows}
    for seed in a.seeds:
        for n in variants:
            name = "frozen (default)" if n == 0 else f"fine-tuned, top {n} layer{'s' if n > 1 else ''}"
            if (name, seed) in done:
                log.info("%s, seed %d: already in %s", name, seed, a.out)
                continue
            fit = ml.fit(name, variant_config(n, a.pairs, a.epochs, a.lr), seed, cold_only=True)
            m = fit.scorer
            ft = m.recommender.metrics.get("text_finetune") or {}
            rows.append(
                {
                    "variant": name,
                    "layers": n,
                    "seed": seed,
                    **fit.figures,
                    "fit_seconds": fit.fit_seconds,
                    "finetune_seconds": ft.get("seconds"),
                    "finetune_frozen_seconds": ft.get("frozen_seconds"),
                    "loss_first": ft.get("loss_first"),
                    "loss_last": ft.get("loss_last"),
                    "finetune": ft or None,
                    "text_model": m.recommender.metrics.get("text_model"),
                }
            )
            log.info("%s", {k: v for k, v in rows[-1].items() if k != "finetune"})
            wall = wall_before + time.perf_counter() - t_all
            result = {**meta, "wall_seconds": wall, "rows": rows, "summary": summarise(rows)}
            write_text_atomic(Path(a.out), json.dumps(result, indent=2, default=float) + "\n")
    print(markdown(summarise(rows)))
    print(
        f"\nwall time {time.perf_counter() - t_all:.0f} s (all runs: {wall_before + time.perf_counter() - t_all:.0f} s) -> {a.out}"
    )


if __name__ == "__main__":
    main()
