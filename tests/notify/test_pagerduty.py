"""PagerDuty Events API v2 against a loopback server: trigger/resolve shapes, one incident per decision."""

from __future__ import annotations

from reactor.notify.dispatcher import DeliveryStatus
from reactor.notify.events import EventKind
from tests.notify.conftest import Reply, assert_shape_covers, load_fixture, make_event

PATH = "/v2/enqueue"
ACCEPTED = Reply(202, {"status": "success", "message": "Event processed", "dedup_key": "x"})
#: Optional fields of the enqueue body documented in CONTRACTS.md section 7.3.
OPTIONAL_TOP = {"images", "client", "client_url", "links"}
OPTIONAL_PAYLOAD = {"timestamp", "component", "group", "class"}


def pagerduty(server, **options):
    return {"pd": {"type": "pagerduty", "routing_key_env": "PD_KEY", "url": server.url(PATH), **options}}


ENV = {"PD_KEY": "R0UTINGKEY0123456789012345678901"}


def test_failure_triggers_and_recovery_resolves_the_same_incident(server, make_hub, records):
    server.default(PATH, ACCEPTED)
    hub = make_hub(pagerduty(server), environ=ENV)
    for kind in EventKind:  # the whole life of a decision
        hub.publish(make_event(kind, steps=()))
    assert hub.flush(30)

    held, trigger, resolve = (r.json() for r in server.requests)
    captured_trigger = load_fixture("pagerduty-events-v2-trigger.json")["body"]
    captured_resolve = load_fixture("pagerduty-events-v2-resolve.json")["body"]

    assert_shape_covers(captured_trigger, trigger)
    assert set(trigger) - set(captured_trigger) <= OPTIONAL_TOP
    assert set(trigger["payload"]) - set(captured_trigger["payload"]) <= OPTIONAL_PAYLOAD
    assert trigger["event_action"] == "trigger" and held["event_action"] == "trigger"
    assert held["payload"]["class"] == "held_for_approval"
    assert trigger["routing_key"] == ENV["PD_KEY"]
    assert trigger["payload"]["severity"] == "critical"
    assert trigger["payload"]["source"] == "kubernetes/prod-eu/shop/checkout"
    assert trigger["payload"]["summary"].startswith("Rollback FAILED: checkout (prod-eu/shop): error ratio 12.4%")
    assert trigger["payload"]["custom_details"]["reasons"][0] == "error ratio 12.4% vs baseline 0.8% (score 18)"
    assert {"href": "https://grafana.example.com/d/abc", "text": "Grafana"} in trigger["links"]
    assert trigger["client_url"] == "https://rollback.example.com/ui/decisions/dec-1"

    assert resolve == {**captured_resolve, "dedup_key": resolve["dedup_key"], "routing_key": ENV["PD_KEY"]}
    assert set(resolve) == set(captured_resolve)
    assert trigger["dedup_key"] == held["dedup_key"] == resolve["dedup_key"] == "smart-rollback/dec-1"
    assert all(r.headers["Content-Type"] == "application/json" for r in server.requests)
    assert [r.detail for r in records.final()] == ["trigger", "trigger", "resolve"]


def test_dedup_key_is_per_decision(server, make_hub):
    server.default(PATH, ACCEPTED)
    hub = make_hub(pagerduty(server), environ=ENV)
    hub.publish(make_event(decision_id="a"))
    hub.publish(make_event(decision_id="b"))
    assert hub.flush(30)
    assert sorted(r.json()["dedup_key"] for r in server.requests) == ["smart-rollback/a", "smart-rollback/b"]


def test_429_is_retried_and_400_is_permanent(server, make_hub, records):
    server.script(
        PATH,
        Reply(429, {"status": "throttle event", "message": "Requests for this service are arriving too quickly"}),
        ACCEPTED,
        Reply(400, {"status": "invalid event", "message": "Event object is invalid", "errors": ["bad key"]}),
    )
    hub = make_hub(pagerduty(server), environ=ENV)
    hub.publish(make_event(decision_id="a"))
    assert hub.flush(30)
    hub.publish(make_event(decision_id="b"))
    assert hub.flush(30)
    assert [(r.decision_id, r.status, r.status_code) for r in records.items] == [
        ("a", DeliveryStatus.RETRYING, 429),
        ("a", DeliveryStatus.DELIVERED, None),
        ("b", DeliveryStatus.FAILED, 400),
    ]
    assert "Event object is invalid" in records.items[-1].error
    assert ENV["PD_KEY"] not in str([r.as_dict() for r in records.items])


def test_trigger_and_resolve_kinds_are_configurable(server, make_hub):
    server.default(PATH, ACCEPTED)
    hub = make_hub(pagerduty(server, trigger_on=["rollback_started"], resolve_on=["rollback_succeeded"]), environ=ENV)
    for kind in EventKind:
        hub.publish(make_event(kind))
    assert hub.flush(30)
    assert [r.json()["event_action"] for r in server.requests] == ["trigger", "resolve"]
