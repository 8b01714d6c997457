"""Delivery semantics: timeouts, 5xx and 429 are retried and end in a recorded status, while the caller
(the rollback) goes on at once. Assertions are on the order of events, never on durations."""

from __future__ import annotations

import threading
from typing import ClassVar

from reactor.notify.channels import ChannelBase, SendContext, Sent
from reactor.notify.channels.webhook import WebhookOptions
from reactor.notify.config import parse_notification_settings
from reactor.notify.dispatcher import DeliveryStatus, RetryPolicy
from reactor.notify.events import Event, EventKind
from reactor.notify.hub import NotificationHub
from tests.notify.conftest import FAST_DELIVERY, Records, Reply, make_event

PATH = "/hook"


def webhook(server):
    return {"hook": {"type": "webhook", "url": server.url(PATH)}}


def test_a_hung_channel_times_out_retries_and_records_the_failure_while_the_rollback_goes_on(server, make_hub, records):
    gates = [threading.Event() for _ in range(3)]
    server.script(PATH, *(Reply(200, "ok", hold=gate) for gate in gates))
    hub = make_hub(webhook(server), delivery={"timeout_seconds": 0.3, "max_attempts": 3})
    timeline: list[str] = []

    hub.publish(make_event(EventKind.ROLLBACK_STARTED))
    timeline.append("rollback continued")  # the worker's next step: publish returned without waiting

    (final,) = records.wait_final(1)
    timeline.append("delivery given up")
    assert timeline == ["rollback continued", "delivery given up"]
    assert [r.status for r in records.items] == [
        DeliveryStatus.RETRYING,
        DeliveryStatus.RETRYING,
        DeliveryStatus.FAILED,
    ]
    assert final.attempts == 3
    assert "no answer within 0.3 s" in final.error and "gave up after 3 attempts" in final.error
    assert len(server.requests) == 3


def test_5xx_is_retried_with_exponential_backoff_until_delivered(server, make_hub, records):
    hold = threading.Event()
    server.script(PATH, Reply(503, "busy", hold=hold), Reply(502, "bad gateway"), Reply(200, "ok"))
    hub = make_hub(webhook(server))
    timeline: list[str] = []

    hub.publish(make_event())
    timeline.append("rollback completed")
    server.wait_for(1)  # the first attempt is in flight, held by the server...
    assert records.items == []  # ...and the caller was not waiting for it
    hold.set()
    records.wait_final(1)
    timeline.append("delivered")

    assert timeline == ["rollback completed", "delivered"]
    assert [(r.status, r.status_code, r.retry_in) for r in records.items] == [
        (DeliveryStatus.RETRYING, 503, 0.05),
        (DeliveryStatus.RETRYING, 502, 0.1),
        (DeliveryStatus.DELIVERED, None, None),
    ]
    assert records.items[0].error == "webhook: HTTP 503 busy"


def test_attempts_exhausted_is_a_recorded_failure(server, make_hub, records):
    server.default(PATH, Reply(500, "boom"))
    hub = make_hub(webhook(server))
    hub.publish(make_event())
    (final,) = records.wait_final(1)
    assert [r.status for r in records.items] == [DeliveryStatus.RETRYING] * 3 + [DeliveryStatus.FAILED]
    assert final.error == "webhook: HTTP 500 boom (gave up after 4 attempts)"
    assert final.status_code == 500


def test_retry_after_beyond_the_limit_gives_up_instead_of_waiting(server, make_hub, records):
    server.script(PATH, Reply(429, "slow down", {"Retry-After": "3600"}))
    hub = make_hub(webhook(server), delivery={"max_retry_after_seconds": 60})
    hub.publish(make_event())
    (final,) = records.wait_final(1)
    assert final.status is DeliveryStatus.FAILED
    assert "asked to retry after 3600 s" in final.error


def test_4xx_is_permanent(server, make_hub, records):
    server.script(PATH, Reply(404, "no such hook"))
    hub = make_hub(webhook(server))
    hub.publish(make_event())
    (final,) = records.wait_final(1)
    assert [r.status for r in records.items] == [DeliveryStatus.FAILED]
    assert final.error == "webhook: HTTP 404 no such hook"


def test_connection_refused_is_temporary(make_hub, records):
    from tests.conftest import free_port

    hub = make_hub(
        {"hook": {"type": "webhook", "url": f"http://127.0.0.1:{free_port()}/x"}},
        delivery={"max_attempts": 2},
    )
    hub.publish(make_event())
    (final,) = records.wait_final(1)
    assert [r.status for r in records.items] == [DeliveryStatus.RETRYING, DeliveryStatus.FAILED]
    assert "connection failed" in final.error and "Connection refused" in final.error


def test_one_lane_per_decision_keeps_order_and_lanes_run_in_parallel(server, make_hub, records):
    hold = threading.Event()
    server.script(PATH, Reply(200, "ok", hold=hold))
    hub = make_hub(webhook(server))
    hub.publish(make_event(EventKind.ROLLBACK_STARTED, decision_id="A"))
    server.wait_for(1)  # A's first delivery is in flight, held by the server
    hub.publish(make_event(EventKind.ROLLBACK_FAILED, decision_id="A"))
    hub.publish(make_event(EventKind.ROLLBACK_STARTED, decision_id="B"))

    first, second = server.wait_for(2)
    # A's second event waits behind A's first (held); B's lane is not blocked by A.
    assert [(r.json()["event"]["decision_id"], r.json()["event"]["kind"]) for r in (first, second)] == [
        ("A", "rollback_started"),
        ("B", "rollback_started"),
    ]
    hold.set()
    assert hub.flush(30)
    kinds = [(r.json()["event"]["decision_id"], r.json()["event"]["kind"]) for r in server.requests]
    assert kinds[2] == ("A", "rollback_failed")


