"""Access control: a bearer token for the API, a signed session cookie for the page, a write token for events.

The read token comes from ``KGREC_API_TOKEN``. The session cookie holds
``<expiry>.<nonce>.<hmac>``, signed with a key derived from the token, so every
worker process accepts it and changing the token ends every session. The write
token (``KGREC_WRITE_TOKEN``) is the only key to ``POST /api/events``: neither the
read token nor a session cookie opens it. Tokens and signatures are compared in
constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

from kgrec.web.config import TOKEN_ENV, WRITE_TOKEN_ENV, WebConfig

#: name of the session cookie set by the login form
COOKIE_NAME = "kgrec_session"
_KEY_LABEL = b"kgrec-web-session-v1"


class Authenticator:
    """Checks bearer tokens and issues/verifies session cookies for one :class:`WebConfig`."""

    def __init__(self, config: WebConfig) -> None:
        self.enabled = not config.no_auth
        token = config.token.get_secret_value() if config.token is not None else ""
        self._token = token.encode()
        self._key = hmac.new(self._token, _KEY_LABEL, hashlib.sha256).digest()
        self.lifetime_s = int(config.session_hours * 3600)
        self._write = config.write_token.get_secret_value().encode() if config.write_token is not None else b""
        #: whether ``POST /api/events`` is on (a write token is configured)
        self.writes_enabled = bool(self._write)

    def token_ok(self, token: str | None) -> bool:
        """Whether ``token`` is the configured token (constant-time compare)."""
        if not self.enabled:
            return True
        if not token:
            return False
        return hmac.compare_digest(token.encode(), self._token)

    def bearer_ok(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header value is ``Bearer <the token>``."""
        if not authorization:
            return False
        scheme, _, value = authorization.partition(" ")
        return scheme.lower() == "bearer" and self.token_ok(value.strip())

    def _sign(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).hexdigest()

    def new_session(self, now: float | None = None) -> str:
        """A fresh session cookie value."""
        expires = int((time.time() if now is None else now) + self.lifetime_s)
        payload = f"{expires}.{secrets.token_hex(8)}"
        return f"{payload}.{self._sign(payload)}"

    def session_ok(self, value: str | None, now: float | None = None) -> bool:
        """Whether a cookie value was signed with this token's key and has not expired."""
        if not self.enabled:
            return True
        if not value or value.count(".") != 2:
            return False
        payload, _, sig = value.rpartition(".")
        if not hmac.compare_digest(sig.encode(), self._sign(payload).encode()):
            return False
        try:
            expires = int(payload.split(".", 1)[0])
        except ValueError:
            return False
        return expires > (time.time() if now is None else now)

    def request_ok(self, authorization: str | None, cookie: str | None) -> bool:
        """Whether a request carries the bearer token or a valid session cookie."""
        return not self.enabled or self.bearer_ok(authorization) or self.session_ok(cookie)

    def write_denial(self, authorization: str | None, cookie: str | None) -> tuple[int, str] | None:
        """Why a write request is refused, as (HTTP status, message), or None when it carries the write token.

        Only ``Authorization: Bearer <write token>`` writes, also under ``no_auth``. The read
        token, or a session cookie of the page without a bearer token, gets 403 (the caller is
        known but may not write); no token or a wrong one gets 401.
        """
        if not self.writes_enabled:
            return 403, (
                f"writing events is off on this server: start it with {WRITE_TOKEN_ENV} set to a secret of at least "
                f"16 characters (e.g. `export {WRITE_TOKEN_ENV}=$(openssl rand -hex 24)`), distinct from {TOKEN_ENV}"
            )
        scheme, _, value = (authorization or "").partition(" ")
        bearer = value.strip().encode() if scheme.lower() == "bearer" else b""
        if bearer and hmac.compare_digest(bearer, self._write):
            return None
        if (bearer and self._token and hmac.compare_digest(bearer, self._token)) or (
            not bearer and self.enabled and cookie and self.session_ok(cookie)
        ):
            return 403, (
                f"this endpoint needs the write token: send Authorization: Bearer <{WRITE_TOKEN_ENV}>; the read token "
                f"({TOKEN_ENV}) and the page's session only read"
            )
        return 401, f"authentication required: send Authorization: Bearer <{WRITE_TOKEN_ENV}>"


def safe_next(target: str | None) -> str:
    """A local path to go to after login (anything else, e.g. another site, becomes ``/``)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if any(ord(c) < 32 for c in target):
        return "/"
    return target


def _host_port(scheme: str, netloc: str) -> tuple[str, int] | None:
    try:
        parts = urlsplit(f"{scheme}://{netloc}")
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return parts.hostname, port if port is not None else (443 if scheme == "https" else 80)


def same_host(source: str, hosts: Sequence[str | None]) -> bool:
    """Whether the URL or origin ``source`` names one of ``hosts`` (``host[:port]`` values, e.g. the Host header).

    Host and port are compared (case-insensitive, default ports filled in from ``source``'s
    scheme); the scheme is not, so an HTTPS proxy in front of a plain-HTTP server still matches.
    ``null``, a non-HTTP scheme or a missing host never match.
    """
    parts = urlsplit(source.strip())
    if parts.scheme not in ("http", "https"):
        return False
    there = _host_port(parts.scheme, parts.netloc.rpartition("@")[2])
    if there is None:
        return False
    for host in hosts:
        if host and _host_port(parts.scheme, host.split(",")[0].strip()) == there:
            return True
    return False


def foreign_origin(origin: str | None, referer: str | None, hosts: Sequence[str | None]) -> str | None:
    """The other site a form POST came from, or None when it came from this server's own pages.

    The ``Origin`` header decides when present (``Origin: null``, sent by sandboxed or
    privacy-restricted pages, counts as foreign); else the ``Referer``. A request with neither
    is accepted: every browser sends ``Origin`` with a form POST, and a page on another site can
    make it ``null`` but cannot remove it, so such a request comes from a non-browser client
    (curl, a script), which could send any header it likes and is no cross-site forgery.

    Args:
        origin: the ``Origin`` header, if any.
        referer: the ``Referer`` header, if any.
        hosts: this server's own ``host[:port]`` names (the ``Host`` header, and ``X-Forwarded-Host`` behind a proxy).
    """
    source = origin if origin is not None else referer
    if source is None:
        return None
    return None if same_host(source, hosts) else source
