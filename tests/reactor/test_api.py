"""The HTTP interface: status codes exactly as ARCHITECTURE §3.2, and the endpoints' behaviour."""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from reactor.settings import load_settings
from tests.conftest import load_fixture
from tests.reactor.conftest import AUTH, TOKEN, make_settings, rt

FIRING = load_fixture("alertmanager-0.25-webhook-firing.json")


@pytest.fixture
def app(app_factory: Any, db_url: str) -> Flask:
    return app_factory(make_settings(db_url, **{"policies.defaults.mode": "auto"}))


def post(client: Any, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
    return client.post(path, json=body, headers=AUTH if headers is None else headers)


def test_alert_is_acknowledged_once_stored_and_decided_in_the_background(app: Flask) -> None:
    client = app.test_client()
    response = post(client, "/webhooks/alertmanager", FIRING)
    assert response.status_code == 202
    assert response.json == {"status": "accepted", "alerts": 1, "accepted": 1, "duplicate": 0, "ignored": 0,
                             "truncated": 0}  # fmt: skip
    assert post(client, "/webhooks/alertmanager", FIRING).json["duplicate"] == 1
    assert rt(app).worker.drain() == 1
    [decision] = client.get("/api/v1/decisions", headers=AUTH).json["decisions"]
    # The captured alert is critical and the dry-run target has two colours: switch back at once.
    assert (decision["action"], decision["strategy"], decision["status"]) == ("rollback", "blue_green", "succeeded")
    detail = client.get(f"/api/v1/decisions/{decision['id']}", headers=AUTH).json
    assert detail["alert"]["fingerprint"] == "221e4dcea68d407f"
    assert [s["status"] for s in detail["steps"]] == ["done"]
    kinds = [a["kind"] for a in detail["audit"]]
    assert kinds.index("decision") < kinds.index("execution") < kinds.index("step"), "decided before acting"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic !!!"}, {"Authorization": "Token t0ken"}],
)
def test_bad_credentials_get_401(app: Flask, headers: dict[str, str]) -> None:
    response = post(app.test_client(), "/webhooks/alertmanager", FIRING, headers)
    assert response.status_code == 401
    assert response.headers.getlist("WWW-Authenticate") == ["Bearer"]
    assert "credentials" in response.json["error"]


def test_basic_auth(app_factory: Any, sqlite_url: str) -> None:
    settings = make_settings(sqlite_url, **{"auth.basic": [{"username": "reactor", "password": "s3cret"}]})
    client = app_factory(settings).test_client()
    # The exact header Alertmanager 0.25 sent in the capture.
    captured = load_fixture("alertmanager-0.25-webhook-headers.json")["Authorization"]
    assert post(client, "/webhooks/alertmanager", FIRING, {"Authorization": captured}).status_code == 202
    wrong = "Basic " + base64.b64encode(b"reactor:nope").decode()
    assert post(client, "/webhooks/alertmanager", FIRING, {"Authorization": wrong}).status_code == 401
    assert post(client, "/webhooks/alertmanager", FIRING).status_code == 202, "the token still works"


def test_malformed_payloads_get_400_naming_the_field(app: Flask) -> None:
    client = app.test_client()
    bad = {**FIRING, "alerts": [{**FIRING["alerts"][0], "startsAt": "soon"}]}
    response = post(client, "/webhooks/alertmanager", bad)
    assert response.status_code == 400
    assert response.json["field"] == "alerts[0].startsAt"
    assert "RFC 3339" in response.json["error"]
    response = client.post(
        "/webhooks/alertmanager", data="{not json", headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status_code == 400 and "not valid JSON" in response.json["error"]
    assert post(client, "/webhooks/alertmanager", [1, 2]).status_code == 400


def test_wrong_content_type_gets_415(app: Flask) -> None:
    response = app.test_client().post(
        "/webhooks/alertmanager", data=json.dumps(FIRING), headers={**AUTH, "Content-Type": "text/plain"}
    )
    assert response.status_code == 415
    assert "application/json" in response.json["error"]


def test_too_large_gets_413(app_factory: Any, sqlite_url: str) -> None:
    client = app_factory(make_settings(sqlite_url, **{"server.max_body_bytes": 2048})).test_client()
    big = {**FIRING, "commonAnnotations": {"summary": "x" * 4096}}
    response = post(client, "/webhooks/alertmanager", big)
    assert response.status_code == 413
    assert post(client, "/webhooks/alertmanager", FIRING).status_code == 202


def test_store_that_cannot_commit_gets_503_and_nothing_is_lost(app_factory: Any, tmp_path: Path) -> None:
    """A write lock held elsewhere (a real SQLite lock) makes intake answer 503; the resend is stored once."""
    path = tmp_path / "reactor.db"
    app = app_factory(make_settings(f"sqlite:///{path}", **{"intake.commit_timeout_seconds": 0.3}))
    client = app.test_client()
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        response = post(client, "/webhooks/alertmanager", FIRING)
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        assert "retry" in response.json["error"]
        assert client.get("/readyz").status_code == 200, "readers never wait for a writer"
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    # Alertmanager retries the 503; the writer may still have committed the first try in the meantime.
    for _ in range(3):
        response = post(client, "/webhooks/alertmanager", FIRING)
        assert response.status_code == 202
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM jobs").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM alerts").fetchone()[0] == 1


