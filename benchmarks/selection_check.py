"""Does the fused model's internal validation predict the test rank order of its candidates?

    python -m benchmarks.selection_check --datasets movielens lastfm-hetrec2011 instacart-sample [--seed 0]

For each data set: the benchmark's split (docs/evaluation.md), ``kgrec train``'s defaults fitted on *fit*
(train + validation), exactly as the fused row of ``benchmarks.quality``. ``fit`` scores the candidates of its
co-occurrence part on its own internal validation split (``metrics["selection"]``); here every candidate is
rebuilt on the fitted towers and all of *fit* (as ``fit`` does for the chosen one) and read on the test set,
so each candidate has an internal-validation NDCG@20 and a test NDCG@20. Reports both per candidate, the
Spearman correlation of the two, and whether the chosen candidate is the test's best. Writes
``benchmarks/results/selection-<data>.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmarks.quality import DATASETS, REPO, code_version, load_named
from kgrec._atomic import write_text_atomic
from kgrec.evaluation.baselines.base import FitContext
from kgrec.evaluation.fused import FusedScorer, fused_config
from kgrec.evaluation.metrics import evaluate_topk, full_ranking_topk
from kgrec.evaluation.report import markdown
from kgrec.evaluation.split import make_split
from kgrec.fusion.itemitem import binary_matrix, candidate_factors, item_factors, spectrum, user_factors
from kgrec.fusion.selection import score_spread_ratio

log = logging.getLogger(__name__)


def check(ds_name: str, data_home: Path, seed: int) -> dict[str, object]:
    ds = load_named(ds_name, data_home, None)
    split = make_split(ds)
    ctx = FitContext(data=split.fit, validation=None, seed=seed, progress=False, dataset=split.dataset_of(split.fit_frame),
                     user_ids=split.vocabs.user.ids, item_ids=split.vocabs.item.ids)
    t0 = time.perf_counter()
    scorer = FusedScorer("fused (kgrec train)", fused_config()).fit(ctx)
    fit_s = time.perf_counter() - t0
    rec = scorer.recommender
    st = rec.state
    cfg = rec.config
    d = cfg.model.dim
    uf = torch.from_numpy(st.arrays["users"][:, :d])
    itf = torch.from_numpy(st.arrays["items"][:, :d])
    x = binary_matrix(st.pos_users, st.pos_items, len(st.vocabs.user), len(st.vocabs.item))
    sigma, v = spectrum(x, cfg.model.cooc_rank, cfg.train.seed)
    # the split's numbers -> the model's (users the model never saw score 0: the extra zero row), as FusedScorer does
    un = st.vocabs.user.numbers(np.asarray(split.vocabs.user.ids).astype(str), missing="none")
    unum = torch.from_numpy(np.where(un >= 0, un, len(st.vocabs.user)).astype(np.int64))
    inum = torch.from_numpy(st.vocabs.item.numbers(np.asarray(split.vocabs.item.ids).astype(str)).astype(np.int64))
    test_users = np.unique(split.test.users)
    seen = split.fit.by_user()
    rows = []
    cache: dict[tuple[float, bool], tuple[torch.Tensor, torch.Tensor, float]] = {}
    for cand in rec.metrics.get("selection", []):
        w, l2 = float(cand["cooc_weight"]), float(cand["cooc_l2"])
        zero = bool(cand.get("cooc_zero_diagonal", False))
        if w > 0:
            if (l2, zero) not in cache:
                e = item_factors(sigma, v, l2)
                c, f = user_factors(x, e), candidate_factors(e, zero)
                cache[(l2, zero)] = (c, f, score_spread_ratio(uf, itf, c, f, cfg.train.seed))
            c, e, ratio = cache[(l2, zero)]
            U, I = torch.cat([uf, (w * ratio) * c], 1), torch.cat([itf, e], 1)
        else:
            U, I = uf, itf
        U = torch.cat([U, torch.zeros(1, U.shape[1])])[unum]
        I = I[inum]
        top = full_ranking_topk(lambda us, U=U, I=I: U[torch.from_numpy(us)] @ I.T, test_users, seen, 20)
        m = evaluate_topk(top, test_users, split.fit, split.test, 20)
        rows.append({**cand, "test_ndcg@20": m["ndcg@20"], "test_recall@20": m["recall@20"]})
        log.info("%s %s: val %.4f test %.4f", ds_name, (w, l2, zero), cand["val_ndcg@20"], m["ndcg@20"])
    df = pd.DataFrame(rows)
    chosen = rec.metrics["chosen"]
    rho = float(df["val_ndcg@20"].rank().corr(df["test_ndcg@20"].rank())) if len(df) > 2 else float("nan")
    best_test = df.loc[df["test_ndcg@20"].idxmax()]
    return {"data": ds.name, "seed": seed, "fit_seconds": fit_s, "chosen": chosen, "spearman": rho,
            "chosen_is_test_best": bool(best_test["cooc_weight"] == chosen["cooc_weight"]
                                        and best_test["cooc_l2"] == chosen["cooc_l2"]
                                        and bool(best_test.get("cooc_zero_diagonal", False))
                                        == bool(chosen.get("cooc_zero_diagonal", False))),
            "best_val_ndcg@20_fused_alone": rec.metrics.get("best_val_ndcg@20"), "candidates": rows,
            "code": code_version(), "date": time.strftime("%Y-%m-%d", time.gmtime())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", choices=DATASETS, required=True)
    ap.add_argument("--data-home", type=Path, default=Path(os.environ.get("KGREC_DATASETS", "/work/datasets")))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for name in a.datasets:
        res = check(name, a.data_home, a.seed)
        a.out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(a.out / f"selection-{str(res['data']).replace('/', '-')}.json", json.dumps(res, indent=2, default=float) + "\n")
        cols = ["cooc_weight", "cooc_l2", "cooc_zero_diagonal", "val_ndcg@20", "test_ndcg@20"]
        df = pd.DataFrame(res["candidates"]).reindex(columns=cols)
        print(f"## {res['data']} (seed {a.seed}; chosen {res['chosen']}; Spearman val vs test {res['spearman']:.2f}; "
              f"chosen is the test's best: {res['chosen_is_test_best']})\n")
        print(markdown(df.round(4)), flush=True)


if __name__ == "__main__":
    main()
