"""POST /api/events (issue 14, "1. Append" over HTTP and the web side of "2. Fresh answers").

The write token (KGREC_WRITE_TOKEN) against the read token, the page's session and no token; the endpoint off
without one; JSON arrays and JSON lines; a malformed batch refused whole (the store's fingerprint and counts
unchanged); unknown items refused or created; size limits; and cached answers keyed by the store's live data
version, so an accepted event is never answered from a stale cache. On the embedded store and, marked
``neo4j``, on the real Neo4j server.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from _webdata import TOKEN, build_web_store, hostile_dataset
from fastapi.testclient import TestClient

from kgrec import Recommender
from kgrec.errors import ConfigError
from kgrec.graph import open_store
from kgrec.web import WebConfig, create_app
from kgrec.web.auth import COOKIE_NAME
from kgrec.web.service import RecService

WRITE = "write-token-abcdef0123456789"
READ = {"Authorization": f"Bearer {TOKEN}"}
AUTH = {"Authorization": f"Bearer {WRITE}"}
NDJSON = {"Content-Type": "application/x-ndjson"}
NEO4J_URI = os.environ.get("KGREC_TEST_NEO4J_URI", "bolt://127.0.0.1:7687")


@pytest.fixture(scope="module")
def web_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_web_store(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def model(web_store: Path) -> Recommender:
    return Recommender.load(web_store / "models" / "default", store=open_store(web_store))


@pytest.fixture
def store(web_store: Path, tmp_path: Path) -> Path:
    """A copy of the trained web store that a test may append to."""
    copy = tmp_path / "store"
    shutil.copytree(web_store, copy)
    return copy


@contextmanager
def serving(location: str | Path, **options: Any) -> Iterator[TestClient]:
    """The app over ``location`` with the write token (unless ``write_token`` says otherwise)."""
    options.setdefault("write_token", WRITE)
    options.setdefault("model", None)
    cfg = WebConfig(store=str(location), token=TOKEN, **options)
    with TestClient(create_app(cfg)) as c:
        yield c


def service(c: TestClient) -> RecService:
    svc = c.app.state.service
    assert isinstance(svc, RecService)
    return svc


def state_of(location: str | Path) -> tuple[str, dict[str, int], int]:
    """(fingerprint, counts, interaction rows) of the store as a fresh reader sees it."""
    with open_store(location) as st:
        return st.fingerprint(), st.counts(), len(st.dataset().interactions)


def unseen_items(rec: Recommender, user: str, n: int) -> list[str]:
    """``n`` items the model knows that ``user`` has not interacted with (the top of their list)."""
    return rec.recommend(user, n)["item"].tolist()


# ---------------------------------------------------------------------- access
def test_write_token_writes_read_token_and_session_get_403_no_token_401(store: Path, model: Recommender) -> None:
    item = unseen_items(model, "u5", 1)[0]
    body = [{"user": "u5", "item": item}]
    with serving(store) as c:
        r = c.post("/api/events", json=body)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert r.json() == {"detail": "authentication required: send Authorization: Bearer <KGREC_WRITE_TOKEN>"}
        assert c.post("/api/events", json=body, headers={"Authorization": "Bearer not-a-token-0123456789"}).status_code == 401
        assert c.post("/api/events", json=body, headers={"Authorization": f"Basic {WRITE}"}).status_code == 401
        r = c.post("/api/events", json=body, headers=READ)
        assert r.status_code == 403
        assert "needs the write token" in r.json()["detail"] and "KGREC_WRITE_TOKEN" in r.json()["detail"]
        login = c.post("/login", data={"token": TOKEN}, follow_redirects=False)
        assert login.status_code == 303 and COOKIE_NAME in c.cookies
        r = c.post("/api/events", json=body)  # the page's session cookie only reads
        assert r.status_code == 403 and "needs the write token" in r.json()["detail"]
        c.cookies.clear()
        assert state_of(store)[2] == len(model.dataset().interactions)  # nothing was written so far
        r = c.post("/api/events", json=body, headers=AUTH)
        assert r.status_code == 200, r.text
        assert r.json()["accepted"] == 1 and r.json()["changed"] is True
        # the write token writes only: the read API still wants the read token
        assert c.get("/api/users/u5/recommendations", headers=AUTH).status_code == 401
        assert c.get("/api/users/u5/recommendations", headers=READ).status_code == 200


def test_events_are_off_without_a_write_token(store: Path) -> None:
    fp = state_of(store)[0]
    with serving(store, write_token=None) as c:
        for headers in (AUTH, READ, {}):
            r = c.post("/api/events", json=[{"user": "u1", "item": "i3"}], headers=headers)
            assert r.status_code == 403 and r.headers["content-type"] == "application/json"
            assert r.json()["detail"].startswith("writing events is off on this server: start it with KGREC_WRITE_TOKEN")
        assert "/api/events" not in c.get("/openapi.json").json()["paths"]  # no write route is mounted at all
    assert state_of(store)[0] == fp
    with serving(store) as c:
        paths = c.get("/openapi.json").json()["paths"]
        assert set(paths["/api/events"]) == {"post"}
        body = paths["/api/events"]["post"]["requestBody"]["content"]
        assert set(body) == {"application/json", "application/x-ndjson"}
        assert body["application/json"]["schema"]["items"]["required"] == ["user", "item"]


def test_write_tokens_are_checked_at_start(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"KGREC_WRITE_TOKEN is 5 characters long; use at least 16"):
        WebConfig(store=str(store), token=TOKEN, write_token="short").check_auth()
    with pytest.raises(ConfigError, match=r"KGREC_WRITE_TOKEN is the same as KGREC_API_TOKEN"):
        WebConfig(store=str(store), token=TOKEN, write_token=TOKEN).check_auth()
    monkeypatch.setenv("KGREC_WRITE_TOKEN", WRITE)
    cfg = WebConfig.from_env(store=str(store), token=TOKEN)
    assert cfg.write_token is not None and cfg.write_token.get_secret_value() == WRITE
    assert WRITE not in cfg.to_env() and WRITE not in repr(cfg) and TOKEN not in cfg.to_env()


def test_no_auth_mode_does_not_open_writes(store: Path) -> None:
    with serving(store, no_auth=True) as c:
        assert c.get("/api/users/u2/recommendations?k=2").status_code == 200
        assert c.post("/api/events", json=[{"user": "u2", "item": "i3"}]).status_code == 401
    with serving(store, no_auth=True, write_token=None) as c:
        assert c.post("/api/events", json=[{"user": "u2", "item": "i3"}], headers=AUTH).status_code == 403


def test_a_post_from_another_site_is_refused(store: Path) -> None:
    fp = state_of(store)[0]
    with serving(store) as c:
        for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {"Referer": "http://evil.example/x"}):
            r = c.post("/api/events", json=[{"user": "u2", "item": "i3"}], headers={**AUTH, **headers})
            assert r.status_code == 403 and "sent from another site" in r.json()["detail"], headers
    assert state_of(store)[0] == fp


# ---------------------------------------------------------------------- appending
def test_json_array_and_json_lines_are_appended(store: Path, model: Recommender) -> None:
    a, b, c_, d = unseen_items(model, "u7", 4)
    fp0, counts0, rows0 = state_of(store)
    array = [
        {"user": "u7", "item": a, "timestamp": 1_700_000_000, "rating": 4.5},
        {"user": "u7", "item": b, "timestamp": "2024-05-01T12:00:00Z"},
        {"user": "newcomer", "item": a},
    ]
    with serving(store) as c:
        before = time.time()
        r = c.post("/api/events", json=array, headers=AUTH)
        assert r.status_code == 200 and r.headers["content-type"] == "application/json", r.text
        out = r.json()
        assert set(out) == {"accepted", "changed", "fingerprint"} and out["accepted"] == 3 and out["changed"] is True
        fp1, counts1, rows1 = state_of(store)
        assert out["fingerprint"] == fp1 != fp0 and rows1 == rows0 + 3
        assert counts1["users"] == counts0["users"] + 1 and counts1["items"] == counts0["items"]
        inter = open_store(store).dataset().interactions.set_index(["user", "item"])
        assert int(inter.loc[("u7", a), "timestamp"]) == 1_700_000_000 and inter.loc[("u7", a), "rating"] == 4.5
        assert int(inter.loc[("u7", b), "timestamp"]) == 1_714_564_800 and pd.isna(inter.loc[("u7", b), "rating"])
        assert before - 1 <= int(inter.loc[("newcomer", a), "timestamp"]) <= time.time() + 1  # default: now (UTC)
        # the same batch again changes nothing
        again = c.post("/api/events", json=array[:2], headers=AUTH).json()
        assert again == {"accepted": 2, "changed": False, "fingerprint": fp1}
        # JSON lines: one object per line, blank lines are no events
        lines = "\n".join(json.dumps(e) for e in [{"user": "u7", "item": c_, "timestamp": 1_700_000_100},
                                                   {"user": "u7", "item": d, "rating": 2}]) + "\n\n"
        r = c.post("/api/events", content=lines.encode(), headers={**AUTH, **NDJSON})
        assert r.status_code == 200 and r.json()["accepted"] == 2 and r.json()["changed"] is True, r.text
        assert r.json()["fingerprint"] == state_of(store)[0] and state_of(store)[2] == rows0 + 5
        # an empty batch is accepted and changes nothing
        assert c.post("/api/events", json=[], headers=AUTH).json() == {
            "accepted": 0, "changed": False, "fingerprint": r.json()["fingerprint"]}


BAD_ARRAYS: list[tuple[Any, int, str]] = [
    # (body, status, start of the message)
    ([{"user": "u7", "item": "i3"}, {"user": "u7", "item": "i4", "timestamp": "yesterday"}], 422,
     "request body, row 2, column 'timestamp': 'yesterday' is not a timestamp; expected integer seconds since 1970"),
    ([{"user": "u7", "item": "i3"}, {"item": "i4"}], 422,
     "request body, row 2, column 'user': missing; expected a user id as a JSON string"),
    ([{"user": 7, "item": "i3"}], 422,
     "request body, row 1, column 'user': a number (7); expected a user id as a JSON string (e.g. \"7\")"),
    ([{"user": "u7", "item": "i3", "rating": "five"}], 422,
     "request body, row 1, column 'rating': a string (\"five\"); expected a number"),
    ([{"user": "u7", "item": "i3", "timestamp": True}], 422, "request body, row 1, column 'timestamp': a true/false"),
    ([{"user": "u7", "item": "i3", "timestamp": -5}], 422, "request body, row 1, column 'timestamp': '-5' is out of range"),
    ([{"user": "u7", "item": "i3", "timestamp": 1.5}], 422, "request body, row 1, column 'timestamp': '1.5' is not whole seconds"),
    ([{"user": "u7", "item": "i3"}, {"user": "u7", "item": "   "}], 422,
     "request body, row 2, column 'item': empty item id; expected a non-empty id"),
    ([{"user": "u7", "item": "x" * 1025}], 422, "request body, row 1, column 'item': item 'xxxx"),
    ([{"user": "u7", "item": "i3", "usr": "u8"}], 422,
     "request body, row 1: unknown field 'usr'; expected the fields user, item, timestamp (optional), rating (optional)"),
    ([{"user": "u7", "item": "i3"}, ["u7", "i4"]], 422, "request body, row 2: a JSON array; expected an event object"),
    ({"user": "u7", "item": "i3"}, 400, "request body: a JSON object; expected a JSON array of event objects"),
]


def test_a_malformed_batch_is_rejected_whole(store: Path) -> None:
    fp0, counts0, rows0 = state_of(store)
    with serving(store) as c:
        for body, status, message in BAD_ARRAYS:
            r = c.post("/api/events", json=body, headers=AUTH)
            assert r.status_code == status, (body, r.status_code, r.text)
            assert r.json()["detail"].startswith(message), (body, r.json())
        for raw, ctype, status, message in [
            (b'[{"user": "u7", "item": "i3"},', "application/json", 400,
             "request body: not valid JSON (line 1, column 31: Expecting value); expected a JSON array"),
            (b'[{"user": "u7", "item": "i3", "rating": NaN}]', "application/json", 400,
             "request body: not valid JSON (NaN is not JSON"),
            (b'{"user": "u7", "item": "i3"}\n\n{"user": "u7", "item": }\n', "application/x-ndjson", 400,
             "request body, row 2 (line 3): not valid JSON (line 1, column 24: Expecting value); expected one JSON object per line"),
            (b'{"user": "u7", "item": "i3"}\n{"user": "u7", "item": "i4", "timestamp": "soon"}\n', "application/x-ndjson",
             422, "request body, row 2, column 'timestamp': 'soon' is not a timestamp"),
            (b'\xff[]', "application/json", 400, "request body: bytes that are not UTF-8 (at byte 0)"),
            (b'[{"user": "u7", "item": "i3", "rating": 1e400}]', "application/json", 422,
             "request body, row 1, column 'rating': 'inf' is not a finite number"),
            (b'[{"user": "u7", "item": "i3"}]', "text/csv", 415,
             "Content-Type 'text/csv' is not accepted; expected application/json (a JSON array of events) or application/x-ndjson"),
        ]:
            r = c.post("/api/events", content=raw, headers={**AUTH, "Content-Type": ctype})
            assert r.status_code == status, (raw, r.status_code, r.text)
            assert r.json()["detail"].startswith(message), (raw, r.json())
        assert "<" not in c.post("/api/events", json=[{"user": "<script>", "item": "<b>"}], headers=AUTH).text
    assert state_of(store) == (fp0, counts0, rows0)  # nothing applied, not even the good rows before a bad one


def test_unknown_items_are_refused_unless_allowed(store: Path) -> None:
    fp0, counts0, _ = state_of(store)
    batch = [{"user": "u3", "item": "i3"}, {"user": "u3", "item": "brand-new"}, {"user": "u4", "item": "brand-new"},
             {"user": "u4", "item": "other-new"}]
    with serving(store) as c:
        r = c.post("/api/events", json=batch, headers=AUTH)
        assert r.status_code == 422
        assert r.json()["detail"].startswith(
            "request body, row 2, column 'item': item 'brand-new' is not in the store (also unknown: 'brand-new' (row 3), "
            "'other-new' (row 4)); expected an item the store holds")
        assert r.json()["detail"].endswith("Nothing was appended")
    assert state_of(store)[:2] == (fp0, counts0)
    with serving(store, allow_unknown_items=True) as c:
        r = c.post("/api/events", json=batch, headers=AUTH)
        assert r.status_code == 200 and r.json()["accepted"] == 4, r.text
    fp1, counts1, _ = state_of(store)
    assert fp1 == r.json()["fingerprint"] != fp0 and counts1["items"] == counts0["items"] + 2
    with open_store(store) as st:
        assert st.has_item("brand-new") and st.has_item("other-new")
    with serving(store) as c:  # known now: accepted without the option
        assert c.post("/api/events", json=[{"user": "u5", "item": "brand-new"}], headers=AUTH).status_code == 200


def test_bodies_over_the_limits_are_413(store: Path) -> None:
    fp0 = state_of(store)[0]
    one = {"user": "u2", "item": "i3"}
    with serving(store, max_event_bytes=300, max_events=3) as c:
        r = c.post("/api/events", json=[one] * 20, headers=AUTH)  # Content-Length over the limit: refused unread
        assert r.status_code == 413 and r.json()["detail"].startswith("request body over 300 bytes (the limit)")

        def chunks() -> Iterator[bytes]:  # no Content-Length: refused once 300 bytes came
            yield b"["
            for _ in range(50):
                yield json.dumps(one).encode() + b","
            yield b"{}]"

        r = c.post("/api/events", content=chunks(), headers={**AUTH, "Content-Type": "application/json"})
        assert r.status_code == 413 and "over 300 bytes" in r.json()["detail"]
        r = c.post("/api/events", json=[one] * 4, headers=AUTH)
        assert r.status_code == 413 and r.json()["detail"] == "request body: more than 3 events; send at most 3 events per request"
        lines = b"\n".join(json.dumps(one).encode() for _ in range(4))
        r = c.post("/api/events", content=lines, headers={**AUTH, **NDJSON})
        assert r.status_code == 413 and "more than 3 events" in r.json()["detail"]
        assert c.post("/api/events", json=[one] * 3, headers=AUTH).status_code == 200  # at the limits: fine
    assert state_of(store)[0] != fp0


# ---------------------------------------------------------------------- fresh answers
def test_a_cached_answer_is_not_used_after_an_accepted_event(store: Path, model: Recommender) -> None:
    url, other = "/api/users/u2/recommendations?k=5", "/api/users/u3/recommendations?k=5"
    with serving(store) as c:
        svc = service(c)
        # a first event (of another user) moves the store past the training data: every live key changes once
        assert c.post("/api/events", json=[{"user": "u9", "item": unseen_items(model, "u9", 1)[0]}],
                      headers=AUTH).status_code == 200
        first = c.get(url, headers=READ).json()
        theirs = c.get(other, headers=READ).json()
        hits = svc.cache_counts()["recommendations"]["hits"]
        assert c.get(url, headers=READ).json() == first
        assert svc.cache_counts()["recommendations"]["hits"] == hits + 1  # the same question: a cache hit
        version = svc.live_version()
        top = first["items"][0]["item"]
        r = c.post("/api/events", json=[{"user": "u2", "item": top}], headers=AUTH)
        assert r.status_code == 200 and r.json()["changed"] is True
        assert svc.live_version() == r.json()["fingerprint"] != version  # the live part of every cache key moved
        counts = svc.cache_counts()["recommendations"]
        after = c.get(url, headers=READ)
        assert after.status_code == 200
        now = svc.cache_counts()["recommendations"]
        assert now["hits"] == counts["hits"] and now["misses"] > counts["misses"]  # computed anew, not cached
        assert top not in [x["item"] for x in after.json()["items"]]  # the item they just chose is seen now
        assert c.get(url, headers=READ).json() == after.json()
        assert svc.cache_counts()["recommendations"]["hits"] == counts["hits"] + 1  # and cached again
        # another user's answer does not depend on u2's history (their live key is unchanged): still a hit
        assert c.get(other, headers=READ).json() == theirs
        assert svc.cache_counts()["recommendations"]["hits"] == counts["hits"] + 2
        assert svc.cache_counts()["recommendations"]["misses"] == now["misses"]


def test_another_process_s_append_moves_the_cache_key(store: Path, model: Recommender) -> None:
    """Two apps on one store stand for two worker processes: one takes the event, the other notices it."""
    url = "/api/users/u3/explanations/i5?top=2"
    item = unseen_items(model, "u3", 1)[0]
    with serving(store) as writer, serving(store, live_check_s=0) as exact, serving(store, live_check_s=0.05) as lazy:
        for c in (exact, lazy):
            assert c.get(url, headers=READ).status_code == 200
        old = service(lazy).live_version()
        r = writer.post("/api/events", json=[{"user": "u3", "item": item}], headers=AUTH)
        assert r.status_code == 200
        new = r.json()["fingerprint"]
        assert service(exact).live_version() == new  # live_check_s=0: read on every request
        counts = service(exact).cache_counts()["explanations"]
        assert exact.get(url, headers=READ).status_code == 200
        now = service(exact).cache_counts()["explanations"]
        assert now["hits"] == counts["hits"] and now["misses"] > counts["misses"]  # computed anew
        deadline = time.monotonic() + 10  # the default: re-read in the background, at most every live_check_s
        while service(lazy).live_version() != new:
            assert time.monotonic() < deadline, "the other process's append was not noticed within 10 s"
            time.sleep(0.02)
        assert service(lazy).live_version() != old


def test_the_live_version_survives_a_store_that_goes_away(store: Path) -> None:
    """The embedded store's folder removed: the version read last stays in use and cached answers keep coming."""
    url = "/api/users/u2/recommendations?k=3"
    with serving(store, live_check_s=0) as c:
        body = c.get(url, headers=READ).json()
        version = service(c).live_version()
        shutil.rmtree(store)
        assert c.get(url, headers=READ).json() == body
        assert service(c).live_version() == version


