"""Every PromQL expression of every dashboard and rule, against a real Prometheus with real data.

The Prometheus (1 s scrape and evaluation, the shipped rule file loaded) scrapes three real things: a small
app serving per-revision RED series in which revision v2 is clearly worse than v1, the real
``smart-rollback exporter`` judging that app through the same Prometheus, and the real reactor under
gunicorn (auto mode, record-only platform) to which the test posts the Alertmanager payload of the alert
the rules fired, so decision and rollback series exist. Each expression, with the dashboard variables
substituted as Grafana would, must parse and return data. Rule thresholds that cannot hold while everything
is healthy (``NOT_TRUE_HERE``) must parse, and their selector part (without the comparison) return data.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
import yaml

from reactor.liveloop.processes import Supervisor
from tests.alert_rules.test_rules import tool
from tests.conftest import ROOT, free_port

DASHBOARDS = sorted((ROOT / "grafana_dashboards").glob("*.json"))
RULE_FILE = ROOT / "alert_rules" / "smart-rollback.rules.yml"
TOKEN = "t0ken"
EXPORTER_JOB, REACTOR_JOB = "smart-rollback-exporter", "smart-rollback-reactor"
#: Rules whose condition cannot be true in a healthy loop: the exporter is up and fresh.
NOT_TRUE_HERE = {"SmartRollbackExporterDown", "SmartRollbackExporterStale"}
#: Grafana's built-in variables, at values that make sense for a 1 s scrape over a short test.
BUILTINS = {"__rate_interval": "10s", "__interval": "2s", "__range": "5m"}
LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 1.0)


# ------------------------------------------------------------------------------------------- the app


class App:
    """Per-revision request, error and latency series; v2 (once started) errs 20x more and is 3x slower."""

    def __init__(self) -> None:
        self.rng = np.random.default_rng(5)
        self.canary = False
        self.requests: dict[tuple[str, str], float] = {}
        self.buckets: dict[str, list[float]] = {}
        self.sums: dict[str, float] = {}
        self.latency: dict[str, float] = {}
        self.lock = threading.Lock()

    def _tick(self, rev: str, rps: float, error_share: float, latency: float) -> None:
        n = float(self.rng.poisson(rps))
        errors = float(self.rng.binomial(int(n), error_share))
        self.requests[(rev, "200")] = self.requests.get((rev, "200"), 0.0) + n - errors
        self.requests[(rev, "500")] = self.requests.get((rev, "500"), 0.0) + errors
        samples = self.rng.normal(latency, latency * 0.1, int(n))
        counts = self.buckets.setdefault(rev, [0.0] * (len(LATENCY_BUCKETS) + 1))
        for i, le in enumerate(LATENCY_BUCKETS):
            counts[i] += float(np.sum(samples <= le))
        counts[-1] += float(len(samples))
        self.sums[rev] = self.sums.get(rev, 0.0) + float(np.sum(samples))
        self.latency[rev] = float(np.mean(samples)) if len(samples) else latency

    def render(self) -> str:
        with self.lock:
            self._tick("v1", 50, 0.01, 0.08)
            if self.canary:
                self._tick("v2", 50, 0.2, 0.25)
            out = ["# TYPE http_requests_total counter"]
            for (rev, code), value in sorted(self.requests.items()):
                out.append(f'http_requests_total{{namespace="shop",revision="{rev}",code="{code}"}} {value}')
            out.append("# TYPE http_request_duration_seconds histogram")
            for rev, counts in sorted(self.buckets.items()):
                for le, count in zip((*map(str, LATENCY_BUCKETS), "+Inf"), counts, strict=True):
                    out.append(
                        f'http_request_duration_seconds_bucket{{namespace="shop",revision="{rev}",le="{le}"}} {count}'
                    )
                out.append(f'http_request_duration_seconds_sum{{namespace="shop",revision="{rev}"}} {self.sums[rev]}')
                out.append(f'http_request_duration_seconds_count{{namespace="shop",revision="{rev}"}} {counts[-1]}')
            out.append("# TYPE app_latency_seconds gauge")
            for rev, value in sorted(self.latency.items()):
                out.append(f'app_latency_seconds{{namespace="shop",revision="{rev}"}} {value}')
            return "\n".join(out) + "\n"


@pytest.fixture
def app() -> Iterator[tuple[App, str]]:
    state = App()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = state.render().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# ----------------------------------------------------------------------------------- the processes


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Supervisor]:
    """The live loop's supervisor: process groups, logs in ``tmp_path/logs``, everything stopped afterwards."""
    procs = Supervisor(tmp_path)
    try:
        yield procs
    finally:
        procs.stop_all()


