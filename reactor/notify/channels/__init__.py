"""Channel types. Importing this package registers every built-in type in :data:`CHANNELS`."""

from __future__ import annotations

# Each module registers its channel type(s) at import.
from reactor.notify.channels import email, opsgenie, pagerduty, slack, sms, teams, webhook  # noqa: F401
from reactor.notify.channels.base import (
    CHANNELS,
    ApprovalLinks,
    Channel,
    ChannelBase,
    ChannelDeps,
    SendContext,
    Sent,
    register,
)

__all__ = [
    "CHANNELS",
    "ApprovalLinks",
    "Channel",
    "ChannelBase",
    "ChannelDeps",
    "SendContext",
    "Sent",
    "register",
]
