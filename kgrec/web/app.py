"""The ASGI app: :func:`create_app` builds it from an explicit :class:`WebConfig`."""

from __future__ import annotations

import gc
import json
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kgrec.errors import KgrecError, UnknownIdError
from kgrec.web.api import api_router, events_router
from kgrec.web.auth import Authenticator
from kgrec.web.config import CONFIG_ENV, TOKEN_ENV, WRITE_TOKEN_ENV, WebConfig
from kgrec.web.models import escaped_json, store_unavailable_detail, store_unavailable_errors
from kgrec.web.pages import page_router
from kgrec.web.service import RecService
from kgrec.web.templates import environment

log = logging.getLogger(__name__)

#: sent with every response: no script at all, no framing, no sniffing, no referrer to other sites
#: (``same-origin``: the page's own form posts carry their Origin, which the login/logout check reads)
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
        b"frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]

#: the route pipelines append events to (mounted only with a write token)
EVENTS_PATH = "/api/events"

#: hard cap on any response body; a larger answer is replaced by a 500 error answer that says so
MAX_RESPONSE_BYTES = 8 * 1024 * 1024


def _wants_json(path: str) -> bool:
    return path.startswith("/api/") or path in ("/health", "/openapi.json")


def error_answer(path: str, status: int, detail: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Headers and body of an error answer: ``{"detail": …}`` for the API, an HTML page for the page's routes."""
    if _wants_json(path):
        body = escaped_json(json.dumps({"detail": detail}, ensure_ascii=False).encode())
        ctype = b"application/json"
    else:
        body = environment().get_template("error.html").render(code=status, message=detail, show_logout=False).encode()
        ctype = b"text/html; charset=utf-8"
    headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode()), (b"cache-control", b"no-store")]
    return headers, body


