"""Opsgenie alerts through ``opsgenie-sdk``: one alert per decision, closed when the target recovers.

The alert ``alias`` is the decision's key, so Opsgenie de-duplicates repeated creates of one decision
(its count goes up instead of a second alert) and the close finds it (``identifierType=alias``).

Legacy notice (CONTRACTS.md section 7.4): Atlassian stopped selling Opsgenie on 2025-06-04 and ends
support on 2027-04-05; the SDK's last release is from 2021. The integration works until then; plan a
move to Jira Service Management (its Opsgenie-compatible alert API) or PagerDuty.

SDK quirks handled here: ``Configuration()`` returns a *shallow copy of a shared default*, so the
``api_key`` dicts would be shared between two channels unless replaced; its constructor resets the
``urllib3`` logger level (restored here); and it retries on its own with tenacity, which is switched off
so the dispatcher's retry policy (and its audit records) is the only one.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import opsgenie_sdk
import urllib3
from pydantic import BaseModel, ConfigDict, Field, model_validator

from reactor.notify.channels.base import ChannelBase, ChannelDeps, SendContext, Sent, register
from reactor.notify.channels.pagerduty import incident_key
from reactor.notify.errors import PermanentDeliveryError, TemporaryDeliveryError
from reactor.notify.events import Event, EventKind, Severity
from reactor.notify.options import ChannelOptions, SecretRef
from reactor.notify.render import compose, truncate

HOSTS = {"us": "https://api.opsgenie.com", "eu": "https://api.eu.opsgenie.com"}
_PRIORITY = {Severity.CRITICAL: "P1", Severity.ERROR: "P2", Severity.WARNING: "P3", Severity.INFO: "P5"}
_MESSAGE_LIMIT = 130
_DESCRIPTION_LIMIT = 15000


class Responder(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["team", "user", "escalation", "schedule"]
    id: str | None = None
    name: str | None = None
    username: str | None = None

    @model_validator(mode="after")
    def _identified(self) -> Responder:
        if not (self.id or self.name or self.username):
            raise ValueError("a responder needs id, name or (for users) username")
        return self


class OpsgenieOptions(ChannelOptions):
    required_secrets = ("api_key",)
    #: API key of an API integration (sent as ``Authorization: GenieKey ...``).
    api_key: SecretRef | None = None
    region: Literal["us", "eu"] = "us"
    #: Overrides ``region``: a proxy or a test server.
    api_url: str | None = None
    responders: tuple[Responder, ...] = ()
    tags: tuple[str, ...] = ("smart-rollback",)
    create_on: tuple[EventKind, ...] = (EventKind.ROLLBACK_FAILED, EventKind.HELD_FOR_APPROVAL)
    close_on: tuple[EventKind, ...] = (EventKind.RECOVERED,)
    source: str = "smart-rollback"
    reasons: int = Field(default=5, ge=0, le=20)

    @property
    def host(self) -> str:
        return (self.api_url or HOSTS[self.region]).rstrip("/")


@register
class OpsgenieChannel(ChannelBase):
    type: ClassVar[str] = "opsgenie"
    Options = OpsgenieOptions

    def __init__(self, name: str, options: ChannelOptions, deps: ChannelDeps) -> None:
        super().__init__(name, options, deps)
        assert isinstance(options, OpsgenieOptions)
        loggers = [logging.getLogger("opsgenie_sdk"), logging.getLogger("urllib3")]
        levels = [logger.level for logger in loggers]
        conf = opsgenie_sdk.configuration.Configuration()
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
        conf.api_key = {"Authorization": self.secrets["api_key"]}
        conf.api_key_prefix = {"Authorization": "GenieKey"}
        conf.host = options.host
        conf.retry_enabled = False
        self._api = opsgenie_sdk.AlertApi(opsgenie_sdk.api_client.ApiClient(conf))
        self._host = urlsplit(options.host).hostname or options.host
        # The SDK keeps per-call state (tenacity statistics, last_response) on the shared client.
        self._lock = threading.Lock()

    def accepts(self, kind: EventKind) -> bool:
        options = self.options
        assert isinstance(options, OpsgenieOptions)
        return kind in options.create_on or kind in options.close_on

    def alias(self, event: Event) -> str:
        return incident_key(event.decision_id, prefix="smart-rollback-", limit=512)

    def create_payload(self, event: Event, ctx: SendContext) -> Any:
        """The CreateAlertPayload (shape of fixtures/opsgenie-create-alert.json)."""
        options = self.options
        assert isinstance(options, OpsgenieOptions)
        message = compose(event, max_reasons=options.reasons)
        description = message.text()
        if event.kind is EventKind.HELD_FOR_APPROVAL:
            approval = ctx.approval_links("opsgenie")
            if approval:
                description += f"\nApprove rollback: {approval.approve}\nReject: {approval.reject}\n"
        details = {
            "target": str(event.target),
            "decision_id": event.decision_id,
            "event": event.kind.value,
            "strategy": event.strategy or "",
            "mode": event.mode,
        }
        if event.health_score is not None:
            details["health_score"] = f"{event.health_score:g}"
        if event.from_revision or event.to_revision:
            details["from"] = event.from_revision or ""
            details["to"] = event.to_revision or ""
        for label, url in message.links:
            details[label.lower().replace(" ", "_")] = url
        return opsgenie_sdk.CreateAlertPayload(
            message=truncate(message.headline, _MESSAGE_LIMIT),
            alias=self.alias(event),
            description=truncate(description, _DESCRIPTION_LIMIT),
            responders=[r.model_dump(exclude_none=True) for r in options.responders] or None,
            tags=[*options.tags, event.target.cluster, event.kind.value],
            details=details,
            entity=str(event.target),
            source=options.source,
            priority=_PRIORITY[event.severity],
        )

    def send(self, event: Event, ctx: SendContext) -> Sent:
        options = self.options
        assert isinstance(options, OpsgenieOptions)
        timeout = self.deps.timeout
        if event.kind in options.close_on:
            payload = opsgenie_sdk.CloseAlertPayload(
                note=truncate(event.summary or f"{event.target} recovered", 25000), source=options.source
            )
            response = self._call(
                "close alert",
                lambda: self._api.close_alert(
                    identifier=self.alias(event),
                    identifier_type="alias",
                    close_alert_payload=payload,
                    _request_timeout=timeout,
                ),
            )
            action = "close"
        else:
            payload = self.create_payload(event, ctx)
            response = self._call(
                "create alert",
                lambda: self._api.create_alert(create_alert_payload=payload, _request_timeout=timeout),
            )
            action = "create"
        request_id = getattr(response, "request_id", None)
        return Sent(remote_id=request_id, detail=f"{action} (alias {self.alias(event)})")

    def _call(self, what: str, call: Any) -> Any:
        service = f"Opsgenie {what} ({self._host})"
        try:
            with self._lock:
                return call()
        except Exception as exc:  # noqa: BLE001 - every SDK failure becomes a delivery error
            # With its retries off, the SDK's tenacity wrapper raises RetryError around the real error.
            last_attempt = getattr(exc, "last_attempt", None)
            inner = last_attempt.exception() if last_attempt is not None else exc
            raise _map_error(service, inner) from None


def _map_error(service: str, exc: BaseException | None) -> Exception:
    if exc is None:
        return TemporaryDeliveryError(f"{service}: failed without an error")
    status = getattr(exc, "status", None)
    if isinstance(status, int) and status > 0:
        reason = str(getattr(exc, "reason", "") or "").strip()
        message = f"{service}: HTTP {status} {reason}".rstrip()
        if status == 429 or status >= 500 or status in (408, 425):
            headers = getattr(exc, "headers", None) or {}
            retry_after: float | None = None
            try:
                retry_after = float(str(headers.get("Retry-After") or "")) if headers.get("Retry-After") else None
            except ValueError:
                retry_after = None
            return TemporaryDeliveryError(message, status=status, retry_after=retry_after)
        return PermanentDeliveryError(message, status=status)
    if isinstance(exc, urllib3.exceptions.SSLError) or (status == 0 and "SSL" in str(exc)):
        return PermanentDeliveryError(f"{service}: TLS handshake failed; check the CA")
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        return TemporaryDeliveryError(f"{service}: connection failed ({type(exc).__name__})")
    if isinstance(exc, ValueError):
        return TemporaryDeliveryError(f"{service}: unexpected answer ({type(exc).__name__})")
    return PermanentDeliveryError(f"{service}: {type(exc).__name__}")
