"""The public model: ``Recommender(config).fit(data).recommend(users, k)``."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from kgrec._atomic import atomic_dir
from kgrec.encoders.behaviour import item_texts
from kgrec.encoders.text import TextEncoder
from kgrec.errors import KgrecError, ModelMismatchError, UnknownIdError
from kgrec.fusion.config import RecommenderConfig
from kgrec.fusion.evaluate import topk_scores
from kgrec.fusion.model import attribution
from kgrec.graph.hetero import Vocabularies
from kgrec.loaders import schema as S
from kgrec.loaders.schema import Dataset

if TYPE_CHECKING:
    from kgrec.fusion.explain import Explanation
    from kgrec.graph.store import GraphStore

log = logging.getLogger(__name__)

FORMAT_VERSION = 2
_ARRAYS = ("users", "items", "user_struct", "user_text", "user_gate", "item_struct", "item_text", "item_gate", "nodes",
           "user_recent_struct", "user_recent_text")


class Recommender:
    """A knowledge-graph hybrid recommender: GNN + BERT vectors fused per user and item.

    Example::

        ds = kgrec.loaders.movielens("data")
        rec = Recommender().fit(ds)
        rec.recommend(["1", "2"], k=10)       # DataFrame user, item, rank, score
        rec.explain("1", "318")               # Explanation (paths, sentences, attribution)
    """

    def __init__(self, config: RecommenderConfig | None = None) -> None:
        self.config = config or RecommenderConfig()
        self._fitted = False
        #: the store explanations are looked up in by default (set by fit(store) and load(path, store))
        self.store: GraphStore | None = None

    # ------------------------------------------------------------------ fitting
    def fit(self, data: Dataset | GraphStore, *, progress: bool = True) -> Recommender:
        """Train on a dataset or on everything in a store."""
        from kgrec.fusion.train import fit_model

        ds = data if isinstance(data, Dataset) else data.dataset()
        if ds.interactions.empty:
            raise KgrecError("cannot train on a dataset without interactions")
        t0 = time.perf_counter()
        vocabs = Vocabularies.from_dataset(ds)
        encoder = TextEncoder(self.config.text) if self.config.model.use_text or self.config.model.item_text_in_gnn else None
        if encoder is not None:
            item_text = encoder.encode(item_texts(ds, vocabs), progress=progress, desc="encoding item text")
            text_model = f"{encoder.name}-{encoder.fingerprint}"
        else:
            item_text = np.zeros((len(vocabs.item), 1), dtype=np.float32)
            text_model = None
        res = fit_model(ds, vocabs, self.config, torch.from_numpy(item_text), encoder, progress)
        self._set_state(
            vocabs=vocabs,
            arrays=_tower_arrays(res.towers),
            pos_users=res.inputs.pos_users,
            pos_items=res.inputs.pos_items,
            edge_norm=res.inputs.edge_norm,
            items=ds.items,
            degrees=_connector_degrees(ds),
            data_fingerprint=ds.fingerprint(),
            metrics={**res.metrics, "fit_seconds": time.perf_counter() - t0, "text_model": text_model},
            model_version=f"{time.strftime('%Y%m%d%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}",
            state_dict=res.model.state_dict(),
        )
        self._dataset = ds
        self.store = None if isinstance(data, Dataset) else data
        return self

    @classmethod
    def from_vectors(
        cls, user_ids: Sequence[str], user_vectors: np.ndarray, item_ids: Sequence[str], item_vectors: np.ndarray,
        history: pd.DataFrame | None = None, titles: pd.DataFrame | None = None, model_version: str = "vectors",
        history_index: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> Recommender:
        """A ranking-only recommender over given fused vectors (e.g. computed elsewhere).

        It recommends and exports like a trained model; explanations and text need a
        trained model. Seen items to exclude come as ``history`` (``user, item`` ids) or,
        for large data, as ``history_index``: row positions into ``user_ids`` and ``item_ids``.
        """
        uv = _vocabs_from_ids(user_ids, item_ids)
        n_u, n_i = len(uv.user), len(uv.item)
        uo = np.argsort(np.asarray(user_ids, dtype=object).astype(str), kind="stable")
        io = np.argsort(np.asarray(item_ids, dtype=object).astype(str), kind="stable")
        U = np.ascontiguousarray(np.asarray(user_vectors, dtype=np.float32)[uo])
        It = np.ascontiguousarray(np.asarray(item_vectors, dtype=np.float32)[io])
        if U.shape[0] != n_u or It.shape[0] != n_i or U.shape[1] != It.shape[1]:
            raise ValueError(f"vectors {U.shape} / {It.shape} do not match {n_u} unique users / {n_i} unique items of one size")
        none = np.zeros((0, U.shape[1]), np.float32)  # no towers: ranking only (attribution/explain need a trained model)
        if history_index is not None:
            u_rank = np.empty(n_u, dtype=np.int64)
            u_rank[uo] = np.arange(n_u)
            i_rank = np.empty(n_i, dtype=np.int64)
            i_rank[io] = np.arange(n_i)
            pu, pi = u_rank[np.asarray(history_index[0])], i_rank[np.asarray(history_index[1])]
        elif history is not None and len(history):
            pu = uv.user.numbers(history["user"].astype(str).to_numpy())
            pi = uv.item.numbers(history["item"].astype(str).to_numpy())
        else:
            pu = pi = np.empty(0, dtype=np.int64)
        items = titles if titles is not None else pd.DataFrame({S.ITEM: uv.item.ids, S.TITLE: "", S.DESCRIPTION: ""})
        rec = cls()
        rec._set_state(
            vocabs=uv,
            arrays={"users": U, "items": It, **{k: none for k in _ARRAYS if k not in ("users", "items")}},
            pos_users=pu, pos_items=pi, edge_norm=np.ones(len(pu), dtype=np.float32),
            items=items.astype(S.ITEMS_SCHEMA), degrees={"category": {}, "keyword": {}, "entity": {}},
            data_fingerprint="vectors", metrics={}, model_version=model_version, state_dict={},
        )
        return rec

    def _set_state(self, **kw: Any) -> None:
        self.vocabs: Vocabularies = kw["vocabs"]
        self.arrays: dict[str, np.ndarray] = kw["arrays"]
        self.pos_users: np.ndarray = kw["pos_users"]
        self.pos_items: np.ndarray = kw["pos_items"]
        self.edge_norm: np.ndarray = kw["edge_norm"]
        self.items_table: pd.DataFrame = kw["items"]
        self.degrees: dict[str, dict[str, int]] = kw["degrees"]
        self.data_fingerprint: str = kw["data_fingerprint"]
        self.metrics: dict[str, Any] = kw["metrics"]
        self.model_version: str = kw["model_version"]
        self.state_dict: dict[str, torch.Tensor] = kw["state_dict"]
        # each user's history as CSR slices (views, no per-user arrays: millions of users stay cheap)
        order = np.argsort(self.pos_users, kind="stable")
        self._hist_items = self.pos_items[order]
        self._hist_w = self.edge_norm[order]
        self._hist_ptr = np.zeros(len(self.vocabs.user) + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.pos_users, minlength=len(self.vocabs.user)), out=self._hist_ptr[1:])
        del order
        self._titles = dict(zip(self.items_table[S.ITEM].tolist(), self.items_table[S.TITLE].tolist()))
        self._users_t = torch.from_numpy(self.arrays["users"])
        self._items_t = torch.from_numpy(self.arrays["items"])
        self._fitted = True

    def _check(self) -> None:
        if not self._fitted:
            raise KgrecError("the recommender is not trained: call fit() or Recommender.load() first")

    # ------------------------------------------------------------------ lookups
    def _number(self, kind: str, ident: str) -> int:
        self._check()
        n = self.vocabs.of(kind).number(str(ident), missing="none")
        if n is None:
            raise UnknownIdError(kind, ident, "not in the training data of this model")
        return n

    def user_number(self, user: str) -> int:
        return self._number("user", user)

    def item_number(self, item: str) -> int:
        return self._number("item", item)

    def title(self, item: str) -> str:
        return self._titles.get(str(item)) or str(item)

    def history(self, user: str) -> tuple[np.ndarray, np.ndarray]:
        """(item numbers, normalised edge weights) of a user's interactions."""
        return self._seen(self.user_number(user))

    def _seen(self, u: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self._hist_ptr[u], self._hist_ptr[u + 1]
        return self._hist_items[lo:hi], self._hist_w[lo:hi]

    def recent_weights(self, u: int) -> np.ndarray:
        """The recent-interest weights of user number ``u``'s history items (aligned with :meth:`history`,
        oldest first; 0 outside the newest ``recent_window``; all 0 for a model without that part)."""
        n = int(self._hist_ptr[u + 1] - self._hist_ptr[u])
        out = np.zeros(n)
        logits = self.state_dict.get("recent.logits") if self.state_dict else None
        if logits is None or n == 0:
            return out
        m = min(n, len(logits))
        a = logits[:m].detach().numpy().astype(np.float64)
        a = np.exp(a - a.max())
        out[n - m :] = (a / a.sum())[::-1]  # history is oldest first; logits are newest first
        return out

    # ------------------------------------------------------------------ ranking
    def recommend(
        self,
        users: str | Sequence[str],
        k: int = 10,
        *,
        exclude_seen: bool = True,
        items: Iterable[str] | None = None,
        exclude: Iterable[str] | None = None,
    ) -> pd.DataFrame:
        """Top-``k`` items for one user or many.

        Args:
            users: a user id or a list of them.
            k: list length (>= 1).
            exclude_seen: leave out items the user already interacted with.
            items: restrict candidates to these item ids (unknown ones are ignored).
            exclude: item ids never to recommend.

        Returns:
            DataFrame ``user, item, rank, score`` (rank from 1), best first per user.

        Raises:
            UnknownIdError: for a user the model does not know.
        """
        self._check()
        if k < 1:
            raise ValueError(f"k={k}: expected a positive number of recommendations")
        user_list = [str(users)] if isinstance(users, str) else [str(u) for u in users]
        nums = np.array([self.user_number(u) for u in user_list], dtype=np.int64)
        scores, top = self._topk(nums, k, exclude_seen=exclude_seen, items=items, exclude=exclude)
        kk = top.shape[1]
        return pd.DataFrame(
            {
                "user": np.repeat(np.array(user_list, dtype=object), kk),
                "item": self.vocabs.item.ids[top.reshape(-1)],
                "rank": np.tile(np.arange(1, kk + 1), len(user_list)),
                "score": scores.reshape(-1).astype(np.float64),
            }
        ).astype({"user": "string", "item": "string"})

    def item_numbers_of(self, ids: Iterable[str] | None) -> np.ndarray | None:
        """Numbers of the known ids among ``ids`` (unknown ones ignored); None stays None."""
        if ids is None:
            return None
        n = self.vocabs.item.numbers(list(map(str, ids)), missing="none")
        return np.unique(n[n >= 0])

    def _topk(
        self, nums: np.ndarray, k: int, *, exclude_seen: bool = True,
        items: Iterable[str] | None = None, exclude: Iterable[str] | None = None,
        item_numbers: np.ndarray | None = None, exclude_numbers: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k scores and item numbers for user numbers (ids or precomputed numbers for candidates/exclusions)."""
        ex_extra = exclude_numbers if exclude_numbers is not None else self.item_numbers_of(exclude)
        if ex_extra is None:
            ex_extra = np.empty(0, dtype=np.int64)
        c = item_numbers if item_numbers is not None else self.item_numbers_of(items)
        cand = None if c is None else torch.from_numpy(c)
        excl = {}
        for r, u in enumerate(nums.tolist()):
            parts = [ex_extra]
            if exclude_seen:
                parts.append(self._seen(u)[0])
            excl[r] = np.concatenate(parts)
        with torch.no_grad():
            s, t = topk_scores(self._users_t[torch.from_numpy(nums)], self._items_t, k, excl, cand)
        s, t = s.numpy(), t.numpy()
        # never return excluded items, even when fewer than k candidates are left
        valid = np.isfinite(s).all(0)
        return s[:, valid], t[:, valid]

    def recommend_new_user(self, text: str = "", history: Sequence[str] = (), k: int = 10) -> pd.DataFrame:
        """Recommendations for a user the model has never seen, from behaviour text and/or items.

        The text goes through the BERT encoder and the model's text tower (without
        text, the history's titles, newest first, are the behaviour text, as for a
        known user); the history items' structural vectors are averaged into a
        structural vector; the user gate fuses the two, as for a known user; the
        history (oldest first) also gives the recent-interest part. Unknown history
        items are ignored.

        Returns:
            DataFrame ``item, rank, score``.
        """
        self._check()
        from kgrec.encoders.behaviour import behaviour_text
        from kgrec.encoders.graph import GraphLayout
        from kgrec.encoders.text import TextEncoder
        from kgrec.fusion.model import FusedModel

        known = [self.vocabs.item.number(str(i), missing="none") for i in history]
        nums = np.array([n for n in known if n is not None], dtype=np.int64)
        if not text.strip() and len(nums) == 0:
            raise KgrecError("a new user needs behaviour text or at least one known item to be recommended anything")
        if not text.strip() and len(nums):
            titles = (self._titles.get(self.vocabs.item.id(int(n))) for n in nums[::-1])
            text = behaviour_text([t for t in titles if t])
        enc = TextEncoder(self.config.text)
        model = FusedModel(GraphLayout(self.vocabs.sizes()), self.config.model, enc.dim)
        model.load_state_dict(self.state_dict)
        model.eval()
        with torch.no_grad():
            t = model.text_tower(torch.from_numpy(enc.encode([text], progress=False))) if self.config.model.use_text else torch.zeros(1, self.config.model.dim)
            if text.strip() == "":
                t = torch.zeros_like(t)
            s = torch.from_numpy(self.arrays["item_struct"][nums].mean(0, keepdims=True)) if len(nums) else torch.zeros_like(t)
            g = model._gate(model.user_gate, s, t)
            f = g * s + (1 - g) * t
            if model.recent is not None and len(nums):
                last = torch.from_numpy(nums[::-1][: model.recent.window].copy()).unsqueeze(0)
                f = f + model.recent(self._items_t, last, torch.ones_like(last, dtype=torch.bool))
            scores, top = topk_scores(f, self._items_t, k, {0: nums})
        return pd.DataFrame(
            {"item": self.vocabs.item.ids[top[0].numpy()], "rank": np.arange(1, top.shape[1] + 1), "score": scores[0].numpy().astype(np.float64)}
        ).astype({"item": "string"})

    def score(self, user: str, item: str) -> float:
        """The model's score of one (user, item) pair."""
        u, i = self.user_number(user), self.item_number(item)
        return float(self.arrays["users"][u] @ self.arrays["items"][i])

    def rank(self, user: str, item: str) -> int:
        """Rank (from 1) of ``item`` among the items the user has not interacted with."""
        u, i = self.user_number(user), self.item_number(item)
        s = self.arrays["items"] @ self.arrays["users"][u]
        seen = self._seen(u)[0]
        mask = np.ones(len(s), dtype=bool)
        mask[seen] = False
        mask[i] = True
        # ties broken by item number, as torch.topk does for equal values in practice
        return int((s[mask] > s[i]).sum() + 1)

    def attribution(self, user: str, item: str) -> dict[str, float]:
        """The score split into a ``structure`` and a ``text`` part (they add up to it)."""
        u, i = self.user_number(user), self.item_number(item)
        if len(self.arrays["user_struct"]) == 0:
            raise KgrecError("this recommender was built from vectors alone; attributions and explanations need a trained model")
        a = {k: torch.from_numpy(v) for k, v in self.arrays.items() if k != "nodes"}
        st, tx = attribution(a["user_struct"][u], a["user_text"][u], a["user_gate"][u],
                             a["item_struct"][i], a["item_text"][i], a["item_gate"][i],
                             a["user_recent_struct"][u], a["user_recent_text"][u])
        return {"structure": st, "text": tx}

    def explain(self, user: str, item: str, store: GraphStore | None = None, *, top: int = 3, k: int = 10) -> Explanation:
        """Why ``item`` is (or is not) recommended to ``user``: scored paths and sentences.

        Args:
            store: the store holding the graph (default: the data the model was fitted on).
            top: number of paths to return.
            k: list length for the "why not" part (rank, gap to the k-th item).
        """
        from kgrec.fusion.explain import explain

        return explain(self, store, str(user), str(item), top=top, k=k)

    def embeddings(self, kind: str = "item", part: str = "fused") -> pd.DataFrame:
        """Vectors as a DataFrame (``id`` column + ``d0..dN``).

        Args:
            kind: ``user`` or ``item``.
            part: ``fused``, ``struct`` or ``text``.
        """
        self._check()
        if kind not in {"user", "item"}:
            raise ValueError(f"kind={kind!r}: expected 'user' or 'item'")
        name = {"fused": f"{kind}s", "struct": f"{kind}_struct", "text": f"{kind}_text"}.get(part)
        if name is None:
            raise ValueError(f"part={part!r}: expected 'fused', 'struct' or 'text'")
        arr = self.arrays[name]
        df = pd.DataFrame(arr, columns=[f"d{j}" for j in range(arr.shape[1])])
        df.insert(0, "id", self.vocabs.of(kind).ids)
        return df

    # ------------------------------------------------------------------ persistence
    def check_store(self, store: GraphStore) -> None:
        """Refuse a store whose data differ from the training data."""
        fp = store.fingerprint()
        if fp != self.data_fingerprint:
            raise ModelMismatchError(
                f"the model {self.model_version} was trained on data {self.data_fingerprint[:12]}, but the store at "
                f"{store.location} holds data {fp[:12]}; retrain with `kgrec train --store {store.location}`"
            )

    def dataset(self, store: GraphStore | None = None) -> Dataset:
        if store is not None:
            return store.dataset()
        ds = getattr(self, "_dataset", None)
        if ds is None:
            raise KgrecError("this model was loaded without its data: pass the store it was trained on")
        return ds

    def save(self, path: str | Path) -> Path:
        """Write the model directory atomically (weights, config, vocabularies, metrics, fingerprint)."""
        self._check()
        path = Path(path)
        with atomic_dir(path) as tmp:
            (tmp / "config.json").write_text(self.config.model_dump_json(indent=2) + "\n")
            (tmp / "vocabs.json").write_text(json.dumps(self.vocabs.to_dict()) + "\n")
            (tmp / "metrics.json").write_text(json.dumps(self.metrics, indent=2, default=float) + "\n")
            (tmp / "model.json").write_text(
                json.dumps(
                    {
                        "format_version": FORMAT_VERSION,
                        "model_version": self.model_version,
                        "data_fingerprint": self.data_fingerprint,
                        "degrees": self.degrees,
                    },
                    indent=2,
                )
                + "\n"
            )
            torch.save(self.state_dict, tmp / "weights.pt")
            np.savez(
                tmp / "vectors.npz",
                pos_users=self.pos_users,
                pos_items=self.pos_items,
                edge_norm=self.edge_norm,
                **self.arrays,
            )
            self.items_table.to_parquet(tmp / "items.parquet", index=False)
        return path

    @classmethod
    def load(cls, path: str | Path, store: GraphStore | None = None) -> Recommender:
        """Load a saved model; with ``store``, check that it holds the training data."""
        path = Path(path)
        if not (path / "model.json").is_file():
            raise KgrecError(f"{path}: not a kgrec model directory (no model.json); train one with `kgrec train`")
        meta = json.loads((path / "model.json").read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise KgrecError(f"{path}: model format {meta.get('format_version')}, this kgrec reads {FORMAT_VERSION}; retrain")
        cfg = RecommenderConfig.model_validate_json((path / "config.json").read_text())
        rec = cls(cfg)
        with np.load(path / "vectors.npz") as z:
            arrays = {k: z[k] for k in _ARRAYS}
            pos_users, pos_items, edge_norm = z["pos_users"], z["pos_items"], z["edge_norm"]
        rec._set_state(
            vocabs=Vocabularies.from_dict(json.loads((path / "vocabs.json").read_text())),
            arrays=arrays,
            pos_users=pos_users,
            pos_items=pos_items,
            edge_norm=edge_norm,
            items=pd.read_parquet(path / "items.parquet").astype(S.ITEMS_SCHEMA),
            degrees=meta["degrees"],
            data_fingerprint=meta["data_fingerprint"],
            metrics=json.loads((path / "metrics.json").read_text()),
            model_version=meta["model_version"],
            state_dict=torch.load(path / "weights.pt", weights_only=True),
        )
        if store is not None:
            rec.check_store(store)
        rec.store = store
        return rec


def _tower_arrays(towers: Any) -> dict[str, np.ndarray]:
    """The saved arrays of a forward pass (recent-interest parts are zeros when the model has none)."""
    out = {}
    for name in _ARRAYS:
        t = getattr(towers, name)
        out[name] = (torch.zeros_like(towers.user_struct) if t is None else t).detach().numpy().astype(np.float32)
    return out


def _vocabs_from_ids(user_ids: Sequence[str], item_ids: Sequence[str]) -> Vocabularies:
    from kgrec.graph.vocab import Vocab

    empty = Vocab("x", [])
    return Vocabularies(
        user=Vocab("user", user_ids), item=Vocab("item", item_ids), category=Vocab("category", []),
        keyword=Vocab("keyword", []), entity=Vocab("entity", []), relation=Vocab("relation", empty.to_list()),
    )


def _connector_degrees(ds: Dataset) -> dict[str, dict[str, int]]:
    """Items per category / keyword / entity (for path specificity)."""
    return {
        "category": ds.item_categories.groupby(S.CATEGORY)[S.ITEM].nunique().astype(int).to_dict(),
        "keyword": ds.item_keywords.groupby(S.KEYWORD)[S.ITEM].nunique().astype(int).to_dict(),
        "entity": ds.triples.groupby(S.ENTITY)[S.ITEM].nunique().astype(int).to_dict(),
    }
