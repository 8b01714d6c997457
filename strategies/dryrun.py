"""The record-only platform: it changes nothing real and remembers every call it was asked to make.

It serves ``observe`` mode, ``make run`` before a cluster exists, and tests of the reactor that are not
about a particular orchestrator. It keeps an in-memory model of each target so that a strategy's
``verify`` sees the effect of its own writes; a target it has never heard of is described as having two
revisions (1 and 2, current 2), which is enough for every strategy to produce a plan.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar

from strategies.base import ApiCall, Capability, Revision, TargetRef, TargetState
from strategies.errors import InvalidRequestError, NoPreviousRevisionError, RevisionNotFoundError, UnsupportedError

ALL_CAPABILITIES = frozenset(Capability)


def _default_state(target: TargetRef) -> TargetState:
    return TargetState(
        target=target,
        current_revision=2,
        revisions=(Revision(1, name=f"{target.name}-1"), Revision(2, name=f"{target.name}-2")),
        stable_revision=1,
        traffic={"stable": 0, "canary": 100},
        active_color="green",
        colors=("blue", "green"),
        capabilities=ALL_CAPABILITIES,
    )


class DryRunPlatform:
    """Record-only platform. ``targets`` seeds known targets; ``calls`` lists what was asked, in order."""

    name: ClassVar[str] = "dry-run"

    def __init__(self, targets: Mapping[str, TargetState] | None = None, **_options: Any) -> None:
        self._lock = threading.Lock()
        self._states: dict[TargetRef, TargetState] = {}
        for state in (targets or {}).values():
            self._states[state.target] = state
        self.calls: list[ApiCall] = []

    def describe(self, target: TargetRef) -> TargetState:
        with self._lock:
            return self._states.setdefault(target, _default_state(target))

    def _record(self, calls: list[ApiCall], dry_run: bool) -> list[ApiCall]:
        if not dry_run:
            with self._lock:
                self.calls.extend(calls)
        return calls

    def revert(self, target: TargetRef, revision: int | None = None, *, dry_run: bool = False) -> list[ApiCall]:
        state = self.describe(target)
        if revision is None:
            revision = state.previous_revision()
            if revision is None:
                raise NoPreviousRevisionError(f"{target} has no previous revision to roll back to")
        if state.revision(revision) is None:
            raise RevisionNotFoundError(f"revision {revision} of {target} is not in its history")
        note = f"revert to revision {revision}"
        calls = [ApiCall("REVERT", str(target), {"revision": revision}, note=note)]
        if not dry_run:
            with self._lock:
                self._states[target] = replace(state, current_revision=revision)
        return self._record(calls, dry_run)

    def set_weights(self, target: TargetRef, weights: Mapping[str, int], *, dry_run: bool = False) -> list[ApiCall]:
        state = self.describe(target)
        unknown = sorted(set(weights) - {"stable", "canary"})
        if unknown:
            raise InvalidRequestError(f"{target} has traffic sides ['stable', 'canary']; got unknown side(s) {unknown}")
        if sum(weights.values()) != 100:
            raise InvalidRequestError(f"weights must sum to 100, got {dict(weights)}")
        calls = [ApiCall("WEIGHTS", str(target), dict(weights), note="set traffic weights")]
        if not dry_run:
            with self._lock:
                self._states[target] = replace(state, traffic=dict(weights))
        return self._record(calls, dry_run)

    def switch(self, target: TargetRef, color: str, *, dry_run: bool = False) -> list[ApiCall]:
        state = self.describe(target)
        if state.colors and color not in state.colors:
            raise UnsupportedError(f"{target} has colours {list(state.colors)}, not {color!r}")
        calls = [ApiCall("SWITCH", str(target), {"active": color}, note=f"make {color} active")]
        if not dry_run:
            with self._lock:
                self._states[target] = replace(state, active_color=color)
        return self._record(calls, dry_run)

    def wait_ready(self, target: TargetRef, timeout: float) -> TargetState:
        return self.describe(target)
