"""Slack against a loopback server: webhook and bot-token shapes, threads per decision, error semantics."""

from __future__ import annotations

from reactor.notify.dispatcher import DeliveryStatus
from reactor.notify.events import EventKind
from reactor.notify.signing import SLACK_APPROVE_ACTION, SLACK_REJECT_ACTION, verify_action
from tests.notify.conftest import Reply, assert_shape_covers, load_fixture, make_event

HOOK = "/services/T0000000/B0000000/XXXXXXXXXXXXXXXXXXXXXXXX"


def test_webhook_message_has_the_captured_shape_and_tells_the_story(server, make_hub, records):
    hub = make_hub(
        {"slack": {"type": "slack", "webhook_url_env": "SLACK_URL"}}, environ={"SLACK_URL": server.url(HOOK)}
    )
    hub.publish(make_event(EventKind.ROLLBACK_FAILED, summary="stable side unhealthy too"))
    (request,) = server.wait_for(1)
    records.wait_final(1)

    captured = load_fixture("slack-incoming-webhook.json")
    assert request.path == HOOK
    assert request.headers["Content-Type"] == captured["headers"]["Content-Type"]
    body = request.json()
    assert_shape_covers(captured["body"], {k: body[k] for k in ("text", "blocks")})
    assert [b["type"] for b in body["blocks"]][:2] == ["header", "section"]
    assert body["blocks"][-1]["type"] == "context"
    text = str(body)
    # what happened, why (reasons with scores), what was done, links
    assert "Rollback FAILED: checkout (prod-eu/shop)" in body["text"]
    assert "error ratio 12.4% vs baseline 0.8% (score 18)" in text
    assert "set_weights: done" in text
    assert "stable side unhealthy too" in text
    assert "https://rollback.example.com/ui/decisions/dec-1|Decision explanation" in text
    assert "https://grafana.example.com/d/abc|Grafana" in text
    (record,) = records.final()
    assert record.status is DeliveryStatus.DELIVERED and record.channel == "slack" and record.attempts == 1


def test_webhook_plain_text_error_codes_are_permanent(server, make_hub, records):
    server.script(HOOK, Reply(403, "invalid_token", {"Content-Type": "text/plain"}))
    hub = make_hub(
        {"slack": {"type": "slack", "webhook_url_env": "SLACK_URL"}}, environ={"SLACK_URL": server.url(HOOK)}
    )
    hub.publish(make_event())
    (record,) = records.wait_final(1)

    assert record.status is DeliveryStatus.FAILED
    assert "HTTP 403 invalid_token" in record.error
    assert record.status_code == 403 and record.attempts == 1
    assert [r.status for r in records.items] == [DeliveryStatus.FAILED]  # no retry of a permanent error
    assert len(server.requests) == 1


def test_webhook_429_honours_retry_after(server, make_hub, records):
    server.script(HOOK, Reply(429, "rate_limited", {"Retry-After": "1"}), Reply(200, "ok"))
    hub = make_hub(
        {"slack": {"type": "slack", "webhook_url_env": "SLACK_URL"}}, environ={"SLACK_URL": server.url(HOOK)}
    )
    hub.publish(make_event())
    records.wait_final(1)

    assert [(r.status, r.retry_in) for r in records.items] == [
        (DeliveryStatus.RETRYING, 1.0),
        (DeliveryStatus.DELIVERED, None),
    ]
    first, second = server.wait_for(2)
    assert second.at - first.at >= 1.0  # the second attempt waited as told (an ordering, not a speed claim)


