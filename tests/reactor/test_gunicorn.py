"""The captured Alertmanager requests, sent byte for byte to a real `smart-rollback serve` (gunicorn, 2 workers)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import FIXTURES, ROOT, free_port

HEADERS = json.loads((FIXTURES / "alertmanager-0.25-webhook-headers.json").read_text())


class Server:
    def __init__(self, url: str, proc: subprocess.Popen[str], metrics_dir: Path | None) -> None:
        self.url, self.proc, self.metrics_dir = url, proc, metrics_dir

    def post(self, path: str, body: bytes, **headers: str) -> requests.Response:
        return requests.post(self.url + path, data=body, headers=headers, timeout=10)

    def get(self, path: str) -> requests.Response:
        return requests.get(self.url + path, headers={"Authorization": "Bearer t0ken"}, timeout=10)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env["TMPDIR"] = str(tmp_path)
    cmd = [sys.executable, "-m", "reactor", "serve", "--bind", f"127.0.0.1:{port}", "--db",
           f"sqlite:///{tmp_path / 'reactor.db'}", "--basic-auth", "reactor:s3cret", "--token", "t0ken"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/readyz", timeout=1).status_code == 200:
                break
        except requests.RequestException:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail(f"the reactor did not start: {proc.communicate()[0]}")
    metrics_dirs = list(tmp_path.glob("smart-rollback-metrics-*"))
    yield Server(url, proc, metrics_dirs[0] if metrics_dirs else None)
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def captured(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_captured_payloads_through_gunicorn(server: Server) -> None:
    headers = {k: v for k, v in HEADERS.items() if k not in ("Host", "Content-Length")}
    firing = server.post("/webhooks/alertmanager", captured("alertmanager-0.25-webhook-firing.json"), **headers)
    assert firing.status_code == 202, firing.text
    assert firing.json()["accepted"] == 1
    # Alertmanager resends on repeat_interval and after timeouts; an HA peer sends the same again.
    for _ in range(3):
        again = server.post("/webhooks/alertmanager", captured("alertmanager-0.25-webhook-firing.json"), **headers)
        assert again.json()["duplicate"] == 1
    truncated = server.post(
        "/webhooks/alertmanager",
        captured("alertmanager-0.25-webhook-truncated-childroute.json"),
        **{"Content-Type": "application/json", "Authorization": "Bearer t0ken"},
    )
    assert truncated.json() == {"status": "accepted", "alerts": 2, "accepted": 2, "duplicate": 0, "ignored": 0,
                                "truncated": 1}  # fmt: skip
    resolved = server.post("/webhooks/alertmanager", captured("alertmanager-0.25-webhook-resolved.json"), **headers)
    assert resolved.json()["accepted"] == 1

    deadline = time.monotonic() + 20
    decisions: list[dict[str, Any]] = []
    while time.monotonic() < deadline and len(decisions) < 3:
        decisions = server.get("/api/v1/decisions").json()["decisions"]
        time.sleep(0.2)
    assert len(decisions) == 3, "one decision per alert occurrence, whichever worker process took it"
    assert {d["mode"] for d in decisions} == {"observe"}, "the default mode only records"

    unauthorised = server.post("/webhooks/alertmanager", b"{}", **{"Content-Type": "application/json"})
    assert unauthorised.status_code == 401
    metrics = requests.get(server.url + "/metrics", timeout=10).text
    assert 'smart_rollback_intake_requests_total{code="202",source="alertmanager"} 6.0' in metrics, metrics
    assert 'smart_rollback_intake_alerts_total{result="duplicate",source="alertmanager"} 3.0' in metrics


def test_stops_cleanly_and_leaves_no_metrics_files(server: Server) -> None:
    assert server.metrics_dir is not None and server.metrics_dir.exists()
    server.proc.send_signal(signal.SIGTERM)
    output, _ = server.proc.communicate(timeout=30)
    assert server.proc.returncode == 0, output
    assert "Shutting down: Master" in output
    assert not server.metrics_dir.exists()