def output(procs: Supervisor, name: str) -> str:
    return next(child for child in procs.children if child.name == name).tail(60)


def start_prometheus(procs: Supervisor, jobs: dict[str, dict[str, Any]]) -> str:
    port = free_port()
    directory = procs.run_dir / "prometheus"
    directory.mkdir()
    scrape = [{"job_name": job, **cfg} for job, cfg in jobs.items()]
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULE_FILE)],
        "scrape_configs": scrape,
    }
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
    url = f"http://127.0.0.1:{port}"
    child = procs.start(
        "prometheus",
        [
            tool("prometheus"),
            f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
    )
    procs.wait_ready(child, f"{url}/-/ready", timeout=60)
    return url


def exporter_config(prom_url: str, port: int) -> dict[str, Any]:
    window = {"source": "prom", "window": 15, "lookback": 120, "step": 1}
    return {
        "interval": 2,
        "listen": f"127.0.0.1:{port}",
        "sources": {"prom": {"type": "prometheus", "url": prom_url, "timeout": 5}},
        "targets": [
            {
                "platform": "kubernetes",
                "cluster": "e2e",
                "namespace": "shop",
                "name": "checkout",
                **window,
                "detectors": ["ensemble", "isolation_forest"],
                "metrics": [
                    {
                        "name": "error_ratio",
                        "query": 'sum by (revision) (rate(http_requests_total{namespace="shop", code="500"}[5s]))'
                        ' / sum by (revision) (rate(http_requests_total{namespace="shop"}[5s]))',
                        "judge": {"group": "errors", "critical": True},
                    },
                    {
                        "name": "latency",
                        "query": 'max by (revision) (app_latency_seconds{namespace="shop"})',
                        "judge": {"group": "latency"},
                        # Below v2's latency: the forecast says "already crossed" (0 s) once v2 is judged.
                        "breach_threshold": 0.15,
                    },
                ],
            },
            {
                # A broken query: a source error, so the target is judged on insufficient data.
                "platform": "kubernetes",
                "cluster": "e2e",
                "namespace": "shop",
                "name": "cart",
                **window,
                "metrics": [{"name": "broken", "query": "sum by (revision) (rate(http_requests_total[5s])"}],
            },
        ],
    }


# ----------------------------------------------------------------------------------- the expressions


def dashboard_expressions(path: Path) -> list[tuple[str, str]]:
    """(where, expression) for every panel target (rows included) and every query variable."""
    board = json.loads(path.read_text())
    found: list[tuple[str, str]] = []

    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    for panel in panels(board["panels"]):
        for target in panel.get("targets", []):
            found.append((f"{path.stem}: panel {panel['title']!r} {target['refId']}", target["expr"]))
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            found.append((f"{path.stem}: variable {var['name']}", query))
    return found


def variable_values(path: Path, prom: Prom) -> dict[str, str]:
    """What Grafana substitutes by default: All (``allValue``) for multi-value variables, the first value a
    single-value variable's query finds (earlier variables substituted), and text-box defaults."""
    values = dict(BUILTINS)
    for var in json.loads(path.read_text())["templating"]["list"]:
        if var["type"] == "textbox":
            values[var["name"]] = var["query"]
        elif var["type"] == "query" and var.get("includeAll"):
            values[var["name"]] = var["allValue"]
        elif var["type"] == "query":
            query = substitute(var["query"]["query"] if isinstance(var["query"], dict) else var["query"], values)
            label = query.rstrip(") ").rsplit(",", 1)[1].strip()
            found = sorted({r["metric"][label] for r in prom.label_values(query)[1]})
            values[var["name"]] = found[0] if found else "no value found"
    return values


def substitute(expr: str, values: dict[str, str]) -> str:
    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        assert name in values, f"unknown dashboard variable ${name} in {expr}"
        return values[name]

    for _ in range(3):  # a textbox value may hold another variable
        expr = re.sub(r"\$\{(\w+)\}|\[\[(\w+)\]\]|\$(\w+)", repl, expr)
    return expr


def rule_expressions() -> list[tuple[str, str, bool]]:
    groups = yaml.safe_load(RULE_FILE.read_text())["groups"]
    return [(f"rule {r['alert']}", r["expr"], r["alert"] in NOT_TRUE_HERE) for g in groups for r in g["rules"]]


def selector_part(expr: str) -> str:
    """The expression without its final comparison against a number (``x > 120`` -> ``x``)."""
    stripped = re.sub(r"\s*(==|!=|>=|<=|>|<)\s*-?[\d.]+\s*$", "", expr.strip())
    assert stripped != expr.strip(), f"no trailing comparison in {expr}"
    return stripped


class Prom:
    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, expr: str) -> tuple[str, list[dict[str, Any]]]:
        """('', result) or (error, [])."""
        resp = requests.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body = resp.json()
        if body.get("status") != "success":
            return f"{body.get('errorType')}: {body.get('error')}", []
        return "", body["data"]["result"]

    def label_values(self, expr: str) -> tuple[str, list[dict[str, Any]]]:
        """``label_values(selector, label)`` (Grafana's variable query) as the selector, checked for the label."""
        m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", expr.strip())
        assert m, f"not a label_values query: {expr}"
        error, result = self.query(m.group(1))
        return error, [r for r in result if r["metric"].get(m.group(2))]


