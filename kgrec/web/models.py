"""Response models of the JSON API (they make the OpenAPI schema).

:class:`ExplanationOut` is the JSON contract of ``Explanation.to_dict()``
(``docs/explanations.md``), field for field.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

#: longest title (item title, path node name) the page and the API show; a longer one is cut and ends in "…"
MAX_TITLE_CHARS = 300
#: longest sentence or message (explanation sentences, "why not" messages) the page and the API show
MAX_SENTENCE_CHARS = 2000
#: most items one search answer lists (the ``limit`` parameter's upper bound)
MAX_SEARCH_HITS = 100


def clip(text: str, limit: int) -> str:
    """``text`` if it has at most ``limit`` characters, else its first ``limit - 1`` characters and "…"."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _clip_title(text: str) -> str:
    return clip(text, MAX_TITLE_CHARS)


def _clip_text(text: str) -> str:
    return clip(text, MAX_SENTENCE_CHARS)


#: a title as shown: at most :data:`MAX_TITLE_CHARS` characters
Title = Annotated[str, AfterValidator(_clip_title)]
#: a sentence or message as shown: at most :data:`MAX_SENTENCE_CHARS` characters
Text = Annotated[str, AfterValidator(_clip_text)]


def store_unavailable_errors() -> tuple[type[Exception], ...]:
    """Exceptions that mean "the store does not answer" (answered 503, on the API and the page).

    kgrec's own :class:`~kgrec.errors.StoreError`, the Neo4j driver's lost-server errors
    (``ServiceUnavailable``, ``SessionExpired``, ``TransientError``), and ``OSError`` from
    reading the embedded store's files.
    """
    from neo4j.exceptions import ServiceUnavailable, SessionExpired, TransientError

    from kgrec.errors import StoreError

    return (StoreError, ServiceUnavailable, SessionExpired, TransientError, OSError)


def store_unavailable_detail(e: BaseException) -> str:
    """The ``detail`` of a 503 answer: what failed, without a traceback."""
    from kgrec.errors import KgrecError

    what = str(e) if isinstance(e, KgrecError) else f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    what = clip(" ".join(what.split()), 500)
    return f"the store does not answer: {what}. Try again in a minute; if it lasts, check that the Neo4j server runs or that the store folder is readable."


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
    name: Title = Field(
        description=f"title for items (at most {MAX_TITLE_CHARS} characters), 'user <id>' for users, the id otherwise"
    )


class PathOut(_Out):
    score: float = Field(description="this path's share of the recommendation's score")
    sentence: Text = Field(description=f"the path as a sentence (at most {MAX_SENTENCE_CHARS} characters)")
    kind: str = Field(description="category, keyword, tag, entity or user")
    nodes: list[PathNodeOut] = Field(description="from the user to the item")
    relations: list[str]


class Attribution(_Out):
    structure: float
    text: float
    cooccurrence: float = Field(0.0, description="the co-occurrence part of the score (0 for a model without one)")


class ExplanationOut(_Out):
    """Why an item is (or is not) recommended to a user."""

    user: str
    item: str
    title: Title = Field(
        description=f"the item's title (at most {MAX_TITLE_CHARS} characters; a longer one ends in '…')"
    )
    rank: int = Field(description="rank among items the user has not interacted with (0: already interacted)")
    score: float
    k: int = Field(description="list length the 'why not' part refers to")
    paths: list[PathOut] = Field(description="the strongest paths, best first")
    attribution: Attribution
    interacted: bool
    gap_to_k: float | None = Field(description="score distance to the k-th item when rank > k")
    message: Text
    total_paths: int = Field(description="candidate paths found (paths holds the strongest of them)")

    @model_validator(mode="before")
    @classmethod
    def _short_titles_in_sentences(cls, data: Any) -> Any:
        """Inside the message and the sentences, a title over :data:`MAX_TITLE_CHARS` is cut as the title itself is.

        (Cutting only the whole sentence would keep a long title's first 2,000 characters and lose what
        the sentence says after it.)
        """
        if not isinstance(data, dict):
            return data
        paths = data.get("paths") or []
        names = {data.get("title")} | {
            n.get("name") for p in paths if isinstance(p, dict) for n in p.get("nodes") or [] if isinstance(n, dict)
        }
        long = sorted((x for x in names if isinstance(x, str) and len(x) > MAX_TITLE_CHARS), key=len, reverse=True)
        if not long:
            return data

        def short(text: Any) -> Any:
            if not isinstance(text, str):
                return text
            for name in long:
                text = text.replace(name, _clip_title(name))
            return text

        return {
            **data,
            "message": short(data.get("message")),
            "paths": [{**p, "sentence": short(p.get("sentence"))} if isinstance(p, dict) else p for p in paths],
        }


class RecommendationOut(_Out):
    rank: int
    item: str
    title: Title = Field(
        description=f"the item's title (at most {MAX_TITLE_CHARS} characters; a longer one ends in '…')"
    )
    score: float
    explanation: Text = Field(description="the top path's sentence (or why there is none)")
    kind: str | None = Field(description="the top path's kind")
    note: str | None = Field(
        None, description="why the re-ranker moved this item up (diversity / long_tail), else null"
    )


class RecommendationsOut(_Out):
    user: str
    k: int
    model_version: str
    items: list[RecommendationOut]
    diversity: float = Field(0.0, description="the re-ranker's MMR weight λ used (0: off)")
    long_tail: float = Field(0.0, description="the re-ranker's popularity penalty β used (0: off)")
    diversity_by: str = Field("vectors", description="what made items alike for diversity: vectors, categories, both")


class ItemHit(_Out):
    item: str
    title: Title = Field(
        description=f"the item's title (at most {MAX_TITLE_CHARS} characters; a longer one ends in '…')"
    )


class ItemSearchOut(_Out):
    q: str
    items: list[ItemHit] = Field(
        description="exact id match first, then titles starting with q, then titles containing it"
    )


class ErrorOut(_Out):
    detail: str


class EventsOut(_Out):
    """The answer to an accepted ``POST /api/events`` batch."""

    accepted: int = Field(description="events in the batch (all of them: a batch is accepted or refused whole)")
    changed: bool = Field(description="whether the store's data changed (false: it held all of them already)")
    fingerprint: str = Field(description="the store's data fingerprint afterwards")


#: the schema of one event of ``POST /api/events`` (for the OpenAPI schema; the checks are in kgrec.web.events)
EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["user", "item"],
    "additionalProperties": False,
    "properties": {
        "user": {"type": "string", "description": "user id"},
        "item": {"type": "string", "description": "item id (one the store holds, unless allow_unknown_items)"},
        "timestamp": {
            "anyOf": [{"type": "integer"}, {"type": "string", "format": "date-time"}],
            "description": "epoch seconds, or an ISO-8601 date (UTC without an offset); default: now",
        },
        "rating": {"type": "number", "description": "optional rating"},
    },
}
