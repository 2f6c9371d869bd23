"""Drawings of graph neighbourhoods and explanation paths (networkx + matplotlib).

- :func:`explanation_graph` turns an explanation's paths into a small directed
  networkx graph (user on the left, recommended item on the right);
- :func:`draw_explanation` draws it, edge width by path score;
- :func:`draw_graph` draws any kgrec networkx graph, e.g. ``store.subgraph(user=…)``.

matplotlib is imported only when drawing. An explanation is anything shaped like
:class:`kgrec.fusion.explanation.Explanation` (``.paths`` with ``.score``, ``.nodes``
and ``.relations``) or its ``to_dict()`` JSON form, so this module does not depend
on the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import networkx as nx

from kgrec.graph.networkx_view import node_key

if TYPE_CHECKING:
    from matplotlib.axes import Axes

#: node colour per node type
NODE_COLOURS: dict[str, str] = {
    "user": "#4C72B0",
    "item": "#DD8452",
    "category": "#55A868",
    "keyword": "#8172B3",
    "entity": "#937860",
}
_OTHER = "#8C8C8C"


def _as_dict(explanation: Any) -> dict[str, Any]:
    if isinstance(explanation, Mapping):
        return dict(explanation)
    if hasattr(explanation, "to_dict"):
        return explanation.to_dict()
    raise TypeError(
        f"expected an Explanation (Recommender.explain) or its to_dict() form, got {type(explanation).__name__}"
    )


def explanation_graph(explanation: Any) -> nx.DiGraph:
    """The paths of an explanation as one directed graph.

    Nodes are keyed ``"<type>:<id>"`` (as in :meth:`GraphStore.subgraph`) with
    attributes ``type``, ``id``, ``name`` and ``layer`` (0 = the user, 1 = a history
    item, 2 = a category/keyword/entity/similar user, 3 = the recommended item).
    Edges follow each path from the user to the item, with ``relation`` and
    ``score`` (the summed score of the paths through the edge) and ``paths``
    (how many paths use it).

    Raises:
        TypeError: not an explanation.
    """
    e = _as_dict(explanation)
    g = nx.DiGraph(user=e.get("user"), item=e.get("item"), title=e.get("title"), score=e.get("score"))
    for path in e.get("paths", []):
        nodes = path["nodes"]
        keys = []
        for pos, n in enumerate(nodes):
            layer = 3 if pos == len(nodes) - 1 else (2 if len(nodes) == 3 and pos == 1 else pos)
            key = node_key(n["type"], n["id"])
            if key not in g:
                g.add_node(key, type=n["type"], id=n["id"], name=n["name"], layer=layer)
            keys.append(key)
        for a, b, rel in zip(keys, keys[1:], path["relations"]):
            if g.has_edge(a, b):
                g.edges[a, b]["score"] += path["score"]
                g.edges[a, b]["paths"] += 1
            else:
                g.add_edge(a, b, relation=rel, score=path["score"], paths=1)
    return g


def _short(name: str, width: int) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def _wrapped(name: str, width: int, lines: int = 3) -> str:
    """``name`` on up to ``lines`` lines of about ``width`` characters (only text beyond them is cut)."""
    import textwrap

    parts = textwrap.wrap(name, width) or [""]
    if len(parts) > lines:
        parts = parts[: lines - 1] + [_short(" ".join(parts[lines - 1 :]), width)]
    return "\n".join(parts)


def draw_graph(
    g: nx.Graph,
    ax: Axes | None = None,
    *,
    pos: dict[Any, tuple[float, float]] | None = None,
    labels: bool = True,
    label_width: int = 28,
    seed: int = 0,
) -> Axes:
    """Draw a kgrec networkx graph, nodes coloured by ``type`` with a legend.

    Args:
        g: nodes with ``type`` and ``name`` attributes (``store.subgraph``,
            :func:`explanation_graph`).
        ax: the matplotlib axes to draw into (default: a new figure).
        pos: node positions (default: a seeded spring layout).
        labels: write node names (cut to ``label_width`` characters).
        seed: seed of the spring layout, so a drawing is reproducible.

    Returns:
        The axes drawn into.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    if ax is None:
        _, ax = plt.subplots(figsize=(9, 6))
    if pos is None:
        pos = nx.spring_layout(g, seed=seed)
    types = [g.nodes[n].get("type", "") for n in g.nodes]
    nx.draw_networkx_nodes(
        g,
        pos,
        ax=ax,
        node_color=[NODE_COLOURS.get(t, _OTHER) for t in types],
        node_size=420 if g.number_of_nodes() <= 40 else 60,
    )
    nx.draw_networkx_edges(g, pos, ax=ax, alpha=0.5, arrows=g.is_directed())
    if labels:
        nx.draw_networkx_labels(
            g, pos, ax=ax, font_size=8, labels={n: _short(str(g.nodes[n].get("name", n)), label_width) for n in g.nodes}
        )
    present = [t for t in NODE_COLOURS if t in set(types)]
    ax.legend(
        handles=[Line2D([], [], marker="o", ls="", color=NODE_COLOURS[t], label=t) for t in present],
        loc="best",
        fontsize=8,
    )
    ax.set_axis_off()
    return ax


