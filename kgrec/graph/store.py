"""The store interface every graph backend implements, and :func:`open_store`.

Public methods validate their input and call backend hooks, so the embedded
store (:mod:`kgrec.graph.embedded`) and Neo4j (:mod:`kgrec.graph.neo4j_store`)
behave the same way. The contract tests in ``tests/test_store_contract.py`` run
the same checks on both.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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
    """What an ingest did: counts after the ingest and whether data changed."""

    counts: dict[str, int]
    fingerprint: str
    changed: bool


class GraphStore(abc.ABC):
    """A heterogeneous user/item/category/keyword/entity graph.

    The whole interface is declared here; ``tests/test_store_contract.py`` runs the
    same cases on every backend. Optional capabilities are class attributes, not
    probed with ``hasattr``: :attr:`supports_write_back` says whether
    :meth:`write_embeddings` and :meth:`write_recommendations` work (on a store
    without it they raise :class:`~kgrec.errors.StoreError`).

    An empty store (nothing ingested yet, or wiped): :meth:`exists` is False,
    :meth:`has_user` / :meth:`has_item` are False, and :meth:`dataset`,
    :meth:`counts`, :meth:`fingerprint` and :meth:`manifest` raise
    :class:`~kgrec.errors.StoreError` saying to run ``kgrec ingest``.
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
