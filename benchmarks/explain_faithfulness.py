"""Faithfulness of explanations: the deletion test (kgrec/fusion/faithfulness.py).

    python -m benchmarks.explain_faithfulness --store ~/.cache/kgrec/demo-store [--pairs 100] [--seed 0]

Samples recommendations from every user's top 20 (the model trained in the store, e.g. by
``kgrec demo``), removes the interactions behind the top-scored path and behind a randomly chosen
other path, re-runs the trained model on each changed graph, and compares the item's rank drops.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks._report import report
from kgrec import Recommender
from kgrec.fusion.faithfulness import deletion_test, summary
from kgrec.graph import open_store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", required=True)
    ap.add_argument("--pairs", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    st = open_store(args.store)
    rec = Recommender.load(st.model_root() / "default", store=st)
    top = rec.recommend(rec.vocabs.user.to_list(), 20)
    rng = np.random.default_rng(args.seed)
    idx = rng.choice(len(top), size=min(args.pairs, len(top)), replace=False)
    pairs = list(zip(top["user"].iloc[idx], top["item"].iloc[idx]))
    t0 = time.perf_counter()
    df = deletion_test(rec, st.dataset(), pairs, seed=args.seed)
    res = summary(df) | {"seconds": round(time.perf_counter() - t0, 1),
                         "top_path_kinds": df["top_kind"].value_counts().to_dict(),
                         "random_path_kinds": df["random_kind"].value_counts().to_dict()}
    report(res, args.out)


if __name__ == "__main__":
    main()
