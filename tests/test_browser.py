"""The page in a real browser: `kgrec serve` in a subprocess, Debian's Chromium driven by Playwright (headless).

Needs /usr/bin/chromium (`apt-get install chromium`; .ci/run installs it). Screenshots of a recommendation and of a
why-not answer, at 1280 px (desktop) and 390 px (phone), are kept under artifacts/browser/ (git-ignored); with
``KGREC_SCREENSHOTS=docs/img`` they are written to that folder (relative to the repository) instead, as the ones
committed there were.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from _webdata import HOSTILE_TITLE, TOKEN, build_web_store

from kgrec import Recommender
from kgrec.graph import open_store

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = REPO / os.environ.get("KGREC_SCREENSHOTS", "artifacts/browser")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`python -m kgrec serve` on a free loopback port, with the token in the environment."""
    store = build_web_store(tmp_path_factory.getbasetemp())
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {**os.environ, "KGREC_API_TOKEN": TOKEN}
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "kgrec", "serve", "--store", str(store), "--port", str(port)],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
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
        yield base, store
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_support_staff_flow_in_chromium(server: tuple[str, Path]) -> None:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: the browser test drives Debian's Chromium; install it with `apt-get install chromium`")
    from playwright.sync_api import expect, sync_playwright

    base, store = server
    rec = Recommender.load(store / "models" / "default", store=open_store(store))
    user = "u2"
    top = rec.recommend(user, 10)
    far = rec.recommend(user, 25)["item"].iloc[-1]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shots = [SCREENSHOTS / f"support-{what}-{w}.png" for what in ("recommendation", "whynot") for w in (1280, 390)]
    for shot in shots:
        shot.unlink(missing_ok=True)
    dialogs: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            # log in
            page.goto(f"{base}/")
            expect(page.locator("h2")).to_have_text("Log in")
            page.fill("#token", "wrong-token-0123456789")
            page.click("#login")
            expect(page.locator("#error")).to_contain_text("That token is not right")
            page.fill("#token", TOKEN)
            page.click("#login")
            expect(page.locator("#user-hint")).to_contain_text("User ids look like")
            # search a user, see who they are and their recommendations
            page.fill("#user", user)
            page.click("#show")
            expect(page.locator("#recs h2")).to_have_text(f"Top 10 for user {user}")
            expect(page.locator("#customer ul.history li").first).to_be_visible()
            rows = page.locator("#recs tr.rec")
            expect(rows).to_have_count(10)
            expect(rows.nth(0).locator("a.title")).to_have_text(rec.title(top["item"].iloc[0]))
            expect(rows.nth(0).locator(".why")).to_contain_text("Recommended because")
            assert not any(" you " in t for t in rows.locator(".why").all_inner_texts())
            for width in (1280, 390):
                page.set_viewport_size({"width": width, "height": 900 if width > 400 else 844})
                page.goto(f"{base}/?user={user}")
                # open one: the click lands on the detail (an anchor), not the top of the page
                page.locator("#recs tr.rec").nth(1).locator("a.title").click()
                expect(page.locator("#detail-title")).to_have_text(rec.title(top["item"].iloc[1]))
                expect(page.locator("#detail-title")).to_be_in_viewport()
                e = rec.explain(user, top["item"].iloc[1], rec.store, top=10)
                sentences = page.locator("#paths .sentence")
                expect(sentences).to_have_count(len(e.paths))
                drawing = page.locator("#detail svg.paths.wide" if width > 600 else "#detail svg.paths.narrow")
                expect(drawing).to_be_visible()
                assert drawing.locator("rect").count() >= 3 and drawing.locator("g.legend").count() >= 1
                box = drawing.bounding_box()
                assert box is not None and box["width"] <= width and box["x"] >= 0  # fits the screen, no sideways scroll
                if width == 390:  # labels at about their own size: the narrow drawing is not shrunk
                    assert box["width"] / 360 > 0.9
                drawing.scroll_into_view_if_needed()
                page.screenshot(path=str(SCREENSHOTS / f"support-recommendation-{width}.png"), full_page=width > 600)
                # ask "why not?" for an item outside the top 10, by title
                page.fill("#whynot", rec.title(far))
                page.click("#ask")
                expect(page.locator("#detail-title")).to_have_text(rec.title(far))
                expect(page.locator("#detail-title")).to_be_in_viewport()
                expect(page.locator("#message")).to_contain_text(f"NOT recommended to user {user}: it is ranked 25")
                expect(page.locator("#detail-meta")).to_contain_text("Not recommended: ranked 25")
                assert "Recommended because" not in page.locator("#detail").inner_text()
                page.screenshot(path=str(SCREENSHOTS / f"support-whynot-{width}.png"), full_page=width > 600)
            page.set_viewport_size({"width": 1280, "height": 900})
            # a hostile title is shown as text; no script runs
            page.fill("#whynot", HOSTILE_TITLE)
            page.click("#ask")
            expect(page.locator("#detail-title")).to_have_text(HOSTILE_TITLE)
            # an unknown user: the 404 message on the page, with ids that exist
            page.fill("#user", "ghost")
            page.click("#show")
            expect(page.locator("#error")).to_contain_text("No customer with id “ghost”: this model does not know that user. Ids that exist: ")
            page.click("#logout")
            expect(page.locator("h2")).to_have_text("Log in")
        finally:
            browser.close()
    assert dialogs == [], f"a script ran in the page: {dialogs}"
    for shot in shots:
        assert shot.is_file() and shot.stat().st_size > 10_000, shot
