"""Explanation paths scored by the fused model, and sentences a non-engineer reads.

How a path is scored (``docs/explanations.md``):

1. Each of the user's history items ``j`` gets an *anchor strength*
   ``a_j = w_uj * max(0, cos(f_j, f_i))``: ``w_uj`` is the normalised weight of
   the edge user–j in the GNN's adjacency (it includes the recency weight) and
   ``f`` are fused vectors. This is the first-order share of ``j`` in the
   user's structural vector, times how close ``j`` is to the recommended item
   in the model's space. For a tag path the anchor is the keyword ``k`` the user
   applied: ``a_k = mean(w_u·) * max(0, cos(z_k, z_i))`` with ``z`` the GNN's
   structural vectors. For an attribute path (people who share an attribute value
   of the user's chose the item) the anchor is the attribute node ``a``:
   ``a_a = mean(w_u·) * max(0, cos(z_a, z_i))`` (``mean(w_u·)`` is 1 for a user
   without history).
2. The connector's *specificity*: ``1 + log((1 + N) / (1 + n_c))`` for a
   category, keyword or entity shared by ``n_c`` of the ``N`` items (rare links
   say more), likewise ``1 + log((1 + U) / (1 + n_a))`` for an attribute value
   held by ``n_a`` of the ``U`` users (a value nearly everybody shares says
   little about anyone), and ``max(0, cos(f_u, f_v))`` for a similar user ``v``.
3. ``raw = a * specificity``; a path's score is its share of the
   recommendation's score: ``score(u, i) * raw / sum(raw over all candidate
   paths)``. The path scores of one recommendation add up to its score.

Only the ``explain.anchors`` strongest anchors are searched first; when they
give no path, all history items are.

A model with a co-occurrence part (kgrec.fusion.itemitem) splits its score into the fused part
``f_u · f_i`` and ``sum_j alpha e_j · e_i`` over the history items ``j``. Every history item ``j`` is then
also a *co-occurrence path* ("people who interacted with j also interacted with i") whose score is exactly
its term ``alpha e_j · e_i``; the other paths share the fused part as above. With at least one other path,
all path scores still add up to the score.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from kgrec.fusion.explanation import (
    COOC,
    EXPLANATION_KINDS,
    Explanation,
    ExplanationPath,
    PathNode,
    humanise,
    sentence,
)
from kgrec.fusion.state import ModelState
from kgrec.fusion.whynot import staff_sentence, why_not
from kgrec.graph.paths import KIND_NODES, KIND_RELATIONS, PathRow
from kgrec.messages import Messages, messages

if TYPE_CHECKING:
    from kgrec.graph.store import GraphStore


def store_path_finder(store: GraphStore) -> PathFinder:
    """Candidate paths read from ``store``, without id checks: the ids were checked against the model, and the
    model against the store's data."""

    def find(u: str, i: str, a: list[str] | None) -> list[PathRow]:
        return store.path_rows(u, i, a, check_ids=False)

    return find


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    na = np.linalg.norm(a, axis=-1)
    nb = np.linalg.norm(b)
    return (a @ b) / np.maximum(na * nb, 1e-12)


#: finds candidate paths: ``(user id, item id, anchor item ids or None for all) -> rows``
PathFinder = Callable[[str, str, "list[str] | None"], list[PathRow]]


def anchor_weights(state: ModelState, u: int, hist_w: np.ndarray) -> np.ndarray:
    """Each history item's weight in the model: its share of the user's graph edges plus its weight in
    the user's recent-interest vector (both sum to 1 over the history)."""
    total_w = float(hist_w.sum()) or 1.0
    return hist_w / total_w + state.recent_weights(u)


@dataclass(frozen=True)
class PathColumns:
    """Candidate paths as columns, in candidate order (what :func:`score_columns` reads).

    ``kind`` holds indexes into :data:`~kgrec.fusion.explanation.EXPLANATION_KINDS`; ``anchor`` and ``via`` the
    ids (object arrays, ``""`` for none); ``via_num``, when given, the numbers of the ``user`` / ``tag`` /
    ``attribute`` paths' vias in their vocabularies (user, keyword, attribute; other kinds: anything), else they
    are looked up (an unknown id raises :class:`~kgrec.errors.UnknownIdError`).
    """

    kind: np.ndarray
    anchor: np.ndarray
    via: np.ndarray
    via_num: np.ndarray | None = None

    @classmethod
    def of(cls, paths: list[PathRow]) -> PathColumns:
        return cls(
            np.array([KIND_INDEX[p[0]] for p in paths], dtype=np.int64),
            np.array([p[1] for p in paths], dtype=object),
            np.array([p[2] for p in paths], dtype=object),
        )

    def __len__(self) -> int:
        return len(self.kind)