# ---------------------------------------------------------------------- Neo4j
@pytest.mark.neo4j
def test_events_on_the_neo4j_server(web_store: Path, model: Recommender, neo4j_left_empty: None) -> None:
    with open_store(NEO4J_URI) as neo:
        neo.wipe()
        neo.ingest(hostile_dataset(), progress=False)
    fp0, counts0, rows0 = state_of(NEO4J_URI)
    a, b = unseen_items(model, "u2", 2)
    with serving(NEO4J_URI, model=web_store / "models" / "default") as c:
        assert c.get("/health").json()["store"] == "neo4j"
        url = "/api/users/u2/recommendations?k=5"
        first = c.get(url, headers=READ).json()
        assert c.post("/api/events", json=[{"user": "u2", "item": a}], headers=READ).status_code == 403
        assert c.post("/api/events", json=[{"user": "u2", "item": a}]).status_code == 401
        for body, status in [([{"user": "u2", "item": a}, {"user": "u2", "item": b, "timestamp": "soon"}], 422),
                             ([{"user": "u2", "item": a}, {"user": "u2", "item": "not-held"}], 422)]:
            r = c.post("/api/events", json=body, headers=AUTH)
            assert r.status_code == status and r.json()["detail"].startswith("request body, row 2, column "), r.text
        assert state_of(NEO4J_URI) == (fp0, counts0, rows0)  # refused whole
        version = service(c).live_version()
        r = c.post("/api/events", json=[{"user": "u2", "item": a, "timestamp": 1_800_000_000, "rating": 5}],
                   headers=AUTH)
        assert r.status_code == 200 and r.json()["accepted"] == 1 and r.json()["changed"] is True, r.text
        lines = json.dumps({"user": "newcomer", "item": b, "timestamp": "2027-01-01T00:00:00+01:00"}) + "\n"
        r2 = c.post("/api/events", content=lines.encode(), headers={**AUTH, **NDJSON})
        assert r2.status_code == 200 and r2.json()["changed"] is True, r2.text
        fp2, counts2, rows2 = state_of(NEO4J_URI)
        assert r2.json()["fingerprint"] == fp2 != fp0 and rows2 == rows0 + 2 and counts2["users"] == counts0["users"] + 1
        # sent again (with its timestamp: one stamped "now" would be a later event) it changes nothing
        assert c.post("/api/events", content=lines.encode(), headers={**AUTH, **NDJSON}).json()["changed"] is False
        assert service(c).live_version() == fp2 != version
        counts = service(c).cache_counts()["recommendations"]
        after = c.get(url, headers=READ).json()
        now = service(c).cache_counts()["recommendations"]
        assert now["hits"] == counts["hits"] and now["misses"] > counts["misses"]  # computed anew
        assert a in [x["item"] for x in first["items"]] and a not in [x["item"] for x in after["items"]]
    with serving(NEO4J_URI, model=web_store / "models" / "default", allow_unknown_items=True) as c:
        r = c.post("/api/events", json=[{"user": "u2", "item": "not-held"}], headers=AUTH)
        assert r.status_code == 200, r.text
    with open_store(NEO4J_URI) as neo:
        assert neo.has_item("not-held")


def test_a_forget_elsewhere_reloads_the_model_and_drops_every_cached_answer(store: Path) -> None:
    """``kgrec forget`` in another process rewrites the store and the model folder: the running server reads the new
    model, drops every cached answer (nothing of the forgotten user stays in memory) and keeps answering the others."""
    from kgrec.fusion.forget import forget_users

    with serving(store, live_check_s=0) as c:
        for u in ("u3", "u4"):
            assert c.get(f"/api/users/{u}/recommendations?k=5", headers=READ).status_code == 200
        svc = service(c)
        before = svc.version
        assert svc.cache_counts()["recommendations"]["entries"] >= 2
        forget_users(open_store(store), ["u3"], [store / "models" / "default"])  # "another process"
        r = c.get("/api/users/u4/recommendations?k=5", headers=READ)
        assert r.status_code == 200 and r.json()["model_version"] != before
        assert svc.cache_counts()["recommendations"]["entries"] == 1  # only u4's new answer
        assert c.get("/api/users/u3/recommendations?k=5", headers=READ).status_code == 404
