"""Why an item is *not* recommended, in words support staff read, and path sentences for staff.

:func:`why_not` compares what links the user's top-``k`` items to the user's history (categories, keywords, facts:
the connectors of their candidate paths) with what links the asked item to it, and says which of the top items'
connectors the item lacks, what the customer's recent history is, and what would change the answer.

:func:`staff_sentence` renders one explanation path (its kind, nodes and relations) in the third person for a staff
member ("Recommended because they watched X, which is also in “Space”"), or, for an item that is not recommended,
as a link that does not claim a recommendation ("Linked to their history: they watched X, …").

Imports nothing of :mod:`kgrec.fusion.explain` (which calls it), so there is no import circle.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from kgrec.fusion.state import ModelState
from kgrec.graph.paths import PathRow
from kgrec.messages import Messages

#: connectors of these path kinds describe the items themselves (what a category/keyword/fact says)
DESCRIBING_KINDS = ("category", "keyword", "entity", "tag")
#: how many connectors / history titles a why-not answer names
NAMED = 3

Finder = Callable[[str, str, "list[str] | None"], list[PathRow]]


class _Node(Protocol):
    @property
    def type(self) -> str: ...

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...


class _Path(Protocol):
    @property
    def kind(self) -> str: ...

    @property
    def nodes(self) -> Sequence[_Node]: ...

    @property
    def relations(self) -> Sequence[str]: ...


def join(words: Sequence[str], m: Messages) -> str:
    """``A``, ``A and B``, ``A, B and C`` in the catalogue's language."""
    words = list(words)
    if len(words) <= 1:
        return "".join(words)
    return m["list.sep"].join(words[:-1]) + m["list.and"] + words[-1]


def connector(row: PathRow) -> str | None:
    """The category, keyword or fact through which a path links an item to the history (None for other kinds)."""
    kind, _anchor, via, _rel_a, _rel_b = row
    if kind not in DESCRIBING_KINDS or not via:
        return None
    return via if kind in ("category", "entity") else f"“{via}”"


def recent_titles(state: ModelState, u: int, n: int = NAMED) -> list[str]:
    """Titles of user number ``u``'s ``n`` most recent-weighted history items (the latest interests first)."""
    hist_items, _ = state.history(u)
    if len(hist_items) == 0:
        return []
    w = state.recent_weights(u)
    order = np.lexsort((hist_items, -w))[:n]
    return [state.title(str(state.vocabs.item.id(int(hist_items[r])))) for r in order]


def why_not(
    state: ModelState,
    find: Finder,
    user: str,
    item: str,
    title: str,
    u: int,
    hist_items: np.ndarray,
    weights: np.ndarray,
    rank: int,
    k: int,
    own_paths: list[PathRow],
    verb: str,
    m: Messages,
) -> str:
    """The plain-words answer for an item ranked ``rank`` > ``k`` (``own_paths``: its candidate paths)."""
    parts = [m("whynot.head", title=title, user=user, rank=rank, k=k)]
    if len(hist_items):
        order = np.lexsort((hist_items, -weights))[: state.config.explain.anchors]
        anchors = [str(x) for x in state.vocabs.item.ids[hist_items[order]].tolist()]
        res = state.topk(np.array([u]), k, seen=[hist_items])
        top = res.items[0][res.valid[0]]
        have: Counter[str] = Counter()
        for t in top.tolist():
            rows = find(user, str(state.vocabs.item.id(int(t))), anchors)
            have.update({c for c in map(connector, rows) if c})
        # the same anchors for the item: a connector it shares with an anchor gives it a path, so "lacks" is exact
        own = {c for c in map(connector, [*own_paths, *find(user, item, anchors)]) if c}
        lacks = [c for c, _ in sorted(have.items(), key=lambda x: (-x[1], x[0])) if c not in own][:NAMED]
        shared = sorted(own & set(have), key=lambda c: (-have[c], c))[:NAMED]
        if lacks:
            parts.append(m("whynot.lacks", have=join(lacks, m), title=title))
        if shared:
            parts.append(m("whynot.shared", title=title, shared=join(shared, m)))
        elif own:
            parts.append(m("whynot.own", title=title, own=join(sorted(own)[:NAMED], m)))
        else:
            parts.append(m("whynot.no_link", title=title))
        recent = recent_titles(state, u)
        if recent:
            parts.append(m("whynot.recent", recent=join(recent, m), verb=verb))
    parts.append(m("whynot.change", title=title, verb=verb))
    return " ".join(parts)


def _rel(relation: str) -> str:
    return relation.replace("_", " ").strip().lower()


def staff_sentence(path: _Path, verb: str, m: Messages, *, recommended: bool = True) -> str:
    """One third-person sentence for support staff about ``path`` (an explanation path: kind, nodes, relations);
    ``recommended=False`` words it as a link to the history, not as a reason for a recommendation."""
    prefix = "staff." if recommended else "link."
    nodes = list(path.nodes)
    item = nodes[-1].name
    kind = path.kind
    if kind == "cooccurrence":
        return m(prefix + "cooccurrence", verb=verb, anchor=nodes[1].name, item=item)
    if kind == "tag":
        return m(prefix + "tag", via=nodes[1].name, item=item)
    if kind == "attribute":
        name, _, value = nodes[1].id.partition("=")
        return m(prefix + "attribute", name=_rel(name), value=value, verb=verb, item=item)
    anchor, via = nodes[1].name, nodes[2].name
    if kind == "user":
        return m(prefix + "user", verb=verb, anchor=anchor, item=item)
    if kind == "entity":
        rels = list(path.relations)
        rel_a = _rel(rels[1]) if len(rels) > 1 else ""
        rel_b = _rel(rels[2]) if len(rels) > 2 else rel_a
        key = "entity.same" if rel_a == rel_b else "entity.other"
        return m(prefix + key, verb=verb, anchor=anchor, via=via, item=item, rel_a=rel_a, rel_b=rel_b)
    return m(prefix + kind, verb=verb, anchor=anchor, via=via, item=item)
