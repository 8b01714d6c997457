"""Grafana alerting's webhook contact point: Alertmanager's envelope with extra fields.

Grafana sends ``version: "1"`` with ``orgId``, ``title``, ``state``, ``message`` and per-alert ``values``,
``valueString``, ``dashboardURL``, ``panelURL``, ``silenceURL``. The alert list, labels, ``startsAt``,
``endsAt`` and ``fingerprint`` follow Alertmanager, so the same alert parser applies; the extras only feed
the value and the links.
"""

from __future__ import annotations

from typing import Any

from webhooks import _fields as f
from webhooks.alertmanager import SUPPORTED_VERSION, _parse_envelope
from webhooks.errors import PayloadError
from webhooks.model import IdentityRules, Notification

GRAFANA_VERSIONS = ("1", SUPPORTED_VERSION)


def parse_grafana(body: Any, *, rules: IdentityRules | None = None) -> Notification:
    """Parse a decoded Grafana alerting webhook body; raise :class:`PayloadError` naming the bad field."""
    root = f.obj(body, "")
    version = f.string(root, "version", "", default="1")
    if version not in GRAFANA_VERSIONS:
        raise PayloadError("version", '"1" (Grafana alerting webhook)', version)
    return _parse_envelope(root, "grafana", rules or IdentityRules())
