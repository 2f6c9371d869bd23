"""Tables and plots of a quality-benchmark result (used by benchmarks/quality.py and notebook 4), and of one model:
its training curve (:func:`training_curve`, notebook 1) and its item vectors (:func:`item_projection`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from kgrec.evaluation.benchmark import BenchmarkResult
from kgrec.evaluation.metrics import ACTIVITY_BUCKETS, bucket_name

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from kgrec.fusion.recommender import Recommender

BUCKETS = [bucket_name(lo, hi) for lo, hi in ACTIVITY_BUCKETS]


def load_result(path: str | Path) -> BenchmarkResult:
    """A result written by ``python -m benchmarks.quality`` (``benchmarks/results/quality-<data>.json``)."""
    d = json.loads(Path(path).read_text())
    return BenchmarkResult(pd.DataFrame(d["runs"]), pd.DataFrame(d["selection"]), d["meta"]["split"])


def result_json(res: BenchmarkResult, meta: dict[str, Any]) -> str:
    return (
        json.dumps(
            {
                "meta": {**meta, "split": res.split},
                "runs": res.runs.to_dict("records"),
                "selection": res.selection.to_dict("records"),
                "summary": res.summary().to_dict("records"),
            },
            indent=2,
            default=float,
        )
        + "\n"
    )


def summary_table(res: BenchmarkResult) -> pd.DataFrame:
    """One row per model: mean ± std of the main metrics as text, plus times."""
    s = res.summary()
    out = pd.DataFrame({"model": s["model"]})
    for m in ("recall@20", "ndcg@20", "cold_recall@20", "cold_ndcg@20", "cold_only_recall@20"):
        if f"{m}_mean" not in s.columns:  # results written before the metric existed
            continue
        out[m] = [
            f"{mu:.4f}" + (f" ± {sd:.4f}" if n > 1 and np.isfinite(sd) else "")
            for mu, sd, n in zip(s[f"{m}_mean"], s[f"{m}_std"], s["seeds"])
        ]
    out["coverage@20"] = s["coverage@20_mean"].map(lambda v: f"{v:.3f}")
    out["seeds"] = s["seeds"]
    out["fit s"] = s["fit_seconds"].map(lambda v: f"{v:.0f}")
    out["s/epoch"] = s["seconds_per_epoch"].map(lambda v: "" if not np.isfinite(v) else f"{v:.2f}")
    return out


def comparison(res: BenchmarkResult, fused_prefix: str = "fused") -> list[str]:
    """Sentences: the fused model against the best other model on NDCG@20 and Recall@20."""
    s = res.summary()
    fused, others = s[s["model"].str.startswith(fused_prefix)], s[~s["model"].str.startswith(fused_prefix)]
    lines = []
    if len(fused) and len(others):
        f = fused.iloc[0]
        for m in ("ndcg@20", "recall@20"):
            b = others.loc[others[f"{m}_mean"].idxmax()]
            bsd = b[f"{m}_std"] if np.isfinite(b[f"{m}_std"]) else 0.0
            lines.append(
                f"Fused vs the best other model on {m} ({b['model']}): {f[f'{m}_mean'] / b[f'{m}_mean']:.3f}x, "
                f"difference {f[f'{m}_mean'] - b[f'{m}_mean']:+.4f} (seed std: fused {f[f'{m}_std']:.4f}, {b['model']} {bsd:.4f})."
            )
    return lines


def cold_note(res: BenchmarkResult) -> str:
    """One sentence on the cold items: how many, how many users hold one out, a random order's recall."""
    r = res.runs
    if "cold_only_random_recall@20" not in r.columns or not len(r):
        return ""
    first = r.iloc[0]
    return (
        f"Cold items: {int(first['cold_items'])} items have no interaction in fit; {int(first['cold_only_users'])} "
        f"test users hold out at least one. cold_only = ranking those cold items only, where a random order "
        f"scores Recall@20 {first['cold_only_random_recall@20']:.4f}."
    )


