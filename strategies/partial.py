"""``partial``: roll back only the failing components of a release, plus the components that depend on them.

Rolling back a whole multi-service release because one service misbehaves throws away good changes and
widens the blast radius; rolling back only the failing one can strand its dependents on an API they
expect but no longer get. So the set is: the failing components (``request.components``, by default the
target itself) plus every component that depends on one of them, transitively, per the dependency graph
(``request.dependencies`` from the policy, completed by what the platform knows, e.g. annotations).

Order: **dependents first**, then what they depend on (the reverse of a deploy). A new service normally
keeps its old API working for a release (expand/contract), so an old ``checkout`` against a new
``payments`` works, while a new ``checkout`` against an old ``payments`` may call an API that is gone.

A component that cannot revert but can switch (a blue-green Service over two workloads) switches back to
its other colour instead. A final consistency check confirms each component runs its planned revision
(or colour) and, with a
``wait_timeout``, that it and every component it depends on are ready. An inconsistency fails the
rollback (someone must look); readiness that does not come in time raises TemporaryError, so the caller
retries just the check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, ClassVar

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
)
from strategies.blue_green import choose_color
from strategies.errors import InvalidRequestError, PermanentError, TargetNotFoundError
from strategies.undo import apply_step, choose_revision, config_notes, require, revert_step, reverted


def rollback_set(failing: Sequence[str], graph: Mapping[str, Sequence[str]]) -> list[str]:
    """``failing`` plus every component that (transitively) depends on one of them, dependents first.

    Raise InvalidRequestError on a dependency cycle among them, naming it.
    """
    dependents: dict[str, set[str]] = {}
    for component, deps in graph.items():
        for dep in deps:
            dependents.setdefault(dep, set()).add(component)
    selected: set[str] = set()
    todo = list(failing)
    while todo:
        component = todo.pop()
        if component in selected:
            continue
        selected.add(component)
        todo.extend(sorted(dependents.get(component, ())))
    # Reverse topological order over the selected subgraph: a component comes after all its dependents.
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(component: str, path: list[str]) -> None:
        if state.get(component) == "done":
            return
        if state.get(component) == "active":
            cycle = [*path[path.index(component) :], component]
            raise InvalidRequestError(f"dependency cycle {' -> '.join(cycle)}; partial rollback needs an acyclic graph")
        state[component] = "active"
        for dependent in sorted(dependents.get(component, set()) & selected):
            visit(dependent, [*path, component])
        state[component] = "done"
        order.append(component)

    for component in sorted(selected):
        visit(component, [])
    # ``order`` lists each component after its dependents were appended: dependents first.
    return order


def _unchanged_since(state: TargetState, since: datetime | None) -> bool:
    """Whether the component's current revision was created before ``since`` (unknown: it may have changed)."""
    if since is None or state.current_revision is None:
        return False
    current = state.revision(state.current_revision)
    return current is not None and current.created_at is not None and current.created_at < since


