"""Routing by target glob, severity and event kind; what a message says; the Event model."""

from __future__ import annotations

import pytest

from reactor.notify.events import Event, EventKind, Severity, sample_event
from reactor.notify.render import compose
from reactor.notify.routing import Route, RouteMatch, Router
from strategies.base import TargetRef
from tests.notify.conftest import make_event


def route(channels, cont=False, **match):
    return Route.model_validate({"match": match, "channels": channels, "continue": cont})


def test_first_matching_route_wins_unless_it_continues():
    router = Router(
        [
            route(
                ["pager"],
                cont=True,
                targets=["kubernetes/prod-*"],
                events=["rollback_failed", "held_for_approval"],
            ),
            route(["prod-chat"], targets=["*/prod-*"]),
            route(["chat"]),
        ],
        ["pager", "prod-chat", "chat"],
    )
    assert router.channels_for(make_event(EventKind.ROLLBACK_FAILED)) == ["pager", "prod-chat"]
    assert router.channels_for(make_event(EventKind.STEP_DONE)) == ["prod-chat"]
    staging = make_event(EventKind.ROLLBACK_FAILED, target=TargetRef("kubernetes", "staging", "shop", "checkout"))
    assert router.channels_for(staging) == ["chat"]


def test_no_routes_means_every_channel():
    assert Router([], ["a", "b"]).channels_for(make_event()) == ["a", "b"]


@pytest.mark.parametrize(
    ("match", "severity", "expected"),
    [
        ({"min_severity": "error"}, "critical", True),
        ({"min_severity": "error"}, "warning", False),
        ({"severities": ["warning"]}, "warning", True),
        ({"severities": ["warning"]}, "critical", False),
        ({"targets": ["*/checkout"]}, "info", True),
        ({"targets": ["ecs/*"]}, "info", False),
    ],
)
def test_route_match(match, severity, expected):
    assert RouteMatch.model_validate(match).matches(make_event(severity=Severity(severity))) is expected


def test_severity_labels_are_mapped_leniently():
    assert Severity.parse("page") is Severity.CRITICAL
    assert Severity.parse("HIGH") is Severity.ERROR
    assert Severity.parse("something-custom") is Severity.WARNING
    assert Severity.parse(None) is Severity.WARNING
    assert Severity.INFO.rank < Severity.WARNING.rank < Severity.ERROR.rank < Severity.CRITICAL.rank


def test_message_says_what_why_what_was_done_and_where_to_look():
    message = compose(make_event(EventKind.ROLLBACK_SUCCEEDED, summary="health back to 91"), max_reasons=1)
    text = message.text()
    assert message.headline == "Rollback succeeded: checkout (prod-eu/shop)"
    assert "Target: kubernetes/prod-eu/shop/checkout" in text
    assert "Revision: 7 \u2192 6" in text and "Health score: 23/100" in text and "Strategy: progressive" in text
    assert "error ratio 12.4% vs baseline 0.8% (score 18)" in text
    assert "p99 latency" not in text  # max_reasons=1
    assert "set_weights: done \u00b7 stable=100 canary=0" in text
    assert "Decision explanation: https://rollback.example.com/ui/decisions/dec-1" in text
    assert "health back to 91" in text
    html = message.html((("Approve rollback", "https://x/approve?a=1&b=<2>"),))
    assert "https://x/approve?a=1&amp;b=&lt;2&gt;" in html


def test_observe_mode_says_nothing_was_done():
    assert compose(make_event(EventKind.DECISION_MADE, mode="observe")).title.endswith("(observe mode)")


def test_sms_text_is_short_and_keeps_the_link():
    long_reason = make_event(reasons=(), summary="x" * 1000)
    short = compose(long_reason).short(160)
    assert len(short) <= 160 and short.endswith("https://rollback.example.com/ui/decisions/dec-1")


def test_event_ids_make_publishing_idempotent():
    a = make_event(EventKind.STEP_DONE)
    assert a.event_id == make_event(EventKind.STEP_DONE).event_id
    assert make_event(EventKind.ROLLBACK_FAILED).event_id == "dec-1:rollback_failed"
    assert a.event_id != make_event(EventKind.STEP_DONE, steps=a.steps * 2).event_id
    assert make_event(event_id="custom").event_id == "custom"


def test_event_round_trips_and_validates():
    event = make_event()
    assert Event.from_dict(event.as_dict()) == event
    assert (
        Event.from_dict({**event.as_dict(), "target": "ecs/eu/prod/api", "severity": "page"}).severity
        is Severity.CRITICAL
    )
    with pytest.raises(ValueError, match="platform/cluster/namespace/name"):
        make_event(target="checkout")
    with pytest.raises(ValueError, match="decision_id"):
        make_event(decision_id="")
    assert sample_event(EventKind.RECOVERED).summary.startswith("TEST:")
