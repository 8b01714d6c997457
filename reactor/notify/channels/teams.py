"""Microsoft Teams through a Workflows webhook ("When a Teams webhook request is received").

Workflows take Adaptive Cards only (CONTRACTS.md section 7.2): the legacy MessageCard of Office 365
connectors is not accepted there, and those connectors are being retired. The envelope is a
``message`` with one ``application/vnd.microsoft.card.adaptive`` attachment. Workflows answer ``202``;
an old connector URL answers ``200`` with body ``1`` (accepted too, if it still takes Adaptive Cards).

Teams webhooks cannot thread or take button callbacks, so approval requests carry signed links
(``Action.OpenUrl``) that open the reactor's confirmation page.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from reactor.notify import http
from reactor.notify.channels.base import ChannelBase, SendContext, Sent, register
from reactor.notify.events import Event, EventKind
from reactor.notify.options import ChannelOptions, RateLimit, SecretRef
from reactor.notify.render import compose

_CONTAINER_STYLE = {
    EventKind.ROLLBACK_FAILED: "attention",
    EventKind.HELD_FOR_APPROVAL: "warning",
    EventKind.ROLLBACK_SUCCEEDED: "good",
    EventKind.RECOVERED: "good",
}
_TEXT_COLOUR = {"attention": "Attention", "warning": "Warning", "good": "Good"}


class TeamsOptions(ChannelOptions):
    required_secrets = ("webhook_url",)
    #: The Workflows trigger URL (it embeds a signature: prefer ``webhook_url_env`` / ``webhook_url_file``).
    webhook_url: SecretRef | None = None
    reasons: int = Field(default=3, ge=0, le=10)


@register
class TeamsChannel(ChannelBase):
    type: ClassVar[str] = "teams"
    Options = TeamsOptions
    default_rate_limit = RateLimit(per_minute=30, burst=5)

    def send(self, event: Event, ctx: SendContext) -> Sent:
        service = "Teams webhook"
        response = http.send(
            self.deps.http,
            "POST",
            self.secrets["webhook_url"],
            service=service,
            timeout=self.deps.timeout,
            json=self.payload(event, ctx),
        )
        http.check(response, service=service)
        return Sent(detail=f"HTTP {response.status_code}")

    def payload(self, event: Event, ctx: SendContext) -> dict[str, Any]:
        options = self.options
        assert isinstance(options, TeamsOptions)
        message = compose(event, max_reasons=options.reasons)
        style = _CONTAINER_STYLE.get(event.kind, "emphasis")
        body: list[dict[str, Any]] = [
            {
                "type": "Container",
                "style": style,
                "bleed": True,
                "items": [
                    {
                        "type": "TextBlock",
                        "size": "Large",
                        "weight": "Bolder",
                        "wrap": True,
                        "color": _TEXT_COLOUR.get(style, "Default"),
                        "text": message.headline,
                    }
                ],
            },
            {
                "type": "FactSet",
                "facts": [{"title": label, "value": value} for label, value in message.facts],
            },
        ]
        if message.summary:
            body.append({"type": "TextBlock", "wrap": True, "text": message.summary})
        if message.reasons:
            body.append({"type": "TextBlock", "weight": "Bolder", "text": "Why", "spacing": "Medium"})
            body.append({"type": "TextBlock", "wrap": True, "text": "\n".join(f"- {r}" for r in message.reasons)})
        if message.steps:
            body.append({"type": "TextBlock", "weight": "Bolder", "text": "What was done", "spacing": "Medium"})
            body.append({"type": "TextBlock", "wrap": True, "text": "\n".join(f"- {s}" for s in message.steps)})
        actions: list[dict[str, Any]] = []
        if event.kind is EventKind.HELD_FOR_APPROVAL:
            links = ctx.approval_links("teams")
            if links:
                actions += [
                    {
                        "type": "Action.OpenUrl",
                        "title": "Approve rollback",
                        "url": links.approve,
                        "style": "positive",
                    },
                    {"type": "Action.OpenUrl", "title": "Reject", "url": links.reject},
                ]
        actions += [{"type": "Action.OpenUrl", "title": label, "url": url} for label, url in message.links]
        card: dict[str, Any] = {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.4",
            "body": body,
            "msteams": {"width": "Full"},
        }
        if actions:
            card["actions"] = actions
        return {
            "type": "message",
            "attachments": [
                {
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": None,
                    "content": card,
                }
            ],
        }
