"""Grafana annotations against a loopback server: a region opened at start, closed at the end."""

from __future__ import annotations

from reactor.notify.dispatcher import DeliveryStatus
from reactor.notify.events import EventKind
from tests.notify.conftest import Reply, make_event


def grafana(server, **options):
    return {"url": server.url("/grafana"), "token_env": "GRAFANA_TOKEN", **options}


ENV = {"GRAFANA_TOKEN": "glsa_0123456789abcdef"}


def test_region_from_start_to_end_tagged_with_target_strategy_and_decision(server, make_hub, records):
    server.default("/grafana/api/annotations", Reply(200, {"message": "Annotation added", "id": 42}))
    server.default("/grafana/api/annotations/42", Reply(200, {"message": "Annotation patched"}))
    hub = make_hub(grafana=grafana(server, dashboard_uid="rollbacks"), environ=ENV)
    life = ("decision_made", "rollback_started", "step_done", "rollback_failed", "recovered")
    for kind in life:
        hub.publish(make_event(EventKind(kind)))
    assert hub.flush(30)

    post, patch = server.requests
    start, end = make_event(EventKind.ROLLBACK_STARTED), make_event(EventKind.ROLLBACK_FAILED)
    assert (post.method, post.path) == ("POST", "/grafana/api/annotations")
    assert post.headers["Authorization"] == "Bearer glsa_0123456789abcdef"
    body = post.json()
    assert body["time"] == int(start.started_at.timestamp() * 1000)
    assert "timeEnd" not in body and body["dashboardUID"] == "rollbacks"
    assert {
        "smart-rollback",
        "checkout",
        "target:kubernetes/prod-eu/shop/checkout",
        "strategy:progressive",
        "decision:dec-1",
    } <= set(body["tags"])
    assert body["text"].startswith("Rollback started: checkout (prod-eu/shop)")

    assert (patch.method, patch.path) == ("PATCH", "/grafana/api/annotations/42")
    patched = patch.json()
    assert patched["timeEnd"] == int(end.occurred_at.timestamp() * 1000)
    assert "outcome:failed" in patched["tags"] and "time" not in patched
    assert [(r.detail, r.remote_id) for r in records.final()] == [
        ("region opened", "42"),
        ("region closed", "42"),
    ]


def test_end_without_a_seen_start_posts_the_whole_region(server, make_hub):
    server.default("/grafana/api/annotations", Reply(200, {"message": "Annotation added", "id": 7}))
    hub = make_hub(grafana=grafana(server), environ=ENV)
    event = make_event(EventKind.ROLLBACK_SUCCEEDED)
    hub.publish(event)
    assert hub.flush(30)
    (post,) = server.requests
    body = post.json()
    assert post.method == "POST"
    assert body["time"] == int(event.started_at.timestamp() * 1000)
    assert body["timeEnd"] == int(event.occurred_at.timestamp() * 1000)
    assert "outcome:succeeded" in body["tags"]


def test_only_matching_targets_are_annotated(server, make_hub):
    hub = make_hub(grafana=grafana(server, targets=["kubernetes/staging-*"]), environ=ENV)
    hub.publish(make_event(EventKind.ROLLBACK_STARTED))
    assert hub.flush(30)
    assert server.requests == []


def test_bad_token_is_permanent_and_explained(server, make_hub, records):
    server.default("/grafana/api/annotations", Reply(403, {"message": "Permissions needed: annotations:create"}))
    hub = make_hub(grafana=grafana(server), environ=ENV)
    hub.publish(make_event(EventKind.ROLLBACK_STARTED))
    (record,) = records.wait_final(1)
    assert record.status is DeliveryStatus.FAILED and record.attempts == 1
    assert "annotations:create" in record.error and record.channel == "@grafana"
