"""A server-side SVG drawing of the subgraph formed by an explanation's paths.

Columns follow the path: user → history item (or tagged keyword) → connector (category, keyword, entity or
similar user) → recommended item. Nodes shared by several paths are drawn once; an edge's colour is the kind of
the path it belongs to (a legend names them) and its width the path's score. Labels wrap on words (up to
:data:`MAX_LINES` lines) instead of being cut. Two drawings are emitted: a wide one (columns left to right) and
a narrow one (for a phone: the customer's own column left out, three narrow columns at the screen's scale); the page's CSS shows one of them by the screen's width.
Every label is escaped; nothing from the data reaches the SVG unescaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from kgrec.messages import Messages, messages
from kgrec.web.models import PathOut

WIDTH = 640
COLUMN_X = (78, 238, 400, 562)
NODE_W = 148
LINE_H = 15
LABEL_CHARS = 19
MAX_LINES = 3
NARROW_W = 360
NARROW_NODE_W = 108
NARROW_CHARS = 13
NODE_COLOURS = {
    "user": "#2f6f9f",
    "item": "#3f8f5f",
    "category": "#a0632b",
    "keyword": "#8a4f9e",
    "entity": "#9e3f4f",
    "tag": "#8a4f9e",
    "attribute": "#5f6f2f",
}
#: the colour of an edge by the kind of its path
EDGE_COLOURS = {
    "category": "#d08a2e",
    "keyword": "#9b59b6",
    "tag": "#c266c2",
    "entity": "#c0392b",
    "user": "#2980b9",
    "attribute": "#7a8f2f",
    "cooccurrence": "#16a085",
}
COLUMN_TITLES = ("user", "because of", "shared", "recommended")


def wrap(text: str, width: int = LABEL_CHARS, lines: int = MAX_LINES) -> list[str]:
    """``text`` wrapped on spaces into at most ``lines`` lines of about ``width`` characters (a word longer than
    a line is split); only text beyond the last line is cut, with an ellipsis."""
    out: list[str] = []
    cur = ""
    for word in text.split():
        while len(word) > width:
            if cur:
                out.append(cur)
                cur = ""
            out.append(word[:width])
            word = word[width:]
        if not cur:
            cur = word
        elif len(cur) + 1 + len(word) <= width:
            cur += " " + word
        else:
            out.append(cur)
            cur = word
    if cur:
        out.append(cur)
    if len(out) > lines:
        last = " ".join(out[lines - 1 :])
        out = out[: lines - 1] + [last[: width - 1] + "…"]
    return out or [""]


def _columns(nodes: Sequence[object], length: int) -> tuple[int, ...]:
    if length == 3:  # user → keyword/attribute → item, or user → history item → item (co-occurrence)
        middle = getattr(nodes[1], "type", "")
        return (0, 1, 3) if middle == "item" else (0, 2, 3)
    return tuple(min(p, 3) for p in range(length))


@dataclass
class _Graph:
    columns: list[list[tuple[str, str]]]
    names: dict[tuple[str, str], str]
    edges: dict[tuple[tuple[str, str], tuple[str, str]], tuple[str, str, float]]  # (relation, kind, score)


def _graph(paths: Sequence[PathOut]) -> _Graph:
    g = _Graph([[], [], [], []], {}, {})
    where: dict[tuple[str, str], int] = {}
    for p in paths:
        keys = [(n.type, n.id) for n in p.nodes]
        cols = _columns(p.nodes, len(keys))
        for pos, (key, node) in enumerate(zip(keys, p.nodes, strict=False)):
            if key not in where:
                where[key] = cols[pos]
                g.columns[cols[pos]].append(key)
                g.names[key] = node.name
        for pos in range(len(keys) - 1):
            rel = p.relations[pos] if pos < len(p.relations) else ""
            edge = (keys[pos], keys[pos + 1])
            if edge not in g.edges or g.edges[edge][2] < p.score:
                g.edges[edge] = (rel, p.kind, p.score)
    return g


def _width(score: float, top: float) -> float:
    return round(1.5 + 4.5 * max(score, 0.0) / top, 2) if top > 0 else 2.0


def _node(x: float, y: float, w: float, h: float, key: tuple[str, str], name: str, lines: list[str], size: int) -> str:
    kind, ident = key
    colour = NODE_COLOURS.get(kind, "#555")
    first = y - (len(lines) - 1) * LINE_H / 2 + size * 0.35
    spans = "".join(
        f'<tspan x="{x}" y="{first + n * LINE_H:.1f}">{escape(line)}</tspan>' for n, line in enumerate(lines)
    )
    return (
        f'<g class="node"><title>{escape(kind)} {escape(ident)}: {escape(name)}</title>'
        f'<rect x="{x - w / 2:.1f}" y="{y - h / 2:.1f}" width="{w}" height="{h}" rx="8" fill="{colour}"/>'
        f'<text x="{x}" font-size="{size}" fill="#fff" text-anchor="middle">{spans}</text></g>'
    )


def _legend(kinds: list[str], y: float, width: float, m: Messages) -> tuple[list[str], float]:
    out, x = [], 12.0
    for kind in kinds:
        label = m[f"kind.{kind}"] if f"kind.{kind}" in m.table else kind
        step = 34 + 7.2 * len(label)
        if x + step > width:
            x, y = 12.0, y + 20
        out.append(
            f'<g class="legend"><line x1="{x}" y1="{y}" x2="{x + 24}" y2="{y}" stroke="{EDGE_COLOURS.get(kind, "#888")}" '
            f'stroke-width="4"/><text x="{x + 30}" y="{y + 4}" font-size="12" fill="#33404c">{escape(label)}</text></g>'
        )
        x += step
    return out, y + 14


@dataclass(frozen=True)
class Layout:
    """Where a drawing puts its columns (None: the column is left out), how wide its boxes and labels are."""

    width: int
    xs: tuple[float | None, ...]
    node_w: float
    chars: int
    lines: int
    font: int
    css: str


#: desktop: four columns left to right
WIDE = Layout(WIDTH, COLUMN_X, NODE_W, LABEL_CHARS, MAX_LINES, 12, "wide")
#: a phone: the customer's own column left out (the page names them), three narrow columns, labels on more lines,
#: at about the screen's own scale (a 360-unit viewBox on a 390 px screen)
NARROW = Layout(NARROW_W, (None, 60, 180, 300), NARROW_NODE_W, NARROW_CHARS, 4, 12, "narrow")


def _draw(g: _Graph, title: str, m: Messages, lay: Layout) -> str:
    shown = {k for c, keys in enumerate(g.columns) if lay.xs[c] is not None for k in keys}
    lines = {k: wrap(g.names[k], lay.chars, lay.lines) for k in shown}
    node_h = 12 + LINE_H * max((len(v) for v in lines.values()), default=1)
    row_h = node_h + 14
    rows = max((len(c) for n, c in enumerate(g.columns) if lay.xs[n] is not None), default=1) or 1
    top = 30
    pos: dict[tuple[str, str], tuple[float, float]] = {}
    for c, keys in enumerate(g.columns):
        x = lay.xs[c]
        if x is None:
            continue
        offset = (rows - len(keys)) * row_h / 2
        for r, key in enumerate(keys):
            pos[key] = (x, top + offset + r * row_h + row_h / 2)
    edges = {e: v for e, v in g.edges.items() if e[0] in pos and e[1] in pos}
    kinds = sorted({k for _, k, _ in g.edges.values()})
    legend, height = _legend(kinds, top + rows * row_h + 16, lay.width, m)
    best = max((s for _, _, s in g.edges.values()), default=0.0)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="paths {lay.css}" viewBox="0 0 {lay.width} {height:.0f}" '
        f'role="img" aria-label="{escape(title, quote=True)}"><title>{escape(title)}</title>'
    ]
    out += [
        f'<text x="{x}" y="18" class="col" font-size="11" fill="#5b6670" text-anchor="middle">{label.upper()}</text>'
        for x, label in zip(lay.xs, COLUMN_TITLES, strict=True)
        if x is not None
    ]
    half = lay.node_w / 2
    for (a, b), (rel, kind, score) in edges.items():  # from box edge to box edge: lines run in the gutters
        (x1, y1), (x2, y2) = pos[a], pos[b]
        sx, ex = (x1 + half, x2 - half) if x2 > x1 else (x1 - half, x2 + half)
        out.append(
            f'<line x1="{sx:.1f}" y1="{y1:.1f}" x2="{ex:.1f}" y2="{y2:.1f}" class="edge k-{escape(kind)}" '
            f'stroke="{EDGE_COLOURS.get(kind, "#9aa6b2")}" stroke-width="{_width(score, best)}" stroke-linecap="round">'
            f"<title>{escape(rel.lower().replace('_', ' '))}</title></line>"
        )
    out += [_node(x, y, lay.node_w, node_h, k, g.names[k], lines[k], lay.font) for k, (x, y) in pos.items()]
    out += legend
    out.append("</svg>")
    return "".join(out)


def path_svg(paths: Sequence[PathOut], title: str = "explanation paths", *, m: Messages | None = None) -> str:
    """SVG markup (a string safe to embed in HTML) drawing ``paths`` as one subgraph, wide and narrow."""
    m = m or messages()
    g = _graph(paths)
    return _draw(g, title, m, WIDE) + _draw(g, title, m, NARROW)
