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

from kgrec.errors import KgrecError, StoreError, UnknownIdError
from kgrec.web.api import api_router
from kgrec.web.models import escaped_json
from kgrec.web.auth import Authenticator
from kgrec.web.config import CONFIG_ENV, TOKEN_ENV, WebConfig
from kgrec.web.pages import page_router
from kgrec.web.service import RecService

log = logging.getLogger(__name__)

#: sent with every response: no script at all, no framing, no sniffing, no referrer
SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
     b"frame-ancestors 'none'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


class SecurityHeaders:
    """Pure ASGI middleware adding :data:`SECURITY_HEADERS` (cheaper than a BaseHTTPMiddleware)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)


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
        log.info("serving model %s (%s store, auth %s)", svc.version, svc.store_kind, "on" if auth.enabled else "OFF")
        yield
        if service is None:
            svc.close()

    app = FastAPI(
        title="kgrec", version=svc.version, lifespan=lifespan, docs_url=None, redoc_url=None,
        description="Read-only recommendations and their explanations. Every /api route needs "
        "`Authorization: Bearer <KGREC_API_TOKEN>` (or the page's session cookie).",
    )
    app.state.service = svc
    app.include_router(api_router(svc, auth, limiter))
    app.include_router(page_router(svc, auth))

    @app.exception_handler(UnknownIdError)
    async def _unknown(_: Request, e: UnknownIdError) -> Response:
        return _error(404, str(e))

    @app.exception_handler(StoreError)
    async def _store(_: Request, e: StoreError) -> Response:
        log.warning("store error: %s", e)
        return _error(503, f"the store does not answer: {e}")

    @app.exception_handler(KgrecError)
    async def _kgrec(_: Request, e: KgrecError) -> Response:
        return _error(400, str(e))

    @app.exception_handler(ValueError)
    async def _value(_: Request, e: ValueError) -> Response:
        return _error(422, str(e))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, e: StarletteHTTPException) -> Response:
        return _error(e.status_code, e.detail, dict(e.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, e: RequestValidationError) -> Response:
        # the offending input is not echoed back
        errors = [{"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")} for err in e.errors()]
        return _error(422, errors)

    app.add_middleware(SecurityHeaders)
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

    Reads the config from ``KGREC_WEB_CONFIG`` (JSON, written by ``kgrec serve``) and the token from ``KGREC_API_TOKEN``.
    """
    raw = os.environ.get(CONFIG_ENV)
    if not raw:
        raise KgrecError(f"{CONFIG_ENV} is not set; start the server with `kgrec serve`")
    values = json.loads(raw)
    token = os.environ.get(TOKEN_ENV)
    if token:
        values["token"] = token
    app = create_app(WebConfig.model_validate(values))
    freeze_heap()
    return app
