"""The page in a real browser: `kgrec serve` in a subprocess, Debian's Chromium driven by Playwright (headless).

Needs /usr/bin/chromium (`apt-get install chromium`; .ci/run installs it). The screenshot is kept as a CI
artifact under artifacts/browser/ (git-ignored).
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
SCREENSHOTS = REPO / "artifacts" / "browser"


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
    shot = SCREENSHOTS / "support-page.png"
    shot.unlink(missing_ok=True)
    dialogs: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            # log in
            page.goto(f"{base}/")
            expect(page.locator("h2")).to_have_text("Log in")
            page.fill("#token", "wrong-token-0123456789")
            page.click("#login")
            expect(page.locator("#error")).to_contain_text("That token is not right")
            page.fill("#token", TOKEN)
            page.click("#login")
            # search a user, see recommendations
            page.fill("#user", user)
            page.click("#show")
            expect(page.locator("#recs h2")).to_have_text(f"Top 10 for user {user}")
            rows = page.locator("#recs tr.rec")
            expect(rows).to_have_count(10)
            expect(rows.nth(0).locator("a.title")).to_have_text(rec.title(top["item"].iloc[0]))
            expect(rows.nth(0).locator(".why")).to_contain_text("Recommended because")
            # open one: its path sentences and the drawing
            rows.nth(1).locator("a.title").click()
            expect(page.locator("#detail-title")).to_have_text(rec.title(top["item"].iloc[1]))
            e = rec.explain(user, top["item"].iloc[1], rec.store, top=10)
            sentences = page.locator("#paths .sentence")
            expect(sentences).to_have_count(len(e.paths))
            assert sentences.all_inner_texts() == [p.sentence for p in e.paths]
            expect(page.locator("#detail svg.paths")).to_be_visible()
            assert page.locator("#detail svg.paths rect").count() >= 3
            # ask "why not?" for an item outside the top 10, by title
            page.fill("#whynot", rec.title(far))
            page.click("#ask")
            expect(page.locator("#message")).to_contain_text(f"is ranked 25 for user {user}, outside the top 10")
            expect(page.locator("#detail-title")).to_have_text(rec.title(far))
            page.screenshot(path=str(shot), full_page=True)
            # a hostile title is shown as text; no script runs
            page.fill("#whynot", HOSTILE_TITLE)
            page.click("#ask")
            expect(page.locator("#detail-title")).to_have_text(HOSTILE_TITLE)
            # an unknown user: the 404 message on the page
            page.fill("#user", "ghost")
            page.click("#show")
            expect(page.locator("#error")).to_have_text("No user with id “ghost”: this model does not know that user.")
            page.click("#logout")
            expect(page.locator("h2")).to_have_text("Log in")
        finally:
            browser.close()
    assert dialogs == [], f"a script ran in the page: {dialogs}"
    assert shot.is_file() and shot.stat().st_size > 10_000
