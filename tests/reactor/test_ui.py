"""The ``/ui`` dashboard in a real headless Chromium against the real reactor on loopback.

The reactor runs behind werkzeug's server with a SQLite store, in ``recommend`` mode, and decides on the
captured Alertmanager payload; the page reads and approves through the real API. One browser serves the
whole module; each test gets its own reactor (a new port is a new origin, hence an empty session storage).
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from reactor.liveloop.processes import free_port
from reactor.ui import CONTENT_SECURITY_POLICY
from reactor.worker import Platforms
from strategies.dryrun import DryRunPlatform
from tests.browser import Browser
from tests.conftest import load_fixture
from tests.reactor.conftest import AUTH, TOKEN, make_settings, rt

FIRING = load_fixture("alertmanager-0.25-webhook-firing.json")
TARGET = "kubernetes/e2e/prod/checkout"
#: A token as ``openssl rand -base64`` makes them: "+" and "/" in a URL fragment.
BASE64_TOKEN = "a+b/c9=="
#: A basic-auth user (``auth.basic``) whose name and password are not Latin-1: the page must send UTF-8.
USER, PASSWORD = "zoë", "pässwörd:with-colon"
#: A label an attacker controls, and where the decision shows it: in its target. No "/" in it (no closing
#: tags): a name with a slash is ignored, and this test needs a decision waiting for approval.
HOSTILE = "<img src=x onerror=\"window.__xss='img'\"><b>bold<script>window.__xss='script'<script>"


@dataclass
class Reactor:
    app: Flask
    url: str
    server: BaseWSGIServer
    thread: threading.Thread

    def stop(self) -> None:
        """Stop answering and close the listening socket: the browser's requests are refused."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def alert(self, payload: dict[str, Any] = FIRING) -> None:
        """Send an Alertmanager notification and let the worker decide on it."""
        answer = requests.post(f"{self.url}/webhooks/alertmanager", json=payload, headers=AUTH, timeout=10)
        assert answer.status_code == 202, answer.text
        rt(self.app).worker.drain()

    def decisions(self) -> list[dict[str, Any]]:
        answer = requests.get(f"{self.url}/api/v1/decisions", headers=AUTH, timeout=10)
        assert answer.status_code == 200, answer.text
        items: list[dict[str, Any]] = answer.json()["decisions"]
        return items


@pytest.fixture
def reactor(app_factory: Any, sqlite_url: str) -> Iterator[Reactor]:
    """The reactor in ``recommend`` mode behind a real HTTP server; the test drives its worker."""
    settings = make_settings(
        sqlite_url,
        **{
            "policies.defaults.mode": "recommend",
            "auth.tokens": [TOKEN, BASE64_TOKEN],
            "auth.basic": [{"username": USER, "password": PASSWORD}],
        },
    )
    app = app_factory(settings, platforms=Platforms(settings, instances={"kubernetes": DryRunPlatform()}))
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    live = Reactor(app, f"http://127.0.0.1:{port}", server, thread)
    try:
        yield live
    finally:
        if thread.is_alive():
            live.stop()


@pytest.fixture(autouse=True)
def no_page_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every browser test ends without a script error or a Content-Security-Policy violation in the page."""
    if "browser" not in request.fixturenames:
        yield
        return
    browser: Browser = request.getfixturevalue("browser")
    browser.take_problems()
    yield
    assert browser.take_problems() == []


def rows(table: str) -> str:
    """JavaScript: the texts of a table's data rows (the 'nothing here' row excluded)."""
    return f"Array.from(document.querySelectorAll('#{table} tbody tr:not(.details)'))" \
        ".filter(r => !r.querySelector('td.empty')).map(r => r.innerText)"  # fmt: skip


def test_without_a_token_the_page_asks_to_sign_in_and_shows_no_data(browser: Browser, reactor: Reactor) -> None:
    reactor.alert()
    browser.open(f"{reactor.url}/ui")
    browser.wait_for("!document.getElementById('sign-in').hidden")
    assert browser.evaluate("document.getElementById('dashboard').hidden") is True
    assert browser.evaluate(f"{rows('decisions')}.length + {rows('pending')}.length") == 0
    assert TARGET not in browser.evaluate("document.body.innerText")


