"""The web service under concurrent requests: events appended together (group commit), and cached answers
re-checked after a change without waiting behind answers being computed.

On copies of the small trained web store (embedded). The store's ``append`` and the model's ``recommend`` are
the real ones, wrapped where a test must hold one of them until the others have queued up.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _webdata import TOKEN, build_web_store
from fastapi.testclient import TestClient

from kgrec.errors import DataValidationError
from kgrec.graph import open_store
from kgrec.web import WebConfig, create_app
from kgrec.web.events import parse_batch
from kgrec.web.service import RecService

WRITE = "write-token-abcdef0123456789"
READ = {"Authorization": f"Bearer {TOKEN}"}
AUTH = {"Authorization": f"Bearer {WRITE}"}


@pytest.fixture(scope="module")
def web_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_web_store(tmp_path_factory.getbasetemp())


@pytest.fixture
def store(web_store: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "store"
    shutil.copytree(web_store, copy)
    return copy


def batch(*pairs: tuple[str, str], stamp: int = 1_900_000_000):  # noqa: ANN201
    body = json.dumps([{"user": u, "item": i, "timestamp": stamp} for u, i in pairs]).encode()
    return parse_batch(body, "application/json", 100)


class Gate:
    """Wraps a callable: calls are counted and recorded; the first one waits until :meth:`open`."""

    def __init__(self, fn: Callable[..., Any], hold: Callable[..., bool] = lambda *a, **k: True) -> None:
        self.fn = fn
        self.hold = hold
        self.calls: list[tuple[tuple, dict]] = []
        self.entered = threading.Event()
        self.opened = threading.Event()

    def open(self) -> None:
        self.opened.set()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((args, kwargs))
        if self.hold(*args, **kwargs) and not self.opened.is_set():
            self.entered.set()
            assert self.opened.wait(30), "the gate was never opened"
        return self.fn(*args, **kwargs)


def run_all(fns: list[Callable[[], Any]]) -> list[Any]:
    """Run each in its own thread; their results (or exceptions), in order."""
    out: list[Any] = [None] * len(fns)

    def one(n: int) -> None:
        try:
            out[n] = fns[n]()
        except Exception as e:  # noqa: BLE001 - returned to the test
            out[n] = e

    threads = [threading.Thread(target=one, args=(n,)) for n in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def test_batches_waiting_for_an_append_are_appended_together(store: Path) -> None:
    svc = RecService.open(WebConfig(store=str(store), token=TOKEN, write_token=WRITE))
    try:
        gate = Gate(svc.store.append)
        svc.store.append = gate  # type: ignore[method-assign]  # the real append, held on its first call
        lineage = len(svc.store.lineage())
        holder = threading.Thread(target=svc.append_events, args=(batch(("u1", "i2")),))
        holder.start()
        assert gate.entered.wait(30)
        # five more requests arrive while the first append runs: they queue up
        pairs = [("u2", "i3"), ("u3", "i4"), ("u4", "i5"), ("u2", "i6"), ("u5", "i7")]
        results: list[Any] = []
        waiting = threading.Thread(
            target=lambda: results.extend(run_all([lambda p=p: svc.append_events(batch(p)) for p in pairs]))
        )
        waiting.start()
        time.sleep(1.0)
        assert len(gate.calls) == 1  # none of them reached the store while the first append ran
        gate.open()
        holder.join(30)
        waiting.join(60)
        assert all(r.accepted == 1 and r.changed for r in results), results
        assert len(gate.calls) == 2  # the five in one append
        merged = gate.calls[1][0][0].interactions
        assert sorted(zip(merged["user"], merged["item"], strict=True)) == sorted(pairs)
        final = svc.store.fingerprint()
        assert all(r.fingerprint == final for r in results)
        assert len(svc.store.lineage()) == lineage + 2
        assert svc.live_version() == final
    finally:
        svc.close()
    with open_store(store) as st:  # a fresh reader sees every event
        for u, i in [("u1", "i2"), *pairs]:
            assert i in st.user_history(u)["item"].tolist()


def test_a_group_the_store_refuses_is_appended_batch_by_batch(store: Path) -> None:
    svc = RecService.open(WebConfig(store=str(store), token=TOKEN, write_token=WRITE))
    try:
        real = svc.store.append

        def refuse_groups(data: Any, **kw: Any) -> Any:
            if len(data.interactions) > 1:
                raise DataValidationError("<batch>: refused as a whole (test)")
            return real(data, **kw)

        gate = Gate(refuse_groups)
        svc.store.append = gate  # type: ignore[method-assign]
        holder = threading.Thread(target=svc.append_events, args=(batch(("u1", "i2")),))
        holder.start()
        assert gate.entered.wait(30)
        pairs = [("u2", "i3"), ("u3", "i4"), ("u4", "i5")]
        results: list[Any] = []
        waiting = threading.Thread(
            target=lambda: results.extend(run_all([lambda p=p: svc.append_events(batch(p)) for p in pairs]))
        )
        waiting.start()
        time.sleep(1.0)
        gate.open()
        holder.join(30)
        waiting.join(60)
        assert all(r.accepted == 1 and r.changed for r in results), results
        assert [len(c[0][0].interactions) for c in gate.calls] == [1, 3, 1, 1, 1]
    finally:
        svc.close()


def test_a_cached_answer_is_rechecked_while_the_compute_threads_are_busy(store: Path) -> None:
    cfg = WebConfig(store=str(store), token=TOKEN, write_token=WRITE, compute_threads=1)
    with TestClient(create_app(cfg)) as c:
        svc = c.app.state.service
        assert c.post("/api/events", json=[{"user": "u9", "item": "i3"}], headers=AUTH).status_code == 200
        cached = c.get("/api/users/u2/recommendations?k=5", headers=READ).json()
        # another user's event moves the data version: u2's cached list must be re-checked (one store read)
        assert c.post("/api/events", json=[{"user": "u8", "item": "i4"}], headers=AUTH).status_code == 200
        assert svc.stale_recommendations("u2", 5)
        gate = Gate(svc.rec.recommend, hold=lambda users, *a, **k: users == "u7")
        svc.rec.recommend = gate  # a new answer for u7 takes the only compute thread and holds it
        slow: list[Any] = []
        t = threading.Thread(target=lambda: slow.append(c.get("/api/users/u7/recommendations?k=5", headers=READ)))
        t.start()
        assert gate.entered.wait(30)
        t0 = time.monotonic()
        r = c.get("/api/users/u2/recommendations?k=5", headers=READ)
        assert r.status_code == 200 and r.json() == cached  # answered while the compute thread is still held
        assert time.monotonic() - t0 < 10 and not slow
        gate.open()
        t.join(30)
        assert slow[0].status_code == 200
