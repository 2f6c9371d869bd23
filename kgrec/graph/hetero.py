"""The canonical heterogeneous graph of a :class:`~kgrec.loaders.Dataset`.

Node types: ``user, item, category, keyword, entity, attribute``. Edge types (forward
direction; :func:`to_hetero_data` adds the reverse ones as ``rev_*``):

======================================  =====================================
``(user, interacts, item)``             ``edge_time`` (seconds), ``edge_weight``
``(item, in_category, category)``
``(item, has_keyword, keyword)``
``(user, tagged, keyword)``
``(item, related_to, entity)``          ``edge_relation`` (index into ``relations``)
``(user, has_attribute, attribute)``    from the users file (id ``name=value``)
======================================  =====================================

Attribute nodes come last in every numbering, so a data set without a users file
numbers its nodes exactly as before users files existed.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from kgrec.graph.vocab import Vocab
from kgrec.loaders import schema as S

NODE_TYPES = ("user", "item", "category", "keyword", "entity", "attribute")
EDGE_TYPES = (
    ("user", "interacts", "item"),
    ("item", "in_category", "category"),
    ("item", "has_keyword", "keyword"),
    ("user", "tagged", "keyword"),
    ("item", "related_to", "entity"),
    ("user", "has_attribute", "attribute"),
)


@dataclass(frozen=True)
class Vocabularies:
    """One :class:`Vocab` per node type plus the relation names of entity facts.

    Users are those of the interactions, the tags and the users file (a user of the
    users file without interactions is a cold-start user, known by attributes).
    """

    user: Vocab
    item: Vocab
    category: Vocab
    keyword: Vocab
    entity: Vocab
    relation: Vocab
    attribute: Vocab = field(default_factory=lambda: Vocab("attribute", []))

    @classmethod
    def from_dataset(cls, ds: S.Dataset) -> Vocabularies:
        ua = ds.user_attributes
        return cls(
            user=Vocab(
                "user", pd.concat([ds.interactions[S.USER], ds.tags[S.USER], ds.users[S.USER], ua[S.USER]]).unique()
            ),
            item=Vocab("item", ds.items[S.ITEM].unique()),
            category=Vocab("category", ds.item_categories[S.CATEGORY].unique()),
            keyword=Vocab("keyword", pd.concat([ds.item_keywords[S.KEYWORD], ds.tags[S.TAG]]).unique()),
            entity=Vocab("entity", ds.triples[S.ENTITY].unique()),
            relation=Vocab("relation", ds.triples[S.RELATION].unique()),
            attribute=Vocab(
                "attribute", [S.attribute_id(a, v) for a, v in zip(ua[S.ATTRIBUTE], ua[S.VALUE], strict=True)]
            ),
        )

    def of(self, node_type: str) -> Vocab:
        return getattr(self, node_type)

    def sizes(self) -> dict[str, int]:
        return {t: len(self.of(t)) for t in NODE_TYPES}

    def to_dict(self) -> dict[str, list[str]]:
        return {t: self.of(t).to_list() for t in (*NODE_TYPES, "relation")}

    @classmethod
    def from_dict(cls, d: dict[str, list[str]]) -> Vocabularies:
        """The inverse of :meth:`to_dict` (a dict saved before attribute nodes existed has no attributes)."""
        return cls(**{t: Vocab(t, d.get(t, [])) for t in (*NODE_TYPES, "relation")})


def edge_arrays(ds: S.Dataset, v: Vocabularies) -> dict[tuple[str, str, str], dict[str, np.ndarray]]:
    """Edge index arrays (and attributes) per forward edge type, in numbers."""
    it = ds.interactions
    out: dict[tuple[str, str, str], dict[str, np.ndarray]] = {
        EDGE_TYPES[0]: {
            "src": v.user.numbers(it[S.USER]),
            "dst": v.item.numbers(it[S.ITEM]),
            "time": it[S.TIMESTAMP].to_numpy(np.int64),
            "weight": it[S.WEIGHT].to_numpy(np.float64),
        },
        EDGE_TYPES[1]: {
            "src": v.item.numbers(ds.item_categories[S.ITEM]),
            "dst": v.category.numbers(ds.item_categories[S.CATEGORY]),
        },
        EDGE_TYPES[2]: {
            "src": v.item.numbers(ds.item_keywords[S.ITEM]),
            "dst": v.keyword.numbers(ds.item_keywords[S.KEYWORD]),
        },
        EDGE_TYPES[3]: {
            "src": v.user.numbers(ds.tags[S.USER]),
            "dst": v.keyword.numbers(ds.tags[S.TAG]),
        },
        EDGE_TYPES[4]: {
            "src": v.item.numbers(ds.triples[S.ITEM]),
            "dst": v.entity.numbers(ds.triples[S.ENTITY]),
            "relation": v.relation.numbers(ds.triples[S.RELATION]),
        },
    }
    ua = ds.user_attributes
    out[EDGE_TYPES[5]] = {
        "src": v.user.numbers(ua[S.USER]),
        "dst": v.attribute.numbers([S.attribute_id(a, x) for a, x in zip(ua[S.ATTRIBUTE], ua[S.VALUE], strict=True)]),
    }
    # user -> keyword tagging edges: one per (user, keyword)
    ut = out[EDGE_TYPES[3]]
    if len(ut["src"]):
        pairs = np.unique(np.stack([ut["src"], ut["dst"]], 1), axis=0)
        out[EDGE_TYPES[3]] = {"src": pairs[:, 0], "dst": pairs[:, 1]}
    return out


def to_hetero_data(ds: S.Dataset, vocabs: Vocabularies | None = None, *, undirected: bool = True):  # noqa: ANN201 - torch_geometric.data.HeteroData, imported lazily (7 s)
    """Export a dataset as a validated torch-geometric ``HeteroData``.

    Returns:
        ``(data, vocabs)``: node counts per type, ``edge_index`` per edge type
        (sorted by source then destination number, so equal data give equal
        tensors), interaction ``edge_time``/``edge_weight``, fact ``edge_relation``.
    """
    with warnings.catch_warnings():  # importing torch_geometric warns of torch.jit.script (issue 18 point 6)
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
        from torch_geometric.data import HeteroData

    v = vocabs or Vocabularies.from_dataset(ds)
    data = HeteroData()
    for t in NODE_TYPES:
        data[t].num_nodes = len(v.of(t))
    for et, arrs in edge_arrays(ds, v).items():
        order = np.lexsort((arrs["dst"], arrs["src"]))
        store = data[et]
        store.edge_index = torch.from_numpy(np.stack([arrs["src"][order], arrs["dst"][order]]).astype(np.int64))
        if "time" in arrs:
            store.edge_time = torch.from_numpy(arrs["time"][order])
            store.edge_weight = torch.from_numpy(arrs["weight"][order]).float()
        if "relation" in arrs:
            store.edge_relation = torch.from_numpy(arrs["relation"][order])
        if undirected:
            rev = data[(et[2], f"rev_{et[1]}", et[0])]
            rev.edge_index = store.edge_index.flip(0)
    data.validate(raise_on_error=True)
    return data, v