#: index of each kind in :data:`~kgrec.fusion.explanation.EXPLANATION_KINDS` (the codes of :class:`PathColumns`)
KIND_INDEX = {k: n for n, k in enumerate(EXPLANATION_KINDS)}
_TAG, _ATTR, _USER, _COOC = KIND_INDEX["tag"], KIND_INDEX["attribute"], KIND_INDEX["user"], KIND_INDEX[COOC]
_SPEC_KINDS = tuple(
    (KIND_INDEX[k], d)
    for k, d in (("category", "category"), ("keyword", "keyword"), ("tag", "keyword"), ("entity", "entity"))
)


def score_paths(
    state: ModelState,
    u: int,
    i: int,
    hist_items: np.ndarray,
    weights: np.ndarray,
    paths: list[PathRow],
    score: float,
) -> np.ndarray:
    """Path scores (shares of ``score``, see the module docstring), aligned with ``paths``, for user number
    ``u`` and item number ``i`` with the user's history ``hist_items`` and its :func:`anchor_weights`."""
    return score_columns(state, u, i, hist_items, weights, PathColumns.of(paths), score)


def score_columns(
    state: ModelState,
    u: int,
    i: int,
    hist_items: np.ndarray,
    weights: np.ndarray,
    paths: PathColumns,
    score: float,
) -> np.ndarray:
    """:func:`score_paths` of paths given as columns (the batch explanations call it with numbers they have)."""
    if not len(paths):
        return np.empty(0)
    v = state.vocabs
    A = state.arrays
    f_i = A["items"][i]
    w_of = dict(zip(hist_items.tolist(), weights.tolist(), strict=True))
    mean_w = float(weights.mean()) if len(weights) else 1.0
    n_items = len(v.item)
    lay_off = state.node_offsets
    z_i = A["nodes"][lay_off["item"] + i]

    kinds, anchors, vias = paths.kind, paths.anchor, paths.via
    raw = np.zeros(len(paths))
    # anchor strengths for item anchors, vectorised over distinct anchors
    item_anchor = (kinds != _TAG) & (kinds != _ATTR)
    if item_anchor.any():
        a_ids, where = np.unique(anchors[item_anchor], return_inverse=True)
        a_num = v.item.numbers(a_ids)
        strength = np.array([w_of.get(int(n), 0.0) for n in a_num]) * np.maximum(_cos(A["items"][a_num], f_i), 0.0)
        raw[item_anchor] = strength[where]
    attr = kinds == _ATTR
    if attr.any():
        a_num = (v.attribute.numbers(vias[attr]) if paths.via_num is None else paths.via_num[attr]) + lay_off[
            "attribute"
        ]
        raw[attr] = mean_w * np.maximum(_cos(A["nodes"][a_num], z_i), 0.0)
    tag = kinds == _TAG
    if tag.any():
        k_num = (v.keyword.numbers(vias[tag]) if paths.via_num is None else paths.via_num[tag]) + lay_off["keyword"]
        raw[tag] = mean_w * np.maximum(_cos(A["nodes"][k_num], z_i), 0.0)
    spec = np.ones(len(paths))
    for kind, deg_key in _SPEC_KINDS:
        m = kinds == kind
        if m.any():
            deg = state.degrees[deg_key]
            spec[m] = [1.0 + math.log((1 + n_items) / (1 + deg.get(x, 0))) for x in vias[m]]
    if attr.any() and "attribute" in state.degrees:  # a model saved before attribute degrees: 1
        deg, n_users = state.degrees["attribute"], len(v.user)
        spec[attr] = [1.0 + math.log((1 + n_users) / (1 + deg.get(x, 0))) for x in vias[attr]]
    m = kinds == _USER
    if m.any():
        vv = v.user.numbers(vias[m]) if paths.via_num is None else paths.via_num[m]
        spec[m] = np.maximum(_cos(A["users"][vv], A["users"][u]), 0.0)
    raw = raw * spec
    co = kinds == _COOC
    if not co.any():
        total = raw.sum()
        if total <= 0:
            return np.full(len(paths), score / len(paths))
        return score * raw / total
    # co-occurrence paths: each its exact term; the other paths share the rest of the score
    out = np.zeros(len(paths))
    contrib = dict(zip(hist_items.tolist(), state.cooc_contributions(i, hist_items).tolist(), strict=True))
    out[co] = [contrib.get(int(n), 0.0) for n in v.item.numbers(anchors[co])]
    rest = score - float(sum(contrib.values()))
    raw[co] = 0.0
    other = ~co
    if other.any():
        total = raw[other].sum()
        out[other] = rest * raw[other] / total if total > 0 else rest / int(other.sum())
    return out