def test_bot_token_keeps_one_thread_per_decision(server, make_hub, records):
    server.script(
        "/api/chat.postMessage",
        Reply(200, {"ok": True, "channel": "C0123456789", "ts": "1700000000.000100"}),
        Reply(200, {"ok": True, "channel": "C0123456789", "ts": "1700000000.000200"}),
        Reply(200, {"ok": True, "channel": "C0123456789", "ts": "1700000000.000300"}),
        Reply(200, {"ok": True, "channel": "C0123456789", "ts": "1700000099.000100"}),
    )
    hub = make_hub(
        {
            "slack": {
                "type": "slack",
                "bot_token_env": "SLACK_BOT",
                "channel": "C0123456789",
                "api_url": server.url("/api"),
            }
        },
        environ={"SLACK_BOT": "xoxb-1111-2222-secret"},
    )
    for kind in (EventKind.DECISION_MADE, EventKind.ROLLBACK_STARTED, EventKind.ROLLBACK_FAILED):
        hub.publish(make_event(kind))
    assert hub.flush(30)
    hub.publish(make_event(EventKind.DECISION_MADE, decision_id="dec-2"))
    assert hub.flush(30)

    bodies = [r.json() for r in server.wait_for(4)]
    assert all(r.headers["Authorization"] == "Bearer xoxb-1111-2222-secret" for r in server.requests)
    assert "thread_ts" not in bodies[0] and bodies[0]["channel"] == "C0123456789"
    assert bodies[1]["thread_ts"] == "1700000000.000100" and "reply_broadcast" not in bodies[1]
    assert bodies[2]["thread_ts"] == "1700000000.000100" and bodies[2]["reply_broadcast"] is True
    assert "thread_ts" not in bodies[3]  # another decision, another thread
    details = [r.detail for r in records.final()]
    assert details == ["thread started", "thread reply", "thread reply", "thread started"]


def test_bot_api_errors_permanent_and_temporary(server, make_hub, records):
    server.script(
        "/api/chat.postMessage",
        Reply(200, {"ok": False, "error": "channel_not_found"}),
        Reply(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "0"}),
        Reply(200, {"ok": True, "ts": "1.2"}),
    )
    hub = make_hub({"slack": {"type": "slack", "bot_token": "xoxb-x", "channel": "C1", "api_url": server.url("/api")}})
    hub.publish(make_event(decision_id="a"))
    assert hub.flush(30)
    hub.publish(make_event(decision_id="b"))
    assert hub.flush(30)

    statuses = [(r.decision_id, r.status) for r in records.items]
    assert statuses == [
        ("a", DeliveryStatus.FAILED),
        ("b", DeliveryStatus.RETRYING),
        ("b", DeliveryStatus.DELIVERED),
    ]
    assert "channel_not_found" in records.items[0].error and "invite the app" in records.items[0].error


def test_held_for_approval_gets_interactive_buttons(server, make_hub):
    hub = make_hub(
        {"slack": {"type": "slack", "webhook_url": server.url(HOOK)}},
        chatops={"slack_signing_secret": "8f742231b10e8888abcd99yyyzzz85a5"},
    )
    hub.publish(make_event(EventKind.HELD_FOR_APPROVAL, mode="recommend"))
    (request,) = server.wait_for(1)
    actions = [b for b in request.json()["blocks"] if b["type"] == "actions"]
    assert len(actions) == 1
    buttons = {e["action_id"]: e for e in actions[0]["elements"]}
    assert set(buttons) == {SLACK_APPROVE_ACTION, SLACK_REJECT_ACTION}
    assert {e["value"] for e in buttons.values()} == {"dec-1"}
    assert "confirm" in buttons[SLACK_APPROVE_ACTION]


def test_without_interactivity_buttons_are_signed_links(server, make_hub):
    hub = make_hub(
        {"slack": {"type": "slack", "webhook_url": server.url(HOOK)}},
        chatops={"public_url": "https://rollback.example.com", "link_secret": "link-secret-0123456789"},
    )
    hub.publish(make_event(EventKind.HELD_FOR_APPROVAL, mode="recommend"))
    (request,) = server.wait_for(1)
    (actions,) = [b for b in request.json()["blocks"] if b["type"] == "actions"]
    urls = [e["url"] for e in actions["elements"]]
    assert all(u.startswith("https://rollback.example.com/chatops/action/") for u in urls)
    signed = [verify_action(u.rsplit("/", 1)[1], secret="link-secret-0123456789") for u in urls]
    assert [(s.decision_id, s.action, s.source) for s in signed] == [
        ("dec-1", "approve", "slack"),
        ("dec-1", "reject", "slack"),
    ]
