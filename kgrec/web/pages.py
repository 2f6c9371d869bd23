"""The page for support staff: log in, look up a user, read why each item is recommended, ask "why not?"."""

from __future__ import annotations

import logging
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup

from kgrec.errors import KgrecError, UnknownIdError
from kgrec.fusion.rerank import SIMILARITIES
from kgrec.messages import LANGUAGES, messages
from kgrec.web.auth import COOKIE_NAME, Authenticator, foreign_origin, safe_next
from kgrec.web.models import store_unavailable_detail, store_unavailable_errors
from kgrec.web.service import MAX_LONG_TAIL, RecService
from kgrec.web.svg import path_svg
from kgrec.web.templates import environment

log = logging.getLogger(__name__)


class PageError(Exception):
    """A problem shown on the page with an HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def page_router(service: RecService, auth: Authenticator) -> APIRouter:
    """``/`` (the page), ``/login`` and ``/logout``. Not part of the OpenAPI schema."""
    cfg = service.config
    env = environment()
    page_t, login_t, error_t = (
        env.get_template("page.html"),
        env.get_template("login.html"),
        env.get_template("error.html"),
    )
    store_down = store_unavailable_errors()

    def html(template: Any, status: int = 200, **ctx: Any) -> HTMLResponse:
        return HTMLResponse(template.render(**ctx), status_code=status, headers={"Cache-Control": "no-store"})

    def login_page(status: int, next_url: str, error: str = "") -> HTMLResponse:
        return html(login_t, status, next=safe_next(next_url), error=error, show_logout=False)

    def parse_k(raw: str | None) -> int:
        if raw is None or raw.strip() == "":
            return cfg.default_k
        try:
            k = int(raw)
        except ValueError:
            k = 0
        if not 1 <= k <= cfg.max_k:
            raise PageError(422, f"“How many” must be a whole number from 1 to {cfg.max_k} (got “{raw}”).")
        return k

    def parse_rerank(raw: str | None, name: str, hi: float) -> float:
        """A re-ranker control of the page: a number in [0, ``hi``]; empty is 0 (off)."""
        if raw is None or raw.strip() == "":
            return 0.0
        try:
            v = float(raw)
        except ValueError:
            v = -1.0
        if not 0.0 <= v <= hi:  # NaN fails too
            raise PageError(422, f"“{name}” must be a number from 0 to {hi:g} (got “{raw}”).")
        return v

    def fill(ctx: dict[str, Any], user: str | None, k: int, item: str | None, whynot: str | None) -> None:
        if not user:
            if item or whynot:
                raise PageError(422, "Type a user id first.")
            return
        lang = ctx["m"].lang
        ctx["recs"] = service.recommendations(user, k, ctx["diversity"], ctx["long_tail"], lang, ctx["diversity_by"])
        ctx["reasons"] = service.staff_recommendations(ctx["recs"], lang)
        ctx["history"] = service.recent_history(user)
        target = item
        if whynot and not item:
            found = service.resolve_item(whynot)
            if not found:
                raise PageError(404, f"No item has the id or a title containing “{whynot.strip()}”.")
            if len(found) > 1:
                ctx["candidates"] = found
                return
            target = found[0].item
        if target:
            detail = service.explanation(user, target, k, cfg.top_paths, lang)
            ctx["detail"] = detail
            ctx["detail_paths"] = service.staff_paths(detail, lang)
            title = ctx["m"]("page.svg_title", user=user, title=detail.title)
            ctx["svg"] = Markup(path_svg(detail.paths[: cfg.drawn_paths], title, m=ctx["m"]))

    router = APIRouter(include_in_schema=False)

    @router.get("/")
    def page(
        request: Request,
        user: str | None = None,
        k: str | None = None,
        item: str | None = None,
        whynot: str | None = None,
        diversity: str | None = None,
        long_tail: str | None = None,
        lang: str | None = None,
        diversity_by: str | None = None,
    ) -> Response:
        if not auth.request_ok(request.headers.get("authorization"), request.cookies.get(COOKIE_NAME)):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return login_page(401, target)
        user = user.strip() if user else None
        ctx: dict[str, Any] = {
            "user": user,
            "k": cfg.default_k,
            "max_k": cfg.max_k,
            "health": service.health(),
            "error": "",
            "recs": None,
            "detail": None,
            "svg": "",
            "whynot": whynot,
            "candidates": [],
            "reasons": [],
            "history": [],
            "detail_paths": [],
            "examples": service.example_users(),
            "verb": service.verb(lang if lang in LANGUAGES else "en"),
            "show_logout": auth.enabled,
            "diversity": 0.0,
            "diversity_by": "vectors",
            "similarities": SIMILARITIES,
            "long_tail": 0.0,
            "max_long_tail": MAX_LONG_TAIL,
            "rerank_q": "",
            "m": messages(lang if lang in LANGUAGES else None),
            "lang": lang if lang in LANGUAGES else "en",
        }
        status = 200
        try:
            ctx["k"] = parse_k(k)
            ctx["diversity"] = parse_rerank(diversity, "Variety", 1.0)
            ctx["long_tail"] = parse_rerank(long_tail, "Long tail", MAX_LONG_TAIL)
            if diversity_by not in (None, "", *SIMILARITIES):
                raise PageError(422, f"“Variety by” must be one of {', '.join(SIMILARITIES)} (got “{diversity_by}”).")
            ctx["diversity_by"] = diversity_by or "vectors"
            on: dict[str, Any] = {name: ctx[name] for name in ("diversity", "long_tail") if ctx[name]}
            if ctx["diversity"] and ctx["diversity_by"] != "vectors":
                on["diversity_by"] = ctx["diversity_by"]
            if lang not in (None, "", *LANGUAGES):
                raise PageError(422, f"“lang” must be one of {', '.join(LANGUAGES)} (got “{lang}”).")
            if ctx["lang"] != "en":
                on["lang"] = ctx["lang"]
            ctx["rerank_q"] = "&" + urlencode(on) if on else ""  # kept in the page's links when set
            fill(ctx, user, ctx["k"], item, whynot)
        except PageError as e:
            status, ctx["error"] = e.status, e.message
        except UnknownIdError as e:
            if e.kind == "user":
                ctx["recs"] = None
                msg = ctx["m"]("page.unknown_user", user=e.ident, examples=", ".join(ctx["examples"]))
            else:
                msg = _unknown_message(e)
            status, ctx["error"] = 404, msg
        except store_down as e:
            log.warning("store error on the page: %s: %s", type(e).__name__, e)
            detail = store_unavailable_detail(e)
            status, ctx["error"] = 503, detail[:1].upper() + detail[1:]
        except (KgrecError, ValueError) as e:
            status, ctx["error"] = 422, str(e)
        return html(page_t, status, **ctx)

    @router.get("/login")
    def login_form(request: Request, next: str = "/") -> Response:  # noqa: A002 - the query parameter's name
        if auth.session_ok(request.cookies.get(COOKIE_NAME)):
            return RedirectResponse(safe_next(next), status_code=303)
        return login_page(200, next)

    def cross_site(request: Request) -> str | None:
        """The foreign origin a form POST came from (None: this server's own page, or no browser at all)."""
        source = foreign_origin(
            request.headers.get("origin"),
            request.headers.get("referer"),
            [request.headers.get("x-forwarded-host"), request.headers.get("host")],
        )
        if source is not None:
            log.warning("refused a POST %s sent from another site (%r)", request.url.path, source)
        return source

    @router.post("/login")
    def login(request: Request, token: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/") -> Response:  # noqa: A002 - the form field's name
        if cross_site(request) is not None:
            return login_page(
                403, next, "This form was sent from another site, so it was refused. Log in on this server's own page."
            )
        if not auth.enabled:
            return RedirectResponse(safe_next(next), status_code=303)
        if not auth.token_ok(token):
            log.info("login refused: wrong token")
            return login_page(
                401, next, "That token is not right. Ask the person who runs the service for the current one."
            )
        resp = RedirectResponse(safe_next(next), status_code=303)
        resp.set_cookie(
            COOKIE_NAME,
            auth.new_session(),
            max_age=auth.lifetime_s,
            path="/",
            httponly=True,
            samesite="strict",
            secure=cfg.secure_cookie,
        )
        return resp

    @router.post("/logout")
    def logout(request: Request) -> Response:
        if cross_site(request) is not None:
            return html(
                error_t,
                403,
                code=403,
                show_logout=False,
                message="This log-out form was sent from another site, so it was refused; nothing changed. "
                "Log out with the button on this server's own page.",
            )
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict", secure=cfg.secure_cookie)
        return resp

    return router


def _unknown_message(e: UnknownIdError) -> str:
    if e.kind == "user":
        return f"No user with id “{e.ident}”: this model does not know that user."
    if e.kind == "item":
        return f"No item with id “{e.ident}”: this model does not know that item."
    return str(e)