def test_unknown_source_is_404(app: Flask) -> None:
    response = post(app.test_client(), "/webhooks/pagerduty", FIRING)
    assert response.status_code == 404
    assert "/webhooks/alertmanager" in response.json["error"]


def test_grafana_and_datadog_webhooks(app: Flask) -> None:
    client = app.test_client()
    assert post(client, "/webhooks/grafana", load_fixture("grafana-alerting-webhook.json")).json["accepted"] == 1
    datadog = load_fixture("datadog-webhook-template-triggered.json")
    assert post(client, "/webhooks/datadog", datadog).json["accepted"] == 1
    form = {k: v for k, v in datadog.items() if isinstance(v, str)} | {"alert_cycle_key": "other-cycle"}
    response = client.post("/webhooks/datadog", data=form, headers=AUTH)
    assert response.status_code == 202 and response.json["accepted"] == 1
    missing = post(client, "/webhooks/datadog", {"title": "hello"})
    assert missing.status_code == 400 and missing.json["field"] == "alert_transition"


def test_deployments_and_pre_existing_alerts(app: Flask) -> None:
    client = app.test_client()
    body = {"target": "kubernetes/e2e/prod/checkout", "revision": "7", "previous_revision": "6"}
    response = post(client, "/api/v1/deployments", {**body, "pipeline_url": "https://ci/1"})
    assert response.status_code == 201
    deployment = response.json
    assert response.headers["Location"].endswith(f"/api/v1/deployments/{deployment['id']}")
    assert deployment["status"] == "in_progress"
    # The captured alert started in the past, before this deploy was registered: not the deploy's fault.
    post(client, "/webhooks/alertmanager", FIRING)
    rt(app).worker.drain()
    [decision] = client.get("/api/v1/decisions", headers=AUTH).json["decisions"]
    assert decision["action"] == "ignore" and "pre-existing" in decision["explanation"]
    assert client.get(f"/api/v1/deployments/{deployment['id']}", headers=AUTH).json["status"] == "in_progress"
    assert client.get("/api/v1/deployments/nope", headers=AUTH).status_code == 404


@pytest.mark.parametrize(
    ("wanted", "status", "to_revision", "reason"),
    [
        ("checkout-1", "succeeded", 1, "revision 1 is 'checkout-1', as requested"),
        (1, "succeeded", 1, "revision 1, as requested"),
        ("v9.9.9", "held", None, "no revision of kubernetes/prod/shop/checkout is named or tagged 'v9.9.9' (known: "),
        (7, "held", None, "revision 7 is not in the rollout history of kubernetes/prod/shop/checkout (known: "),
    ],
)
def test_manual_rollback_to_a_named_revision(
    app: Flask, wanted: int | str, status: str, to_revision: int | None, reason: str
) -> None:
    """People know a release by its name or tag; an unknown one is held with what is known, not attempted."""
    client = app.test_client()
    body = {"target": "kubernetes/prod/shop/checkout", "to_revision": wanted, "reason": "incident 43"}
    response = client.post("/api/v1/rollbacks", json=body, headers=AUTH)
    assert response.status_code == 202, response.json
    rt(app).worker.drain()
    detail = client.get(response.json["url"], headers=AUTH).json
    assert (detail["status"], detail["to_revision"]) == (status, to_revision), detail["reasons"]
    assert any(r.startswith(reason) for r in detail["reasons"]), detail["reasons"]
    if status == "held":
        [held] = [a for a in detail["audit"] if a["message"].startswith("manual rollback cannot proceed")]
        assert held["message"].startswith(f"manual rollback cannot proceed: {reason}"), held["message"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"revision": "1"}, "target is required"),
        ({"target": "checkout", "revision": "1"}, "platform/cluster/namespace/name"),
        ({"target": "k/c/n/x"}, "revision is required"),
        ({"target": "k/c/n/x", "revision": {"a": 1}}, "revision must be a string"),
    ],
)
def test_deployment_validation(app: Flask, body: dict[str, Any], message: str) -> None:
    response = post(app.test_client(), "/api/v1/deployments", body)
    assert response.status_code == 400 and message in response.json["error"]


