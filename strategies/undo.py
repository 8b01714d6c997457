"""``undo``: put the target's spec back to an earlier revision (``kubectl rollout undo`` and its kin)."""

from __future__ import annotations

from typing import ClassVar

from strategies.base import (
    Capability,
    ExecutionContext,
    Outcome,
    OutcomeStatus,
    Plan,
    PlanStep,
    Platform,
    RollbackRequest,
    TargetState,
    template_fingerprint,
)
from strategies.errors import NoPreviousRevisionError, RevisionNotFoundError, UnsupportedError


def choose_revision(state: TargetState, wanted: int | None) -> int:
    """The revision to return to: ``wanted`` if given, else the previous one. Raise if there is none."""
    if wanted is not None:
        if state.revision(wanted) is None:
            known = sorted(r.number for r in state.revisions)
            raise RevisionNotFoundError(f"revision {wanted} of {state.target} is not in its history {known}")
        return wanted
    previous = state.previous_revision()
    if previous is None:
        raise NoPreviousRevisionError(f"{state.target} has no previous revision to roll back to")
    return previous


def require(state: TargetState, needed: frozenset[Capability], strategy: str, hint: str = "") -> None:
    """Raise UnsupportedError naming what ``state.target`` lacks for ``strategy``."""
    missing = needed - state.capabilities
    if missing:
        have = ", ".join(sorted(c.value for c in state.capabilities)) or "none"
        raise UnsupportedError(
            f"strategy {strategy} needs {', '.join(sorted(c.value for c in missing))} on {state.target}, "
            "which "
            f"offers {have}" + (f"; {hint}" if hint else "")
        )


def config_notes(state: TargetState, revision: int) -> list[str]:
    """Plan notes for referenced config that has no snapshot (it will stay as it is now)."""
    rev = state.revision(revision)
    if rev is None:
        return []
    return [
        f"{state.target.name}: revision {revision} references {ref} but no snapshot of it exists; its "
        "current "
        "content stays (take snapshots when deploying, docs/kubernetes.md#config-snapshots)"
        for ref, snapshot in sorted(rev.config.items())
        if snapshot is None
    ]


def revert_step(platform: Platform, state: TargetState, revision: int) -> PlanStep:
    """A plan step reverting ``state.target`` to ``revision``, with the exact calls it will make."""
    target_rev = state.revision(revision)
    calls = platform.revert(state.target, revision, dry_run=True)
    return PlanStep(
        id=f"revert:{state.target.name}:{revision}",
        action="revert",
        target=state.target,
        params={
            "revision": revision,
            "from_revision": state.current_revision,
            "template": template_fingerprint(target_rev.template) if target_rev else None,
        },
        calls=tuple(calls),
    )


def reverted(platform: Platform, step: PlanStep) -> bool:
    """Whether the target now runs what ``step`` reverted to (by template if known, else by number)."""
    state = platform.describe(step.target)
    current = state.revision(state.current_revision) if state.current_revision is not None else None
    wanted = step.params.get("template")
    if wanted and current is not None and current.template:
        return template_fingerprint(current.template) == wanted
    return state.current_revision == step.params["revision"]


def run_steps(platform: Platform, plan: Plan, ctx: ExecutionContext) -> Outcome:
    """Run ``plan``'s revert/switch/weights steps in order, skipping those ``ctx`` says are finished."""
    ran: list[str] = []
    skipped: list[str] = []
    for step in plan.steps:
        if ctx.finished(step) is not None:
            skipped.append(step.id)
            continue
        reason = ctx.stop_requested()
        if reason:
            return Outcome(OutcomeStatus.STOPPED, reason, tuple(ran), tuple(skipped))
        ctx.started(step)
        calls = apply_step(platform, step)
        if plan.request.wait_timeout > 0:
            platform.wait_ready(step.target, plan.request.wait_timeout)
        ctx.completed(step, {"calls": [c.as_dict() for c in calls]})
        ran.append(step.id)
    return Outcome(OutcomeStatus.SUCCEEDED, "", tuple(ran), tuple(skipped))


def apply_step(platform: Platform, step: PlanStep) -> list:
    """Perform one primitive step for real."""
    if step.action == "revert":
        # Re-check first: after a crash between the write and its record the revert may already be done.
        if reverted(platform, step):
            return []
        return platform.revert(step.target, step.params["revision"])
    if step.action == "weights":
        if dict(platform.describe(step.target).traffic) == dict(step.params["weights"]):
            return []
        return platform.set_weights(step.target, step.params["weights"])
    if step.action == "switch":
        if platform.describe(step.target).active_color == step.params["color"]:
            return []
        return platform.switch(step.target, step.params["color"])
    raise ValueError(f"unknown step action {step.action!r}")


class Undo:
    """Revert the whole target to the previous (or requested) revision in one write."""

    name: ClassVar[str] = "undo"
    requires: ClassVar[frozenset[Capability]] = frozenset({Capability.REVERT})

    def plan(self, platform: Platform, request: RollbackRequest) -> Plan:
        state = platform.describe(request.target)
        require(state, self.requires, self.name, "a blue-green pair of workloads rolls back with blue_green")
        revision = choose_revision(state, request.to_revision)
        notes = config_notes(state, revision)
        canary = state.traffic.get("canary", 0)
        if canary and state.current_revision is not None and state.current_revision == state.stable_revision:
            # The target's own revision is the stable one: its canary share goes to another workload.
            notes.append(
                f"{state.target.name} sends {canary}% to a canary workload that undo does not touch; use "
                "progressive to take traffic off the canary"
            )
        return Plan(self.name, request, (revert_step(platform, state, revision),), tuple(notes))

    def execute(self, platform: Platform, plan: Plan, ctx: ExecutionContext) -> Outcome:
        return run_steps(platform, plan, ctx)

    def verify(self, platform: Platform, plan: Plan) -> bool | None:
        return all(reverted(platform, s) for s in plan.steps if s.action == "revert")
