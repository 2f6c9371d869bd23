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
   say more), and ``max(0, cos(f_u, f_v))`` for a similar user ``v``.
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
from typing import TYPE_CHECKING

import numpy as np

from kgrec.fusion.explanation import (
    COOC,
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
    if not paths:
        return np.empty(0)
    v = state.vocabs
    A = state.arrays
    f_i = A["items"][i]
    w_of = dict(zip(hist_items.tolist(), weights.tolist(), strict=True))
    mean_w = float(weights.mean()) if len(weights) else 1.0
    n_items = len(v.item)
    lay_off = state.node_offsets
    z_i = A["nodes"][lay_off["item"] + i]

    kinds = np.array([p[0] for p in paths], dtype=object)
    anchors = np.array([p[1] for p in paths], dtype=object)
    vias = np.array([p[2] for p in paths], dtype=object)
    raw = np.zeros(len(paths))
    # anchor strengths for item anchors, vectorised over distinct anchors
    item_anchor = (kinds != "tag") & (kinds != "attribute")
    if item_anchor.any():
        a_ids = np.unique(anchors[item_anchor])
        a_num = v.item.numbers(a_ids)
        strength = np.array([w_of.get(int(n), 0.0) for n in a_num]) * np.maximum(_cos(A["items"][a_num], f_i), 0.0)
        s_of = dict(zip(a_ids.tolist(), strength.tolist(), strict=True))
        raw[item_anchor] = [s_of[a] for a in anchors[item_anchor]]
    attr = kinds == "attribute"
    if attr.any():
        a_num = v.attribute.numbers(vias[attr]) + lay_off["attribute"]
        raw[attr] = mean_w * np.maximum(_cos(A["nodes"][a_num], z_i), 0.0)
    tag = kinds == "tag"
    if tag.any():
        k_num = v.keyword.numbers(vias[tag]) + lay_off["keyword"]
        raw[tag] = mean_w * np.maximum(_cos(A["nodes"][k_num], z_i), 0.0)
    spec = np.ones(len(paths))
    for kind, deg_key in (("category", "category"), ("keyword", "keyword"), ("tag", "keyword"), ("entity", "entity")):
        m = kinds == kind
        if m.any():
            deg = state.degrees[deg_key]
            spec[m] = [1.0 + math.log((1 + n_items) / (1 + deg.get(x, 0))) for x in vias[m]]
    m = kinds == "user"
    if m.any():
        vv = v.user.numbers(vias[m])
        spec[m] = np.maximum(_cos(A["users"][vv], A["users"][u]), 0.0)
    raw = raw * spec
    co = kinds == COOC
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
        strength = weights * np.maximum(_cos(state.arrays["items"][hist_items], state.arrays["items"][i]), 0.0)
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
) -> Explanation:
    """Build the :class:`Explanation` of ``item`` (number ``i``) for ``user`` (number ``u``, history
    ``hist_items, hist_w``): the ids were turned into numbers, and the history fetched, by the caller.
    Sentences and messages are in ``lang`` (:mod:`kgrec.messages`; default English)."""
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
    paths = candidate_paths(state, find, user, item, i, hist_items, weights)
    scores = score_paths(state, u, i, hist_items, weights, paths, score)
    order = np.lexsort((np.arange(len(paths)), -scores)) if paths else np.empty(0, dtype=int)
    out: list[ExplanationPath] = []
    for r in order[:top]:
        out.append(_render(state, user, item, paths[int(r)], float(scores[r]), verb, m))
    gap = None
    msg = ""
    if rank > k:
        s_top = state.topk(np.array([u]), k, seen=[hist_items]).scores
        gap = float(s_top[0, -1] - score)
        # not recommended: say so in plain words, and word its paths as links, not reasons (kgrec.fusion.whynot)
        msg = why_not(state, find, user, item, title, u, hist_items, weights, rank, k, paths, verb, m)
        for p in out:
            p.sentence = staff_sentence(p, verb, m, recommended=False)
    if not out:
        note = _text_only_note(state, user, i, hist_items, title, verb, m)
        msg = (msg + " " if msg else "") + (
            note.strip() if rank > k else m("explain.no_path", user=user, title=title) + note
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


def _text_only_note(
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


def _render(
    state: ModelState, user: str, item: str, row: PathRow, score: float, verb: str, m: Messages
) -> ExplanationPath:
    kind, anchor, via, rel_a, rel_b = row
    if kind == COOC:
        nodes = [
            PathNode("user", user, m("node.user", id=user)),
            PathNode("item", anchor, state.title(anchor)),
            PathNode("item", item, state.title(item)),
        ]
        return ExplanationPath(
            score=score,
            sentence=sentence(kind, verb, state.title(anchor), "", state.title(item), lang=m.lang),
            kind=kind,
            nodes=nodes,
            relations=["INTERACTED", "CO_OCCURS"],
        )
    types = KIND_NODES[kind]
    ids = {
        "category": [user, anchor, via, item],
        "keyword": [user, anchor, via, item],
        "entity": [user, anchor, via, item],
        "user": [user, anchor, via, item],
        "tag": [user, via, item],
        "attribute": [user, via, item],
    }[kind]
    nodes = []
    for t, x in zip(types, ids, strict=False):
        name = state.title(x) if t == "item" else (m("node.user", id=x) if t == "user" else x)
        if t == "attribute":
            a_name, _, a_value = x.partition("=")
            name = m("node.attribute", name=humanise(a_name), value=a_value)
        nodes.append(PathNode(t, x, name))
    rels = list(KIND_RELATIONS[kind])
    if kind == "entity":
        rels = ["INTERACTED", rel_a.upper(), rel_b.upper()]
    text = sentence(
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
    return ExplanationPath(score=score, sentence=text, kind=kind, nodes=nodes, relations=rels)