def bucket_frame(res: BenchmarkResult) -> pd.DataFrame:
    """Mean NDCG@20 per model and user-activity bucket (columns: buckets; the users per bucket in the names)."""
    first = res.runs.iloc[0]
    cols = {b: f"{b} ({int(first[f'users[{b}]'])} users)" for b in BUCKETS}
    g = res.runs.groupby("model", sort=False)
    return pd.DataFrame({cols[b]: g[f"ndcg@20[{b}]"].mean() for b in BUCKETS})


def markdown(df: pd.DataFrame, index: bool = False) -> str:
    """A pandas frame as a GitHub table (no tabulate dependency)."""
    d = df.reset_index() if index else df
    rows = ["| " + " | ".join(map(str, d.columns)) + " |", "|" + "---|" * len(d.columns)]
    for r in d.itertuples(index=False):
        rows.append("| " + " | ".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in r) + " |")
    return "\n".join(rows)


def _figure(fig: Figure | None, size: tuple[float, float]) -> Figure:
    """``fig`` (e.g. ``plt.figure()`` in a notebook, which then shows it) sized to ``size``, or a new
    stand-alone Figure (no pyplot state) for scripts."""
    from matplotlib.figure import Figure

    if fig is None:
        return Figure(figsize=size)
    fig.set_size_inches(*size)
    return fig


def plot_quality(res: BenchmarkResult, fig: Figure | None = None) -> Figure:
    """NDCG@20 and cold-item Recall@20 per model (mean ± std over seeds) and NDCG@20 by user activity.

    The cold panel shows the ranking over cold items only (with a random order's level dashed) when the
    result has it, else the cold share of the full ranking."""
    s = res.summary()
    fig = _figure(fig, (15, 4.2))
    axes = fig.subplots(1, 3)
    x = np.arange(len(s))
    colours = ["#c44" if n.startswith("fused") else "#579" for n in s["model"]]
    cold = "cold_only_recall@20" if "cold_only_recall@20_mean" in s.columns else "cold_recall@20"
    for ax, m in zip(axes[:2], ("ndcg@20", cold)):
        ax.bar(x, s[f"{m}_mean"], yerr=s[f"{m}_std"].fillna(0), color=colours)
        ax.set_xticks(x, s["model"], rotation=35, ha="right", fontsize=8)
        ax.set_title(m.replace("_", " ") + (" (ranking cold items only)" if m == cold == "cold_only_recall@20" else ""))
        ax.set_ylabel(f"{m.replace('_', ' ')} (mean ± std over seeds)")
    if cold == "cold_only_recall@20" and "cold_only_random_recall@20" in res.runs.columns:
        axes[1].axhline(
            float(res.runs["cold_only_random_recall@20"].iloc[0]),
            color="k",
            linestyle="--",
            linewidth=1,
            label="random order",
        )
        axes[1].legend(fontsize=7)
    for model, grp in res.runs.groupby("model", sort=False):
        axes[2].plot(
            BUCKETS,
            [grp[f"ndcg@20[{b}]"].mean() for b in BUCKETS],
            marker="o",
            label=model,
            linewidth=2.5 if str(model).startswith("fused") else 1,
        )
    axes[2].set_title("NDCG@20 by user activity (interactions in fit)")
    axes[2].set_xlabel("interactions of the user in fit")
    axes[2].set_ylabel("NDCG@20 (mean over seeds)")
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    return fig


def training_curve(rec: Recommender) -> pd.DataFrame:
    """The validation run's history of ``rec`` (``rec.metrics["validation"]``): ``epoch, loss`` for every epoch and
    ``val_ndcg@20, val_recall@20`` (NaN on the epochs that were not validated: ``train.eval_every``).

    Raises:
        KgrecError: the model was trained without validation (``train.val_fraction`` 0), so there is no curve.
    """
    from kgrec.errors import KgrecError

    hist = (rec.metrics or {}).get("validation")
    if not hist:
        raise KgrecError(
            "this model has no validation history (trained with train.val_fraction=0, or built from "
            "vectors); train with validation to get a training curve"
        )
    df = pd.DataFrame(hist)
    for col in ("val_ndcg@20", "val_recall@20"):
        if col not in df:
            df[col] = np.nan
    return df[["epoch", "loss", "val_ndcg@20", "val_recall@20"]].sort_values("epoch", ignore_index=True)


