"""SMS: Twilio's REST API, or any SMS gateway that takes a JSON POST.

Both send one request per recipient and remember, across retries of one delivery, the recipients already
reached, so a retry after a partial failure does not text the same person twice. Texts are short: the
headline, the top reason and the explanation link (``Message.short``).

SMS costs money and wakes people: both default to the failure and approval events only, and a rate limit
of 10 messages a minute per channel.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from pydantic import Field, model_validator

from reactor.notify import http
from reactor.notify.channels.base import ChannelBase, SendContext, Sent, register
from reactor.notify.errors import PermanentDeliveryError
from reactor.notify.events import Event, EventKind
from reactor.notify.options import ChannelOptions, RateLimit, SecretRef
from reactor.notify.render import compose
from reactor.notify.signing import webhook_signature

_DEFAULT_KINDS = (EventKind.ROLLBACK_FAILED, EventKind.HELD_FOR_APPROVAL)


class _SmsOptions(ChannelOptions):
    #: Recipients in E.164 form, e.g. ``+15005550006``.
    to: tuple[str, ...] = Field(min_length=1)
    events: tuple[EventKind, ...] = _DEFAULT_KINDS
    #: Longer texts are cut (a GSM segment is 160 characters; 320 = two segments).
    max_length: int = Field(default=320, ge=70, le=1600)


class TwilioOptions(_SmsOptions):
    account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$")
    #: The account's auth token, or use ``api_key_sid`` + ``api_key_secret``.
    auth_token: SecretRef | None = None
    api_key_sid: str | None = Field(default=None, pattern=r"^SK[0-9a-fA-F]{32}$")
    api_key_secret: SecretRef | None = None
    from_number: str | None = Field(default=None, alias="from")
    messaging_service_sid: str | None = Field(default=None, pattern=r"^MG[0-9a-fA-F]{32}$")
    base_url: str = "https://api.twilio.com"
    status_callback: str | None = None

    @model_validator(mode="after")
    def _credentials(self) -> TwilioOptions:
        if (self.auth_token is None) == (self.api_key_sid is None or self.api_key_secret is None):
            raise ValueError("set auth_token (auth_token_env), or api_key_sid with api_key_secret, not both")
        if (self.from_number is None) == (self.messaging_service_sid is None):
            raise ValueError("set either from (a Twilio phone number) or messaging_service_sid")
        return self


class _SmsChannel(ChannelBase):
    default_rate_limit = RateLimit(per_minute=10, burst=5)

    def accepts(self, kind: EventKind) -> bool:
        options = self.options
        assert isinstance(options, _SmsOptions)
        return kind in options.events

    def text(self, event: Event) -> str:
        options = self.options
        assert isinstance(options, _SmsOptions)
        return compose(event, max_reasons=1).short(options.max_length)

    def send(self, event: Event, ctx: SendContext) -> Sent:
        options = self.options
        assert isinstance(options, _SmsOptions)
        done: list[str] = ctx.scratch.setdefault("reached", [])
        ids: list[str] = ctx.scratch.setdefault("ids", [])
        text = self.text(event)
        permanent: list[str] = []
        for number in options.to:
            if number in done:
                continue
            try:
                remote = self.send_one(number, text, event, ctx)
            except PermanentDeliveryError as exc:
                # Keep going: one bad number must not keep the others from being told.
                permanent.append(exc.message)
                done.append(number)
                continue
            done.append(number)
            if remote:
                ids.append(remote)
        if permanent:
            raise PermanentDeliveryError("; ".join(permanent))
        return Sent(remote_id=",".join(ids) or None, detail=f"{len(options.to)} recipient(s)")

    def send_one(self, number: str, text: str, event: Event, ctx: SendContext) -> str | None:
        raise NotImplementedError


@register
class TwilioChannel(_SmsChannel):
    type: ClassVar[str] = "twilio"
    Options = TwilioOptions

    def send_one(self, number: str, text: str, event: Event, ctx: SendContext) -> str | None:
        options = self.options
        assert isinstance(options, TwilioOptions)
        form = {"To": number, "Body": text}
        if options.from_number:
            form["From"] = options.from_number
        else:
            assert options.messaging_service_sid is not None
            form["MessagingServiceSid"] = options.messaging_service_sid
        if options.status_callback:
            form["StatusCallback"] = options.status_callback
        if options.auth_token is not None:
            auth = (options.account_sid, self.secrets["auth_token"])
        else:
            assert options.api_key_sid is not None
            auth = (options.api_key_sid, self.secrets["api_key_secret"])
        service = f"Twilio Messages API (to {_mask_number(number)})"
        response = http.send(
            self.deps.http,
            "POST",
            f"{options.base_url.rstrip('/')}/2010-04-01/Accounts/{options.account_sid}/Messages.json",
            service=service,
            timeout=self.deps.timeout,
            data=form,
            auth=auth,
            headers={"Accept": "application/json"},
        )
        if response.status_code >= 400:
            try:
                error = response.json()
                code = error.get("code")
                if code and response.status_code < 500 and response.status_code != 429:
                    raise PermanentDeliveryError(
                        f"{service}: HTTP {response.status_code} Twilio error {code}: {error.get('message', '')}",
                        status=response.status_code,
                    )
            except ValueError:
                pass
        http.check(response, service=service)
        try:
            return str(response.json().get("sid") or "") or None
        except ValueError:
            return None


class SmsWebhookOptions(_SmsOptions):
    #: The gateway's URL (may embed a token: ``url_env`` / ``url_file`` work too).
    url: SecretRef | None = None
    required_secrets = ("url",)
    #: Sent as the ``Authorization`` header, e.g. ``Bearer abc`` (``authorization_env`` recommended).
    authorization: SecretRef | None = None
    #: HMAC secret: adds ``X-Smart-Rollback-Timestamp`` and ``X-Smart-Rollback-Signature`` headers.
    signing_secret: SecretRef | None = None
    #: JSON field names the gateway expects.
    to_field: str = "to"
    text_field: str = "text"
    #: Extra constant fields merged into every body (sender id, route...).
    extra: dict[str, Any] = Field(default_factory=dict)


@register
class SmsWebhookChannel(_SmsChannel):
    type: ClassVar[str] = "sms_webhook"
    Options = SmsWebhookOptions

    def send_one(self, number: str, text: str, event: Event, ctx: SendContext) -> str | None:
        options = self.options
        assert isinstance(options, SmsWebhookOptions)
        body = {
            **options.extra,
            options.to_field: number,
            options.text_field: text,
            "decision_id": event.decision_id,
            "event": event.kind.value,
        }
        raw = json.dumps(body, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "X-Smart-Rollback-Delivery": ctx.delivery_id}
        if options.authorization is not None:
            headers["Authorization"] = self.secrets["authorization"]
        if options.signing_secret is not None:
            stamp = str(int(self.now()))
            headers["X-Smart-Rollback-Timestamp"] = stamp
            headers["X-Smart-Rollback-Signature"] = webhook_signature(self.secrets["signing_secret"], stamp, raw)
        service = f"SMS webhook (to {_mask_number(number)})"
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
        return None


def _mask_number(number: str) -> str:
    """Phone numbers are personal data: logs and the audit trail show the last three digits only."""
    return f"...{number[-3:]}" if len(number) > 3 else "..."