class Partial:
    """Revert the failing components and their dependents, dependents first, then check consistency."""

    name: ClassVar[str] = "partial"
    requires: ClassVar[frozenset[Capability]] = frozenset({Capability.REVERT})

    def plan(self, platform: Platform, request: RollbackRequest) -> Plan:
        main = platform.describe(request.target)
        graph: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in main.dependencies.items()}
        graph.update({k: tuple(v) for k, v in request.dependencies.items()})
        failing = tuple(request.components) or (request.target.name,)
        order = rollback_set(failing, graph)
        steps: list[PlanStep] = []
        notes = [
            f"rollback set {order}: failing {list(failing)} plus their dependents, dependents first (a newer "
            "service keeps serving its older clients; the reverse is not guaranteed)"
        ]
        revisions: dict[str, int] = {}
        kept: list[str] = []
        for component in list(order):
            target = request.target.sibling(component)
            try:
                state = main if component == request.target.name else platform.describe(target)
            except TargetNotFoundError as exc:
                raise TargetNotFoundError(
                    f"component {component!r} of the rollback set {order} was not found: {exc}"
                ) from exc
            if component not in failing and _unchanged_since(state, request.changed_since):
                kept.append(component)
                order.remove(component)
                continue
            if Capability.REVERT not in state.capabilities and Capability.SWITCH in state.capabilities:
                # A blue-green component (two workloads, one Service) rolls back by switching colour.
                color = choose_color(state, None)
                steps.append(
                    PlanStep(
                        id=f"switch:{component}:{color}",
                        action="switch",
                        target=target,
                        params={"color": color, "from": state.active_color},
                        calls=tuple(platform.switch(target, color, dry_run=True)),
                    )
                )
                continue
            require(state, self.requires, self.name, f"component {component} can neither revert nor switch")
            wanted = request.component_revisions.get(component)
            if wanted is None and component == request.target.name:
                wanted = request.to_revision
            try:
                revision = choose_revision(state, wanted)
            except PermanentError as exc:
                raise type(exc)(f"component {component} of the rollback set {order}: {exc}") from exc
            revisions[component] = revision
            steps.append(revert_step(platform, state, revision))
            notes += config_notes(state, revision)
        if kept:
            notes.append(f"left alone {kept}: their current revision predates the failing deploy, so they did not "
                         "change with it")  # fmt: skip
        steps.append(
            PlanStep(
                id=f"check:{request.target.name}:{','.join(order)}",
                action="check",
                target=request.target,
                params={
                    "components": order,
                    "revisions": revisions,
                    "dependencies": {c: list(graph.get(c, ())) for c in order},
                },
            )
        )
        return Plan(self.name, request, tuple(steps), tuple(notes))

    def execute(self, platform: Platform, plan: Plan, ctx: ExecutionContext) -> Outcome:
        ran: list[str] = []
        skipped: list[str] = []
        for step in plan.steps:
            if ctx.finished(step) is not None:
                skipped.append(step.id)
                continue
            reason = ctx.stop_requested()
            if reason:
                return Outcome(OutcomeStatus.STOPPED, f"stopped before {step.id}: {reason}", tuple(ran), tuple(skipped))
            ctx.started(step)
            if step.action == "check":
                result = self.check(platform, plan)
                ctx.completed(step, result)
                ran.append(step.id)
                if not result["consistent"]:
                    return Outcome(
                        OutcomeStatus.FAILED,
                        "inconsistent after partial rollback: " + "; ".join(result["problems"]),
                        tuple(ran),
                        tuple(skipped),
                    )
                continue
            calls = apply_step(platform, step)
            ctx.completed(step, {"calls": [c.as_dict() for c in calls]})
            ran.append(step.id)
        return Outcome(OutcomeStatus.SUCCEEDED, "", tuple(ran), tuple(skipped))

    def check(self, platform: Platform, plan: Plan) -> dict[str, Any]:
        """Each reverted component runs its planned template; with a wait_timeout, all are ready."""
        problems: list[str] = []
        timeout = plan.request.wait_timeout
        rolled = {s.target.name: s for s in plan.steps if s.action in ("revert", "switch")}
        for name, step in rolled.items():
            if step.action == "switch":
                active = platform.describe(step.target).active_color
                if active != step.params["color"]:
                    problems.append(f"{name} has {active} active, not {step.params['color']}")
            elif not reverted(platform, step):
                problems.append(f"{name} does not run revision {step.params['revision']}'s template")
        checked_ready: list[str] = []
        if timeout > 0:
            check = next(s for s in plan.steps if s.action == "check")
            needed = set(rolled) | {d for deps in check.params["dependencies"].values() for d in deps}
            for name in sorted(needed):
                platform.wait_ready(plan.request.target.sibling(name), timeout)
                checked_ready.append(name)
        return {"consistent": not problems, "problems": problems, "ready": checked_ready}

    def verify(self, platform: Platform, plan: Plan) -> bool | None:
        quick = replace(plan, request=replace(plan.request, wait_timeout=0.0))
        return not self.check(platform, quick)["problems"]
