"""Real Prometheus / Pushgateway processes on loopback, and a recording HTTP server for the SaaS APIs."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.conftest import free_port

INSTALL_HINT = "install it with `make system-deps` (Debian packages prometheus, prometheus-pushgateway)"


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; {INSTALL_HINT}")
    return path


def _wait_ready(url: str, proc: subprocess.Popen, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"{what} exited with {proc.returncode}: {out[-2000:]}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    pytest.fail(f"{what} not ready at {url} after {timeout}s")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


@dataclass
class RunningPrometheus:
    url: str
    proc: subprocess.Popen

    def query(self, expr: str) -> list[dict[str, Any]]:
        body = requests.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=5).json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def wait_for(self, expr: str, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 60.0) -> list:
        deadline = time.monotonic() + timeout
        result: list = []
        while time.monotonic() < deadline:
            result = self.query(expr)
            if predicate(result):
                return result
            time.sleep(0.5)
        pytest.fail(f"{expr!r} did not satisfy the condition within {timeout}s; last result: {result}")


@pytest.fixture
def start_prometheus(tmp_path: Path) -> Iterator[Callable[[dict[str, list[str]]], RunningPrometheus]]:
    """Factory: a real Prometheus scraping ``{job: [host:port, ...]}`` every second (plus itself)."""
    procs: list[subprocess.Popen] = []
    binary = _binary("prometheus")

    def start(jobs: dict[str, list[str]]) -> RunningPrometheus:
        port = free_port()
        scrape = [{"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}]
        scrape += [{"job_name": j, "static_configs": [{"targets": t}]} for j, t in jobs.items()]
        cfg = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "scrape_configs": scrape}
        d = tmp_path / f"prom-{port}"
        d.mkdir()
        (d / "prometheus.yml").write_text(yaml.safe_dump(cfg))
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={d / 'prometheus.yml'}",
                f"--storage.tsdb.path={d / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                f"--web.external-url=http://127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        _wait_ready(f"{url}/-/ready", proc, "prometheus")
        return RunningPrometheus(url, proc)

    yield start
    for p in procs:
        _stop(p)


@pytest.fixture
def pushgateway() -> Iterator[str]:
    """A real Pushgateway on loopback with no persistence file (Debian's default would keep old series)."""
    port = free_port()
    proc = subprocess.Popen(
        [
            _binary("prometheus-pushgateway"),
            f"--web.listen-address=127.0.0.1:{port}",
            "--persistence.file=",
            "--log.level=warn",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(f"{url}/-/ready", proc, "pushgateway")
        yield url
    finally:
        _stop(proc)


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Recorder:
    """A loopback HTTP server that records requests and answers with ``respond(request)``."""

    url: str
    requests: list[Recorded] = field(default_factory=list)
    respond: Callable[[Recorded], tuple[int, dict[str, str], bytes]] = lambda r: (200, {}, b"{}")


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder(url="")

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            req = Recorded(self.command, self.path, dict(self.headers.items()), body)
            rec.requests.append(req)
            status, headers, payload = rec.respond(req)
            self.send_response(status)
            headers = {"Content-Type": "application/json", **headers}
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = _handle

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    rec.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
