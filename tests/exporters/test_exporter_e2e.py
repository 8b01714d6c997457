"""End to end: an app exporting per-revision metrics, a real Prometheus, and `smart-rollback exporter`.

Prometheus scrapes the app and the exporter; the exporter queries Prometheus. When the app starts serving
a slower revision v2 (no exporter restart), the exporter's health series for v2 reach Prometheus.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import yaml

from tests.conftest import ROOT, free_port


class _App:
    def __init__(self) -> None:
        self.canary = False
        self.rng = np.random.default_rng(7)
        self.errors = {"v1": 0, "v2": 0}

    def render(self) -> str:
        lines = ["# TYPE app_latency_seconds gauge"]
        lines.append(f'app_latency_seconds{{revision="v1"}} {0.100 + self.rng.normal(0, 0.005):.6f}')
        self.errors["v1"] += int(self.rng.poisson(0.2))
        if self.canary:
            lines.append(f'app_latency_seconds{{revision="v2"}} {0.300 + self.rng.normal(0, 0.005):.6f}')
            self.errors["v2"] += int(self.rng.poisson(3.0))
        lines.append("# TYPE app_errors_total counter")
        for rev, n in self.errors.items():
            if rev == "v1" or self.canary:
                lines.append(f'app_errors_total{{revision="{rev}"}} {n}')
        return "\n".join(lines) + "\n"


@pytest.mark.e2e
def test_prometheus_scrapes_the_exporter(start_prometheus, tmp_path) -> None:
    app = _App()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = app.render().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            return

    app_server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=app_server.serve_forever, daemon=True).start()
    exporter_port = free_port()
    prom = start_prometheus(
        {
            "app": [f"127.0.0.1:{app_server.server_address[1]}"],
            "smart-rollback": [f"127.0.0.1:{exporter_port}"],
        }
    )
    config = {
        "interval": 2,
        "listen": f"127.0.0.1:{exporter_port}",
        "sources": {"prom": {"type": "prometheus", "url": prom.url, "timeout": 5}},
        "targets": [
            {
                "cluster": "e2e",
                "namespace": "shop",
                "name": "checkout",
                "source": "prom",
                "window": 15,
                "lookback": 120,
                "step": 1,
                "metrics": [
                    {
                        "name": "latency",
                        "query": "max by (revision) (app_latency_seconds)",
                        "judge": {"group": "latency"},
                    },
                    {
                        "name": "errors",
                        "query": "sum by (revision) (increase(app_errors_total[2s]))",
                        "judge": {"group": "errors", "kind": "continuous"},
                    },
                ],
            }
        ],
    }
    cfg_path = tmp_path / "exporter.yml"
    cfg_path.write_text(yaml.safe_dump(config))
    proc = subprocess.Popen(
        [sys.executable, "-m", "reactor", "exporter", "--config", str(cfg_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        prom.wait_for('up{job="smart-rollback"} == 1', bool, timeout=60)
        prom.wait_for(
            'count_over_time(app_latency_seconds{revision="v1"}[1m])',
            lambda r: bool(r) and float(r[0]["value"][1]) >= 8,
        )
        app.canary = True
        result = prom.wait_for('smart_rollback_verdict{revision="v2", verdict="fail"} == 1', bool, timeout=90)
        labels = result[0]["metric"]
        assert labels["cluster"] == "e2e" and labels["target"] == "checkout" and labels["job"] == "smart-rollback"
        health = prom.wait_for('smart_rollback_health_score{revision="v2"}', bool)
        assert float(health[0]["value"][1]) < 50
        assert prom.query('smart_rollback_data_sufficient{revision="v2"}')[0]["value"][1] == "1"
        assert (
            prom.query('smart_rollback_metric_verdict{revision="v2", metric="latency", classification="high"}')[0][
                "value"
            ][1]
            == "1"
        )
        assert prom.query("smart_rollback_exporter_targets_scored")[0]["value"][1] == "1"
        assert prom.query("smart_rollback_exporter_cycle_duration_seconds_count > 0")
        assert prom.query('smart_rollback_anomaly_score{detector="ensemble"}')
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        app_server.shutdown()
        app_server.server_close()
    assert proc.returncode in (0, -15), out[-3000:]