def draw_explanation(explanation: Any, ax: Axes | None = None, *, label_width: int = 28) -> Axes:
    """Draw an explanation's paths left to right: user → history item → connector → item.

    Edge width grows with the summed score of the paths through the edge; edges are
    labelled with their relation. The title gives the item, its rank and the
    structure/text split of its score.

    Args:
        explanation: ``Recommender.explain(user, item)`` or its ``to_dict()``.
        ax: the matplotlib axes to draw into (default: a new figure).

    Returns:
        The axes drawn into.

    Raises:
        TypeError: not an explanation.
    """
    import matplotlib.pyplot as plt

    e = _as_dict(explanation)
    g = explanation_graph(e)
    per_layer = [sum(1 for _, d in g.nodes(data=True) if d["layer"] == n) for n in range(4)]
    if ax is None:
        _, ax = plt.subplots(figsize=(12, max(3.0, 1.1 * max(per_layer, default=1))))
    if g.number_of_nodes() == 0:
        ax.text(0.5, 0.5, e.get("message") or "no paths", ha="center", va="center", wrap=True)
        ax.set_axis_off()
        return ax
    # columns far apart and rows evenly spaced, so wrapped labels (below their node) and edge labels do not meet
    pos: dict[Any, tuple[float, float]] = {}
    for layer in range(4):
        keys = [n for n, d in g.nodes(data=True) if d["layer"] == layer]
        for r, n in enumerate(keys):
            pos[n] = (float(layer), (len(keys) - 1) / 2 - r)
    draw_graph(g, ax, pos=pos, labels=False)
    for n, (x, y) in pos.items():
        ax.annotate(
            _wrapped(str(g.nodes[n].get("name", n)), max(12, label_width // 2)),
            (x, y),
            xytext=(0, -11),
            textcoords="offset points",
            ha="center",
            va="top",
            fontsize=7,
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85},
        )
    ax.margins(x=0.12, y=0.22)  # room for the labels of the first and last column and the bottom row
    scores = [abs(d["score"]) for _, _, d in g.edges(data=True)]
    top = max(scores) or 1.0
    nx.draw_networkx_edges(
        g,
        pos,
        ax=ax,
        width=[0.5 + 5.0 * abs(d["score"]) / top for _, _, d in g.edges(data=True)],
        edge_color="#444444",
        arrows=True,
        arrowsize=12,
        node_size=420,
    )
    # relation names on the edges near their target end (label_pos is measured from the target), where edges of
    # one column fan out least; small and boxed so a crossing edge does not hide them
    nx.draw_networkx_edge_labels(
        g,
        pos,
        ax=ax,
        font_size=6,
        label_pos=0.3,
        bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none"},
        edge_labels={(a, b): str(d["relation"]).lower().replace("_", " ") for a, b, d in g.edges(data=True)},
    )
    att = e.get("attribution") or {}
    split = f" = structure {att['structure']:+.2f} + text {att['text']:+.2f}" if att else ""
    rank = f"rank {e['rank']}, " if e.get("rank") else ""
    ax.set_title(
        f"Why {e.get('title') or e.get('item')} for user {e.get('user')}? ({rank}score {e.get('score', 0):.2f}{split})",
        fontsize=10,
    )
    return ax