def anchor_strengths(state: ModelState, hist_items: np.ndarray, weights: np.ndarray, i: int) -> np.ndarray:
    """How strongly each history item anchors item number ``i``: ``weights * max(0, cos(f_j, f_i))`` (the order in
    which :func:`candidate_paths` searches them)."""
    return weights * np.maximum(_cos(state.arrays["items"][hist_items], state.arrays["items"][i]), 0.0)


def candidate_paths(
    state: ModelState,
    find: PathFinder,
    user: str,
    item: str,
    i: int,
    hist_items: np.ndarray,
    weights: np.ndarray,
) -> list[PathRow]:
    """Candidate paths from ``find``, searched through the strongest anchors first (``user``/``item``
    are the ids of the user and of item number ``i``; ``hist_items`` the user's history, ``weights`` its
    :func:`anchor_weights`)."""
    if len(hist_items):
        strength = anchor_strengths(state, hist_items, weights, i)
        order = np.lexsort((hist_items, -strength))[: state.config.explain.anchors]
        anchors = state.vocabs.item.ids[hist_items[order]].tolist()
    else:
        anchors = []
    paths = find(user, item, anchors)
    if not paths and len(hist_items) > len(anchors):
        paths = find(user, item, None)
    if state.cooc_alpha and len(hist_items):  # every history item with a co-occurrence term is a path
        contrib = state.cooc_contributions(i, hist_items)
        ids = state.vocabs.item.ids[hist_items]
        # only history items that somebody really chose together with the item: the sentence says so
        real = state.co_interacted(i, hist_items)
        paths = paths + [
            (COOC, str(ids[r]), "", "", "") for r in np.lexsort((hist_items, -contrib)) if contrib[r] != 0 and real[r]
        ]
    return paths


def explain(
    state: ModelState,
    find: PathFinder,
    user: str,
    item: str,
    u: int,
    i: int,
    hist_items: np.ndarray,
    hist_w: np.ndarray,
    *,
    top: int = 3,
    k: int = 10,
    lang: str | None = None,
    listed: bool = False,
) -> Explanation:
    """Build the :class:`Explanation` of ``item`` (number ``i``) for ``user`` (number ``u``, history
    ``hist_items, hist_w``): the ids were turned into numbers, and the history fetched, by the caller.
    Sentences and messages are in ``lang`` (:mod:`kgrec.messages`; default English). ``listed``: the item is in a
    list shown to the user (a restricted or re-ranked one too), so it is explained as recommended whatever its rank
    by score; otherwise an item ranked past ``k`` gets the "why not" wording."""
    m = messages(lang)
    verb = m.verb(state.config.explain.interaction_verb)
    title = state.title(item)
    score = state.score(u, i)
    attr = state.attribution(u, i)
    if i in set(hist_items.tolist()):
        return Explanation(
            user=user,
            item=item,
            title=title,
            rank=0,
            score=score,
            k=k,
            paths=[],
            attribution=attr,
            interacted=True,
            message=m("explain.interacted", user=user, verb=verb, title=title),
        )
    rank = state.rank(u, i, hist_items)
    weights = anchor_weights(state, u, hist_w)
    paths, out = top_paths(state, find, user, item, u, i, hist_items, weights, score, top, verb, m)
    gap = None
    msg = ""
    beyond = rank > k and not listed
    if beyond:
        s_top = state.topk(np.array([u]), k, seen=[hist_items]).scores
        gap = float(s_top[0, -1] - score)
        # not recommended: say so in plain words, and word its paths as links, not reasons (kgrec.fusion.whynot)
        msg = why_not(state, find, user, item, title, u, hist_items, weights, rank, k, paths, verb, m)
        for p in out:
            p.sentence = staff_sentence(p, verb, m, recommended=False)
    if not out:
        note = text_only_note(state, user, i, hist_items, title, verb, m)
        msg = (msg + " " if msg else "") + (
            note.strip() if beyond else m("explain.no_path", user=user, title=title) + note
        )
    return Explanation(
        user=user,
        item=item,
        title=title,
        rank=rank,
        score=score,
        k=k,
        paths=out,
        attribution=attr,
        gap_to_k=gap,
        message=msg,
        total_paths=len(paths),
    )


