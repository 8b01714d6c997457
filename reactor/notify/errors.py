"""Errors of the notification subsystem.

Two families. Configuration errors (:class:`NotificationConfigError`, :class:`SecretError`) stop the
reactor at start-up with a message that says what to fix. Delivery errors are what a channel raises
for one send; the dispatcher retries :class:`TemporaryDeliveryError` (honouring ``retry_after``) and
gives up at once on :class:`PermanentDeliveryError`. Client-library exceptions never leave a channel:
each channel maps them onto these two, so retry policy lives in one place.

Messages of delivery errors end up in logs and in the audit trail, so they must never contain a
secret; channels build them from the host and status, and the dispatcher redacts them once more.
"""

from __future__ import annotations


class NotificationConfigError(ValueError):
    """The ``notifications:`` settings cannot be used. The message lists each problem and its fix."""


class SecretError(NotificationConfigError):
    """A secret reference (``*_env`` / ``*_file``) that cannot be read."""


class DeliveryError(Exception):
    """One send of one message failed."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: HTTP status (or SMTP reply code) when the remote side answered.
        self.status = status


class TemporaryDeliveryError(DeliveryError):
    """Worth retrying: timeouts, connection errors, 5xx, 429, SMTP 4xx."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, status=status)
        #: Seconds the remote side asked us to wait (``Retry-After``); ``None``: use the backoff.
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    """Retrying cannot help: bad credentials, unknown channel, invalid payload (4xx, SMTP 5xx)."""
