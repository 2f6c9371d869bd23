"""The store interface every graph backend implements, and :func:`open_store`.

Public methods validate their input and call backend hooks, so the embedded
store (:mod:`kgrec.graph.embedded`) and Neo4j (:mod:`kgrec.graph.neo4j_store`)
behave the same way. The contract tests in ``tests/test_store_contract.py`` run
the same checks on both.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import networkx as nx
import numpy as np
import pandas as pd

from kgrec.errors import KgrecError, StoreError, UnknownIdError
from kgrec.graph.paths import KIND_NODES, PATH_KINDS, PathRow, paths_frame
from kgrec.loaders.schema import Dataset


@dataclass(frozen=True)
class IngestReport:
    """What a write (ingest, append, forget_users) did.

    Attributes:
        counts: the store's counts afterwards (:meth:`~kgrec.loaders.schema.Dataset.counts`).
        fingerprint: the store's fingerprint afterwards.
        changed: whether the write changed the data.
        delta: each count afterwards minus before (negative after forgetting); all 0 when nothing changed.
    """

    counts: dict[str, int]
    fingerprint: str
    changed: bool
    delta: dict[str, int] = field(default_factory=dict)


class GraphStore(abc.ABC):
    """A heterogeneous user/item/category/keyword/entity graph.

    The whole interface is declared here; ``tests/test_store_contract.py`` runs the
    same cases on every backend. Optional capabilities are class attributes, not
    probed with ``hasattr``: :attr:`supports_write_back` says whether
    :meth:`write_embeddings` and :meth:`write_recommendations` work (on a store
    without it they raise :class:`~kgrec.errors.StoreError`).

    An empty store (nothing ingested yet, or wiped): :meth:`exists` is False,
    :meth:`has_user` / :meth:`has_item` are False, :meth:`lineage`, :meth:`item_ids` and
    :meth:`user_history` are empty, and :meth:`dataset`, :meth:`counts`,
    :meth:`fingerprint` and :meth:`manifest` raise :class:`~kgrec.errors.StoreError`
    saying to run ``kgrec ingest``.

    A live store: :meth:`append` adds batches of rows (validated whole, applied whole or
    not at all, idempotent, safe with several writers), :meth:`forget_users` removes
    users, and reads answer from what the store holds *now*, also when another process
    wrote it: a store object never keeps answering from a snapshot that was replaced.
    """

    #: where the store lives: a directory path or a bolt:// / neo4j:// URI
    location: str

    #: whether :meth:`write_embeddings` and :meth:`write_recommendations` are available
    supports_write_back: ClassVar[bool] = False

    # ---- writing
    @abc.abstractmethod
    def ingest(self, dataset: Dataset, progress: bool = False) -> IngestReport:
        """Add ``dataset`` to the store (idempotent: ingesting twice changes nothing).

        Args:
            dataset: canonical tables; merged with what the store already holds.
            progress: show a progress bar (``tqdm``) while writing.

        Returns:
            The counts and fingerprint of everything in the store afterwards, and
            whether the ingest changed anything.
        """

    @abc.abstractmethod
    def append(self, data: Dataset, *, allow_unknown_items: bool = False, progress: bool = False) -> IngestReport:
        """Add a batch of rows (interactions; optionally items, tags, triples, users) to what the store holds.

        The batch is merged as :meth:`ingest` merges (an interaction already held is replaced by a later one;
        an item listed again takes the new title; a user listed again gets the new attributes), after the same
        validation (:func:`~kgrec.graph.batch.prepare_batch`). Rows may name items the store holds without
        listing them (build a batch with :func:`kgrec.loaders.batch_from_frames`). A row naming an item that
        neither the store nor the batch has is an error naming the row, the field ``item`` and the id, unless
        ``allow_unknown_items``: then the item is created with its id as title.

        A malformed or refused batch changes nothing; appending the same batch twice changes nothing the second
        time (``changed=False``); two writers appending at once both get their rows in, and the fingerprint and
        :meth:`lineage` describe the data afterwards. An empty store takes a batch as an ingest.

        Raises:
            DataValidationError: the batch is malformed or names an unknown item; nothing was written.
        """

    @abc.abstractmethod
    def forget_users(self, users: Sequence[str]) -> IngestReport:
        """Remove users: their interactions, tags, users-file row and attribute links, and the user node (on Neo4j
        with its relationships: RECOMMENDED, and so its vector-index entry; and other users' RECOMMENDED
        relationships whose explanation path cites them). Item keywords only their tags gave go too, and attribute
        and keyword nodes nobody links to any more (:func:`~kgrec.graph.batch.without_users`).

        No copy of their data stays in the store (every old embedded snapshot is deleted), and :meth:`lineage`
        restarts from the new fingerprint: the old ones were computed over their data.

        Raises:
            UnknownIdError: naming users the store does not hold; nothing was removed.
        """

    @abc.abstractmethod
    def wipe(self) -> None:
        """Delete the store's data (everything :meth:`ingest` wrote); the store is empty afterwards.

        Models kept under :meth:`model_root` are left alone.
        """

    def check_writable(self) -> None:  # noqa: B027 - a server store has nothing local to check
        """Fail before any work when the store cannot take writes (a read-only or forbidden folder).

        Raises:
            KgrecError: naming the folder and what to do.
        """

    def write_embeddings(
        self, kind: str, ids: Sequence[str], vectors: np.ndarray, model_version: str, progress: bool = False
    ) -> str:
        """Store fused vectors on the ``kind`` (``user``/``item``) nodes with a vector index; returns its name.

        Raises:
            StoreError: the store has no write-back (:attr:`supports_write_back` is False).
        """
        raise self._no_write_back()

    def write_recommendations(self, recs: pd.DataFrame, batch_users: int = 500) -> int:
        """Replace users' stored recommendations with ``recs``; returns the rows written.

        Raises:
            StoreError: the store has no write-back (:attr:`supports_write_back` is False).
        """
        raise self._no_write_back()

    def _no_write_back(self) -> StoreError:
        return StoreError(
            f"write-back (vectors and RECOMMENDED relationships) needs a Neo4j store; {type(self).__name__} at "
            f"{self.location} has none. Open one with --store bolt://127.0.0.1:7687 (or kgrec.open_store('bolt://…'))"
        )

    # ---- reading
    @abc.abstractmethod
    def exists(self) -> bool:
        """Whether the store holds ingested data."""

    @abc.abstractmethod
    def manifest(self) -> dict[str, Any]:
        """What the last ingest recorded: at least ``name``, ``fingerprint`` and ``counts``.

        Raises:
            StoreError: the store is empty.
        """

    @abc.abstractmethod
    def dataset(self) -> Dataset:
        """All data as canonical tables (equal for equal ingests, on every backend)."""

    @abc.abstractmethod
    def counts(self) -> dict[str, int]:
        """Node and relationship counts."""

    @abc.abstractmethod
    def fingerprint(self) -> str:
        """The fingerprint of :meth:`dataset` (changes whenever the data change)."""

    @abc.abstractmethod
    def lineage(self) -> list[str]:
        """The fingerprints the store's data have had, oldest first; the last is :meth:`fingerprint`.

        Every ingest or append that changes the data adds its new fingerprint; :meth:`forget_users` resets it to
        the new fingerprint alone; :meth:`wipe` empties it (``[]`` on an empty store). A model trained on any
        fingerprint in it was trained on a past state of these data.
        """

    @abc.abstractmethod
    def user_history(self, user: str) -> pd.DataFrame:
        """``user``'s interactions now in the store, as the canonical interactions table (``user, item, timestamp,
        rating, text, weight``), oldest first, ties in item-id order, index ``0..n-1``.

        A user without interactions (brand new, unknown, or only in a users file) gets an empty table, never
        :class:`~kgrec.errors.UnknownIdError`. Meant to be called per request: the embedded store answers from an
        index built once per snapshot, Neo4j with one query.
        """

    @abc.abstractmethod
    def item_ids(self) -> list[str]:
        """Every item id the store holds, sorted (``[]`` on an empty store); e.g. to find items new since training."""

    @abc.abstractmethod
    def has_user(self, user: str) -> bool:
        """Whether the store holds ``user`` (False on an empty store)."""

    @abc.abstractmethod
    def has_item(self, item: str) -> bool:
        """Whether the store holds ``item`` (False on an empty store)."""

    @abc.abstractmethod
    def _paths(self, user: str, item: str, anchors: list[str] | None, kinds: Sequence[str]) -> list[PathRow]: ...

    def path_rows(
        self,
        user: str,
        item: str,
        anchors: Iterable[str] | None = None,
        kinds: Sequence[str] = PATH_KINDS,
        *,
        check_ids: bool = True,
    ) -> list[PathRow]:
        """Candidate paths as ``(kind, anchor, via, rel_a, rel_b)`` tuples in canonical order.

        ``check_ids=False`` skips the existence checks (for callers that already
        know both ids are in the store, e.g. a model checked against it).
        """
        if check_ids:
            if not self.has_user(user):
                raise UnknownIdError("user", user, f"not in the store at {self.location}")
            if not self.has_item(item):
                raise UnknownIdError("item", item, f"not in the store at {self.location}")
        bad = [k for k in kinds if k not in KIND_NODES]
        if bad:
            raise ValueError(f"unknown path kind {bad[0]!r}; expected some of {list(PATH_KINDS)}")
        return self._paths(str(user), str(item), None if anchors is None else [str(a) for a in anchors], list(kinds))

    def paths(
        self, user: str, item: str, anchors: Iterable[str] | None = None, kinds: Sequence[str] = PATH_KINDS
    ) -> pd.DataFrame:
        """Candidate explanation paths (at most 3 hops) from ``user`` to ``item``.

        Returns a frame with :data:`~kgrec.graph.paths.PATH_COLUMNS` in a canonical
        order; see :mod:`kgrec.graph.paths` for the shapes.

        Raises:
            UnknownIdError: for a user or item the store does not hold.
        """
        return paths_frame(self.path_rows(user, item, anchors, kinds))

    def subgraph(self, user: str, hops: int = 2, max_nodes: int = 2000) -> nx.Graph:
        """The neighbourhood of ``user`` up to ``hops`` hops as a networkx graph.

        Nodes are keyed ``"<type>:<id>"`` with attributes ``type``, ``id``, ``name``.
        """
        from kgrec.graph.networkx_view import neighbourhood

        if not self.has_user(user):
            raise UnknownIdError("user", user, f"not in the store at {self.location}")
        return neighbourhood(self.dataset(), user, hops, max_nodes)

    def model_root(self) -> Path | None:
        """Where models trained on this store are kept by default (None: must be given)."""
        return None

    def cypher(self, query: str, **params: Any) -> pd.DataFrame:
        """Run a read-only Cypher query (Neo4j stores only)."""
        raise StoreError(
            f"Cypher queries need a Neo4j store; {type(self).__name__} has none. Open one with "
            "kgrec.open_store('bolt://127.0.0.1:7687') (start the local server with `bash scripts/neo4j.sh start`)"
        )

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def __enter__(self) -> GraphStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def is_neo4j_uri(location: str) -> bool:
    return str(location).split("://", 1)[0] in {
        "bolt",
        "bolt+s",
        "bolt+ssc",
        "neo4j",
        "neo4j+s",
        "neo4j+ssc",
    } and "://" in str(location)


def open_store(location: str | Path, **neo4j_options: Any) -> GraphStore:
    """Open the store at ``location``: the one way the CLI, the web app and scripts open one.

    A ``bolt://`` or ``neo4j://`` URI opens Neo4j (options: ``user``,
    ``database``, each None for the default; the password comes from
    ``NEO4J_PASSWORD``); anything else is the directory of an embedded store
    (created on first ingest), for which the Neo4j options are ignored.
    """
    loc = str(location)
    if is_neo4j_uri(loc):
        from kgrec.graph.neo4j_store import Neo4jStore

        return Neo4jStore(loc, **{k: v for k, v in neo4j_options.items() if v is not None})
    from kgrec.graph.embedded import EmbeddedStore

    return EmbeddedStore(loc)


def model_dir(store: GraphStore, model: str | Path | None = None) -> Path:
    """The model directory to use with ``store``: ``model`` when given, else the store's default model.

    The default is ``<model_root>/default``, where ``kgrec train`` saves (inside an
    embedded store; under ``~/.cache/kgrec/models/`` for Neo4j). Shared by every
    CLI command and the web app.

    Raises:
        KgrecError: no ``model`` given and the store keeps no models.
    """
    if model is not None:
        return Path(model).expanduser()
    root = store.model_root()
    if root is None:
        raise KgrecError(f"the store at {store.location} keeps no models; pass --model DIR")
    return root / "default"