def test_recommend_mode_approve_and_reject(app_factory: Any, db_url: str) -> None:
    app = app_factory(make_settings(db_url, **{"policies.defaults.mode": "recommend"}))
    client = app.test_client()
    post(client, "/webhooks/alertmanager", FIRING)
    rt(app).worker.drain()
    [decision] = client.get("/api/v1/decisions?status=pending_approval", headers=AUTH).json["decisions"]
    url = f"/api/v1/decisions/{decision['id']}"
    response = client.post(url + "/approve", json={"actor": "alice", "reason": "looks bad"}, headers=AUTH)
    assert response.status_code == 202 and response.json["status"] == "approved"
    assert client.post(url + "/approve", headers=AUTH).status_code == 409, "approving twice must not run it twice"
    assert client.post(url + "/reject", headers=AUTH).status_code == 409
    rt(app).worker.drain()
    detail = client.get(url, headers=AUTH).json
    assert detail["status"] == "succeeded" and detail["actor"] == "alice"
    assert any(a["message"] == "approved by alice: looks bad" for a in detail["audit"])
    assert client.post("/api/v1/decisions/nope/approve", headers=AUTH).status_code == 404


def test_reject_records_who(app_factory: Any, sqlite_url: str) -> None:
    app = app_factory(make_settings(sqlite_url, **{"policies.defaults.mode": "recommend"}))
    client = app.test_client()
    post(client, "/webhooks/alertmanager", FIRING)
    rt(app).worker.drain()
    [decision] = client.get("/api/v1/decisions", headers=AUTH).json["decisions"]
    response = client.post(f"/api/v1/decisions/{decision['id']}/reject", json={"reason": "known noise"}, headers=AUTH)
    assert response.status_code == 200 and response.json == {
        "id": decision["id"],
        "status": "rejected",
        "actor": "token",
    }
    assert rt(app).worker.drain() == 0, "nothing to execute"


def test_manual_rollback_through_the_engine(app: Flask) -> None:
    client = app.test_client()
    headers = {**AUTH, "Idempotency-Key": "incident-42"}
    body = {"target": "kubernetes/prod/shop/checkout", "reason": "incident 42"}
    response = client.post("/api/v1/rollbacks", json=body, headers=headers)
    assert response.status_code == 202
    again = client.post("/api/v1/rollbacks", json=body, headers=headers)
    assert again.status_code == 200 and again.json["decision_id"] == response.json["decision_id"]
    rt(app).worker.drain()
    detail = client.get(response.json["url"], headers=AUTH).json
    assert (detail["mode"], detail["status"], detail["to_revision"]) == ("manual", "succeeded", 1)
    assert detail["reasons"][0] == "manual rollback requested by token: incident 42"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"target": "k/c/n/x", "strategy": "yolo"}, "unknown strategy"),
        ({"target": "k/c/n/x", "to_revision": True}, "to_revision must be a revision number or a revision name"),
        ({"target": "k/c/n/x", "to_revision": " "}, "to_revision must be a revision number or a revision name"),
        ({"target": "k/c/n/x", "to_revision": 1.5}, "to_revision must be a revision number or a revision name"),
        ({}, "target is required"),
    ],
)
def test_manual_rollback_validation(app: Flask, body: dict[str, Any], message: str) -> None:
    response = post(app.test_client(), "/api/v1/rollbacks", body)
    assert response.status_code == 400 and message in response.json["error"]


def test_operational_endpoints(app: Flask) -> None:
    client = app.test_client()
    assert client.get("/healthz").json == {"status": "ok"}
    assert client.get("/readyz").json == {"status": "ready"}
    post(client, "/webhooks/alertmanager", FIRING)
    metrics = client.get("/metrics").data.decode()
    assert 'smart_rollback_intake_requests_total{code="202",source="alertmanager"}' in metrics
    assert 'smart_rollback_queue_depth{status="pending"} 1.0' in metrics
    spec = client.get("/openapi.json").json
    assert spec["openapi"] == "3.0.3"
    assert "/webhooks/alertmanager" in spec["paths"]


