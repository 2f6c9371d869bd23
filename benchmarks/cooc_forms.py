"""The co-occurrence part's item-item model alone, in its two forms, against the exact EASE, on test.

    python -m benchmarks.cooc_forms --datasets instacart-sample lastfm-hetrec2011 [--rank 512] [--l2 30 100 300 1000]

For each data set: the benchmark's split (docs/evaluation.md); on *fit* (train + validation), for each l2, the
rank-``--rank`` item-item model of ``kgrec.fusion.itemitem`` as the ridge autoencoder ``E E^T`` and with EASE's
zero diagonal (``E F^T``, ``F = diag(1 / (1 - |e_i|^2)) E``), and the exact EASE (dense inverse, the baseline's
code), each ranking all items on its own (seen items excluded), read on test: Recall@20 / NDCG@20. No fused towers:
this measures how close the low-rank forms come to the exact model, not the fused model (benchmarks.quality).
Writes ``benchmarks/results/cooc-forms-<data>.json``.
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
from kgrec.evaluation.metrics import evaluate_topk, full_ranking_topk
from kgrec.evaluation.report import markdown
from kgrec.evaluation.split import make_split
from kgrec.fusion.itemitem import binary_matrix, candidate_factors, item_factors, spectrum, user_factors

log = logging.getLogger(__name__)


def measure(name: str, data_home: Path, rank: int, l2s: list[float], exact: bool) -> dict[str, object]:
    split = make_split(load_named(name, data_home, None))
    fit, test = split.fit, split.test
    x = binary_matrix(fit.users, fit.items, fit.n_users, fit.n_items)
    users, seen = np.unique(test.users), fit.by_user()
    t0 = time.perf_counter()
    sigma, v = spectrum(x, rank)
    svd_s = time.perf_counter() - t0
    xd = x.to_dense() if exact else None
    rows = []
    for l2 in l2s:
        e = item_factors(sigma, v, l2)
        c = user_factors(x, e)
        forms: dict[str, object] = {"ridge": (c, e), "ease-low-rank": (c, candidate_factors(e))}
        if xd is not None:
            g = (xd.T @ xd).double()
            g.diagonal().add_(l2)
            p = torch.linalg.inv(g)
            b = (-p / p.diagonal().unsqueeze(0)).fill_diagonal_(0.0).float()
            forms["ease-exact"] = b
        for form, f in forms.items():
            if isinstance(f, tuple):
                cu, fi = f
                top = full_ranking_topk(lambda us, cu=cu, fi=fi: cu[torch.from_numpy(us)] @ fi.T, users, seen, 20)
            else:
                assert xd is not None
                top = full_ranking_topk(lambda us, b=f: xd[torch.from_numpy(us)] @ b, users, seen, 20)
            m = evaluate_topk(top, users, fit, test, 20)
            rows.append({"l2": l2, "form": form, "recall@20": m["recall@20"], "ndcg@20": m["ndcg@20"]})
            log.info("%s l2 %g %s: %.4f / %.4f", name, l2, form, m["recall@20"], m["ndcg@20"])
    return {"data": split.dataset.name, "rank": rank, "svd_seconds": svd_s, "rows": rows, "code": code_version(),
            "date": time.strftime("%Y-%m-%d", time.gmtime())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", choices=DATASETS, required=True)
    ap.add_argument("--data-home", type=Path, default=Path(os.environ.get("KGREC_DATASETS", "/work/datasets")))
    ap.add_argument("--rank", type=int, default=512)
    ap.add_argument("--l2", type=float, nargs="+", default=[30.0, 100.0, 300.0, 1000.0])
    ap.add_argument("--no-exact", action="store_true", help="leave the exact EASE out (its dense inverse is slow)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for name in a.datasets:
        res = measure(name, a.data_home, a.rank, a.l2, not a.no_exact)
        a.out.mkdir(parents=True, exist_ok=True)
        data = str(res["data"]).replace("/", "-")
        write_text_atomic(a.out / f"cooc-forms-{data}.json", json.dumps(res, indent=2) + "\n")
        df = pd.DataFrame(res["rows"]).pivot(index="l2", columns="form", values="ndcg@20").reset_index()
        print(f"## {res['data']} (rank {res['rank']}; NDCG@20 on test)\n\n{markdown(df.round(4))}\n", flush=True)


if __name__ == "__main__":
    main()
