"""Pure parsers of incoming alert notifications into one normalized :class:`Alert` model.

No web framework and no SDK here (import-linter keeps it so): the reactor hands over a decoded body and
gets back a :class:`Notification` or a :class:`PayloadError` naming the field and what was expected.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from webhooks.alertmanager import parse_alertmanager
from webhooks.datadog import parse_datadog
from webhooks.errors import PayloadError
from webhooks.grafana import parse_grafana
from webhooks.model import Alert, IdentityRules, Notification, TargetIdentity

#: The one parser registry: source name -> parser(body, rules=...).
PARSERS: dict[str, Callable[..., Notification]] = {
    "alertmanager": parse_alertmanager,
    "grafana": parse_grafana,
    "datadog": parse_datadog,
}


def parse(source: str, body: Any, *, rules: IdentityRules | None = None) -> Notification:
    """Parse ``body`` with the parser registered for ``source``."""
    try:
        parser = PARSERS[source]
    except KeyError:
        raise ValueError(f"unknown alert source {source!r}; known: {', '.join(sorted(PARSERS))}") from None
    return parser(body, rules=rules)


__all__ = [
    "PARSERS",
    "Alert",
    "IdentityRules",
    "Notification",
    "PayloadError",
    "TargetIdentity",
    "parse",
    "parse_alertmanager",
    "parse_datadog",
    "parse_grafana",
]