def test_signed_in_the_page_lists_decisions_and_approves_through_the_api(browser: Browser, reactor: Reactor) -> None:
    reactor.alert()
    [pending] = reactor.decisions()
    assert pending["status"] == "pending_approval"

    browser.open(f"{reactor.url}/ui#token={TOKEN}")
    browser.wait_for(f"{rows('pending')}.length === 1")
    assert browser.evaluate("location.hash") == "", "the token stays out of the address bar and the history"
    assert browser.evaluate("sessionStorage.getItem('smart-rollback-authorization')") == f"Bearer {TOKEN}"
    assert browser.evaluate("document.getElementById('who').textContent") == "signed in with a token"
    [shown] = browser.evaluate(rows("pending"))
    assert TARGET in shown and pending["reasons"][0] in shown
    [recent] = browser.evaluate(rows("decisions"))
    assert all(part in recent for part in (TARGET, "rollback", "recommend", "pending_approval"))
    assert browser.evaluate("document.getElementById('updated').textContent").startswith("updated ")

    # The full explanation, from GET /api/v1/decisions/{id}.
    browser.evaluate("document.querySelector('#decisions button.explain').click()")
    explanation = browser.wait_for("document.querySelector('#decisions tr.details pre')?.textContent")
    assert json.loads(explanation)["id"] == pending["id"]

    # Approving needs a reason: without one nothing is sent.
    browser.evaluate("document.querySelector('#pending button.approve').click()")
    browser.wait_for("document.getElementById('approval-result').textContent.includes('Give a reason')")
    assert reactor.decisions()[0]["status"] == "pending_approval"

    browser.evaluate(
        "const input = document.querySelector('#pending input.reason');"
        "input.value = 'checked the dashboards'; input.dispatchEvent(new Event('input'));"
        "document.querySelector('#pending button.approve').click()"
    )
    result = browser.wait_for("document.getElementById('approval-result').textContent.match(/^Approved.*/)?.[0]")
    assert pending["id"] in result and "now approved" in result
    assert reactor.decisions()[0]["status"] == "approved"
    full = requests.get(f"{reactor.url}/api/v1/decisions/{pending['id']}", headers=AUTH, timeout=10).json()
    assert any("checked the dashboards" in json.dumps(entry) for entry in full["audit"])
    # The approved decision waits for the worker: in flight, no longer waiting for approval.
    browser.wait_for(f"{rows('pending')}.length === 0 && {rows('inflight')}.length === 1")

    browser.evaluate("document.getElementById('sign-out').click()")
    assert browser.evaluate("document.getElementById('sign-in-message').textContent") == "Signed out."
    assert browser.evaluate("sessionStorage.getItem('smart-rollback-authorization')") is None
    assert TARGET not in browser.evaluate("document.body.innerText")


@pytest.mark.parametrize("fragment", ["a+b/c9==", "a%2Bb%2Fc9%3D%3D"])
def test_a_base64_token_in_the_link_works_raw_or_percent_encoded(
    browser: Browser, reactor: Reactor, fragment: str
) -> None:
    reactor.alert()
    browser.open(f"{reactor.url}/ui#token={fragment}")
    browser.wait_for(f"{rows('decisions')}.length === 1")
    assert browser.evaluate("sessionStorage.getItem('smart-rollback-authorization')") == f"Bearer {BASE64_TOKEN}"


def test_a_wrong_token_shows_the_401_message(browser: Browser, reactor: Reactor) -> None:
    reactor.alert()
    browser.open(f"{reactor.url}/ui#token=not-the-token")
    message = browser.wait_for(
        "!document.getElementById('sign-in').hidden && document.getElementById('sign-in-message').textContent"
    )
    assert "401" in message
    assert browser.evaluate("document.getElementById('dashboard').hidden") is True
    assert browser.evaluate("sessionStorage.getItem('smart-rollback-authorization')") is None
    assert TARGET not in browser.evaluate("document.body.innerText")

    # Signing in with the right token from the form shows the data.
    browser.evaluate(
        f"document.getElementById('token').value = {json.dumps(TOKEN)};"
        "document.getElementById('sign-in-form').requestSubmit()"
    )
    browser.wait_for(f"{rows('decisions')}.length === 1")


def test_labels_with_html_are_shown_as_text(browser: Browser, reactor: Reactor) -> None:
    payload = copy.deepcopy(FIRING)
    for labels in (payload["alerts"][0]["labels"], payload["commonLabels"]):
        labels["deployment"] = HOSTILE
    reactor.alert(payload)
    assert HOSTILE in reactor.decisions()[0]["target"]

    browser.open(f"{reactor.url}/ui#token={TOKEN}")
    browser.wait_for(f"{rows('decisions')}.length === 1")
    assert HOSTILE in browser.evaluate(rows("decisions"))[0]
    assert HOSTILE in browser.evaluate(rows("pending"))[0]
    browser.evaluate("document.querySelector('#decisions button.explain').click()")
    browser.wait_for("!!document.querySelector('#decisions tr.details pre')")
    assert browser.evaluate("document.querySelectorAll('main img, main script, main b').length") == 0
    assert browser.evaluate("window.__xss === undefined") is True