def problems(prom: Prom) -> list[str]:
    """Every expression that does not parse or returns no data, with why."""
    out = []
    checks: list[tuple[str, str, bool]] = []
    for path in DASHBOARDS:
        values = variable_values(path, prom)
        checks += [(where, substitute(expr, values), False) for where, expr in dashboard_expressions(path)]
    checks += rule_expressions()
    for where, expr, threshold_cannot_hold in checks:
        if expr.startswith("label_values("):
            error, result = prom.label_values(expr)
        else:
            error, result = prom.query(expr)
            if threshold_cannot_hold and not error:
                error, result = prom.query(selector_part(expr))
        if error:
            out.append(f"{where}: does not parse: {error}\n    {expr}")
        elif not result:
            out.append(f"{where}: no data\n    {expr}")
    return out


def alertmanager_payload(alert: dict[str, Any]) -> dict[str, Any]:
    """The v4 webhook body Alertmanager would post for one alert Prometheus fired (CONTRACTS §1)."""
    labels = alert["labels"]
    return {
        "receiver": "smart-rollback",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": alert["annotations"],
                "startsAt": alert["activeAt"],
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16],
            }
        ],
        "groupLabels": {k: labels[k] for k in ("alertname", "target") if k in labels},
        "commonLabels": labels,
        "commonAnnotations": alert["annotations"],
        "externalURL": "http://127.0.0.1:9093",
        "version": "4",
        "groupKey": '{}/{smart_rollback="rollback"}:{target="' + labels.get("target", "") + '"}',
        "truncatedAlerts": 0,
    }


# ----------------------------------------------------------------------------------------- the test


