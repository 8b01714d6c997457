"""Which channels hear about an event: routes by target glob, severity and event kind.

Routes are tried in order, like Alertmanager's: the first route that matches decides, unless it says
``continue: true``, in which case later routes are tried too and the channels add up (each channel gets
an event once). With no routes at all, every channel gets every event it accepts.

Target globs match the identity ``platform/cluster/namespace/name`` with shell rules where ``*`` also
crosses ``/``: ``kubernetes/prod-*`` matches every target of the prod clusters, ``*/checkout`` every
target named checkout.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence

from pydantic import BaseModel, ConfigDict, Field

from reactor.notify.events import Event, EventKind, Severity


class RouteMatch(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Target globs; any one matching is enough.
    targets: tuple[str, ...] = ("*",)
    #: Exact severities (``[critical]``); ``None``: any.
    severities: tuple[Severity, ...] | None = None
    #: This severity or worse (``warning`` matches warning, error and critical).
    min_severity: Severity | None = None
    #: Event kinds; ``None``: all.
    events: tuple[EventKind, ...] | None = None

    def matches(self, event: Event) -> bool:
        if self.events is not None and event.kind not in self.events:
            return False
        if self.severities is not None and event.severity not in self.severities:
            return False
        if self.min_severity is not None and event.severity.rank < self.min_severity.rank:
            return False
        target = str(event.target)
        return any(fnmatch.fnmatchcase(target, glob) for glob in self.targets)


class Route(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    match: RouteMatch = RouteMatch()
    channels: tuple[str, ...] = Field(min_length=1)
    #: Keep trying the routes after this one when it matched.
    continue_: bool = Field(default=False, alias="continue")


class Router:
    def __init__(self, routes: Sequence[Route], channels: Iterable[str]) -> None:
        self.routes = tuple(routes)
        self.channels = tuple(channels)

    def channels_for(self, event: Event) -> list[str]:
        """Channel names for ``event``, in configuration order, without duplicates."""
        if not self.routes:
            return list(self.channels)
        chosen: list[str] = []
        for route in self.routes:
            if not route.match.matches(event):
                continue
            chosen += [name for name in route.channels if name not in chosen]
            if not route.continue_:
                break
        return chosen
