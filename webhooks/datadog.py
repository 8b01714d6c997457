"""Datadog webhook integration bodies.

The body is whatever template the user wrote in the webhook's *Payload* field (CONTRACTS §3.1), so every
field may be missing, renamed or empty. The parser reads, in order of preference:

* our recommended template (``webhooks/templates/datadog-payload.json``, documented in docs/datadog.md):
  ``alert_cycle_key``, ``alert_transition``, ``alert_scope``, ``tags``, ``date`` and explicit target fields;
* Datadog's default payload (``id``, ``title``, ``date``, ``body``, ``event_type``, ``last_updated``).

It refuses (``PayloadError`` → 400, which Datadog does not retry) only what it cannot act on safely: a body
that is not an object, or one that says neither which alert this is nor whether it fires or recovered.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from webhooks import _fields as f
from webhooks.errors import PayloadError
from webhooks.model import Alert, IdentityRules, Notification, Status

_FIRING_TRANSITIONS = {
    "triggered": False,
    "re-triggered": True,
    "warn": False,
    "re-warn": True,
    "renotify": True,
    "no data": False,
    "re-no data": True,
}
_RESOLVED_TRANSITIONS = {"recovered", "null"}
_TITLE_STATE = re.compile(r"^\s*\[(triggered|recovered|warn|re-triggered|no data)\b", re.IGNORECASE)
#: Fields of our template that name the target directly; they win over tags of the same name.
_IDENTITY_FIELDS = (
    "platform",
    "cluster",
    "namespace",
    "target",
    "deployment",
    "service",
    "component",
    "revision",
    "release",
    "strategy",
    "severity",
    "failure_kind",
)
_ANNOTATION_FIELDS = (
    "alert_status",
    "alert_query",
    "alert_metric",
    "text_only_msg",
    "body",
    "link",
    "snapshot",
)
_TITLE_SCOPE = re.compile(r"^\s*\[[^\]{]* on \{([^}]*)\}\]")
_UNSUBSTITUTED = re.compile(r"^\$[A-Z_]+(\[[^\]]*\])?$")


def parse_datadog(
    body: Any, *, rules: IdentityRules | None = None, received_at: datetime | None = None
) -> Notification:
    """Parse a decoded Datadog webhook body (JSON or form fields) into one alert."""
    root = f.obj(body, "")
    rules = rules or IdentityRules()
    now = received_at or datetime.now(UTC)
    fields = {k: _text(root, k) for k in root}

    status, transition, repeat = _status(fields)
    title = fields.get("alert_title") or fields.get("title") or fields.get("event_title") or ""
    labels = _tags(_title_scope(title)) | _tags(fields.get("tags")) | _tags(fields.get("alert_scope"))
    for key in _IDENTITY_FIELDS:
        if fields.get(key):
            labels[key] = fields[key]  # type: ignore[assignment]

    failure_kind = "no_data" if transition.endswith("no data") else labels.get("failure_kind")
    starts_at = _when(fields.get("date"), "date") or _when(fields.get("last_updated"), "last_updated") or now
    alert = Alert(
        source="datadog",
        fingerprint=_fingerprint(fields),
        status=status,
        name=_strip_state(title),
        target=rules.identify(labels),
        starts_at=starts_at,
        ends_at=starts_at if status == "resolved" else None,
        severity=labels.get("severity") or _severity(fields),
        failure_kind=failure_kind,
        strategy_hint=labels.get("strategy") or None,
        value=f.number(fields.get("value")),
        labels=labels,
        annotations={k: v for k in _ANNOTATION_FIELDS if (v := fields.get(k))},
        generator_url=fields.get("link") or "",
        repeat=repeat,
        raw=root,
    )
    return Notification(source="datadog", status=status, alerts=(alert,), raw=root)


def _text(root: Mapping[str, Any], key: str) -> str | None:
    """A field as text; template variables Datadog left unsubstituted count as absent."""
    value = root.get(key)
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return str(value).lower()
    text = str(value).strip()
    if not text or _UNSUBSTITUTED.match(text):
        return None
    return text


def _status(fields: Mapping[str, str | None]) -> tuple[Status, str, bool]:
    transition = (fields.get("alert_transition") or "").lower()
    if transition in _FIRING_TRANSITIONS:
        return "firing", transition, _FIRING_TRANSITIONS[transition]
    if transition in _RESOLVED_TRANSITIONS:
        return "resolved", transition, False
    alert_type = (fields.get("alert_type") or "").lower()
    if alert_type == "success":
        return "resolved", "recovered", False
    if alert_type in ("error", "warning"):
        return "firing", "triggered", False
    match = _TITLE_STATE.match(fields.get("alert_title") or fields.get("title") or "")
    if match:
        state = match.group(1).lower()
        if state == "recovered":
            return "resolved", state, False
        return "firing", state, state.startswith("re-")
    raise PayloadError(
        "alert_transition",
        'a Datadog transition ("Triggered", "Recovered", ...), an alert_type, or a title starting with '
        '"[Triggered]"/"[Recovered]"; use the payload template in docs/datadog.md',
        fields.get("alert_transition"),
    )


def _fingerprint(fields: Mapping[str, str | None]) -> str:
    """The alert cycle key (links trigger and recovery) if sent, else a hash of monitor id and scope."""
    cycle = fields.get("alert_cycle_key")
    if cycle:
        return cycle
    parts = [fields.get("alert_id"), fields.get("alert_scope") or fields.get("tags")]
    if not parts[0]:
        parts = [fields.get("aggreg_key") or fields.get("id"), fields.get("title")]
    if not any(parts):
        raise PayloadError(
            "alert_cycle_key",
            "an alert identity: alert_cycle_key, alert_id, aggreg_key or id (see docs/datadog.md)",
        )
    return hashlib.sha256("\x00".join(p or "" for p in parts).encode()).hexdigest()[:16]


def _tags(text: str | None) -> dict[str, str]:
    """``"env:prod, deployment:checkout, monitor"`` → ``{"env": "prod", "deployment": "checkout"}``."""
    out: dict[str, str] = {}
    for item in (text or "").split(","):
        key, sep, value = item.strip().partition(":")
        if sep and key and value:
            out[key.strip()] = value.strip()
    return out


def _when(text: str | None, path: str) -> datetime | None:
    """Datadog dates are epoch milliseconds (``$DATE``); some templates send ISO 8601. Parse both."""
    if not text:
        return None
    if text.isdigit():
        millis = int(text)
        seconds = millis / 1000 if millis > 10**11 else float(millis)
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            raise PayloadError(path, "epoch milliseconds or an ISO 8601 time", text) from None
    try:
        return f.timestamp(text, path)
    except PayloadError:
        return None


def _severity(fields: Mapping[str, str | None]) -> str | None:
    priority = (fields.get("alert_priority") or "").upper()
    if priority in ("P1", "P2"):
        return "critical"
    if priority in ("P3", "P4", "P5"):
        return "warning"
    alert_type = (fields.get("alert_type") or "").lower()
    return {"error": "critical", "warning": "warning"}.get(alert_type)


def _title_scope(title: str) -> str | None:
    """The group of a multi-alert monitor from its title: ``[Triggered on {deployment:checkout}] ...``."""
    match = _TITLE_SCOPE.match(title)
    return match.group(1) if match else None


def _strip_state(title: str) -> str:
    """``[Triggered on {deployment:checkout}] checkout health low`` → ``checkout health low``."""
    return re.sub(r"^\s*\[[^\]]*\]\s*", "", title) or title