def plot_training_curve(curve: pd.DataFrame | Recommender, fig: Figure | None = None) -> Figure:
    """Training loss per epoch (left) and validation NDCG@20 / Recall@20 on the validated epochs only (right; the
    epochs between validations are left out, not drawn as gaps), the best epoch marked. Takes
    :func:`training_curve`'s frame or the Recommender."""
    df = curve if isinstance(curve, pd.DataFrame) else training_curve(curve)
    fig = _figure(fig, (11, 3.8))
    ax_loss, ax_val = fig.subplots(1, 2)
    ax_loss.plot(df["epoch"], df["loss"], marker=".", color="#579")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("training loss")
    ax_loss.set_title("training loss")
    val = df.dropna(subset=["val_ndcg@20"])
    for col, colour in (("val_ndcg@20", "#c44"), ("val_recall@20", "#3a7")):
        v = val.dropna(subset=[col])
        ax_val.plot(v["epoch"], v[col], marker="o", color=colour, label=col.removeprefix("val_"))
    if len(val):
        best = val.loc[val["val_ndcg@20"].idxmax()]
        ax_val.axvline(
            best["epoch"], color="#888", linestyle="--", linewidth=1, label=f"best epoch {int(best['epoch'])}"
        )
    ax_val.set_xlabel("epoch (validated epochs only)")
    ax_val.set_ylabel("validation metric")
    ax_val.set_title("validation on held-out newest interactions")
    ax_val.legend(fontsize=8)
    fig.tight_layout()
    return fig


def main_category(cats: pd.DataFrame) -> pd.Series:
    """Each item's category that is most frequent over all items (ties: the name), so that the colours of a
    projection follow the catalogue's big genres instead of the alphabetically first of an item's."""
    freq = cats["category"].value_counts()
    c = cats.drop_duplicates(["item", "category"]).assign(n=lambda d: d["category"].map(freq))
    c = c.sort_values(["item", "n", "category"], ascending=[True, False, True])
    return c.drop_duplicates("item").set_index("item")["category"]


def item_projection(rec: Recommender, part: str = "fused") -> pd.DataFrame:
    """Item vectors projected to 2-D (PCA), with each item's main category: ``item, x, y, category`` (of the item's
    categories, the one most frequent over all items)."""
    import torch

    emb = rec.embeddings("item", part=part)
    # a copy: the frame's array can be read-only, and torch.from_numpy warns of a non-writable array (issue 18 point 6)
    x = torch.from_numpy(np.array(emb.drop(columns=["id"]).to_numpy(dtype=np.float32), copy=True))
    x = x - x.mean(0)
    _, _, v = torch.pca_lowrank(x, q=2, center=False)
    xy = (x @ v[:, :2]).numpy()
    cats = main_category(rec.dataset().item_categories)
    ids = emb["id"].astype(str)
    return pd.DataFrame(
        {"item": ids, "x": xy[:, 0], "y": xy[:, 1], "category": ids.map(cats).fillna("(none)").to_numpy()}
    )


def plot_projection(proj: pd.DataFrame, top: int = 8, fig: Figure | None = None) -> Figure:
    """A scatter of :func:`item_projection`, coloured by the ``top`` most common main categories."""
    fig = _figure(fig, (7, 6))
    ax = fig.subplots()
    common = proj["category"].value_counts().index[:top]
    rest = proj[~proj["category"].isin(common)]
    ax.scatter(rest["x"], rest["y"], s=3, c="#ccc", label="other")
    for cat in common:
        p = proj[proj["category"] == cat]
        ax.scatter(p["x"], p["y"], s=4, label=cat)
    ax.legend(markerscale=3, fontsize=7, title="main category")
    ax.set_xlabel("principal component 1")
    ax.set_ylabel("principal component 2")
    ax.set_title("item vectors, first two principal components")
    return fig