def top_paths(
    state: ModelState,
    find: PathFinder,
    user: str,
    item: str,
    u: int,
    i: int,
    hist_items: np.ndarray,
    weights: np.ndarray,
    score: float,
    top: int,
    verb: str,
    m: Messages,
) -> tuple[list[PathRow], list[ExplanationPath]]:
    """The candidate paths of item number ``i`` for user number ``u`` (history ``hist_items``, its
    :func:`anchor_weights` ``weights``; ``score`` the pair's score) and the ``top`` best of them rendered, best first
    (equal scores in candidate order): the paths part of :func:`explain`."""
    paths = candidate_paths(state, find, user, item, i, hist_items, weights)
    scores = score_paths(state, u, i, hist_items, weights, paths, score)
    order = np.lexsort((np.arange(len(paths)), -scores)) if paths else np.empty(0, dtype=int)
    out = [render_path(state, user, item, paths[int(r)], float(scores[r]), verb, m) for r in order[:top]]
    return paths, out


def text_only_note(
    state: ModelState, user: str, i: int, hist_items: np.ndarray, title: str, verb: str, m: Messages
) -> str:
    """For a new item (nobody has interacted with it: the model knows it by its text alone) without a path,
    say so and name the history item whose text vector is closest to its own."""
    text = state.arrays.get("item_text")
    if text is None or len(text) == 0 or len(hist_items) == 0 or state.has_interactions(i):
        return ""
    sims = _cos(text[hist_items], text[i])
    nearest = state.vocabs.item.id(int(hist_items[int(np.argmax(sims))]))
    return m("explain.text_only", verb=verb, title=title, user=user, nearest=state.title(nearest))


def path_ids(row: PathRow, user: str, item: str) -> list[tuple[str, str]]:
    """The (type, id) of each node of the candidate path ``row`` from ``user`` to ``item``, in order."""
    kind, anchor, via = row[0], row[1], row[2]
    if kind == COOC:
        return [("user", user), ("item", anchor), ("item", item)]
    ids = [user, via, item] if kind in ("tag", "attribute") else [user, anchor, via, item]
    return list(zip(KIND_NODES[kind], ids, strict=False))


def path_sentence(state: ModelState, row: PathRow, item: str, verb: str, m: Messages) -> str:
    """The sentence of the candidate path ``row`` of ``item`` in the language of ``m`` (``verb`` already in it)."""
    kind, anchor, via, rel_a, rel_b = row
    if kind == COOC:
        return sentence(kind, verb, state.title(anchor), "", state.title(item), lang=m.lang)
    return sentence(
        kind,
        verb,
        state.title(anchor) if anchor else "",
        via,
        state.title(item),
        rel_a,
        rel_b,
        via_name=m("node.user", id=via) if kind == "user" else via,
        lang=m.lang,
    )


def render_path(
    state: ModelState, user: str, item: str, row: PathRow, score: float, verb: str, m: Messages
) -> ExplanationPath:
    """One candidate path ``row`` of ``item`` for ``user`` as an :class:`ExplanationPath` (nodes, relations and the
    sentence in the language of ``m``; ``verb`` already in it)."""
    kind, rel_a, rel_b = row[0], row[3], row[4]
    nodes = []
    for t, x in path_ids(row, user, item):
        name = state.title(x) if t == "item" else (m("node.user", id=x) if t == "user" else x)
        if t == "attribute":
            a_name, _, a_value = x.partition("=")
            name = m("node.attribute", name=humanise(a_name), value=a_value)
        nodes.append(PathNode(t, x, name))
    if kind == COOC:
        rels = ["INTERACTED", "CO_OCCURS"]
    elif kind == "entity":
        rels = ["INTERACTED", rel_a.upper(), rel_b.upper()]
    else:
        rels = list(KIND_RELATIONS[kind])
    text = path_sentence(state, row, item, verb, m)
    return ExplanationPath(score=score, sentence=text, kind=kind, nodes=nodes, relations=rels)
