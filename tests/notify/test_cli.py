"""``smart-rollback notify test`` run as a process against loopback servers."""

from __future__ import annotations

import os
import subprocess
import sys

import yaml

from tests.conftest import ROOT
from tests.notify.conftest import Reply

ENV = {"PD_KEY": "R0UTINGKEY0123456789012345678901", "GRAFANA_TOKEN": "glsa_test"}


def run(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "reactor", "notify", "test", *args],
        cwd=ROOT,
        env={**os.environ, **ENV, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def write_config(tmp_path, server):
    config = {
        "server": {"bind": "127.0.0.1:8080"},
        "notifications": {
            "channels": {
                "slack-sre": {"type": "slack", "webhook_url": server.url("/slack")},
                "pagerduty": {"type": "pagerduty", "routing_key_env": "PD_KEY", "url": server.url("/pd")},
                "teams": {"type": "teams", "webhook_url": server.url("/teams")},
            },
            "grafana": {"url": server.url("/g"), "token_env": "GRAFANA_TOKEN"},
        },
    }
    path = tmp_path / "reactor.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_reports_each_channel_and_fails_if_one_failed(server, tmp_path):
    server.default("/pd", Reply(202, {"status": "success", "message": "Event processed"}))
    server.default("/teams", Reply(400, "Bad payload"))
    server.default("/g/api/annotations", Reply(200, {"id": 5}))
    server.default("/g/api/annotations/5", Reply(200, {"message": "ok"}))
    result = run("--config", str(write_config(tmp_path, server)))

    assert result.returncode == 1, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert "ok" in lines["slack-sre"] and "rollback_succeeded delivered" in lines["slack-sre"]
    assert "rollback_failed delivered trigger; recovered delivered resolve" in lines["pagerduty"]
    assert "FAILED" in lines["teams"] and "HTTP 400 Bad payload" in lines["teams"]
    assert "region opened" in lines["grafana"] and "region closed" in lines["grafana"]
    assert "1 channel(s) failed" in result.stderr
    pd = [r.json() for r in server.to("/pd")]
    assert [p["event_action"] for p in pd] == ["trigger", "resolve"]
    assert pd[0]["dedup_key"] == pd[1]["dedup_key"] and pd[0]["dedup_key"].startswith("smart-rollback/test-")
    assert "TEST" in pd[0]["payload"]["custom_details"]["summary"]


def test_one_channel_and_event_kind(server, tmp_path):
    result = run(
        "--config",
        str(write_config(tmp_path, server)),
        "--channel",
        "slack-sre",
        "--event",
        "held_for_approval",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert [r.path for r in server.requests] == ["/slack"]
    assert "Approval needed" in server.requests[0].json()["text"]


def test_configuration_problems_exit_2_with_the_reason(server, tmp_path):
    path = write_config(tmp_path, server)
    unknown = run("--config", str(path), "--channel", "nope")
    assert unknown.returncode == 2 and "no channel named nope" in unknown.stderr
    missing = run("--config", str(path), env={"PD_KEY": ""})
    assert missing.returncode == 2
    assert "notifications.channels.pagerduty.routing_key: environment variable PD_KEY is not set" in missing.stderr
    bad_kind = run("--config", str(path), "--event", "exploded")
    assert bad_kind.returncode == 2 and "not an event kind" in bad_kind.stderr
    no_config = run(env={"SMART_ROLLBACK_CONFIG": ""})
    assert no_config.returncode == 2 and "--config" in no_config.stderr
    assert server.requests == []
