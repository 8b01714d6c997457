"""PagerDuty Events API v2: one incident per decision.

A rollback that fails, or one held for a human's approval, *triggers*; the target recovering *resolves*.
Both use ``dedup_key = smart-rollback/<decision id>``, so repeated triggers of one decision update a single
incident and the resolve closes exactly that one. Plain HTTP through ``requests``: the ``pagerduty``
client refuses non-https base URLs (CONTRACTS.md section 7.3), and the URL must be configurable (proxies,
tests, PagerDuty's EU service region ``https://events.eu.pagerduty.com/v2/enqueue``).
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar

from pydantic import Field

from reactor.notify import http
from reactor.notify.channels.base import ChannelBase, SendContext, Sent, register
from reactor.notify.errors import TemporaryDeliveryError
from reactor.notify.events import Event, EventKind, Severity
from reactor.notify.options import ChannelOptions, SecretRef
from reactor.notify.render import compose, truncate

_SEVERITY = {
    Severity.CRITICAL: "critical",
    Severity.ERROR: "error",
    Severity.WARNING: "warning",
    Severity.INFO: "info",
}
_SUMMARY_LIMIT = 1024
_DEDUP_LIMIT = 255


def incident_key(decision_id: str, prefix: str = "smart-rollback/", limit: int = _DEDUP_LIMIT) -> str:
    """The dedup key / alias of a decision; hashed if the decision id is unreasonably long."""
    key = f"{prefix}{decision_id}"
    if len(key) <= limit:
        return key
    return f"{prefix}{hashlib.sha256(decision_id.encode()).hexdigest()}"


class PagerDutyOptions(ChannelOptions):
    required_secrets = ("routing_key",)
    #: The integration key of an Events API v2 integration (32 characters).
    routing_key: SecretRef | None = None
    url: str = "https://events.pagerduty.com/v2/enqueue"
    trigger_on: tuple[EventKind, ...] = (EventKind.ROLLBACK_FAILED, EventKind.HELD_FOR_APPROVAL)
    resolve_on: tuple[EventKind, ...] = (EventKind.RECOVERED,)
    #: ``payload.source``; default: the target identity.
    source: str | None = None
    reasons: int = Field(default=5, ge=0, le=20)


@register
class PagerDutyChannel(ChannelBase):
    type: ClassVar[str] = "pagerduty"
    Options = PagerDutyOptions

    def accepts(self, kind: EventKind) -> bool:
        options = self.options
        assert isinstance(options, PagerDutyOptions)
        return kind in options.trigger_on or kind in options.resolve_on

    def send(self, event: Event, ctx: SendContext) -> Sent:
        body = self.payload(event, ctx)
        service = "PagerDuty Events API"
        options = self.options
        assert isinstance(options, PagerDutyOptions)
        response = http.send(self.deps.http, "POST", options.url, service=service, timeout=self.deps.timeout, json=body)
        http.check(response, service=service)
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if isinstance(answer, dict) and answer.get("status") not in (None, "success"):
            raise TemporaryDeliveryError(f"{service}: {http.excerpt(response.text)}", status=response.status_code)
        return Sent(remote_id=body["dedup_key"], detail=body["event_action"])

    def payload(self, event: Event, ctx: SendContext) -> dict[str, Any]:
        """The enqueue body (shapes of fixtures/pagerduty-events-v2-trigger.json and -resolve.json)."""
        options = self.options
        assert isinstance(options, PagerDutyOptions)
        key = incident_key(event.decision_id)
        if event.kind in options.resolve_on:
            return {"routing_key": self.secrets["routing_key"], "event_action": "resolve", "dedup_key": key}
        message = compose(event, max_reasons=options.reasons)
        details: dict[str, Any] = {
            "target": str(event.target),
            "decision_id": event.decision_id,
            "event": event.kind.value,
            "strategy": event.strategy,
            "mode": event.mode,
            "health_score": event.health_score,
            "from_revision": event.from_revision,
            "to_revision": event.to_revision,
            "reasons": list(message.reasons),
            "steps": list(message.steps),
        }
        if event.summary:
            details["summary"] = event.summary
        links = [{"href": url, "text": label} for label, url in message.links]
        if event.kind is EventKind.HELD_FOR_APPROVAL:
            approval = ctx.approval_links("pagerduty")
            if approval:
                links += [
                    {"href": approval.approve, "text": "Approve rollback"},
                    {"href": approval.reject, "text": "Reject rollback"},
                ]
        body: dict[str, Any] = {
            "routing_key": self.secrets["routing_key"],
            "event_action": "trigger",
            "dedup_key": key,
            "payload": {
                "summary": truncate(
                    message.headline + (f": {message.reasons[0]}" if message.reasons else ""), _SUMMARY_LIMIT
                ),
                "source": options.source or str(event.target),
                "severity": _SEVERITY[event.severity],
                "timestamp": event.occurred_at.isoformat(),
                "component": event.target.name,
                "group": f"{event.target.cluster}/{event.target.namespace}",
                "class": event.kind.value,
                "custom_details": {k: v for k, v in details.items() if v is not None},
            },
            "client": "Smart Rollback",
        }
        if links:
            body["links"] = links
        if event.links.explanation:
            body["client_url"] = event.links.explanation
        return body
