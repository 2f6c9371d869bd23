"""The JSON API: recommendations, explanations, item search, health (GET), and events (POST, write token only).

No ``from __future__ import annotations`` here: FastAPI reads the route annotations at run time,
and they refer to limits from the config (closure variables).
"""

from collections.abc import Callable
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response
from fastapi.security import HTTPBearer

from kgrec.errors import DataValidationError
from kgrec.messages import DEFAULT_LANG, LANGUAGES
from kgrec.web.auth import COOKIE_NAME, Authenticator, foreign_origin
from kgrec.web.events import JSON_TYPE, NDJSON_TYPE, BatchRejected, body_format, parse_batch
from kgrec.web.models import (
    EVENT_SCHEMA,
    MAX_SEARCH_HITS,
    ErrorOut,
    EventsOut,
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

# the write token, for the schema; the check is Authenticator.write_denial
_write_bearer = HTTPBearer(
    auto_error=False, scheme_name="WriteToken", description="`Authorization: Bearer $KGREC_WRITE_TOKEN`"
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


#: threads re-checking cached answers after the data changed (a store read each), beside the compute threads
CHECK_THREADS = 4
#: POST /api/events requests parsed and waiting for the store at once (the ones waiting are appended together)
WRITE_THREADS = 16


def json_response(body: bytes) -> Response:
    return Response(content=body, media_type="application/json")


def api_router(service: RecService, auth: Authenticator, limiter: anyio.CapacityLimiter) -> APIRouter:
    """The ``/api`` and ``/health`` routes over ``service``."""
    cfg = service.config
    checks = anyio.CapacityLimiter(CHECK_THREADS)

    async def require_auth(request: Request, _: Annotated[object, Depends(_bearer)] = None) -> None:
        if not auth.request_ok(request.headers.get("authorization"), request.cookies.get(COOKIE_NAME)):
            raise HTTPException(
                401,
                "authentication required: send Authorization: Bearer <KGREC_API_TOKEN> or log in on the page",
                headers={"WWW-Authenticate": "Bearer"},
            )

    async def compute(fn: Callable[..., bytes], *args: object) -> bytes:
        return await anyio.to_thread.run_sync(fn, *args, limiter=limiter)

    async def recheck(fn: Callable[..., bytes | None], *args: object) -> bytes | None:
        # a cached answer from before the data changed: one store read decides whether it still holds;
        # outside the compute threads' queue (measured: cached reads waited seconds behind new answers)
        return await anyio.to_thread.run_sync(fn, *args, limiter=checks)

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
        diversity_by: Annotated[
            str,
            Query(
                pattern="^(vectors|categories|both)$",
                description="what makes items alike for diversity: vectors, categories (e.g. genres) or both",
            ),
        ] = "vectors",
    ) -> Response:
        args = (user, k, diversity, long_tail, lang, diversity_by)
        hit = service.cached_recommendations_json(*args)
        if hit is None and service.stale_recommendations(*args):
            hit = await recheck(service.rechecked_recommendations_json, *args)
        return json_response(hit if hit is not None else await compute(service.recommendations_json, *args))

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
        if hit is None and service.stale_explanation(user, item, k, top, lang):
            hit = await recheck(service.rechecked_explanation_json, user, item, k, top, lang)
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


_EVENT_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "the body is not JSON (or JSON lines), or not an array"},
    401: {"model": ErrorOut, "description": "no or wrong write token"},
    403: {
        "model": ErrorOut,
        "description": "the read token or a page session (a write token is needed), a request "
        "from another site, or writing is off on this server",
    },
    413: {"model": ErrorOut, "description": "body over max_event_bytes, or more than max_events events"},
    415: {"model": ErrorOut, "description": f"Content-Type neither {JSON_TYPE} nor {NDJSON_TYPE}"},
    422: {
        "model": ErrorOut,
        "description": "a bad event, or one naming an item the store does not hold: the "
        "message names the row (from 1) and the field; nothing was appended",
    },
    503: {"model": ErrorOut, "description": "the store does not answer"},
}


def _too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"request body over {limit:,} bytes (the limit); send fewer events per request")


async def read_capped(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is over ``limit`` bytes (a ``Content-Length`` over the
    limit before any byte is read; a body without one, or longer than it said, once ``limit`` bytes came)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise HTTPException(400, f"Content-Length {declared[:40]!r} is not a number of bytes") from None
        if size > limit:
            raise _too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


def events_router(service: RecService, auth: Authenticator) -> APIRouter:
    """``POST /api/events`` over ``service`` (only mounted when a write token is configured)."""
    cfg = service.config
    # requests parsed and waiting at once; the service appends one group of them at a time (group commit)
    writer = anyio.CapacityLimiter(WRITE_THREADS)
    router = APIRouter()

    @router.post(
        "/api/events",
        response_model=EventsOut,
        responses=_EVENT_ERRORS,
        tags=["events"],
        summary="Append interactions (a JSON array, or JSON lines); needs the write token",
        description=f"The body is a JSON array of events (`Content-Type: {JSON_TYPE}`) or one event object per "
        f"line (`{NDJSON_TYPE}`), at most {cfg.max_events:,} events and {cfg.max_event_bytes:,} bytes. A batch is "
        "checked whole and appended whole, or refused with a message naming the row and the field.",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    JSON_TYPE: {"schema": {"type": "array", "items": EVENT_SCHEMA}},
                    NDJSON_TYPE: {"schema": {"type": "string", "description": "one event object per line"}},
                },
            }
        },
    )
    async def events(request: Request, _: Annotated[object, Depends(_write_bearer)] = None) -> Response:
        denial = auth.write_denial(request.headers.get("authorization"), request.cookies.get(COOKIE_NAME))
        if denial is not None:
            status, message = denial
            raise HTTPException(status, message, headers={"WWW-Authenticate": "Bearer"} if status == 401 else None)
        source = foreign_origin(
            request.headers.get("origin"),
            request.headers.get("referer"),
            [request.headers.get("x-forwarded-host"), request.headers.get("host")],
        )
        if source is not None:
            raise HTTPException(
                403,
                f"POST /api/events sent from another site ({source[:200]}) is refused; "
                "send it from a pipeline (no Origin header) or from this server's own origin",
            )
        ctype = request.headers.get("content-type")
        try:
            body_format(ctype)  # 415 before the body is read
        except BatchRejected as e:
            raise HTTPException(e.status, str(e)) from None
        body = await read_capped(request, cfg.max_event_bytes)

        def work() -> bytes:
            return to_json(service.append_events(parse_batch(body, ctype, cfg.max_events)))

        try:
            return json_response(await anyio.to_thread.run_sync(work, limiter=writer))
        except BatchRejected as e:
            raise HTTPException(e.status, str(e)) from None
        except DataValidationError as e:  # an unknown item, or the store's own check: nothing was appended
            raise HTTPException(422, str(e)) from None

    return router
