"""Explicit configuration of the web app (no globals: the app factory takes one of these)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import ConfigDict, Field, SecretStr, model_validator

from kgrec.config import ConfigModel, field_error
from kgrec.errors import ConfigError

#: environment variable holding the access token
TOKEN_ENV = "KGREC_API_TOKEN"
#: environment variable holding the write token of ``POST /api/events`` (unset: the endpoint is off)
WRITE_TOKEN_ENV = "KGREC_WRITE_TOKEN"
#: environment variable through which `kgrec serve --workers N` hands the config to its worker processes
CONFIG_ENV = "KGREC_WEB_CONFIG"
#: shortest token accepted
MIN_TOKEN_LENGTH = 16


class WebConfig(ConfigModel):
    """Everything the web app needs; passed to :func:`kgrec.web.create_app`.

    A bad value raises a :class:`~kgrec.errors.ConfigError` naming the field, the
    value and the allowed range (``max_k=0: expected an integer from 1 to 1000 …``).

    The tokens are never written to logs or to :data:`CONFIG_ENV`; workers read them
    from :data:`TOKEN_ENV` and :data:`WRITE_TOKEN_ENV` themselves.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    store: str = Field("kgrec-store", description="embedded store directory, or a bolt:// / neo4j:// URI")
    model: Path | None = Field(
        None, description="model directory (default: the store's default model, as in `kgrec explain`)"
    )
    neo4j_user: str | None = Field(None, description="Neo4j user (default neo4j)")
    neo4j_database: str | None = Field(None, description="Neo4j database (default neo4j)")
    token: SecretStr | None = Field(None, description=f"access token (from ${TOKEN_ENV}); required unless no_auth")
    no_auth: bool = Field(False, description="serve without any access check (local use only; not for writes)")
    write_token: SecretStr | None = Field(
        None,
        description=f"write token of POST /api/events (from ${WRITE_TOKEN_ENV}); None: the endpoint is off. "
        "It must differ from the read token; no_auth does not open writes",
    )
    allow_unknown_items: bool = Field(
        False, description="POST /api/events: add items the store does not hold (as items without text) instead of 422"
    )
    max_event_bytes: int = Field(
        8 * 1024 * 1024, ge=1, le=1024**3, description="largest POST /api/events body in bytes (larger: 413)"
    )
    max_events: int = Field(10_000, ge=1, le=10_000_000, description="most events in one POST /api/events (more: 413)")
    live_check_s: float = Field(
        0.1,
        ge=0.0,
        le=3600.0,
        description="how often (seconds) each process re-reads the store's fingerprint, the live part of every cache "
        "key, in the background (0: on every request); an append through this process takes effect at once",
    )
    default_k: int = Field(10, ge=1, le=1000, description="recommendations shown when no k is given")
    max_k: int = Field(100, ge=1, le=1000, description="largest k accepted (larger: 422)")
    top_paths: int = Field(
        10, ge=1, le=100, description="explanation paths returned by default (the page shows them all)"
    )
    max_top_paths: int = Field(50, ge=1, le=1000, description="largest `top` accepted by the explanations endpoint")
    drawn_paths: int = Field(5, ge=1, le=20, description="paths drawn in the page's SVG")
    cache_size: int = Field(16384, ge=0, le=10_000_000, description="cached answers per kind (0: no cache)")
    compute_threads: int = Field(2, ge=1, le=64, description="threads computing answers that are not cached")
    math_threads: int | None = Field(
        1,
        ge=1,
        le=1024,
        description="threads torch and the BLAS use inside one computation, process-wide (None: their defaults); "
        "1 is fastest for one user at a time, as the server parallelises across requests",
    )
    session_hours: float = Field(12.0, gt=0, le=24 * 30, description="lifetime of a login session cookie")
    secure_cookie: bool = Field(False, description="mark the session cookie Secure (set it behind HTTPS)")

    @model_validator(mode="after")
    def _check_k(self) -> WebConfig:
        if self.default_k > self.max_k:
            raise field_error("default_k", self.default_k, f"an integer from 1 to max_k ({self.max_k})")
        return self

    def check_auth(self) -> None:
        """Refuse to serve without a usable token unless ``no_auth`` is set, and with a weak write token.

        Raises:
            ConfigError: no token, or one shorter than 16 characters; a write token shorter than 16
                characters or equal to the read token.
        """
        secret = self.token.get_secret_value() if self.token is not None else ""
        if self.write_token is not None:
            write = self.write_token.get_secret_value()
            if len(write) < MIN_TOKEN_LENGTH:
                raise ConfigError(
                    f"{WRITE_TOKEN_ENV} is {len(write)} characters long; use at least {MIN_TOKEN_LENGTH} random "
                    f"characters (e.g. `export {WRITE_TOKEN_ENV}=$(openssl rand -hex 24)`), or unset it to turn "
                    "POST /api/events off"
                )
            if write == secret:
                raise ConfigError(
                    f"{WRITE_TOKEN_ENV} is the same as {TOKEN_ENV}; the write token must differ from the read token "
                    "(everyone who reads would be able to write)"
                )
        if self.no_auth:
            return
        if not secret:
            raise ConfigError(
                f"no access token: set {TOKEN_ENV} to a secret (e.g. `export {TOKEN_ENV}=$(openssl rand -hex 24)`) "
                "or pass --no-auth for local use only"
            )
        if len(secret) < MIN_TOKEN_LENGTH:
            raise ConfigError(
                f"{TOKEN_ENV} is {len(secret)} characters long; use at least {MIN_TOKEN_LENGTH} random characters"
            )

    @classmethod
    def from_env(cls, **values: object) -> WebConfig:
        """A config with the tokens taken from :data:`TOKEN_ENV` and :data:`WRITE_TOKEN_ENV` (when set)."""
        for env, field in ((TOKEN_ENV, "token"), (WRITE_TOKEN_ENV, "write_token")):
            token = os.environ.get(env)
            if token and values.get(field) is None:
                values[field] = SecretStr(token)
        return cls.model_validate(values)

    def to_env(self) -> str:
        """JSON for :data:`CONFIG_ENV`, without the tokens."""
        return self.model_dump_json(exclude={"token", "write_token"})