class SecurityHeaders:
    """Pure ASGI middleware around every answer (cheaper than a BaseHTTPMiddleware).

    - adds :data:`SECURITY_HEADERS` to every answer, error answers included;
    - answers ``HEAD`` as ``GET`` without the body (same status and headers);
    - refuses to send a body over ``max_body`` bytes: a 500 answer saying so goes out instead;
    - turns an exception no handler took into a 500 answer (JSON for the API, HTML for the page)
      with these headers, and logs it with its traceback.
    """

    def __init__(self, app: ASGIApp, max_body: int = MAX_RESPONSE_BYTES) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        head = scope["method"] == "HEAD"
        inner = {**scope, "method": "GET"} if head else scope
        path = str(scope.get("path", ""))
        start: Message | None = None
        chunks: list[bytes] = []
        size = 0
        started = False  # whether anything went to the client
        done = False

        async def answer(status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
            nonlocal started, done
            started = done = True
            await send({"type": "http.response.start", "status": status, "headers": headers + SECURITY_HEADERS})
            await send({"type": "http.response.body", "body": b"" if head else body})

        async def guarded_send(message: Message) -> None:
            nonlocal start, size
            if done:
                return
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_body:
                log.error("answer to %s is over %d bytes (the limit): refused", path, self.max_body)
                headers, err = error_answer(
                    path,
                    500,
                    f"the answer is larger than this server's limit of {self.max_body} "
                    "bytes per response; ask for less (a smaller k, top or limit)",
                )
                await answer(500, headers, err)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                await answer(int(start["status"]), list(start.get("headers", [])), b"".join(chunks))

        try:
            await self.app(inner, receive, guarded_send)
        except Exception:
            log.exception("unhandled error answering %s %s", scope["method"], path)
            if started:
                raise
            headers, body = error_answer(
                path, 500, "internal error: the server could not answer this request; the server log has the details"
            )
            await answer(500, headers, body)


def _error(status: int, detail: Any, headers: dict[str, str] | None = None) -> Response:
    body = escaped_json(json.dumps({"detail": detail}, ensure_ascii=False).encode())
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _limit_math_threads(n: int) -> None:
    """Process-wide: torch and the BLAS under numpy use ``n`` threads per operation.

    Per-request matrix work is small (one user against all items); many threads per
    operation only contend with the other requests (measured: explanations twice as slow).
    """
    import threadpoolctl
    import torch

    torch.set_num_threads(n)
    threadpoolctl.threadpool_limits(limits=n, user_api="blas")


def create_app(config: WebConfig, service: RecService | None = None) -> FastAPI:
    """The web page and JSON API over one model and one store.

    Args:
        config: what to serve and how (token, store, model, limits, cache).
        service: an already opened service (default: open ``config.store`` and load the model now).

    Raises:
        ConfigError: no token and not ``no_auth``.
        KgrecError: the store or the model cannot be opened.
    """
    config.check_auth()
    if config.math_threads is not None:
        _limit_math_threads(config.math_threads)
    svc = service if service is not None else RecService.open(config)
    auth = Authenticator(config)
    limiter = anyio.CapacityLimiter(config.compute_threads)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        log.info(
            "serving model %s (%s store, auth %s, POST /api/events %s)",
            svc.version,
            svc.store_kind,
            "on" if auth.enabled else "OFF",
            "on" if auth.writes_enabled else "off",
        )
        yield
        if service is None:
            svc.close()

    app = FastAPI(
        title="kgrec",
        version=svc.version,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        description="Recommendations and their explanations. Every GET /api route needs "
        "`Authorization: Bearer <KGREC_API_TOKEN>` (or the page's session cookie); POST /api/events, there only "
        "when the server has a write token, needs `Authorization: Bearer <KGREC_WRITE_TOKEN>`.",
    )
    app.state.service = svc
    app.include_router(api_router(svc, auth, limiter))
    if auth.writes_enabled:  # without a write token no route writes (the fallback below says how to turn it on)
        app.include_router(events_router(svc, auth))
    app.include_router(page_router(svc, auth))

    @app.exception_handler(UnknownIdError)
    async def _unknown(_: Request, e: UnknownIdError) -> Response:
        return _error(404, str(e))

    async def _store(_: Request, e: Exception) -> Response:
        log.warning("store error: %s: %s", type(e).__name__, e)
        return _error(503, store_unavailable_detail(e), {"Retry-After": "60"})

    for exc in store_unavailable_errors():
        app.add_exception_handler(exc, _store)

    @app.exception_handler(KgrecError)
    async def _kgrec(_: Request, e: KgrecError) -> Response:
        return _error(400, str(e))

    @app.exception_handler(ValueError)
    async def _value(_: Request, e: ValueError) -> Response:
        return _error(422, str(e))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException) -> Response:
        if e.status_code in (404, 405) and request.url.path == EVENTS_PATH and not auth.writes_enabled:
            off = auth.write_denial(None, None)
            if off is not None:
                return _error(*off)
        return _error(e.status_code, e.detail, dict(e.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, e: RequestValidationError) -> Response:
        # the offending input is not echoed back
        errors = [
            {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
            for err in e.errors()
        ]
        return _error(422, errors)

    app.add_middleware(SecurityHeaders, max_body=MAX_RESPONSE_BYTES)
    return app


def freeze_heap() -> None:
    """Move everything allocated so far (model, indexes) out of the garbage collector's sight.

    For server processes only, after the app is built: later full collections then walk only
    what requests allocate, instead of pausing every request for the whole loaded model.
    """
    gc.collect()
    gc.freeze()


def app_from_env() -> FastAPI:
    """App factory for ``uvicorn --factory`` worker processes started by ``kgrec serve --workers N``.

    Reads the config from ``KGREC_WEB_CONFIG`` (JSON, written by ``kgrec serve``) and the tokens from
    ``KGREC_API_TOKEN`` and ``KGREC_WRITE_TOKEN``.
    """
    raw = os.environ.get(CONFIG_ENV)
    if not raw:
        raise KgrecError(f"{CONFIG_ENV} is not set; start the server with `kgrec serve`")
    values = json.loads(raw)
    for env, field in ((TOKEN_ENV, "token"), (WRITE_TOKEN_ENV, "write_token")):
        token = os.environ.get(env)
        if token:
            values[field] = token
    app = create_app(WebConfig.model_validate(values))
    freeze_heap()
    return app
