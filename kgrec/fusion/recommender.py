"""The public model: ``Recommender(config).fit(data).recommend(users, k)``.

A thin facade over :class:`kgrec.fusion.state.ModelState`: it trains, turns ids into numbers
(once, here), and hands numbers to the state, the explanation module and the cold-start path.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd

from kgrec.encoders.text import TextEncoder
from kgrec.errors import ConfigError, KgrecError, ModelMismatchError
from kgrec.fusion.coldstart import NewUsers
from kgrec.fusion.config import RecommenderConfig
from kgrec.fusion.explain import PathFinder, explain, store_path_finder
from kgrec.fusion.explanation import Explanation
from kgrec.fusion.frames import topk_frame
from kgrec.fusion.ids import id_list
from kgrec.fusion.live import LiveModel
from kgrec.fusion.reader import StateReader
from kgrec.fusion.state import FORMAT_VERSION, ModelState
from kgrec.fusion.vectors import state_from_vectors
from kgrec.loaders.schema import Dataset

if TYPE_CHECKING:
    from kgrec.graph.paths import PathIndex
    from kgrec.graph.store import GraphStore

log = logging.getLogger(__name__)

__all__ = ["FORMAT_VERSION", "Recommender", "id_list"]
T = TypeVar("T")


class Recommender(StateReader):
    """A knowledge-graph hybrid recommender: GNN + BERT vectors fused per user and item.

    Example::

        ds = kgrec.loaders.movielens("data")
        rec = Recommender().fit(ds)
        rec.recommend(["1", "2"], k=10)       # DataFrame user, item, title, rank, score
        rec.explain("1", "318")               # Explanation (paths, sentences, attribution)
    """

    def __init__(self, config: RecommenderConfig | None = None, *, state: ModelState | None = None) -> None:
        """``state``: a trained :class:`ModelState` to wrap (what :meth:`fit`, :meth:`load` and
        :meth:`from_vectors` build); its config wins over ``config``."""
        self.config = state.config if state is not None else config or RecommenderConfig()
        self._state = state
        #: the store explanations are looked up in by default (set by fit(store) and load(path, store))
        self.store: GraphStore | None = None
        self._dataset: Dataset | None = None
        # built on first use, kept for the life of the object
        self._path_index: PathIndex | None = None
        self._encoder: TextEncoder | None = None  # the one fit() used, handed to the new-user scorer
        self._new_users: NewUsers | None = None
        self._categories: tuple[int, np.ndarray] | None = None  # (item count, category matrix) for diversity_by
        #: fresh answers on a store that took appends since training (kgrec.fusion.live); set with a store
        self.live: LiveModel | None = None
        #: the folder :meth:`load` read (read again when it is rewritten for the store's new data)
        self.source: Path | None = None

    # ------------------------------------------------------------------ state
    @property
    def state(self) -> ModelState:
        """The trained :class:`ModelState` (raises when not trained); with a store that took appends since
        training, the live state (:mod:`kgrec.fusion.live`) as of the last refresh."""
        if self._state is None:
            raise KgrecError("the recommender is not trained: call fit() or Recommender.load() first")
        return self._state if self.live is None else self.live.state

    def fresh(self, users: Iterable[str] = ()) -> ModelState:
        """The state with ``users``' rows up to date with the store (one history read each; nothing to do without a
        store or when the store has not moved since training). A model loaded from a folder that was rewritten since
        (``kgrec forget``, ``kgrec train``) for the store's new data is read again first."""
        if self.live is None:
            return self.state
        users = list(users)
        try:
            return self.live.refresh_users(users)
        except ModelMismatchError:
            if not self._reload():
                raise
            return self.fresh(users)

    def live_key(self, user: str) -> str:
        """A string that changes whenever ``user``'s answers may change (cache keys; see :meth:`LiveModel.key`)."""
        if self.live is None:
            return self.state.model_version
        try:
            return self.live.key(user)
        except ModelMismatchError:
            if not self._reload():
                raise
            return self.live_key(user)

    def _reload(self) -> bool:
        """Read the model folder again when it holds another model version than this object's (True when it did)."""
        if self.source is None or self._state is None:
            return False
        try:
            on_disk = json.loads((self.source / "model.json").read_text()).get("model_version")
        except (OSError, ValueError):
            return False
        if on_disk == self._state.model_version:
            return False
        log.info(
            "%s: the model folder holds %s now (was %s); reading it again",
            self.source,
            on_disk,
            self._state.model_version,
        )
        self._state = ModelState.load(self.source)
        self.config = self._state.config
        self._path_index = self._new_users = None
        self.attach(self.store)
        return True

    def attach(self, store: GraphStore | None) -> None:
        """Answer from ``store`` from now on (checked: it must hold the training data or descend from it by appends).

        Raises:
            ModelMismatchError: the store holds other data.
        """
        self.store = store
        self._dataset = None
        self.live = None
        if store is not None and self._state is not None:
            live = LiveModel(self._state, store, self._encoder)
            live.sync()
            self.live = live

    # ------------------------------------------------------------------ fitting
    def fit(self, data: Dataset | GraphStore, *, progress: bool = True) -> Recommender:
        """Train on a dataset or on everything in a store."""
        from kgrec.fusion.fitting import fit_state

        ds = data if isinstance(data, Dataset) else data.dataset()
        self._path_index = self._new_users = None  # caches of a previous fit
        self._state, encoder = fit_state(ds, self.config, progress)
        self.config = self._state.config  # what the model was trained with (e.g. the fine-tuned encoder's folder)
        self._encoder = encoder
        self.attach(None if isinstance(data, Dataset) else data)
        self._dataset = ds
        return self

    def warm_start(self, data: Dataset | GraphStore, *, progress: bool = True) -> Recommender:
        """Continue this trained model on ``data`` (its data plus what was appended since: new users and items get
        rows, the others keep theirs; a short schedule, :func:`kgrec.fusion.fitting.warm_state`)."""
        from kgrec.fusion.fitting import warm_state

        if self._state is None:
            raise KgrecError("warm_start needs a trained model: fit() or Recommender.load() first")
        ds = data if isinstance(data, Dataset) else data.dataset()
        self._path_index = self._new_users = None
        self._state, self._encoder = warm_state(ds, self._state, progress)
        self.config = self._state.config
        self.attach(None if isinstance(data, Dataset) else data)
        self._dataset = ds
        return self

    @classmethod
    def from_vectors(
        cls,
        user_ids: Sequence[str],
        user_vectors: np.ndarray,
        item_ids: Sequence[str],
        item_vectors: np.ndarray,
        history: pd.DataFrame | None = None,
        titles: pd.DataFrame | None = None,
        model_version: str = "vectors",
        history_index: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> Recommender:
        """A ranking-only recommender over given fused vectors (e.g. computed elsewhere).

        It recommends and exports like a trained model; explanations and text need a
        trained model. Seen items to exclude come as ``history`` (``user, item`` ids) or,
        for large data, as ``history_index``: row positions into ``user_ids`` and ``item_ids``.
        """
        state = state_from_vectors(
            RecommenderConfig(),
            user_ids,
            user_vectors,
            item_ids,
            item_vectors,
            history,
            titles,
            model_version,
            history_index,
        )
        return cls(state=state)

    # ------------------------------------------------------------------ ranking
    def recommend(
        self,
        users: str | int | Sequence[str | int],
        k: int = 10,
        *,
        exclude_seen: bool = True,
        items: Iterable[str] | None = None,
        exclude: Iterable[str] | None = None,
        diversity: float = 0.0,
        long_tail: float = 0.0,
        unknown: str = "error",
        diversity_by: str = "vectors",
    ) -> pd.DataFrame:
        """Top-``k`` items for one user or many.

        Args:
            users: a user id or a list of them. Ids are strings; an int is taken as ``str(n)``
                (``recommend(1)`` is ``recommend("1")``); any other type is a ``TypeError``.
            k: list length (>= 1); a user gets fewer rows only when fewer items are left for them.
            exclude_seen: leave out items the user already interacted with.
            items: restrict candidates to these item ids (unknown ones are ignored).
            exclude: item ids never to recommend.
            diversity: MMR weight λ in [0, 1] (0: off; see :mod:`kgrec.fusion.rerank`).
            long_tail: popularity penalty β >= 0 (0: off).
            diversity_by: what "alike" means for ``diversity``: ``"vectors"`` (cosine of the fused item vectors),
                ``"categories"`` (Jaccard of the items' categories, e.g. genres; read from the model's store) or
                ``"both"`` (their mean).
            unknown: users the model does not know: ``"error"`` (an ``UnknownIdError``) or ``"skip"``
                (left out of the frame, as ``kgrec export --unknown-users skip``).

        Returns:
            DataFrame ``user, item, title, rank, score`` (rank from 1), best first per user; with the re-ranker
            on, ``score`` stays the model's score, the order is the re-ranker's, and a boolean column
            ``promoted`` says which items it moved up.

        Raises:
            UnknownIdError: for a user the model does not know (with ``unknown="error"``).
            ConfigError: ``diversity`` or ``long_tail`` out of range, ``unknown`` not error/skip, ``diversity_by``
                not one of vectors/categories/both.
            TypeError: an id that is neither a string nor an int.
        """
        from kgrec.fusion.rerank import check_by, check_options, reranked_topk

        if k < 1:
            raise ValueError(f"k={k}: expected a positive number of recommendations")
        if unknown not in {"error", "skip"}:
            raise ConfigError(f"unknown={unknown!r}: expected 'error' or 'skip'")
        diversity, long_tail = check_options(diversity, long_tail)
        by = check_by(diversity_by)
        user_list = id_list(users, "users")
        st = self.fresh(user_list)
        if unknown == "skip":
            user_list = [u for u in user_list if u in st.vocabs.user]
        nums = np.array([st.user_number(u) for u in user_list], dtype=np.int64)
        on = diversity > 0 or long_tail > 0
        kw: dict[str, Any] = {
            "exclude_seen": exclude_seen,
            "candidates": st.known_items(items),
            "exclude": st.known_items(exclude),
        }
        if on and by != "vectors" and diversity > 0:
            kw.update(by=by, categories=self.category_matrix(st))
        rr = reranked_topk(st, nums, k, diversity=diversity, long_tail=long_tail, **kw) if on else None
        top = rr.top if rr is not None else st.topk(nums, k, **kw)
        return topk_frame(st, user_list, top, rr.promoted if rr is not None else None)

    def category_matrix(self, state: ModelState | None = None) -> np.ndarray:
        """The items' category matrix (rows by ``state``'s item numbers; :func:`kgrec.fusion.rerank.category_matrix`)
        for ``diversity_by="categories"|"both"``: read from the data once, again when the store has new items."""
        from kgrec.fusion.rerank import category_matrix

        st = state if state is not None else self.state
        n = len(st.vocabs.item)
        if self._categories is None or self._categories[0] != n:
            ds = self.store.dataset() if self.store is not None and self._categories is not None else self.dataset()
            self._categories = (n, category_matrix(ds.item_categories, st.vocabs))
        return self._categories[1]

    # ------------------------------------------------------------------ explanations
    def path_finder(self, store: GraphStore | None = None) -> PathFinder:
        """Where candidate paths come from: ``store``, else the fitted-on store, else an in-memory
        index of the training data (built once)."""
        from kgrec.graph.paths import PathIndex

        store = store if store is not None else self.store
        if store is not None:
            return store_path_finder(store)
        if self._path_index is None:
            self._path_index = PathIndex(self.dataset())
        return self._path_index.paths

    def explain(
        self,
        user: str,
        item: str,
        store: GraphStore | None = None,
        *,
        top: int = 3,
        k: int = 10,
        lang: str | None = None,
        listed: bool = False,
    ) -> Explanation:
        """Why ``item`` is (or is not) recommended to ``user``: scored paths and sentences.

        The ids become numbers here, once each, and the history is fetched once.

        Args:
            store: the store holding the graph (default: the data the model was fitted on).
            top: number of paths to return.
            k: list length for the "why not" part (rank, gap to the k-th item).
            lang: language of the sentences and messages (``kgrec.messages.LANGUAGES``; default English).
            listed: ``item`` is in a list given to the user (e.g. a restricted or re-ranked one): explained as a
                recommendation, never with the "why not" wording, whatever its rank by score.
        """
        user, item = str(user), str(item)
        st = self.fresh([user])
        u, i = st.user_number(user), st.item_number(item)
        hist_items, hist_w = st.history(u)
        find = self.path_finder(store)
        return explain(st, find, user, item, u, i, hist_items, hist_w, top=top, k=k, lang=lang, listed=listed)

    def explain_many(
        self,
        user: str,
        items: Sequence[str],
        store: GraphStore | None = None,
        *,
        top: int = 3,
        k: int = 10,
        lang: str | None = None,
        listed: bool = False,
    ) -> list[Explanation]:
        """:meth:`explain` of several items for one user (a list's explanations): the user is refreshed, turned into a
        number and their history fetched once for all of them; each item's answer equals :meth:`explain`'s
        (``listed``: as there)."""
        user = str(user)
        st = self.fresh([user])
        u = st.user_number(user)
        nums = [st.item_number(str(i)) for i in items]
        hist_items, hist_w = st.history(u)
        find = self.path_finder(store)
        return [
            explain(st, find, user, str(item), u, i, hist_items, hist_w, top=top, k=k, lang=lang, listed=listed)
            for item, i in zip(items, nums, strict=True)
        ]

    # ------------------------------------------------------------------ persistence
    def check_store(self, store: GraphStore) -> None:
        """Refuse a store whose data are neither the training data nor descend from them by appends."""
        LiveModel(self.state if self._state is None else self._state, store).sync()

    def dataset(self, store: GraphStore | None = None) -> Dataset:
        """The training data: from ``store``, else the fitted-on data, else the store given to :meth:`load`."""
        if store is not None:
            return store.dataset()
        if self._dataset is None and self.store is not None:
            self._dataset = self.store.dataset()
        if self._dataset is None:
            raise KgrecError(
                "this model was loaded without its data: pass the store it was trained on "
                "(Recommender.load(path, store=store) or rec.dataset(store))"
            )
        return self._dataset

    def __repr__(self) -> str:
        if self._state is None:
            return f"Recommender(untrained, dim={self.config.model.dim})"
        st = self._state
        where = f", store={self.store.location!r}" if self.store is not None else ""
        return (
            f"Recommender(model_version={st.model_version!r}, users={len(st.vocabs.user)}, "
            f"items={len(st.vocabs.item)}, dim={st.arrays['items'].shape[1]}{where})"
        )

    def save(self, path: str | Path) -> Path:
        """Write the model directory atomically (weights, config, vocabularies, metrics, fingerprint)."""
        return self.state.save(path)

    @classmethod
    def load(cls, path: str | Path, store: GraphStore | None = None) -> Recommender:
        """Load a saved model; with ``store``, check that it holds the training data."""
        rec = cls(state=ModelState.load(path))
        rec.source = Path(path)
        rec.attach(store)
        return rec