@pytest.mark.e2e
def test_every_dashboard_and_rule_expression_parses_and_returns_data(
    app: tuple[App, str], processes: Supervisor, tmp_path: Path
) -> None:
    state, app_address = app
    exporter_port, reactor_port = free_port(), free_port()
    prom_url = start_prometheus(
        processes,
        {
            "app": {"static_configs": [{"targets": [app_address]}]},
            EXPORTER_JOB: {"static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}]},
            REACTOR_JOB: {
                "static_configs": [{"targets": [f"127.0.0.1:{reactor_port}"]}],
                "authorization": {"credentials": TOKEN},
            },
        },
    )
    prom = Prom(prom_url)

    # The reactor's own multiprocess metrics directory, not whatever this process may have inherited.
    (tmp_path / "reactor-metrics").mkdir()
    env = {
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "reactor-metrics"),
        "TMPDIR": str(tmp_path),
        "SMART_ROLLBACK_MODE": "auto",
        "SMART_ROLLBACK_POLICIES__DEFAULTS__WAIT_TIMEOUT_SECONDS": "0",
    }
    reactor_url = f"http://127.0.0.1:{reactor_port}"
    reactor = processes.start(
        "reactor",
        [sys.executable, "-m", "reactor", "serve", "--bind", f"127.0.0.1:{reactor_port}",
         "--db", f"sqlite:///{tmp_path / 'reactor.db'}", "--token", TOKEN],
        env=env,
    )  # fmt: skip
    (tmp_path / "exporter.yml").write_text(yaml.safe_dump(exporter_config(prom_url, exporter_port)))
    processes.start(
        "exporter", [sys.executable, "-m", "reactor", "exporter", "--config", str(tmp_path / "exporter.yml")]
    )
    processes.wait_ready(reactor, f"{reactor_url}/readyz", timeout=60)

    # v1 alone long enough to be the baseline, then the worse v2 becomes the canary.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        _, result = prom.query('count_over_time(app_latency_seconds{revision="v1"}[1m])')
        if result and float(result[0]["value"][1]) >= 10:
            break
        time.sleep(0.5)
    state.canary = True

    # The rules fire on the real exporter's series; the reactor gets what Alertmanager would post.
    alert = None
    deadline = time.monotonic() + 120
    while alert is None and time.monotonic() < deadline:
        firing = requests.get(f"{prom_url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
        alert = next(
            (
                a
                for a in firing
                if a["labels"]["alertname"] == "SmartRollbackCriticalMetricFailed" and a["state"] == "firing"
            ),
            None,
        )
        time.sleep(0.5)
    if alert is None:
        pytest.fail("SmartRollbackCriticalMetricFailed never fired; exporter output:\n" + output(processes, "exporter"))
    assert alert["labels"]["target"] == "checkout" and alert["labels"]["revision"] == "v2"
    posted = requests.post(
        f"{reactor_url}/webhooks/alertmanager",
        json=alertmanager_payload(alert),
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    assert posted.status_code == 202, posted.text

    # Everything settles within a couple of minutes; report every expression still failing then.
    remaining: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        remaining = problems(prom)
        if not remaining:
            break
        time.sleep(2)
    assert not remaining, "\n".join(remaining) + f"\n\nexporter:\n{output(processes, 'exporter')}"
    # The single-value job variables resolve to the real scrape jobs, not to a match-all.
    boards = {p.stem: p for p in DASHBOARDS}
    assert variable_values(boards["deployment-health"], prom)["exporter_job"] == EXPORTER_JOB
    assert variable_values(boards["rollback-activity"], prom)["reactor_job"] == REACTOR_JOB

    # The alerts Prometheus raised carry what the reactor needs (webhooks/model.py IdentityRules).
    health_low = prom.query('ALERTS{alertname="SmartRollbackHealthLow", revision="v2"}')[1]
    assert health_low, "SmartRollbackHealthLow is neither pending nor firing for the worse revision"
    labels = health_low[0]["metric"]
    assert {labels[k] for k in ("platform", "cluster", "namespace", "target")} == {
        "kubernetes",
        "e2e",
        "shop",
        "checkout",
    }
    assert labels["smart_rollback"] == "rollback"
    decisions = requests.get(
        f"{reactor_url}/api/v1/decisions", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )
    assert decisions.ok and "checkout" in decisions.text
