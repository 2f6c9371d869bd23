"""Running the app with uvicorn: one process, or several sharing one listening socket."""

from __future__ import annotations

import inspect
import os
import socket

import uvicorn
from fastapi import FastAPI

from kgrec.web.config import CONFIG_ENV, WebConfig

#: seconds a worker process may take to answer uvicorn's health check (its start included)
WORKER_HEALTHCHECK_S = 60


class _NoDelayConfig(uvicorn.Config):
    """Sets TCP_NODELAY on the shared listening socket (accepted connections inherit it on Linux).

    With several workers, uvicorn hands the socket to the worker processes, where asyncio no longer
    recognises it as TCP and leaves Nagle's algorithm on: every answer (headers and body written
    separately) then waited for the client's delayed ACK, 40 ms (measured: /health at 44 ms p50).
    """

    def bind_socket(self) -> socket.socket:
        sock = super().bind_socket()
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


def run_one(app: FastAPI, host: str, port: int, log_level: str) -> None:
    """Serve ``app`` in this process until interrupted."""
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=log_level == "info")


def run_workers(config: WebConfig, workers: int, host: str, port: int, log_level: str) -> None:
    """Serve with ``workers`` processes, each building its app from ``config`` (see :func:`kgrec.web.app.app_from_env`)."""
    from uvicorn.supervisors import Multiprocess

    os.environ[CONFIG_ENV] = config.to_env()
    cfg = _NoDelayConfig(
        "kgrec.web.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=log_level == "info",
    )
    # uvicorn (0.30 on) pings each worker and replaces one that does not answer within this many seconds; the
    # default, 5 s, is shorter than a worker's start on a busy machine (it imports kgrec and torch before it can
    # answer): measured on the shared 2-core machine, workers were killed and restarted in a loop and the server
    # never answered. A minute; older uvicorn versions do not read the attribute.
    cfg.timeout_worker_healthcheck = WORKER_HEALTHCHECK_S
    sock = cfg.bind_socket()
    if "target" in inspect.signature(Multiprocess.__init__).parameters:  # uvicorn < 0.30
        Multiprocess(cfg, target=uvicorn.Server(cfg).run, sockets=[sock]).run()  # type: ignore[call-arg]  # the older uvicorn signature, checked above
    else:
        Multiprocess(cfg, sockets=[sock]).run()