def test_full_queue_drops_and_records_instead_of_blocking(server, make_hub, records):
    hold = threading.Event()
    server.script(PATH, Reply(200, "ok", hold=hold))
    hub = make_hub(webhook(server), delivery={"queue_size": 2, "workers": 1})
    assert len(hub.publish(make_event(decision_id="1"))) == 1
    server.wait_for(1)
    assert len(hub.publish(make_event(decision_id="2"))) == 1
    assert hub.publish(make_event(decision_id="3")) == []  # returns at once, nothing queued

    (dropped,) = records.wait_final(1)
    assert dropped.status is DeliveryStatus.DROPPED and dropped.decision_id == "3"
    assert "queue full" in dropped.error
    hold.set()
    assert hub.flush(30)
    assert sorted(r.status.value for r in records.final()) == ["delivered", "delivered", "dropped"]


def test_rate_limit_defers_then_drops_past_max_wait(server, make_hub, records):
    hub = make_hub(
        {
            "hook": {
                "type": "webhook",
                "url": server.url(PATH),
                "rate_limit": {"per_minute": 6, "burst": 1, "max_wait_seconds": 0},
            }
        }
    )
    hub.publish(make_event(decision_id="1"))
    hub.publish(make_event(decision_id="2"))
    assert hub.flush(30)
    statuses = {r.decision_id: r for r in records.final()}
    assert statuses["1"].status is DeliveryStatus.DELIVERED
    assert statuses["2"].status is DeliveryStatus.RATE_LIMITED
    assert "rate limit of channel hook (6/min, burst 1)" in statuses["2"].error
    assert len(server.requests) == 1


def test_rate_limit_waits_for_a_token_when_allowed(server, make_hub, records):
    hub = make_hub(
        {"hook": {"type": "webhook", "url": server.url(PATH), "rate_limit": {"per_minute": 600, "burst": 1}}}
    )
    for n in range(3):
        hub.publish(make_event(decision_id=str(n)))
    assert hub.flush(30)
    assert [r.status for r in records.final()] == [DeliveryStatus.DELIVERED] * 3
    assert len(server.requests) == 3


def test_same_event_published_twice_is_sent_once(server, make_hub, records):
    hub = make_hub(webhook(server))
    event = make_event()
    assert len(hub.publish(event)) == 1
    assert hub.publish(event) == []
    assert hub.flush(30)
    assert len(server.requests) == 1


def test_a_failing_record_callback_does_not_stop_deliveries(server):
    seen: list[str] = []

    def record(delivery):
        seen.append(delivery.decision_id)
        if len(seen) == 1:
            raise RuntimeError("audit database down")

    settings = parse_notification_settings({"channels": webhook(server), "delivery": FAST_DELIVERY})
    hub = NotificationHub(settings, record=record)
    try:
        hub.publish(make_event(decision_id="1"))
        assert hub.flush(30)
        hub.publish(make_event(decision_id="2"))
        assert hub.flush(30)
    finally:
        hub.close()
    assert seen == ["1", "2"]
    assert len(server.requests) == 2


class ExplodingChannel(ChannelBase):
    type: ClassVar[str] = "webhook"
    Options = WebhookOptions

    def send(self, event: Event, ctx: SendContext) -> Sent:
        raise RuntimeError("bug in a channel")


def test_a_channel_bug_is_a_failed_delivery_not_a_dead_worker(server):
    records = Records()
    settings = parse_notification_settings({"channels": webhook(server), "delivery": FAST_DELIVERY})
    hub = NotificationHub(settings, record=records, registry={"webhook": ExplodingChannel})
    try:
        hub.publish(make_event(decision_id="1"))
        hub.publish(make_event(decision_id="2"))
        finals = records.wait_final(2)
    finally:
        hub.close()
    assert [r.status for r in finals] == [DeliveryStatus.FAILED, DeliveryStatus.FAILED]
    assert finals[0].error == "unexpected RuntimeError: bug in a channel"


def test_close_records_what_could_not_be_sent(server, make_hub, records):
    server.default(PATH, Reply(503, "down"))
    hub = make_hub(webhook(server), delivery={"backoff_initial_seconds": 60, "backoff_max_seconds": 60})
    hub.publish(make_event())
    records.wait_items(1)  # the first attempt failed; the retry is a minute away
    hub.close(timeout=0)
    finals = records.final()
    assert [r.status for r in finals] == [DeliveryStatus.DROPPED]
    assert finals[0].error == "reactor shut down before delivery"
    assert hub.publish(make_event(decision_id="late")) == []


def test_publish_never_raises():
    settings = parse_notification_settings({})
    hub = NotificationHub(settings)
    try:
        assert hub.publish("not an event") == []  # type: ignore[arg-type]
    finally:
        hub.close()


def test_backoff_policy():
    policy = RetryPolicy(initial=1, factor=2, max_delay=10, jitter=0.2)
    assert [policy.delay(n, None, lambda: 0.5) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 8, 10]
    assert policy.delay(1, None, lambda: 0.0) == 0.8 and policy.delay(1, None, lambda: 1.0) == 1.2
    assert policy.delay(3, 7.5, lambda: 0.5) == 7.5  # Retry-After wins over the computed backoff
