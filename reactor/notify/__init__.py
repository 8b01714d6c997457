"""Notifications: channels, routing, asynchronous delivery, Grafana annotations and ChatOps approval.

The reactor uses four things from here:

* :class:`NotificationSettings` (``reactor.notify.config``): the ``notifications:`` section of its YAML;
* :class:`NotificationHub`: built once at start-up, ``publish(event)`` from the worker, ``close()`` at exit;
* :class:`Event` (``reactor.notify.events``): what the worker publishes at each step of a decision;
* :func:`create_blueprint` (``reactor.notify.chatops``): the Slack and signed-link approval endpoints.

Import :mod:`reactor.notify.chatops` explicitly (it needs Flask); the rest has no web dependency.
"""

from __future__ import annotations

from reactor.notify.channels import CHANNELS, Channel
from reactor.notify.config import (
    NotificationSettings,
    load_notification_settings,
    parse_notification_settings,
)
from reactor.notify.dispatcher import Delivery, DeliveryStatus
from reactor.notify.errors import (
    DeliveryError,
    NotificationConfigError,
    PermanentDeliveryError,
    SecretError,
    TemporaryDeliveryError,
)
from reactor.notify.events import Event, EventKind, Links, Reason, Severity, Step, sample_event
from reactor.notify.hub import NotificationHub
from reactor.notify.signing import ActionSigner, sign_action, verify_action

__all__ = [
    "CHANNELS",
    "ActionSigner",
    "Channel",
    "Delivery",
    "DeliveryError",
    "DeliveryStatus",
    "Event",
    "EventKind",
    "Links",
    "NotificationConfigError",
    "NotificationHub",
    "NotificationSettings",
    "PermanentDeliveryError",
    "Reason",
    "SecretError",
    "Severity",
    "Step",
    "TemporaryDeliveryError",
    "load_notification_settings",
    "parse_notification_settings",
    "sample_event",
    "sign_action",
    "verify_action",
]
