"""Signatures: Slack request verification, signed approval links, and our own webhook signature.

All three are HMAC-SHA256 compared in constant time. Each has its own secret in the settings, so a
leaked webhook receiver secret cannot mint approval links.

**Approval links** (e-mail, Teams, Slack without interactivity) carry the decision, the action, the
channel type they were sent to and an expiry, signed with ``chatops.link_secret``::

    v1.<base64url(json payload)>.<base64url(hmac)>

Rotating the secret: move the old one to ``chatops.previous_link_secrets``; links signed with it keep
working until they expire.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

#: ``action_id`` of the Slack buttons; the ChatOps endpoint acts on these two only.
SLACK_APPROVE_ACTION = "smart_rollback_approve"
SLACK_REJECT_ACTION = "smart_rollback_reject"
#: Slack's own recommendation: refuse requests whose timestamp is more than five minutes off.
SLACK_MAX_SKEW_SECONDS = 300
ACTIONS = ("approve", "reject")
_TOKEN_VERSION = "v1"  # noqa: S105 - a format version, not a secret


class SignatureError(Exception):
    """A request or token whose signature does not hold. ``str()`` says why, safe to show."""


class SlackSignatureError(SignatureError):
    pass


class ActionTokenError(SignatureError):
    pass


class ExpiredActionToken(ActionTokenError):
    pass


class InvalidActionToken(ActionTokenError):
    """Malformed or tampered with (or signed with a secret we do not know)."""


# -- Slack -----------------------------------------------------------------------------------------


def slack_signature(signing_secret: str, timestamp: str, body: bytes) -> str:
    """``X-Slack-Signature`` for ``body``: ``v0=`` + hex HMAC-SHA256 over ``v0:<timestamp>:<body>``."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()


def verify_slack_request(
    signing_secret: str,
    *,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: float | None = None,
    max_skew: float = SLACK_MAX_SKEW_SECONDS,
) -> None:
    """Raise :class:`SlackSignatureError` unless the request really comes from Slack, recently.

    The timestamp check stops replays of a captured request; the raw body must be the exact bytes
    received (verify before parsing the form).
    """
    if not timestamp or not signature:
        raise SlackSignatureError("missing X-Slack-Request-Timestamp or X-Slack-Signature header")
    try:
        sent = float(timestamp)
    except ValueError:
        raise SlackSignatureError("X-Slack-Request-Timestamp is not a number") from None
    current = time.time() if now is None else now
    if abs(current - sent) > max_skew:
        raise SlackSignatureError(
            f"request timestamp is {abs(current - sent):.0f} s away from our clock (limit {max_skew:.0f} s): "
            "a replay, or this host's clock is wrong"
        )
    expected = slack_signature(signing_secret, timestamp, body)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise SlackSignatureError("signature mismatch: wrong signing secret or the body was altered")


# -- approval links --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedAction:
    decision_id: str
    action: str
    expires_at: float
    #: The channel type the link was sent through (email, teams, slack...), recorded as the source.
    source: str


class ActionSigner:
    """Signs and verifies approval links with ``secret`` (and accepts ``previous_secrets``)."""

    def __init__(
        self,
        secret: str,
        *,
        previous_secrets: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret:
            raise ValueError("the link secret must not be empty")
        self._secret = secret.encode()
        self._keys = [self._secret, *(s.encode() for s in previous_secrets if s)]
        self._clock = clock

    def sign_action(self, decision_id: str, action: str, expires_at: float | datetime, *, source: str = "link") -> str:
        """A URL-safe token that approves or rejects ``decision_id`` until ``expires_at``."""
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
        expiry = expires_at.timestamp() if isinstance(expires_at, datetime) else float(expires_at)
        payload = json.dumps(
            {"d": decision_id, "a": action, "e": int(expiry), "s": source},
            separators=(",", ":"),
            sort_keys=True,
        ).encode()
        body = f"{_TOKEN_VERSION}.{_b64(payload)}"
        return f"{body}.{_b64(_mac(self._secret, body))}"

    def verify_action(self, token: str) -> SignedAction:
        """The action a token stands for; raises InvalidActionToken or ExpiredActionToken."""
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != _TOKEN_VERSION:
            raise InvalidActionToken("this link is malformed (was it cut when copied?)")
        body = f"{parts[0]}.{parts[1]}"
        try:
            given = _unb64(parts[2])
            payload = json.loads(_unb64(parts[1]))
        except (ValueError, binascii.Error):
            raise InvalidActionToken("this link is malformed (was it cut when copied?)") from None
        if not any(hmac.compare_digest(_mac(key, body), given) for key in self._keys):
            raise InvalidActionToken("this link's signature is not valid: it was altered or its secret rotated out")
        try:
            action = SignedAction(
                decision_id=str(payload["d"]),
                action=str(payload["a"]),
                expires_at=float(payload["e"]),
                source=str(payload.get("s") or "link"),
            )
        except (KeyError, TypeError, ValueError):
            raise InvalidActionToken("this link's content is incomplete") from None
        if action.action not in ACTIONS:
            raise InvalidActionToken(f"unknown action {action.action!r}")
        if self._clock() >= action.expires_at:
            raise ExpiredActionToken(
                f"this link expired at {datetime.fromtimestamp(action.expires_at).astimezone().isoformat()}; "
                "use the reactor's API or UI instead"
            )
        return action


def sign_action(
    decision_id: str, action: str, expires_at: float | datetime, *, secret: str, source: str = "link"
) -> str:
    """Module-level form of :meth:`ActionSigner.sign_action`."""
    return ActionSigner(secret).sign_action(decision_id, action, expires_at, source=source)


def verify_action(
    token: str, *, secret: str, previous_secrets: Iterable[str] = (), now: float | None = None
) -> SignedAction:
    """Module-level form of :meth:`ActionSigner.verify_action`."""
    clock = time.time if now is None else (lambda: now)
    return ActionSigner(secret, previous_secrets=previous_secrets, clock=clock).verify_action(token)


# -- our outgoing webhooks -------------------------------------------------------------------------


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    """``X-Smart-Rollback-Signature``: ``v1=`` + hex HMAC-SHA256 over ``v1:<timestamp>:<body>``."""
    return "v1=" + hmac.new(secret.encode(), b"v1:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()


def verify_webhook_signature(
    secret: str,
    *,
    timestamp: str,
    body: bytes,
    signature: str,
    now: float | None = None,
    max_skew: float = 300,
) -> bool:
    """What a receiver of our generic webhook runs (docs/notifications.md shows it standalone)."""
    try:
        skew = abs((time.time() if now is None else now) - float(timestamp))
    except ValueError:
        return False
    return skew <= max_skew and hmac.compare_digest(webhook_signature(secret, timestamp, body), signature)


def _mac(key: bytes, body: str) -> bytes:
    return hmac.new(key, body.encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
