"""What an explanation is: the result types shared by the CLI, the Python API and the web API, and the
sentences of each path kind (from the message catalogues, :mod:`kgrec.messages`).

How paths are found and scored is :mod:`kgrec.fusion.explain`; this module only holds and renders them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import pandas as pd

from kgrec.graph.paths import PATH_KINDS
from kgrec.messages import messages

__all__ = [
    "COOC",
    "EXPLANATION_KINDS",
    "Explanation",
    "ExplanationPath",
    "PathNode",
    "headline",
    "humanise",
    "sentence",
]

#: the path kind of the co-occurrence part: user -> history item j -> (people who chose j also chose) -> item
COOC = "cooccurrence"
#: every kind an explanation path can have: the graph's path kinds and the co-occurrence part's
EXPLANATION_KINDS = (*PATH_KINDS, COOC)


@dataclass
class PathNode:
    type: str
    id: str
    name: str


@dataclass
class ExplanationPath:
    score: float
    sentence: str
    kind: str
    nodes: list[PathNode]
    relations: list[str]


@dataclass
class Explanation:
    """The JSON contract shared by the CLI, the Python API and the web API."""

    user: str
    item: str
    title: str
    rank: int
    score: float
    k: int
    paths: list[ExplanationPath]
    attribution: dict[str, float]
    interacted: bool = False
    gap_to_k: float | None = None
    message: str = ""
    total_paths: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("extra")
        return d

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {"rank": r + 1, "score": p.score, "kind": p.kind, "sentence": p.sentence}
                for r, p in enumerate(self.paths)
            ],
            columns=["rank", "score", "kind", "sentence"],
        )

    def headline(self) -> str:
        """The top path's sentence, else the message (see :func:`headline`)."""
        return headline(self)

    def text(self) -> str:
        lines = [self.message] if self.message else []
        for r, p in enumerate(self.paths, 1):
            lines.append(f"{r}. [{p.score:+.3f}] {p.sentence}")
        co = f" + co-occurrence {self.attribution['cooccurrence']:+.3f}" if "cooccurrence" in self.attribution else ""
        lines.append(
            f"score {self.score:.3f} = structure {self.attribution['structure']:+.3f} + text {self.attribution['text']:+.3f}{co}"
        )
        return "\n".join(lines)


class _Sentence(Protocol):
    @property
    def sentence(self) -> str: ...


class _Explained(Protocol):
    @property
    def paths(self) -> Sequence[_Sentence]: ...

    @property
    def message(self) -> str: ...


def headline(e: _Explained) -> str:
    """The top path's sentence, else the message: what a list of recommendations shows per item
    (an :class:`Explanation`, or the web API's ``ExplanationOut``)."""
    return e.paths[0].sentence if e.paths else e.message


def humanise(relation: str) -> str:
    return relation.replace("_", " ").strip().lower()


def sentence(
    kind: str,
    verb: str,
    anchor: str,
    via: str,
    item: str,
    rel_a: str = "",
    rel_b: str = "",
    via_name: str = "",
    *,
    lang: str | None = None,
) -> str:
    """One readable sentence for a path (titles already resolved; ``verb`` already in ``lang``), from the
    message catalogue of ``lang`` (:mod:`kgrec.messages`; default English)."""
    m = messages(lang)
    if kind in ("category", "keyword", "tag", "user", COOC):
        return m(f"path.{kind}", verb=verb, anchor=anchor, via=via, item=item, via_name=via_name)
    if kind == "entity":
        key = "path.entity.same" if rel_a == rel_b else "path.entity.other"
        return m(key, verb=verb, anchor=anchor, via=via, item=item, rel_a=humanise(rel_a), rel_b=humanise(rel_b))
    if kind == "attribute":
        name, _, value = via.partition("=")
        return m("path.attribute", name=humanise(name), value=value, verb=verb, item=item)
    raise ValueError(f"unknown path kind {kind!r}")