def test_unauthenticated_metrics_can_be_turned_off(app_factory: Any, sqlite_url: str) -> None:
    client = app_factory(make_settings(sqlite_url, **{"auth.metrics_public": False})).test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=AUTH).status_code == 200


def test_insecure_mode_accepts_anyone(app_factory: Any, sqlite_url: str) -> None:
    settings = load_settings(env={}, overrides={"database.url": sqlite_url, "auth.insecure": True})
    assert post(app_factory(settings).test_client(), "/webhooks/alertmanager", FIRING, {}).status_code == 202


def test_concurrent_requests_share_commits(app: Flask) -> None:
    """Many request threads at once (gthread workers): every alert stored once, every request answered 202."""
    client_codes: list[int] = []
    lock = threading.Lock()

    def send(i: int) -> None:
        body = json.loads(json.dumps(FIRING))
        body["alerts"][0]["fingerprint"] = f"{i:016x}"
        code = post(app.test_client(), "/webhooks/alertmanager", body).status_code
        with lock:
            client_codes.append(code)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert client_codes == [202] * 40
    assert rt(app).store.queue_depth()["pending"] == 40
    assert TOKEN


def test_kill_switch_state_says_what_stops_the_rollbacks(app_factory: Any, db_url: str) -> None:
    app = app_factory(make_settings(db_url))
    client = app.test_client()
    assert client.get("/api/v1/kill-switch").status_code == 401
    off = {"enabled": False, "setting": False, "flag": False, "flag_actor": None, "flag_updated_at": None}
    assert client.get("/api/v1/kill-switch", headers=AUTH).json == off
    rt(app).store.set_flag("kill_switch", True, actor="alice")
    state = client.get("/api/v1/kill-switch", headers=AUTH).json
    assert (state["enabled"], state["setting"], state["flag"], state["flag_actor"]) == (True, False, True, "alice")
    assert state["flag_updated_at"].endswith("Z")
    rt(app).store.set_flag("kill_switch", False, actor="bob")
    assert client.get("/api/v1/kill-switch", headers=AUTH).json["enabled"] is False

    by_setting = app_factory(make_settings(db_url, kill_switch=True)).test_client()
    state = by_setting.get("/api/v1/kill-switch", headers=AUTH).json
    assert (state["enabled"], state["setting"], state["flag"]) == (True, True, False)


def test_paging_lists_every_decision_once_when_several_share_a_timestamp(app: Flask) -> None:
    """The cursor is a time (``before`` = ``next_before``): a page that cut a group of decisions made in the
    same instant would lose the rest of the group, since the next page starts strictly before it."""
    runtime = rt(app)
    runtime.store.clock = runtime.worker.clock = lambda: 1_800_000_000.0  # one instant for every decision
    client = app.test_client()
    for n in range(7):
        alert = json.loads(json.dumps(FIRING))
        for labels in (alert["alerts"][0]["labels"], alert["commonLabels"]):
            labels["deployment"] = f"svc-{n}"
        alert["alerts"][0]["fingerprint"] = f"{n:016x}"
        assert post(client, "/webhooks/alertmanager", alert).status_code == 202
    runtime.worker.drain()
    seen: list[str] = []
    query: dict[str, Any] = {"limit": 3}
    for _ in range(5):
        page = client.get("/api/v1/decisions", query_string=query, headers=AUTH).json
        seen += [d["id"] for d in page["decisions"]]
        if page["next_before"] is None:
            break
        query = {"limit": 3, "before": page["next_before"]}
    assert len(seen) == 7 and len(set(seen)) == 7, seen


def test_decisions_are_counted_by_the_rule_that_settled_them(app: Flask) -> None:
    client = app.test_client()
    post(client, "/webhooks/alertmanager", FIRING)
    rt(app).worker.drain()
    metrics = client.get("/metrics").data.decode()
    assert 'smart_rollback_decisions_total{action="rollback",mode="auto",rule="rollback",strategy=' in metrics
    [decision] = client.get("/api/v1/decisions", headers=AUTH).json["decisions"]
    assert client.get(f"/api/v1/decisions/{decision['id']}", headers=AUTH).json["inputs"]["rule"] == "rollback"
