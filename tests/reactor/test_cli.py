"""The command line, run as a user runs it (a subprocess), against real databases and a running reactor."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from tests.conftest import ROOT, free_port, load_fixture
from tests.reactor.conftest import AUTH, TOKEN, make_settings, rt


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reactor", *args], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env
    )


def test_help_lists_the_commands() -> None:
    out = cli("--help").stdout
    for command in ("serve", "run", "check-config", "db", "history", "explain", "rollback", "kill-switch"):
        assert command in out


def test_check_config(tmp_path: Path) -> None:
    good = tmp_path / "good.yml"
    good.write_text("auth: {tokens: [s3cret]}\npolicies: {defaults: {mode: recommend}}\n")
    result = cli("check-config", str(good))
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout and "default mode recommend" in result.stdout
    bad = tmp_path / "bad.yml"
    bad.write_text("auth: {tokens: [s3cret]}\nserver: {bind: nowhere}\n")
    result = cli("check-config", str(bad))
    assert result.returncode == 1
    assert "server.bind: bind must be HOST:PORT" in result.stderr


def test_check_config_tells_exporter_and_judge_configs_apart(tmp_path: Path) -> None:
    exporter = tmp_path / "exporter.yml"
    exporter.write_text(
        "interval: 15\nsources: {prom: {type: prometheus, url: 'http://127.0.0.1:9090'}}\n"
        "targets:\n"
        "  - {cluster: c, namespace: shop, name: checkout, source: prom, metrics: [{template: http_errors}]}\n"
    )
    result = cli("check-config", str(exporter))
    assert result.returncode == 0, result.stderr
    assert "OK (exporter). 1 target(s) every 15 s, sources: prom" in result.stdout
    exporter.write_text("sources: {p: {type: graphite, url: x}}\n")
    result = cli("check-config", str(exporter))
    assert result.returncode == 1 and "invalid exporter configuration" in result.stderr
    assert "unknown source type 'graphite'" in result.stderr

    judge = tmp_path / "judge.yml"
    judge.write_text("confidence: 0.95\nmetrics: {p99: {group: latency, critical: true}}\n")
    result = cli("check-config", str(judge))
    assert result.returncode == 0, result.stderr
    assert "OK (judge). Mode smart, confidence 0.95, 1 metric(s)" in result.stdout
    judge.write_text("metrics: {p99: {direction: sideways}}\n")
    result = cli("check-config", "--kind", "judge", str(judge))
    assert result.returncode == 1 and "metrics.p99" in result.stderr and "direction" in result.stderr
    # The exporter takes its config from the environment too (a container sets it once).
    env = {"PATH": "/usr/bin:/bin", "SMART_ROLLBACK_EXPORTER_CONFIG": str(tmp_path / "nope.yml")}
    result = cli("exporter", "--once", env=env)
    assert result.returncode == 2 and "nope.yml: cannot read" in result.stderr
    # Forced to the wrong kind, the loader says what it does not know.
    result = cli("check-config", "--kind", "reactor", str(exporter))
    assert result.returncode == 1 and "sources" in result.stderr


def test_serve_refuses_to_start_without_credentials(tmp_path: Path) -> None:
    result = cli("serve", "--db", f"sqlite:///{tmp_path / 'r.db'}", env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 1
    assert "no credentials configured" in result.stderr and "--insecure" in result.stderr


def test_db_upgrade_and_current(db_url: str) -> None:
    assert "database: empty; this release: 0002 (run db upgrade)" in cli("db", "current", "--db", db_url).stdout
    assert cli("db", "upgrade", "--db", db_url).stdout.strip() == "schema: empty -> 0002"
    assert cli("db", "upgrade", "--db", db_url).stdout.strip() == "schema already at 0002"
    assert cli("db", "current", "--db", db_url).stdout.strip() == "database: 0002; this release: 0002"


def test_history_explain_and_kill_switch(app_factory: Any, db_url: str) -> None:
    app = app_factory(
        make_settings(db_url, **{"policies.defaults.mode": "auto", "policies.defaults.strategies": ["undo"]})
    )
    body = load_fixture("alertmanager-0.25-webhook-firing.json")
    app.test_client().post("/webhooks/alertmanager", json=body, headers=AUTH)
    rt(app).worker.drain()
    decision_id = rt(app).store.list_decisions()[0]["id"]

    history = cli("history", "--db", db_url)
    assert history.returncode == 0, history.stderr
    lines = history.stdout.splitlines()
    assert "firing alert 'DeploymentHealthLow' received" in lines[0]
    assert lines[-1].endswith("rollback succeeded")
    assert f"[{decision_id}]" in lines[-1]

    explained = cli("explain", decision_id, "--db", db_url)
    assert explained.returncode == 0, explained.stderr
    text = explained.stdout
    assert f"decision {decision_id}: roll back with undo to revision 1 [succeeded]" in text
    assert "revision: 2 -> 1" in text
    assert "REVERT kubernetes/e2e/prod/checkout" in text
    as_json = json.loads(cli("explain", decision_id, "--db", db_url, "--json").stdout)
    assert as_json["inputs"]["alert"]["fingerprint"] == "221e4dcea68d407f"
    missing = cli("explain", "nope", "--db", db_url)
    assert missing.returncode == 1 and "no decision 'nope'" in missing.stderr

    assert cli("kill-switch", "on", "--db", db_url, "--actor", "sre").stdout.strip() == "kill switch is on"
    assert rt(app).store.flag("kill_switch") is True
    assert cli("kill-switch", "status", "--db", db_url).stdout.strip() == "kill switch is on"
    assert "kill_switch on" in cli("history", "--db", db_url).stdout.splitlines()[-1]


@pytest.fixture
def live_reactor(app_factory: Any, sqlite_url: str) -> Iterator[str]:
    """The reactor app behind a real HTTP server with its worker thread running."""
    app = app_factory(make_settings(sqlite_url, **{"policies.defaults.mode": "auto"}), start_worker=True)
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()


def test_manual_rollback_command_follows_to_the_end(live_reactor: str) -> None:
    result = cli("rollback", "kubernetes/prod/shop/checkout", "--reason", "incident 7", "--url", live_reactor,
                 "--token", TOKEN)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rollback queued as decision" in result.stdout
    assert "succeeded: roll back with undo to revision 1" in result.stdout


def test_manual_rollback_command_reports_refusals(live_reactor: str) -> None:
    result = cli("rollback", "checkout", "--url", live_reactor, "--token", TOKEN)
    assert result.returncode == 1
    assert "refused (400)" in result.stderr and "platform/cluster/namespace/name" in result.stderr
    unreachable = cli("rollback", "k/c/n/x", "--url", f"http://127.0.0.1:{free_port()}")
    assert unreachable.returncode == 1 and "cannot reach the reactor" in unreachable.stderr
