"""Opsgenie through the real opsgenie-sdk, pointed at a loopback server: create/close shapes, alias dedup."""

from __future__ import annotations

from reactor.notify.channels.opsgenie import HOSTS, OpsgenieOptions
from reactor.notify.config import parse_notification_settings
from reactor.notify.dispatcher import DeliveryStatus
from reactor.notify.events import EventKind
from tests.notify.conftest import Reply, assert_shape_covers, load_fixture, make_event

KEY = "00000000-1111-2222-3333-444444444444"
ACCEPTED = Reply(202, {"result": "Request will be processed", "took": 0.1, "requestId": "req-1"})


def opsgenie(server, **options):
    return {
        "og": {
            "type": "opsgenie",
            "api_key_env": "OG_KEY",
            "api_url": server.url(),
            "responders": [{"type": "team", "name": "SRE"}],
            **options,
        }
    }


def test_create_on_failure_close_on_recovery_with_the_captured_shapes(server, make_hub, records):
    server.default("/v2/alerts", ACCEPTED)
    server.default("/v2/alerts/smart-rollback-dec-1/close", ACCEPTED)
    hub = make_hub(opsgenie(server), environ={"OG_KEY": KEY})
    for kind in EventKind:
        hub.publish(make_event(kind))
    assert hub.flush(30)

    held, create, close = server.requests
    captured_create = load_fixture("opsgenie-create-alert.json")
    captured_close = load_fixture("opsgenie-close-alert.json")

    assert create.method == "POST" and create.path == captured_create["path"]
    assert create.headers["Authorization"] == captured_create["headers"]["Authorization"]
    assert create.headers["User-Agent"] == captured_create["headers"]["User-Agent"]
    body = create.json()
    assert_shape_covers(captured_create["body"], body)
    assert body["alias"] == held.json()["alias"] == "smart-rollback-dec-1"
    assert body["priority"] == "P1"
    assert body["responders"] == [{"type": "team", "name": "SRE"}]
    assert body["entity"] == "kubernetes/prod-eu/shop/checkout"
    assert len(body["message"]) <= 130
    assert "error ratio 12.4% vs baseline 0.8% (score 18)" in body["description"]
    assert body["details"]["decision_explanation"] == "https://rollback.example.com/ui/decisions/dec-1"

    assert close.path == "/v2/alerts/smart-rollback-dec-1/close"
    assert close.query == {"identifierType": ["alias"]}
    assert_shape_covers(captured_close["body"], close.json())
    assert close.json()["source"] == "smart-rollback"
    assert [(r.status, r.remote_id) for r in records.final()] == [(DeliveryStatus.DELIVERED, "req-1")] * 3


def test_two_channels_keep_their_own_keys(server, make_hub):
    """The SDK's Configuration() is a shallow copy of a shared default: keys must not leak across."""
    server.default("/v2/alerts", ACCEPTED)
    channels = {**opsgenie(server)}
    channels["og2"] = {**channels["og"], "api_key_env": "OG_KEY2"}
    hub = make_hub(channels, environ={"OG_KEY": KEY, "OG_KEY2": "ffffffff-1111-2222-3333-444444444444"})
    hub.publish(make_event())
    assert hub.flush(30)
    assert sorted(r.headers["Authorization"] for r in server.requests) == [
        f"GenieKey {KEY}",
        "GenieKey ffffffff-1111-2222-3333-444444444444",
    ]


def test_errors_map_to_retry_policy(server, make_hub, records):
    server.script(
        "/v2/alerts",
        Reply(429, {"message": "rate limited", "took": 0.0, "requestId": "r"}, {"Retry-After": "0"}),
        Reply(503, {"message": "busy", "took": 0.0, "requestId": "r"}),
        ACCEPTED,
        Reply(422, {"message": "Message can not be empty", "took": 0.0, "requestId": "r"}),
    )
    hub = make_hub(opsgenie(server), environ={"OG_KEY": KEY})
    hub.publish(make_event(decision_id="a"))
    assert hub.flush(30)
    hub.publish(make_event(decision_id="b"))
    assert hub.flush(30)
    assert [(r.decision_id, r.status, r.status_code) for r in records.items] == [
        ("a", DeliveryStatus.RETRYING, 429),
        ("a", DeliveryStatus.RETRYING, 503),
        ("a", DeliveryStatus.DELIVERED, None),
        ("b", DeliveryStatus.FAILED, 422),
    ]
    assert records.items[0].retry_in == 0.0
    assert KEY not in str([r.as_dict() for r in records.items])


def test_region_picks_the_endpoint():
    settings = parse_notification_settings(
        {
            "channels": {
                "eu": {"type": "opsgenie", "api_key": "k", "region": "eu"},
                "us": {"type": "opsgenie", "api_key": "k"},
            }
        }
    )
    eu, us = settings.channels["eu"], settings.channels["us"]
    assert isinstance(eu, OpsgenieOptions) and isinstance(us, OpsgenieOptions)
    assert eu.host == HOSTS["eu"] == "https://api.eu.opsgenie.com"
    assert us.host == "https://api.opsgenie.com"


def test_unreachable_api_is_temporary(make_hub, records):
    from tests.conftest import free_port

    hub = make_hub(
        {"og": {"type": "opsgenie", "api_key": KEY, "api_url": f"http://127.0.0.1:{free_port()}"}},
        delivery={"max_attempts": 2},
    )
    hub.publish(make_event())
    (final,) = records.wait_final(1)
    assert [r.status for r in records.items] == [DeliveryStatus.RETRYING, DeliveryStatus.FAILED]
    assert "Opsgenie create alert (127.0.0.1): connection failed" in final.error
