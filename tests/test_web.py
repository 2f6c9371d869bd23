"""The web page and JSON API (kgrec.web) through FastAPI's TestClient, on a trained store with hostile strings."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from urllib.parse import quote

import pytest
from _webdata import HOSTILE_ITEM, HOSTILE_KEYWORD, HOSTILE_TITLE, HOSTILE_USER, TOKEN, build_web_store, hostile_dataset
from fastapi.testclient import TestClient
from markupsafe import escape

from kgrec import Recommender
from kgrec.cli import main
from kgrec.errors import ConfigError
from kgrec.fusion.whynot import staff_sentence
from kgrec.graph import open_store
from kgrec.messages import messages
from kgrec.web import WebConfig, create_app
from kgrec.web.auth import COOKIE_NAME, Authenticator, safe_next
from kgrec.web.cache import LRUCache
from kgrec.web.models import PathNodeOut, PathOut
from kgrec.web.svg import path_svg

AUTH = {"Authorization": f"Bearer {TOKEN}"}
NEO4J_URI = os.environ.get("KGREC_TEST_NEO4J_URI", "bolt://127.0.0.1:7687")


def q(x: str) -> str:
    return quote(x, safe="")


@pytest.fixture(scope="module")
def web_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_web_store(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def rec(web_store: Path) -> Recommender:
    st = open_store(web_store)
    return Recommender.load(web_store / "models" / "default", store=st)


@pytest.fixture(scope="module")
def client(web_store: Path):
    with TestClient(create_app(WebConfig(store=str(web_store), token=TOKEN))) as c:
        yield c


@pytest.fixture
def fresh(web_store: Path, client: TestClient):
    """A client with its own cookie jar on the same app."""
    with TestClient(client.app) as c:
        yield c


# ---------------------------------------------------------------------- access
def test_refuses_to_start_without_a_token(web_store: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    with pytest.raises(ConfigError, match=r"no access token: set KGREC_API_TOKEN .* or pass --no-auth"):
        create_app(WebConfig(store=str(web_store)))
    with pytest.raises(ConfigError, match=r"KGREC_API_TOKEN is 5 characters long; use at least 16"):
        create_app(WebConfig(store=str(web_store), token="short"))
    monkeypatch.delenv("KGREC_API_TOKEN", raising=False)
    assert main(["serve", "--store", str(web_store), "--port", "1"]) == 2
    assert "kgrec: error: no access token: set KGREC_API_TOKEN" in capsys.readouterr().err


def test_api_needs_the_token(client: TestClient, fresh: TestClient) -> None:
    urls = ["/api/users/u2/recommendations", "/api/users/u2/explanations/i3", "/api/items/search?q=orbit"]
    for url in urls:
        r = fresh.get(url)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert "authentication required" in r.json()["detail"]
        assert fresh.get(url, headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code == 401
        assert fresh.get(url, headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
        assert fresh.get(url, headers=AUTH).status_code == 200
    assert fresh.get("/health").status_code == 200  # liveness needs no token
    page = fresh.get("/?user=u2")
    assert page.status_code == 401 and 'name="token"' in page.text and 'value="/?user=u2"' in page.text
    assert "Top 10" not in page.text


def test_login_sets_a_signed_cookie_and_logout_ends_it(fresh: TestClient) -> None:
    r = fresh.post("/login", data={"token": "not-the-token", "next": "/?user=u2"}, follow_redirects=False)
    assert r.status_code == 401 and "That token is not right" in r.text and COOKIE_NAME not in r.headers.get("set-cookie", "")
    r = fresh.post("/login", data={"token": TOKEN, "next": "/?user=u2"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/?user=u2"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert TOKEN not in cookie
    page = fresh.get("/?user=u2")
    assert page.status_code == 200 and "Top 10 for user u2" in page.text
    assert fresh.get("/api/users/u2/recommendations?k=3").status_code == 200  # the API takes the cookie too
    value = fresh.cookies[COOKIE_NAME]
    fresh.cookies.clear()
    forged = value[:-1] + ("0" if value[-1] != "0" else "1")
    assert fresh.get("/api/users/u2/recommendations", headers={"Cookie": f"{COOKIE_NAME}={forged}"}).status_code == 401
    assert fresh.get("/api/users/u2/recommendations", headers={"Cookie": f"{COOKIE_NAME}={value}"}).status_code == 200
    fresh.cookies.set(COOKIE_NAME, value)
    r = fresh.post("/logout", follow_redirects=False)
    assert r.status_code == 303 and f'{COOKIE_NAME}=""' in r.headers["set-cookie"]
    fresh.cookies.clear()
    assert fresh.get("/?user=u2").status_code == 401
    # after login, only local paths: another site becomes "/"
    r = fresh.post("/login", data={"token": TOKEN, "next": "//evil.example/x"}, follow_redirects=False)
    assert r.headers["location"] == "/"


def test_sessions_expire_and_tokens_compare_exactly() -> None:
    auth = Authenticator(WebConfig(store="x", token=TOKEN, session_hours=1))
    v = auth.new_session(now=1000.0)
    assert auth.session_ok(v, now=1000.0 + 3599) and not auth.session_ok(v, now=1000.0 + 3601)
    assert not auth.session_ok(v.replace(v.split(".")[0], str(int(v.split(".")[0]) + 10**6), 1), now=1000.0)  # longer life: bad sig
    other = Authenticator(WebConfig(store="x", token=TOKEN + "x"))
    assert not other.session_ok(v, now=1000.0)  # a new token ends every session
    assert auth.token_ok(TOKEN) and not auth.token_ok(TOKEN[:-1]) and not auth.token_ok("") and not auth.token_ok(None)
    assert [safe_next(x) for x in ("/?user=1", "//e.com", "https://e.com", "/\\e.com", None)] == ["/?user=1", "/", "/", "/", "/"]


def test_no_auth_mode_serves_without_a_token(web_store: Path) -> None:
    with TestClient(create_app(WebConfig(store=str(web_store), no_auth=True))) as c:
        assert c.get("/api/users/u2/recommendations?k=2").status_code == 200
        r = c.get("/?user=u2")
        assert r.status_code == 200 and "Log out" not in r.text


# ---------------------------------------------------------------------- answers
def test_recommendations_are_the_models(client: TestClient, rec: Recommender) -> None:
    r = client.get("/api/users/u2/recommendations?k=5", headers=AUTH)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    want = rec.recommend("u2", 5)
    assert body["user"] == "u2" and body["k"] == 5 and body["model_version"] == rec.model_version
    assert [x["item"] for x in body["items"]] == want["item"].tolist()
    assert [x["score"] for x in body["items"]] == pytest.approx(want["score"].tolist(), rel=1e-6)
    assert [x["rank"] for x in body["items"]] == [1, 2, 3, 4, 5]
    for x in body["items"]:
        e = rec.explain("u2", x["item"], rec.store, top=1)
        assert x["explanation"] == e.paths[0].sentence and x["kind"] == e.paths[0].kind
        assert x["title"] == rec.title(x["item"])
    # default k, and the same answer again from the cache
    assert len(client.get("/api/users/u2/recommendations", headers=AUTH).json()["items"]) == 10
    assert client.get("/api/users/u2/recommendations?k=5", headers=AUTH).json() == body


def test_explanation_is_the_json_contract(client: TestClient, rec: Recommender) -> None:
    item = rec.recommend("u3", 1)["item"].iloc[0]
    r = client.get(f"/api/users/u3/explanations/{item}?top=4", headers=AUTH)
    assert r.status_code == 200
    assert r.json() == json.loads(json.dumps(rec.explain("u3", item, rec.store, top=4, k=10).to_dict()))
    body = r.json()
    assert body["rank"] == 1 and len(body["paths"]) == 4 and body["paths"][0]["sentence"].startswith("Recommended because")
    assert body["paths"][0]["nodes"][0] == {"type": "user", "id": "u3", "name": "user u3"}


def test_why_not_for_an_item_outside_the_top_k(client: TestClient, rec: Recommender) -> None:
    far = rec.recommend("u4", 30)["item"].iloc[-1]
    body = client.get(f"/api/users/u4/explanations/{far}?k=5", headers=AUTH).json()
    assert body["rank"] == 30 and body["k"] == 5 and body["gap_to_k"] > 0
    assert "is NOT recommended to user u4: it is ranked 30, outside the top 5" in body["message"]
    seen = rec.vocabs.item.id(int(rec.history("u4")[0][0]))
    body = client.get(f"/api/users/u4/explanations/{q(seen)}", headers=AUTH).json()
    assert body["interacted"] and "already interacted with" in body["message"]


def test_item_search_by_id_and_title(client: TestClient, rec: Recommender) -> None:
    body = client.get("/api/items/search?q=i33", headers=AUTH).json()
    assert body["items"][0] == {"item": "i33", "title": rec.title("i33")}
    word = rec.title("i33").split()[1]  # e.g. "Lost"
    hits = client.get(f"/api/items/search?q={word.lower()}&limit=100", headers=AUTH).json()["items"]
    assert hits and all(word.lower() in h["title"].lower() for h in hits)
    assert "i33" in [h["item"] for h in hits]
    assert client.get("/api/items/search?q=no-such-thing-here", headers=AUTH).json()["items"] == []


def test_unknown_ids_are_404_with_a_message(client: TestClient) -> None:
    r = client.get("/api/users/ghost/recommendations", headers=AUTH)
    assert r.status_code == 404 and r.json()["detail"] == "unknown user id 'ghost': not in the training data of this model"
    r = client.get("/api/users/u2/explanations/nothing", headers=AUTH)
    assert r.status_code == 404 and r.json()["detail"] == "unknown item id 'nothing': not in the training data of this model"
    page = client.get("/?user=ghost", headers=AUTH)
    assert page.status_code == 404 and "No customer with id “ghost”: this model does not know that user. Ids that exist: " in page.text
    page = client.get("/?user=u2&item=nothing", headers=AUTH)
    assert page.status_code == 404 and "No item with id “nothing”" in page.text
    page = client.get("/?user=u2&whynot=zzz-nothing", headers=AUTH)
    assert page.status_code == 404 and "No item has the id or a title containing “zzz-nothing”." in page.text


def test_invalid_k_is_422(client: TestClient) -> None:
    for k in ("0", "-3", "abc", "101", "2.5"):
        r = client.get(f"/api/users/u2/recommendations?k={k}", headers=AUTH)
        assert r.status_code == 422, k
        assert r.json()["detail"][0]["loc"] == ["query", "k"]
        assert client.get(f"/api/users/u2/explanations/i3?k={k}", headers=AUTH).status_code == 422
    assert client.get("/api/users/u2/explanations/i3?top=0", headers=AUTH).status_code == 422
    assert client.get("/api/items/search?q=", headers=AUTH).status_code == 422
    assert client.get("/api/items/search?q=%20%20", headers=AUTH).status_code == 422
    page = client.get("/?user=u2&k=abc", headers=AUTH)
    assert page.status_code == 422 and "“How many” must be a whole number from 1 to 100 (got “abc”)." in page.text


def test_the_page_shows_recommendations_paths_and_why_not(client: TestClient, rec: Recommender) -> None:
    page = client.get("/?user=u2&k=4", headers=AUTH)
    assert page.status_code == 200
    top = rec.recommend("u2", 4)
    verb = rec.config.explain.interaction_verb
    for item in top["item"]:  # a link to the detail's anchor, and one third-person reason per item
        assert f'href="/?user=u2&amp;k=4&amp;item={item}#detail"' in page.text
        staff = [escape(staff_sentence(p, verb, messages())) for p in rec.explain("u2", item, rec.store, top=5).paths]
        assert any(t in page.text for t in staff)
    reasons = re.findall(r'<div class="why">(.*?) <span class="strength (strong|medium|weak)">', page.text)
    assert len(reasons) == 4 and all(r.startswith("Recommended because") and " you " not in r for r, _ in reasons)
    # who the customer is: their recent history; no model hash, store kind or raw score parts
    assert 'id="customer"' in page.text and page.text.count("<li>") >= 1
    for raw in (rec.model_version, "embedded", "structure +", "text +"):
        assert raw not in page.text
    item = top["item"].iloc[0]
    page = client.get(f"/?user=u2&k=4&item={item}", headers=AUTH)
    e = rec.explain("u2", item, rec.store, top=10, k=4)
    assert page.text.count('class="sentence"') == len(e.paths) and "<svg" in page.text
    for p in e.paths:
        assert escape(staff_sentence(p, verb, messages())) in page.text
    assert not re.search(r"\(\d\.\d{3}\)", page.text)  # no raw path shares
    far = rec.recommend("u2", 25)["item"].iloc[-1]
    page = client.get(f"/?user=u2&k=4&whynot={quote(rec.title(far))}", headers=AUTH)
    assert page.status_code == 200 and "is NOT recommended to user u2: it is ranked 25, outside the top 4" in page.text
    page = client.get("/?user=u2&whynot=the", headers=AUTH)  # many titles match: a list to pick from
    assert 'id="candidates"' in page.text


# ---------------------------------------------------------------------- hostile strings
def test_hostile_strings_are_escaped_in_html(client: TestClient, rec: Recommender) -> None:
    page = client.get(f"/?user={q(HOSTILE_USER)}&whynot={q(HOSTILE_TITLE)}", headers=AUTH)
    assert page.status_code == 200, page.text
    html = page.text
    for raw in (HOSTILE_USER, HOSTILE_TITLE, "<script>alert", "<img src=x", HOSTILE_KEYWORD):
        assert raw not in html
    assert escape(HOSTILE_TITLE) in html and escape(HOSTILE_USER) in html  # shown, as text
    assert "<script" not in html.lower() and "onerror=" not in html.replace("onerror=alert(2)&gt;", "")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp  # no script may run at all
    assert page.headers["x-content-type-options"] == "nosniff"
    # the hostile item id through the "why not" box and in links
    page = client.get(f"/?user={q(HOSTILE_USER)}&item={q(HOSTILE_ITEM)}", headers=AUTH)
    assert page.status_code == 200 and HOSTILE_ITEM not in page.text and escape(HOSTILE_ITEM) in page.text
    # a hostile keyword inside path sentences and the SVG drawing
    pair = next(((u, i) for u in rec.vocabs.user.to_list() for i in ["i0", HOSTILE_ITEM] + [f"i{n}" for n in range(2, 12)]
                 if any(n.id == HOSTILE_KEYWORD for p in rec.explain(u, i, rec.store, top=5).paths for n in p.nodes)), None)
    assert pair is not None, "no top-5 path runs through the hostile keyword"
    html = client.get(f"/?user={q(pair[0])}&item={q(pair[1])}", headers=AUTH).text
    assert HOSTILE_KEYWORD not in html and escape(HOSTILE_KEYWORD) in html
    svg = html[html.index("<svg"): html.index("</svg>")]
    assert escape(HOSTILE_KEYWORD) in svg and "<b>" not in svg


def test_hostile_strings_are_escaped_in_json(client: TestClient, rec: Recommender) -> None:
    r = client.get(f"/api/users/{q(HOSTILE_USER)}/recommendations?k=40", headers=AUTH)
    assert r.status_code == 200
    assert "<" not in r.text and ">" not in r.text and "\\u003cscript\\u003e" in r.text
    body = r.json()
    assert body["user"] == HOSTILE_USER and HOSTILE_TITLE in [x["title"] for x in body["items"]]
    r = client.get(f"/api/users/{q(HOSTILE_USER)}/explanations/{q(HOSTILE_ITEM)}", headers=AUTH)
    assert r.status_code == 200 and "<" not in r.text and r.json()["item"] == HOSTILE_ITEM
    r = client.get(f"/api/items/search?q={q('<script>')}", headers=AUTH)
    assert "<" not in r.text and r.json()["q"] == "<script>" and r.json()["items"] == [{"item": "i0", "title": HOSTILE_TITLE}]
    r = client.get(f"/api/users/{q(HOSTILE_TITLE)}/recommendations", headers=AUTH)  # unknown id, echoed in the message
    assert r.status_code == 404 and "<" not in r.text and "<script>alert(1)</script>" in r.json()["detail"]
    r = client.get(f"/api/users/u2/recommendations?k={q('<script>')}", headers=AUTH)
    assert r.status_code == 422 and "<" not in r.text


def test_svg_labels_are_escaped() -> None:
    nodes = [PathNodeOut(type="user", id="u", name="user u"), PathNodeOut(type="item", id='a"<', name='<a href="x">'),
             PathNodeOut(type="keyword", id="<k>", name="<k>"), PathNodeOut(type="item", id="b", name="B & co")]
    svg = path_svg([PathOut(score=1.0, sentence="s", kind="keyword", nodes=nodes, relations=["INTERACTED", "HAS_KEYWORD", "HAS_KEYWORD"])],
                   title='t"<')
    assert "<a" not in svg and "<k>" not in svg and "&lt;a href=&quot;x&quot;&gt;" in svg and "B &amp; co" in svg
    wide, narrow = svg.split("</svg>")[:2]
    # wide: 4 nodes, 3 edges coloured by the path's kind, a legend; narrow (a phone): the user's column left out
    assert 'class="paths wide"' in wide and 'class="paths narrow"' in narrow
    for part, nodes_, edges_ in ((wide, 4, 3), (narrow, 3, 2)):
        assert part.count("<rect") == nodes_ and part.count('class="edge k-keyword"') == edges_
        assert part.count('class="legend"') == 1


# ---------------------------------------------------------------------- shape of the service
def test_openapi_schema_lists_the_four_endpoints(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert set(schema["paths"]) == {"/api/users/{user}/recommendations", "/api/users/{user}/explanations/{item}",
                                    "/api/items/search", "/health"}
    recs = schema["paths"]["/api/users/{user}/recommendations"]["get"]
    k = next(p for p in recs["parameters"] if p["name"] == "k")
    assert k["schema"]["minimum"] == 1 and k["schema"]["maximum"] == 100
    assert recs["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/RecommendationsOut")
    assert {"401", "404", "422"} <= set(recs["responses"])
    expl = schema["components"]["schemas"]["ExplanationOut"]["properties"]
    assert {"user", "item", "title", "rank", "score", "k", "paths", "attribution", "interacted", "gap_to_k", "message",
            "total_paths"} == set(expl)
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert client.get("/docs").status_code == 404  # the Swagger page would load scripts from a CDN


def test_read_only_no_route_writes(client: TestClient) -> None:
    methods: dict[str, set[str]] = {}

    def walk(routes: list) -> None:  # noqa: ANN001 - routers included without a prefix
        for route in routes:
            inner = getattr(route, "original_router", None)  # FastAPI >= 0.13x keeps included routers nested
            if inner is not None:
                walk(inner.routes)
            for m in getattr(route, "methods", None) or set():
                methods.setdefault(m, set()).add(route.path)

    walk(client.app.routes)
    assert "/api/users/{user:path}/recommendations" in methods["GET"]
    assert set(methods) <= {"GET", "HEAD", "POST"}
    assert methods["POST"] == {"/login", "/logout"}
    for verb in ("post", "put", "delete", "patch"):
        assert getattr(client, verb)("/api/users/u2/recommendations", headers=AUTH).status_code == 405
    assert "cypher" not in json.dumps(client.get("/openapi.json").json()).lower()


def test_lru_cache_evicts_the_least_recent() -> None:
    c: LRUCache[bytes] = LRUCache(2)
    c.put("a", b"1")
    c.put("b", b"2")
    assert c.get("a") == b"1"
    c.put("c", b"3")
    assert c.get("b") is None and c.get("a") == b"1" and c.get("c") == b"3" and len(c) == 2
    off: LRUCache[bytes] = LRUCache(0)
    off.put("a", b"1")
    assert off.get("a") is None


# ---------------------------------------------------------------------- Neo4j
@pytest.mark.neo4j
def test_neo4j_store_gives_the_same_answers(client: TestClient, web_store: Path, rec: Recommender) -> None:
    neo = open_store(NEO4J_URI)
    try:
        neo.wipe()
        neo.ingest(hostile_dataset(), progress=False)
        cfg = WebConfig(store=NEO4J_URI, model=web_store / "models" / "default", token=TOKEN, cache_size=0)
        with TestClient(create_app(cfg)) as nc:
            assert nc.get("/health").json()["store"] == "neo4j"
            for user in ("u2", "u7", HOSTILE_USER):
                url = f"/api/users/{q(user)}/recommendations?k=5"
                assert nc.get(url, headers=AUTH).json() == client.get(url, headers=AUTH).json()
                for item in rec.recommend(user, 12)["item"].iloc[[0, 4, 11]]:
                    url = f"/api/users/{q(user)}/explanations/{q(item)}?k=5"
                    a, b = nc.get(url, headers=AUTH), client.get(url, headers=AUTH)
                    assert a.status_code == 200 and a.json() == b.json()
            page = nc.get(f"/?user={q(HOSTILE_USER)}&whynot={q(HOSTILE_TITLE)}", headers=AUTH)
            assert page.status_code == 200 and HOSTILE_TITLE not in page.text and escape(HOSTILE_TITLE) in page.text
            assert nc.get("/api/users/ghost/recommendations", headers=AUTH).status_code == 404
    finally:
        neo.wipe()
        neo.close()


def test_worker_processes_share_a_socket_without_nagle_delays() -> None:
    """`kgrec serve --workers N` listens on a socket with TCP_NODELAY, which accepted connections inherit."""
    import socket

    from kgrec.web.server import _NoDelayConfig

    cfg = _NoDelayConfig("kgrec.web.app:app_from_env", factory=True, host="127.0.0.1", port=0, workers=2)
    sock = cfg.bind_socket()
    try:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        sock.close()
