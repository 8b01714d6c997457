"""The channel plug-in family: one small protocol, one registry.

A channel is one configured destination (``slack-sre``, ``pagerduty-prod``). The hub asks it whether it
cares about an event kind (:meth:`Channel.accepts`) and the dispatcher calls :meth:`Channel.send` once per
attempt, from its own threads. ``send`` either returns :class:`Sent` or raises a
:class:`~reactor.notify.errors.DeliveryError`; retries, backoff, rate limits and recording are not its
business.

Adding a channel type: subclass :class:`ChannelBase` with an ``Options`` model, decorate it with
:func:`register`, and import its module in ``reactor/notify/channels/__init__.py``. Settings validation
derives the allowed ``type:`` values from :data:`CHANNELS`.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

import requests

from reactor.notify.events import Event, EventKind
from reactor.notify.http import Timeout
from reactor.notify.options import ChannelOptions, RateLimit
from reactor.notify.redact import Redactor
from reactor.notify.state import DecisionState


@dataclass(frozen=True)
class ApprovalLinks:
    """Signed, expiring URLs that approve or reject a held decision (see :mod:`reactor.notify.signing`)."""

    approve: str
    reject: str
    expires_at: float


@dataclass
class SendContext:
    """What a channel gets besides the event, for one attempt of one delivery."""

    delivery_id: str
    attempt: int
    #: Per (channel, decision) memory shared by all the decision's deliveries (Slack thread ts...).
    state: DecisionState
    #: Per delivery memory kept across retries (e.g. the SMS recipients already reached).
    scratch: dict[str, Any] = field(default_factory=dict)
    #: Builds the signed approve/reject links for a held decision; ``None`` when ChatOps is not set up.
    approval_links: Callable[[str], ApprovalLinks | None] = lambda source: None
    #: Slack interactive buttons can be used (the Slack signing secret is configured).
    slack_interactive: bool = False


@dataclass(frozen=True)
class Sent:
    """A delivered message: the id the remote side gave it (Slack ts, Twilio sid...), and what was done."""

    remote_id: str | None = None
    detail: str = ""


@runtime_checkable
class Channel(Protocol):
    """One configured destination."""

    type: ClassVar[str]
    name: str

    def accepts(self, kind: EventKind) -> bool:
        """Whether this channel has anything to do for events of ``kind`` (PagerDuty ignores steps)."""
        ...

    def send(self, event: Event, ctx: SendContext) -> Sent:
        """Deliver ``event`` once. Raise Temporary/PermanentDeliveryError on failure; never retry here."""
        ...


@dataclass(frozen=True)
class ChannelDeps:
    """Collaborators handed to every channel; tests pass their own, production uses the defaults."""

    http: requests.Session
    timeout: Timeout
    redactor: Redactor
    environ: Mapping[str, str] | None = None
    #: Seconds since the epoch; channels use it for message timestamps.
    clock: Callable[[], float] | None = None


class ChannelBase:
    """Shared plumbing: name, options, resolved secrets (registered with the redactor)."""

    Options: ClassVar[builtins.type[ChannelOptions]]
    type: ClassVar[str]
    #: The rate limit used when the configuration sets none.
    default_rate_limit: ClassVar[RateLimit | None] = None
    #: Event kinds this channel type acts on by default.
    handles: ClassVar[frozenset[EventKind]] = frozenset(EventKind)

    def __init__(self, name: str, options: ChannelOptions, deps: ChannelDeps) -> None:
        self.name = name
        self.options = options
        self.deps = deps
        self.secrets = options.resolve_secrets(deps.environ)
        for value in self.secrets.values():
            deps.redactor.add(value)

    def accepts(self, kind: EventKind) -> bool:
        return kind in self.handles

    def now(self) -> float:
        """Seconds since the epoch, from the injected clock (signature timestamps)."""
        return (self.deps.clock or time.time)()

    def send(self, event: Event, ctx: SendContext) -> Sent:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


#: Channel types by their ``type:`` name in the settings.
CHANNELS: dict[str, type[ChannelBase]] = {}

_C = TypeVar("_C", bound=type[ChannelBase])


def register(cls: _C) -> _C:
    """Class decorator: make ``cls`` available as ``type: <cls.type>`` in the settings."""
    if cls.type in CHANNELS and CHANNELS[cls.type] is not cls:
        raise ValueError(f"channel type {cls.type!r} is registered twice")
    CHANNELS[cls.type] = cls
    return cls
