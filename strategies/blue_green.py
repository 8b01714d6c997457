"""``blue_green``: send all traffic back to the idle colour, which still runs the previous version.

The fastest rollback there is (one selector write, no pods to start) as long as the idle colour is up;
the platform checks that and scales it up first if it was at zero. When the colours are revisions of one
workload (an Argo blue-green Rollout), the switch is followed by a revert to that colour's revision, so the
workload's spec agrees with what serves traffic and its controller does not promote the bad version again.
"""

from __future__ import annotations

from typing import ClassVar

from strategies.base import (
    Capability,
    ExecutionContext,
    Outcome,
    Plan,
    PlanStep,
    Platform,
    RollbackRequest,
    TargetState,
)
from strategies.errors import UnsupportedError
from strategies.undo import config_notes, require, revert_step, reverted, run_steps


def choose_color(state: TargetState, wanted: str | None) -> str:
    """The colour to make active: ``wanted``, else the only other one, else the previous revision's."""
    if wanted is not None:
        if wanted not in state.colors:
            raise UnsupportedError(f"{state.target} has colours {list(state.colors)}, not {wanted!r}")
        return wanted
    others = [c for c in state.colors if c != state.active_color]
    if len(others) == 1:
        return others[0]
    active_revision = state.color_revisions.get(state.active_color or "")
    older = sorted(
        (state.color_revisions[c], c)
        for c in others
        if c in state.color_revisions and (active_revision is None or state.color_revisions[c] < active_revision)
    )
    if older:
        return older[-1][1]
    if not others:
        raise UnsupportedError(
            f"{state.target} has no idle colour to switch to (colours: {list(state.colors) or 'none'}); "
            "the previous version is not running. Use strategy undo"
        )
    raise UnsupportedError(
        f"{state.target} has colours {list(state.colors)} (active {state.active_color}); say which one to "
        "make "
        "active (RollbackRequest.to_color)"
    )


class BlueGreen:
    """Switch the active colour back; then, if colours are revisions of one workload, revert to it."""

    name: ClassVar[str] = "blue_green"
    requires: ClassVar[frozenset[Capability]] = frozenset({Capability.SWITCH})

    def plan(self, platform: Platform, request: RollbackRequest) -> Plan:
        state = platform.describe(request.target)
        require(state, self.requires, self.name, "a workload without colours rolls back with undo or progressive")
        color = choose_color(state, request.to_color)
        notes: list[str] = []
        steps: list[PlanStep] = []
        if color == state.active_color:
            notes.append(f"{color} is already the active colour of {state.target.name}; nothing to switch")
        else:
            steps.append(
                PlanStep(
                    id=f"switch:{state.target.name}:{color}",
                    action="switch",
                    target=state.target,
                    params={"color": color, "from": state.active_color},
                    calls=tuple(platform.switch(state.target, color, dry_run=True)),
                )
            )
        revision = state.color_revisions.get(color)
        if revision is not None and Capability.REVERT in state.capabilities and revision != state.current_revision:
            steps.append(revert_step(platform, state, revision))
            notes += config_notes(state, revision)
        return Plan(self.name, request, tuple(steps), tuple(notes))

    def execute(self, platform: Platform, plan: Plan, ctx: ExecutionContext) -> Outcome:
        return run_steps(platform, plan, ctx)

    def verify(self, platform: Platform, plan: Plan) -> bool | None:
        state = platform.describe(plan.request.target)
        for step in plan.steps:
            if step.action == "switch" and state.active_color != step.params["color"]:
                return False
            if step.action == "revert" and not reverted(platform, step):
                return False
        return True
