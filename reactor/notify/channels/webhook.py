"""A generic JSON webhook, HMAC-signed: for ChatOps bots, ticket systems and anything we do not ship.

Body (``version`` 1)::

    {"version": 1, "event": {...Event.as_dict()...}, "text": "<plain-text message>"}

Headers: ``X-Smart-Rollback-Event`` (kind), ``X-Smart-Rollback-Delivery`` (unique per delivery, the same
on retries: receivers de-duplicate on it), and with a ``secret``: ``X-Smart-Rollback-Timestamp`` and
``X-Smart-Rollback-Signature: v1=<hex HMAC-SHA256 of "v1:<timestamp>:<raw body>">``.
"""

from __future__ import annotations

import json
from typing import ClassVar

from pydantic import Field

from reactor.notify import http
from reactor.notify.channels.base import ChannelBase, SendContext, Sent, register
from reactor.notify.events import Event, EventKind
from reactor.notify.options import ChannelOptions, SecretRef
from reactor.notify.render import compose
from reactor.notify.signing import webhook_signature

PAYLOAD_VERSION = 1


class WebhookOptions(ChannelOptions):
    required_secrets = ("url",)
    url: SecretRef | None = None
    #: HMAC-SHA256 key for ``X-Smart-Rollback-Signature``.
    secret: SecretRef | None = None
    #: Sent as the ``Authorization`` header (``authorization_env`` recommended).
    authorization: SecretRef | None = None
    events: tuple[EventKind, ...] = tuple(EventKind)
    #: Constant, non-secret headers.
    headers: dict[str, str] = Field(default_factory=dict)


@register
class WebhookChannel(ChannelBase):
    type: ClassVar[str] = "webhook"
    Options = WebhookOptions

    def accepts(self, kind: EventKind) -> bool:
        options = self.options
        assert isinstance(options, WebhookOptions)
        return kind in options.events

    def body(self, event: Event) -> bytes:
        payload = {"version": PAYLOAD_VERSION, "event": event.as_dict(), "text": compose(event).text()}
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()

    def send(self, event: Event, ctx: SendContext) -> Sent:
        options = self.options
        assert isinstance(options, WebhookOptions)
        raw = self.body(event)
        headers = {
            **options.headers,
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "smart-rollback-notify/1",
            "X-Smart-Rollback-Event": event.kind.value,
            "X-Smart-Rollback-Delivery": ctx.delivery_id,
        }
        if options.authorization is not None:
            headers["Authorization"] = self.secrets["authorization"]
        if options.secret is not None:
            stamp = str(int(self.now()))
            headers["X-Smart-Rollback-Timestamp"] = stamp
            headers["X-Smart-Rollback-Signature"] = webhook_signature(self.secrets["secret"], stamp, raw)
        service = "webhook"
        response = http.send(
            self.deps.http,
            "POST",
            self.secrets["url"],
            service=service,
            timeout=self.deps.timeout,
            data=raw,
            headers=headers,
        )
        http.check(response, service=service)
        return Sent(detail=f"HTTP {response.status_code}")
