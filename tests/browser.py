"""A real headless Chromium driven over the Chrome DevTools Protocol, for the dashboard tests.

No Selenium or Playwright: one websocket (``websocket-client``, already installed with ``kubernetes``) and the
three protocol calls the tests need (``Page.navigate``, ``Runtime.evaluate``, ``Page.reload``). A missing
browser fails the test, it never skips it: the UI is only tested here, in a real browser.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websocket

CHROMIUM = "chromium"
#: Without the background-networking switches Chromium reaches for Google's services at start, and this
#: machine's closed network refuses those connections (noise, and slower starts).
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
)


class BrowserError(AssertionError):
    """The page did not reach the expected state, or the protocol answered with an error."""


class Browser:
    """One Chromium process and its first tab."""

    def __init__(self, profile: Path, *, executable: str = CHROMIUM, start_timeout: float = 30) -> None:
        self.process = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._ids = itertools.count(1)
        #: What the page reported since the last :meth:`take_problems`: uncaught exceptions, and console
        #: entries of level error from its scripts or its security policy (the network's are expected: 401s).
        self.problems: list[str] = []
        try:
            port = self._wait_for_port(profile / "DevToolsActivePort", start_timeout)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
                targets = json.load(answer)
            page = next(t for t in targets if t["type"] == "page")
            # Chromium refuses websocket clients that send an Origin it was not told to allow.
            self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)
            self.call("Log.enable")
            self.call("Runtime.enable")
        except BaseException:
            self.close()
            raise

    def _wait_for_port(self, path: Path, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrowserError(f"chromium exited at start with status {self.process.returncode}")
            if path.exists() and path.read_text().strip():
                return int(path.read_text().split()[0])
            time.sleep(0.05)
        raise BrowserError(f"chromium wrote no {path.name} within {timeout:.0f}s")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one protocol command and return its result (events arriving meanwhile are dropped)."""
        msg_id = next(self._ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") != msg_id:
                self._note(message)
                continue
            if "error" in message:
                raise BrowserError(f"{method}: {message['error']}")
            result: dict[str, Any] = message["result"]
            return result

    def _note(self, event: dict[str, Any]) -> None:
        params = event.get("params", {})
        if event.get("method") == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.problems.append(details.get("exception", {}).get("description") or details.get("text", ""))
        elif event.get("method") == "Log.entryAdded":
            entry = params["entry"]
            if entry["level"] == "error" and entry["source"] != "network":
                self.problems.append(f"{entry['source']}: {entry['text']}")

    def take_problems(self) -> list[str]:
        """The problems reported so far (reading the pending events first), and forget them."""
        self.evaluate("0")
        problems, self.problems = self.problems, []
        return problems

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises are awaited)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise BrowserError(f"{expression!r} threw: {details.get('exception', {}).get('description', details)}")
        return result["result"].get("value")

    def open(self, url: str, *, timeout: float = 10) -> None:
        """Load ``url`` (a fresh document even when only the fragment differs) and wait until it is loaded."""
        self.call("Page.navigate", url="about:blank")
        self.call("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'", timeout=timeout)

    def wait_for(self, expression: str, *, timeout: float = 10) -> Any:
        """Poll ``expression`` until it is truthy (as JSON: use ``!!`` for a DOM node); on timeout fail with what the
        page showed."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                shown = self.evaluate("document.body ? document.body.innerText : document.documentElement.outerHTML")
                raise BrowserError(f"waited {timeout:.0f}s for {expression!r}; the page at {self.url} shows:\n{shown}")
            time.sleep(0.1)

    @property
    def url(self) -> str:
        return str(self.evaluate("location.href"))

    def close(self) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            ws.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """One headless Chromium per test module (starting one takes about a second)."""
    executable = shutil.which(CHROMIUM)
    if executable is None:
        pytest.fail("chromium is not installed: run `bash scripts/system-deps.sh` (Debian package chromium)")
    chrome = Browser(tmp_path_factory.mktemp("chromium-profile"), executable=executable)
    try:
        yield chrome
    finally:
        chrome.close()