def test_the_page_refreshes_and_keeps_the_last_data_when_a_refresh_fails(browser: Browser, reactor: Reactor) -> None:
    reactor.alert()
    browser.open(f"{reactor.url}/ui#token={TOKEN}")
    browser.wait_for(f"{rows('decisions')}.length === 1")
    assert browser.evaluate("document.getElementById('kill-switch').textContent").startswith("off")

    rt(reactor.app).store.set_flag("kill_switch", True, actor="alice")
    kill_switch = browser.wait_for("document.getElementById('kill-switch').textContent.match(/^ON.*/)?.[0]")
    assert "by alice" in kill_switch

    reactor.stop()
    banner = browser.wait_for(
        "!document.getElementById('error').hidden && document.getElementById('error').textContent", timeout=8
    )
    assert banner.startswith("Refresh failed at ") and "Showing the last data" in banner
    assert len(browser.evaluate(rows("decisions"))) == 1


def test_the_page_and_its_files_carry_the_security_headers(reactor: Reactor) -> None:
    for path, kind in (("/ui", "text/html"), ("/ui/ui.js", "text/javascript"), ("/ui/ui.css", "text/css")):
        answer = requests.get(reactor.url + path, timeout=10)
        assert answer.status_code == 200, path
        assert answer.headers["Content-Type"].startswith(kind)
        assert answer.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["Referrer-Policy"] == "no-referrer"
    policy = dict(part.split(" ", 1) for part in CONTENT_SECURITY_POLICY.split("; "))
    assert policy["default-src"] == "'self'" and policy["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    # Only the page's own files: the package's source is not reachable.
    assert requests.get(f"{reactor.url}/ui/__init__.py", timeout=10).status_code == 404
    shell = requests.get(f"{reactor.url}/ui", timeout=10).text
    assert "<script>" not in shell and "style=" not in shell and "http" not in shell


def test_the_browser_enforces_the_policy(browser: Browser, reactor: Reactor) -> None:
    browser.open(f"{reactor.url}/ui/")
    assert browser.url == f"{reactor.url}/ui", "/ui/ redirects: the page's relative URLs resolve from /ui"
    browser.evaluate(
        "const s = document.createElement('script'); s.textContent = 'window.__inline = 1';"
        "document.body.appendChild(s); document.body.setAttribute('style', 'color: red'); 0"
    )
    assert browser.evaluate("window.__inline") is None
    blocked = browser.take_problems()
    assert len(blocked) == 2 and all("Content Security Policy" in p and "blocked" in p for p in blocked), blocked


def test_a_basic_auth_user_signs_in_and_approvals_carry_the_name(browser: Browser, reactor: Reactor) -> None:
    reactor.alert()
    [pending] = reactor.decisions()
    browser.open(f"{reactor.url}/ui")
    browser.wait_for("!document.getElementById('sign-in').hidden")
    browser.evaluate(
        "document.getElementById('user').value = 'zoë'; document.getElementById('password').value = 'wrong';"
        "document.getElementById('basic-form').requestSubmit()"
    )
    message = browser.wait_for(
        "!document.getElementById('sign-in').hidden && document.getElementById('sign-in-message').textContent"
    )
    assert "401" in message
    browser.evaluate(
        f"document.getElementById('user').value = {json.dumps(USER)};"
        f"document.getElementById('password').value = {json.dumps(PASSWORD)};"
        "document.getElementById('basic-form').requestSubmit()"
    )
    browser.wait_for(f"{rows('pending')}.length === 1")
    assert browser.evaluate("document.getElementById('who').textContent") == f"signed in with user {USER}"
    assert browser.evaluate("document.getElementById('password').value") == ""
    browser.evaluate(
        "const input = document.querySelector('#pending input.reason');"
        "input.value = 'zoë checked it'; input.dispatchEvent(new Event('input'));"
        "document.querySelector('#pending button.approve').click()"
    )
    result = browser.wait_for("document.getElementById('approval-result').textContent.match(/^Approved.*/)?.[0]")
    assert f"(by {USER})" in result
    full = requests.get(f"{reactor.url}/api/v1/decisions/{pending['id']}", headers=AUTH, timeout=10).json()
    assert full["status"] == "approved" and full["actor"] == USER, full
