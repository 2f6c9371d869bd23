"""The JSON API: recommendations, explanations, item search, health. GET only.

No ``from __future__ import annotations`` here: FastAPI reads the route annotations at run time,
and they refer to limits from the config (closure variables).
"""

from collections.abc import Callable
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response
from fastapi.security import HTTPBearer

from kgrec.messages import DEFAULT_LANG, LANGUAGES
from kgrec.web.auth import COOKIE_NAME, Authenticator
from kgrec.web.models import (
    MAX_SEARCH_HITS,
    ErrorOut,
    ExplanationOut,
    Health,
    ItemSearchOut,
    RecommendationsOut,
    to_json,
)
from kgrec.web.service import MAX_LONG_TAIL, MAX_QUERY, RecService

# documents the scheme in the OpenAPI schema; the check itself also accepts the session cookie
_bearer = HTTPBearer(
    auto_error=False, description="`Authorization: Bearer $KGREC_API_TOKEN` (or the page's session cookie)"
)

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "no or wrong token"},
    404: {"model": ErrorOut, "description": "unknown user or item"},
    422: {"description": "invalid parameter (e.g. k out of range)"},
    503: {"model": ErrorOut, "description": "the store does not answer"},
}


#: the ``lang`` query parameter: a language with a message catalogue (kgrec.messages)
LANG_PATTERN = "^(" + "|".join(LANGUAGES) + ")$"
LANG_HELP = f"language of the explanation sentences: {', '.join(LANGUAGES)}"


def json_response(body: bytes) -> Response:
    return Response(content=body, media_type="application/json")


def api_router(service: RecService, auth: Authenticator, limiter: anyio.CapacityLimiter) -> APIRouter:
    """The ``/api`` and ``/health`` routes over ``service``."""
    cfg = service.config

    async def require_auth(request: Request, _: Annotated[object, Depends(_bearer)] = None) -> None:
        if not auth.request_ok(request.headers.get("authorization"), request.cookies.get(COOKIE_NAME)):
            raise HTTPException(
                401,
                "authentication required: send Authorization: Bearer <KGREC_API_TOKEN> or log in on the page",
                headers={"WWW-Authenticate": "Bearer"},
            )

    async def compute(fn: Callable[..., bytes], *args: object) -> bytes:
        return await anyio.to_thread.run_sync(fn, *args, limiter=limiter)

    router = APIRouter()
    secured = [Depends(require_auth)]

    @router.get("/health", response_model=Health, tags=["service"], summary="Liveness and the loaded model")
    async def health() -> Response:
        return json_response(to_json(service.health()))

    @router.get(
        "/api/users/{user:path}/recommendations",
        response_model=RecommendationsOut,
        responses=_ERRORS,
        dependencies=secured,
        tags=["recommendations"],
        summary="Top-k items for a user, each with its top explanation sentence",
    )
    async def recommendations(
        user: str,
        k: Annotated[int, Query(ge=1, le=cfg.max_k)] = cfg.default_k,
        diversity: Annotated[
            float, Query(ge=0.0, le=1.0, description="re-rank for variety: MMR weight λ (0: off)")
        ] = 0.0,
        long_tail: Annotated[
            float, Query(ge=0.0, le=MAX_LONG_TAIL, description="re-rank towards less popular items: penalty β (0: off)")
        ] = 0.0,
        lang: Annotated[str, Query(pattern=LANG_PATTERN, description=LANG_HELP)] = DEFAULT_LANG,
    ) -> Response:
        hit = service.cached_recommendations_json(user, k, diversity, long_tail, lang)
        return json_response(
            hit if hit is not None else await compute(service.recommendations_json, user, k, diversity, long_tail, lang)
        )

    @router.get(
        "/api/users/{user:path}/explanations/{item:path}",
        response_model=ExplanationOut,
        responses=_ERRORS,
        dependencies=secured,
        tags=["recommendations"],
        summary="Why an item is (or is not) recommended to a user: scored paths as sentences",
    )
    async def explanation(
        user: str,
        item: str,
        k: Annotated[int, Query(ge=1, le=cfg.max_k, description="list length for the 'why not' part")] = cfg.default_k,
        top: Annotated[int, Query(ge=1, le=cfg.max_top_paths, description="paths to return")] = cfg.top_paths,
        lang: Annotated[str, Query(pattern=LANG_PATTERN, description=LANG_HELP)] = DEFAULT_LANG,
    ) -> Response:
        hit = service.cached_explanation_json(user, item, k, top, lang)
        return json_response(
            hit if hit is not None else await compute(service.explanation_json, user, item, k, top, lang)
        )

    @router.get(
        "/api/items/search",
        response_model=ItemSearchOut,
        responses=_ERRORS,
        dependencies=secured,
        tags=["items"],
        summary="Items by id or title text",
    )
    async def search(
        q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY, description="an item id or part of a title")],
        limit: Annotated[int, Query(ge=1, le=MAX_SEARCH_HITS)] = 20,
    ) -> Response:
        # a scan over every title: off the event loop, outside the compute limiter
        return json_response(await anyio.to_thread.run_sync(lambda: to_json(service.search(q, limit))))

    return router
