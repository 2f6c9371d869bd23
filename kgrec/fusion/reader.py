"""Read-only views of a trained model by id: what :class:`~kgrec.fusion.recommender.Recommender` inherits.

:class:`StateReader` turns ids into numbers (once, here) and reads the answer off the state: the state's fields,
lookups, a pair's score, rank and attribution, similar items, the vectors as frames. Subclasses provide
:attr:`StateReader.state` (the trained, possibly live, :class:`~kgrec.fusion.state.ModelState`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np
import pandas as pd
import torch

from kgrec.encoders.text import TextEncoder
from kgrec.fusion.coldstart import NewUsers
from kgrec.fusion.frames import label_frame, similar_frame
from kgrec.fusion.ids import id_list
from kgrec.fusion.state import ModelState
from kgrec.graph.hetero import Vocabularies
from kgrec.loaders.schema import Dataset

if TYPE_CHECKING:
    from kgrec.graph.store import GraphStore

__all__ = ["StateReader"]
T = TypeVar("T")


class _FromState(Generic[T]):
    """A read-only attribute of the facade: the same-named field of its :class:`ModelState`."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: StateReader | None, objtype: type | None = None) -> T:
        return getattr(self.state_of(obj), self.name)

    @staticmethod
    def state_of(obj: StateReader | None) -> ModelState:
        if obj is None:
            raise AttributeError("a field of a trained Recommender")
        return obj.state


class StateReader:
    """The id-level read API of a trained model (the state comes from the subclass)."""

    #: the cold-start scorer (built on first use) and the text encoder training used, if any (set by fit)
    _new_users: NewUsers | None = None
    _encoder: TextEncoder | None = None

    @property
    def state(self) -> ModelState:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def dataset(self, store: GraphStore | None = None) -> Dataset:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def newcomers(self) -> NewUsers:
        """The scorer of users the model has never seen (the encoder and rebuilt torch model built once)."""
        if self._new_users is None:
            self._new_users = NewUsers(self.state, self._encoder)
        return self._new_users

    def recommend_new_user(
        self,
        text: str = "",
        history: Sequence[str] = (),
        k: int = 10,
        *,
        attributes: Mapping[str, object] | None = None,
        user: str | None = None,
    ) -> pd.DataFrame:
        """Recommendations for a user the model has never seen, from behaviour text, items and/or attributes.

        The text goes through the BERT encoder and the model's text tower (without
        text, the history's titles, newest first, are the behaviour text, as for a
        known user); the history items' structural vectors are averaged into a
        structural vector; the user gate fuses the two, as for a known user; the
        history (oldest first) also gives the recent-interest part. Unknown history
        items are ignored. ``attributes`` (``{"occupation": "programmer", "age": 30}``, the users file's
        columns) give a structural vector too: the mean of those attribute nodes' vectors (a number
        goes into its band; values the model has never seen are ignored), averaged with the history's.
        The encoder and the rebuilt torch model are built once per object.

        Args:
            user: a label for the ``user`` column (default: missing, ``<NA>``).

        Returns:
            DataFrame ``user, item, title, rank, score``: the columns of :meth:`recommend`.
        """
        return label_frame(self.state, self.newcomers().recommend(text, history, k, attributes=attributes), user)

    def explain_new_user(
        self, item: str, attributes: Mapping[str, object], store: GraphStore | None = None, *, lang: str | None = None
    ) -> pd.DataFrame:
        """Why ``item`` suits a user the model has never seen, given their ``attributes`` (as for
        :meth:`recommend_new_user`): per known attribute value, the number of users holding it who chose the item,
        and the sentence of an ``attribute`` path ("Recommended because people who share your occupation,
        programmer, …"), most users first.

        Args:
            store: where the users' attributes and interactions are read (default: the fitted-on data).
            lang: language of the sentences (``kgrec.messages``; default English).

        Returns:
            DataFrame ``attribute, value, users, sentence`` (no rows when no shared value leads to the item).

        Raises:
            UnknownIdError: for an item the model does not know.
        """
        from kgrec.fusion.coldstart import attribute_reasons

        self.state.item_number(item)
        nums = self.newcomers().attribute_numbers(attributes)
        return attribute_reasons(self.state, self.dataset(store), str(item), nums, lang)

    # the state's fields, read through (``rec.vocabs`` is ``rec.state.vocabs``)
    vocabs = _FromState[Vocabularies]()  # Vocabularies (id <-> number) of the model.
    arrays = _FromState[dict[str, np.ndarray]]()  # Saved vectors by name (``kgrec.fusion.state.ARRAYS``).
    pos_users = _FromState[np.ndarray]()  # User number of every training interaction.
    pos_items = _FromState[np.ndarray]()  # Item number of every training interaction.
    edge_norm = _FromState[np.ndarray]()  # Normalised graph weight of every training interaction.
    items_table = _FromState[pd.DataFrame]()  # The items (id, title, description) the model knows.
    degrees = _FromState[dict[str, dict[str, int]]]()  # Items per category / keyword / entity.
    data_fingerprint = _FromState[str]()  # Fingerprint of the training data.
    metrics = _FromState[dict[str, Any]]()  # Training metrics.
    model_version = _FromState[str]()  # Version stamp of this model.
    state_dict = _FromState[dict[str, torch.Tensor]]()  # The torch weights.

    # ------------------------------------------------------------------ lookups (ids -> numbers)
    def user_number(self, user: str) -> int:
        return self.state.user_number(user)

    def item_number(self, item: str) -> int:
        return self.state.item_number(item)

    def title(self, item: str) -> str:
        return self.state.title(item)

    def history(self, user: str) -> tuple[np.ndarray, np.ndarray]:
        """(item numbers, normalised edge weights) of a user's interactions."""
        return self.state.history(self.user_number(user))

    def similar_items(self, item: str | int, k: int = 10) -> pd.DataFrame:
        """The ``k`` items most like ``item``: cosine similarity of the fused item vectors, the item itself left out.

        Returns:
            DataFrame ``similar_to, item, title, rank, score`` (score: the cosine, best first; equal scores
            by the lower item number).

        Raises:
            UnknownIdError: an item the model does not know.
        """
        if k < 1:
            raise ValueError(f"k={k}: expected a positive number of items")
        st = self.state
        (item,) = id_list(item, "item")
        order, cos = st.similar(st.item_number(item), k)
        return similar_frame(st, item, order, cos)

    def score(self, user: str, item: str) -> float:
        """The model's score of one (user, item) pair."""
        return self.state.score(self.user_number(user), self.item_number(item))

    def rank(self, user: str, item: str) -> int:
        """Rank (from 1) of ``item`` among the items the user has not interacted with (its place in
        :meth:`recommend` with a long enough ``k``)."""
        return self.state.rank(self.user_number(user), self.item_number(item))

    def attribution(self, user: str, item: str) -> dict[str, float]:
        """The score split into a ``structure`` and a ``text`` part (they add up to it)."""
        return self.state.attribution(self.user_number(user), self.item_number(item))

    def embeddings(self, kind: str = "item", part: str = "fused") -> pd.DataFrame:
        """Vectors as a DataFrame (``id`` column + ``d0..dN``).

        Args:
            kind: ``user`` or ``item``.
            part: ``fused``, ``struct`` or ``text``.
        """
        return self.state.embeddings(kind, part)
