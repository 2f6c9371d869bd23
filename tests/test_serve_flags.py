"""`kgrec serve` flags of POST /api/events and of the live data version reach the server's WebConfig.

``--allow-unknown-items``, ``--max-event-bytes``, ``--max-events`` and ``--live-check-s``, checked through what a
real ``python -m kgrec serve`` (uvicorn, a subprocess) does with them: one process, and ``--workers 2``, where
the config travels to the worker processes through ``KGREC_WEB_CONFIG``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
from _webdata import TOKEN, build_web_store

from kgrec.graph import open_store
from kgrec.loaders import batch_from_frames

WRITE = "write-token-abcdef0123456789"


@pytest.fixture(scope="module")
def web_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_web_store(tmp_path_factory.getbasetemp())


@pytest.fixture
def store(web_store: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "store"
    shutil.copytree(web_store, copy)
    return copy


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def kgrec_serve(store: Path, *flags: str) -> Iterator[str]:
    """``python -m kgrec serve --store STORE FLAGS…`` on a free loopback port with both tokens; yields its base URL."""
    port = _free_port()
    log = store.parent / f"serve-{port}.log"
    env = {**os.environ, "KGREC_API_TOKEN": TOKEN, "KGREC_WRITE_TOKEN": WRITE}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kgrec", "serve", "--store", str(store), "--port", str(port), *flags],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            assert proc.poll() is None, f"kgrec serve exited with {proc.returncode}:\n{log.read_text()}"
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.time() < deadline, f"kgrec serve did not answer within 120 s:\n{log.read_text()}"
            time.sleep(0.25)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def call(url: str, body: bytes | None = None, token: str = TOKEN) -> tuple[int, dict]:
    """(status, JSON answer) of a GET, or of a POST of ``body`` as application/json."""
    headers = {"Authorization": f"Bearer {token}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=body, headers=headers, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def events(*pairs: tuple[str, str]) -> bytes:
    return json.dumps([{"user": u, "item": i} for u, i in pairs]).encode()


def top_items(base: str, user: str) -> list[str]:
    status, out = call(f"{base}/api/users/{user}/recommendations?k=5")
    assert status == 200, out
    return [x["item"] for x in out["items"]]


def append_elsewhere(store: Path, user: str, item: str) -> None:
    """The user takes the item through another process's append (as `kgrec ingest --append` would)."""
    frame = pd.DataFrame({"user": [user], "item": [item], "timestamp": [2_000_000_000]})
    batch = batch_from_frames(interactions=frame, allow_unknown_items=True)  # the store checks the item
    with open_store(store) as st:
        assert st.append(batch).changed


def test_event_limits_unknown_items_and_a_long_live_check_reach_the_server(store: Path) -> None:
    flags = ("--allow-unknown-items", "--max-event-bytes", "400", "--max-events", "2", "--live-check-s", "3600")
    with kgrec_serve(store, *flags) as base:
        url = f"{base}/api/events"
        status, out = call(url, events(("u3", "i3"), ("u3", "i4"), ("u3", "i5")), WRITE)
        assert status == 413 and out["detail"] == "request body: more than 2 events; send at most 2 events per request"
        long_id = "x" * 400
        status, out = call(url, events(("u3", long_id)), WRITE)
        assert status == 413 and out["detail"].startswith("request body over 400 bytes (the limit)")
        status, out = call(url, events(("u3", "brand-new-item")), WRITE)  # created, not refused
        assert status == 200 and out["accepted"] == 1 and out["changed"] is True, out
        with open_store(store) as st:
            assert st.has_item("brand-new-item")
        # --live-check-s 3600: another process's append is not read back for an hour, so the cached answer stays
        before = top_items(base, "u2")
        u2_top = before[0]
        append_elsewhere(store, "u2", u2_top)
        for _ in range(5):
            time.sleep(0.1)
            assert top_items(base, "u2") == before
        # an event through this server moves its data version at once: u2's answer is computed from the store
        status, _ = call(url, events(("u9", "i3")), WRITE)
        assert status == 200
        assert u2_top not in top_items(base, "u2")


def test_two_workers_get_the_flags_and_read_the_store_on_every_request(store: Path) -> None:
    flags = ("--workers", "2", "--max-events", "1", "--max-event-bytes", "5000", "--live-check-s", "0")
    with kgrec_serve(store, *flags) as base:
        url = f"{base}/api/events"
        for _ in range(4):  # whichever worker answers
            status, out = call(url, events(("u3", "i3"), ("u3", "i4")), WRITE)
            assert status == 413 and out["detail"] == "request body: more than 1 events; send at most 1 events per request"
            status, out = call(url, json.dumps([{"user": "u3", "item": "y" * 5000}]).encode(), WRITE)
            assert status == 413 and out["detail"].startswith("request body over 5,000 bytes (the limit)")
        status, out = call(url, events(("u3", "brand-new-item")), WRITE)  # no --allow-unknown-items: refused
        assert status == 422 and "item 'brand-new-item' is not in the store" in out["detail"]
        # a first event moves the store past the training data (every live key changes once), then cache u4's list
        assert call(url, events(("u9", "i3")), WRITE)[0] == 200
        lists = [top_items(base, "u4") for _ in range(6)]  # cached by whichever workers answered
        assert all(x == lists[0] for x in lists)
        top = lists[0][0]
        append_elsewhere(store, "u4", top)
        # --live-check-s 0: every request re-reads the store's version, so no worker serves the old list again
        for _ in range(6):
            assert top not in top_items(base, "u4")
