"""``progressive``: take traffic off the canary step by step (e.g. 50 → 20 → 0), watching the stable side.

A rollback is usually a cliff: 100 % of traffic lands on the stable side at once. When the stable side is
sized for its current share only, or the problem is not the new version at all (a shared database, the
network), the cliff turns one incident into two. So at each step:

1. if the caller asked to stop (the alert resolved), stop and say where the split was left;
2. if the canary is CRITICAL (``request.critical``, or the context's optional ``canary_health``), skip the
   remaining intermediate steps and go straight to 0 — a critical canary is worse than any cliff;
3. otherwise ask ``ctx.stable_health``: UNHEALTHY or CRITICAL means the stable side is failing too, so
   moving more traffic onto it will not help: stop (OutcomeStatus.STOPPED) and report, holding the split;
   HEALTHY or UNKNOWN (no data yet: the stable side was the known good one) proceeds;
4. set the weights, unless the canary already has that share or less (never move traffic back *to* it);
5. wait ``request.step_interval`` seconds before the next step, observing the stable side.

After 0, if the target's spec still names the canary's revision (an Argo Rollout: abort alone leaves the
bad template, CONTRACTS.md §5.2), a final revert to the stable revision makes the spec agree.

Every step has a stable id (``weights:<name>:<canary %>``), so a crashed run continues where it stopped;
steps skipped by a critical jump are recorded as finished so a resumed run does not take them either.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import ClassVar

from strategies.base import (
    Capability,
    ExecutionContext,
    Health,
    Outcome,
    OutcomeStatus,
    Plan,
    PlanStep,
    Platform,
    RollbackRequest,
    canary_health,
)
from strategies.errors import InvalidRequestError, UnsupportedError
from strategies.undo import apply_step, config_notes, require, revert_step, reverted


def validate_steps(steps: Sequence[int]) -> tuple[int, ...]:
    """Canary weights to step through: integers 0..100, strictly decreasing. Raise InvalidRequestError."""
    out = tuple(steps)
    if not out:
        raise InvalidRequestError("progressive steps are empty; give canary weights such as (50, 20, 0)")
    for weight in out:
        if not isinstance(weight, int) or isinstance(weight, bool) or not 0 <= weight <= 100:
            raise InvalidRequestError(f"progressive step {weight!r} is not an integer canary weight 0..100")
    if any(b >= a for a, b in itertools.pairwise(out)):
        raise InvalidRequestError(f"progressive steps {list(out)} must strictly decrease, e.g. (50, 20, 0)")
    return out


def weights_step(platform: Platform, request: RollbackRequest, canary: int) -> PlanStep:
    weights = {"stable": 100 - canary, "canary": canary}
    return PlanStep(
        id=f"weights:{request.target.name}:{canary}",
        action="weights",
        target=request.target,
        params={"weights": weights},
        calls=tuple(platform.set_weights(request.target, weights, dry_run=True)),
    )


class Progressive:
    """Step the canary's weight down to 0 with stable-side health checks; see the module docstring."""

    name: ClassVar[str] = "progressive"
    requires: ClassVar[frozenset[Capability]] = frozenset({Capability.WEIGHTS})

    def plan(self, platform: Platform, request: RollbackRequest) -> Plan:
        steps = validate_steps(request.steps)
        state = platform.describe(request.target)
        require(state, self.requires, self.name, "without a traffic router use undo or blue_green")
        if "canary" not in state.traffic:
            raise UnsupportedError(f"{state.target} reports no canary share in its traffic {dict(state.traffic)}")
        current = state.traffic["canary"]
        notes: list[str] = []
        if steps[-1] != 0:
            steps = (*steps, 0)
            notes.append("steps did not end at 0; a rollback ends with the canary at 0%, so 0 was added")
        if request.critical:
            weights = [0] if current > 0 else []
            notes.append("critical signal: straight to 0%, no intermediate steps")
        elif not state.gradual_weights:
            weights = [0] if current > 0 else []
            notes.append(
                f"{state.target.name}'s weights are owned by its controller ({state.router}); only the jump "
                "to 0% "
                "is possible, so this runs as a single step"
            )
        else:
            weights = [w for w in steps if w < current]
        if current == 0:
            notes.append(f"the canary of {state.target.name} already receives 0%")
        plan_steps = [weights_step(platform, request, w) for w in weights]
        if (
            Capability.REVERT in state.capabilities
            and state.stable_revision is not None
            and state.current_revision is not None
            and state.stable_revision != state.current_revision
        ):
            plan_steps.append(revert_step(platform, state, state.stable_revision))
            notes += config_notes(state, state.stable_revision)
        notes.append(f"canary share now {current}%; path {' -> '.join(f'{w}%' for w in weights) or 'none'}")
        return Plan(self.name, request, tuple(plan_steps), tuple(notes))

    def execute(self, platform: Platform, plan: Plan, ctx: ExecutionContext) -> Outcome:
        target = plan.request.target
        ran: list[str] = []
        skipped: list[str] = []
        jumped = False
        for step in plan.steps:
            if ctx.finished(step) is not None:
                skipped.append(step.id)
                continue
            reason = ctx.stop_requested()
            if reason:
                return Outcome(OutcomeStatus.STOPPED, f"stopped before {step.id}: {reason}", tuple(ran), tuple(skipped))
            if step.action == "revert":
                ctx.started(step)
                calls = apply_step(platform, step)
                if plan.request.wait_timeout > 0:
                    platform.wait_ready(target, plan.request.wait_timeout)
                ctx.completed(step, {"calls": [c.as_dict() for c in calls]})
                ran.append(step.id)
                continue
            canary = step.params["weights"]["canary"]
            critical = plan.request.critical or canary_health(ctx, target) == Health.CRITICAL
            if canary > 0 and (critical or jumped):
                ctx.started(step)
                ctx.completed(step, {"skipped": "critical canary: jumping to 0%", "calls": []})
                skipped.append(step.id)
                jumped = True
                continue
            health = Health.UNKNOWN if (critical or jumped) else ctx.stable_health(target)
            if health in (Health.UNHEALTHY, Health.CRITICAL):
                share = platform.describe(target).traffic.get("canary")
                return Outcome(
                    OutcomeStatus.STOPPED,
                    f"the stable side of {target} is {health.value} too; holding the canary at {share}% "
                    "instead "
                    "of moving more traffic onto it. The cause may not be the new version (shared "
                    "dependency, "
                    "capacity): investigate, then resume or roll back by hand",
                    tuple(ran),
                    tuple(skipped),
                )
            ctx.started(step)
            share = platform.describe(target).traffic.get("canary")
            result: dict[str, object] = {"stable_health": health.value, "canary_before": share}
            if share is not None and share <= canary:
                result.update(calls=[], note=f"canary already at {share}% (<= {canary}%), nothing to move")
            else:
                calls = platform.set_weights(target, step.params["weights"])
                result["calls"] = [c.as_dict() for c in calls]
            if plan.request.wait_timeout > 0:
                platform.wait_ready(target, plan.request.wait_timeout)
            ctx.completed(step, result)
            ran.append(step.id)
            if canary > 0 and plan.request.step_interval > 0:
                ctx.sleep(plan.request.step_interval)
        return Outcome(OutcomeStatus.SUCCEEDED, "", tuple(ran), tuple(skipped))

    def verify(self, platform: Platform, plan: Plan) -> bool | None:
        state = platform.describe(plan.request.target)
        if state.traffic.get("canary") != 0:
            return False
        return all(reverted(platform, s) for s in plan.steps if s.action == "revert")
