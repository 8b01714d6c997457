"""Alertmanager webhook v4 (the body Alertmanager 0.25 posts; CONTRACTS §1) and Grafana alerting's variant.

Alertmanager facts the parser honours:

* ``version`` is ``"4"``; anything else is refused (a future format must not be half-understood).
* ``receiver`` arrives regex-escaped (``rollback\\.reactor``); we unescape it.
* ``endsAt`` is Go's zero time while firing; we return None.
* ``truncatedAlerts`` counts alerts cut by ``max_alerts``; they were never delivered, so we report it.
* Unknown keys (``notification_reason`` in 0.32, ``routeLabels`` in 0.34, Grafana's extras) are ignored.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from webhooks import _fields as f
from webhooks.errors import PayloadError
from webhooks.model import Alert, IdentityRules, Notification, Source, Status

SUPPORTED_VERSION = "4"
_STATUSES: tuple[Status, ...] = ("firing", "resolved")
_QUOTED = re.compile(r"\\(.)")


def parse_alertmanager(body: Any, *, rules: IdentityRules | None = None) -> Notification:
    """Parse a decoded Alertmanager webhook body; raise :class:`PayloadError` naming the bad field."""
    root = f.obj(body, "")
    version = f.string(root, "version", "")
    if version != SUPPORTED_VERSION:
        raise PayloadError("version", f'"{SUPPORTED_VERSION}" (Alertmanager webhook format v4)', version)
    return _parse_envelope(root, "alertmanager", rules or IdentityRules())


def _parse_envelope(root: Mapping[str, Any], source: Source, rules: IdentityRules) -> Notification:
    status = _status(root, "")
    alerts_value = root.get("alerts")
    if not isinstance(alerts_value, list):
        raise PayloadError("alerts", "a list of alerts", alerts_value)
    common_labels = f.string_map(root, "commonLabels", "")
    f.string_map(root, "groupLabels", "")
    f.string_map(root, "commonAnnotations", "")
    alerts = tuple(
        _parse_alert(item, f"alerts[{i}]", source, rules, common_labels) for i, item in enumerate(alerts_value)
    )
    return Notification(
        source=source,
        status=status,
        alerts=alerts,
        receiver=_QUOTED.sub(r"\1", f.string(root, "receiver", "", default="")),
        group_key=f.string(root, "groupKey", "", default=""),
        truncated_alerts=f.integer(root, "truncatedAlerts", ""),
        external_url=f.string(root, "externalURL", "", default=""),
        raw=root,
    )


def _status(parent: Mapping[str, Any], path: str) -> Status:
    value = f.string(parent, "status", path)
    for status in _STATUSES:
        if value == status:
            return status
    raise PayloadError(f"{path}.status" if path else "status", '"firing" or "resolved"', value)


def _parse_alert(item: Any, path: str, source: Source, rules: IdentityRules, common_labels: Mapping[str, str]) -> Alert:
    alert = f.obj(item, path)
    labels = f.string_map(alert, "labels", path)
    annotations = f.string_map(alert, "annotations", path)
    starts_at = f.timestamp(f.string(alert, "startsAt", path), f"{path}.startsAt")
    if starts_at is None:
        raise PayloadError(f"{path}.startsAt", "a real start time, not Go's zero time")
    ends_text = f.string(alert, "endsAt", path, default="")
    ends_at = f.timestamp(ends_text, f"{path}.endsAt") if ends_text else None
    fingerprint = f.string(alert, "fingerprint", path, default="") or _label_fingerprint(labels)
    merged = {**common_labels, **labels}
    return Alert(
        source=source,
        fingerprint=fingerprint,
        status=_status(alert, path),
        name=merged.get("alertname", ""),
        target=rules.identify(merged),
        starts_at=starts_at,
        ends_at=ends_at,
        severity=merged.get("severity") or None,
        failure_kind=merged.get("failure_kind") or None,
        strategy_hint=merged.get("strategy") or None,
        value=_value(alert, annotations, labels),
        labels=labels,
        annotations=annotations,
        generator_url=f.string(alert, "generatorURL", path, default=""),
        raw=alert,
    )


def _value(alert: Mapping[str, Any], annotations: Mapping[str, str], labels: Mapping[str, str]) -> float | None:
    """The alert's value: Grafana's ``values``, else a ``value`` annotation or label our rules add."""
    values = alert.get("values")
    if isinstance(values, dict):
        for candidate in values.values():
            if isinstance(candidate, int | float) and not isinstance(candidate, bool):
                return f.number(str(candidate))
    return f.number(annotations.get("value")) if "value" in annotations else f.number(labels.get("value"))


def _label_fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager always sends a fingerprint; senders that do not get a stable hash of the label set."""
    canonical = "\xff".join(f"{k}\xfe{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
