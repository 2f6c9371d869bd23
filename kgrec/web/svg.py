"""A server-side SVG drawing of the subgraph formed by an explanation's paths.

Columns follow the path: user → history item (or tagged keyword) → connector
(category, keyword, entity or similar user) → recommended item. Nodes shared by
several paths are drawn once. Every label is escaped; nothing from the data
reaches the SVG unescaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from kgrec.web.models import PathOut

WIDTH = 720
COLUMN_X = (90, 270, 450, 630)
NODE_W = 170
ROW_H = 42
TOP = 34
LABEL_CHARS = 24
COLOURS = {
    "user": "#2f6f9f",
    "item": "#3f8f5f",
    "category": "#a0632b",
    "keyword": "#8a4f9e",
    "entity": "#9e3f4f",
    "tag": "#8a4f9e",
}
COLUMN_TITLES = ("user", "because of", "shared", "recommended")


def _short(text: str, n: int = LABEL_CHARS) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _column(position: int, length: int) -> int:
    # a 3-node path (user → keyword ← item) leaves the second column empty
    if length == 3:
        return (0, 2, 3)[position]
    return min(position, 3)


def path_svg(paths: Sequence[PathOut], title: str = "explanation paths") -> str:
    """SVG markup (a string safe to embed in HTML) drawing ``paths`` as one subgraph."""
    columns: list[list[tuple[str, str]]] = [[], [], [], []]
    names: dict[tuple[str, str], str] = {}
    where: dict[tuple[str, str], int] = {}
    edges: dict[tuple[tuple[str, str], tuple[str, str]], str] = {}
    for p in paths:
        keys = [(n.type, n.id) for n in p.nodes]
        for pos, (key, node) in enumerate(zip(keys, p.nodes, strict=False)):
            if key not in where:
                col = _column(pos, len(keys))
                where[key] = col
                columns[col].append(key)
                names[key] = node.name
        for pos in range(len(keys) - 1):
            rel = p.relations[pos] if pos < len(p.relations) else ""
            edges.setdefault((keys[pos], keys[pos + 1]), rel)
    rows = max((len(c) for c in columns), default=1) or 1
    height = TOP + rows * ROW_H + 10
    pos_of: dict[tuple[str, str], tuple[int, int]] = {}
    for c, keys in enumerate(columns):
        offset = (rows - len(keys)) * ROW_H // 2
        for r, key in enumerate(keys):
            pos_of[key] = (COLUMN_X[c], TOP + offset + r * ROW_H + ROW_H // 2)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="paths" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" role="img" aria-label="{escape(title, quote=True)}">',
        f"<title>{escape(title)}</title>",
    ]
    for c, label in enumerate(COLUMN_TITLES):
        out.append(f'<text x="{COLUMN_X[c]}" y="18" class="col">{label}</text>')
    for (a, b), rel in edges.items():
        (x1, y1), (x2, y2) = pos_of[a], pos_of[b]
        label = escape(rel.lower().replace("_", " "))
        out.append(f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" class="edge"><title>{label}</title></line>')
    for key, (x, y) in pos_of.items():
        kind, ident = key
        name = names[key]
        colour = COLOURS.get(kind, "#555")
        out.append(
            f'<g class="node"><title>{escape(kind)} {escape(ident)}: {escape(name)}</title>'
            f'<rect x="{x - NODE_W // 2}" y="{y - 14}" width="{NODE_W}" height="28" rx="8" fill="{colour}"/>'
            f'<text x="{x}" y="{y + 5}">{escape(_short(name))}</text></g>'
        )
    out.append("</svg>")
    return "".join(out)
