"""Response models of the JSON API (they make the OpenAPI schema).

:class:`ExplanationOut` is the JSON contract of ``Explanation.to_dict()``
(``docs/explanations.md``), field for field.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


def escaped_json(body: bytes) -> bytes:
    """JSON with ``<``, ``>`` and ``&`` as ``\\u`` escapes: the same value, but never markup, even if sniffed as HTML."""
    return body.replace(b"<", b"\\u003c").replace(b">", b"\\u003e").replace(b"&", b"\\u0026")


def to_json(model: BaseModel) -> bytes:
    """A response model as escaped JSON bytes (pydantic-core serialisation)."""
    return escaped_json(model.model_dump_json().encode())


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Health(_Out):
    status: str = Field(description="'ok' when the model and store are loaded")
    model_version: str
    store: str = Field(description="'embedded' or 'neo4j'")
    users: int
    items: int


class PathNodeOut(_Out):
    type: str = Field(description="user, item, category, keyword or entity")
    id: str
    name: str = Field(description="title for items, 'user <id>' for users, the id otherwise")


class PathOut(_Out):
    score: float = Field(description="this path's share of the recommendation's score")
    sentence: str
    kind: str = Field(description="category, keyword, tag, entity or user")
    nodes: list[PathNodeOut] = Field(description="from the user to the item")
    relations: list[str]


class Attribution(_Out):
    structure: float
    text: float


class ExplanationOut(_Out):
    """Why an item is (or is not) recommended to a user."""

    user: str
    item: str
    title: str
    rank: int = Field(description="rank among items the user has not interacted with (0: already interacted)")
    score: float
    k: int = Field(description="list length the 'why not' part refers to")
    paths: list[PathOut] = Field(description="the strongest paths, best first")
    attribution: Attribution
    interacted: bool
    gap_to_k: float | None = Field(description="score distance to the k-th item when rank > k")
    message: str
    total_paths: int = Field(description="candidate paths found (paths holds the strongest of them)")


class RecommendationOut(_Out):
    rank: int
    item: str
    title: str
    score: float
    explanation: str = Field(description="the top path's sentence (or why there is none)")
    kind: str | None = Field(description="the top path's kind")


class RecommendationsOut(_Out):
    user: str
    k: int
    model_version: str
    items: list[RecommendationOut]


class ItemHit(_Out):
    item: str
    title: str


class ItemSearchOut(_Out):
    q: str
    items: list[ItemHit] = Field(description="exact id match first, then titles starting with q, then titles containing it")


class ErrorOut(_Out):
    detail: str
