"""The strategies on the record-only platform: plans, idempotent execution, resume, health rules."""

from __future__ import annotations

from dataclasses import replace

import pytest

from strategies import (
    STRATEGIES,
    Capability,
    Health,
    InvalidRequestError,
    NoPreviousRevisionError,
    OutcomeStatus,
    PlanStep,
    RevisionNotFoundError,
    RollbackRequest,
    TargetRef,
    UnsupportedError,
    load_platform,
    validate_steps,
)
from strategies.base import Revision, TargetState
from strategies.blue_green import BlueGreen
from strategies.context import MemoryContext
from strategies.dryrun import DryRunPlatform
from strategies.partial import Partial, rollback_set
from strategies.progressive import Progressive
from strategies.undo import Undo

TARGET = TargetRef("dry-run", "local", "shop", "checkout")


class Crash(Exception):
    """The worker dies between a write and recording it."""


class CrashingContext(MemoryContext):
    """Raises on the ``n``-th completion, before recording it: a crash after the write."""

    def __init__(self, crash_on: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.crash_on = crash_on
        self.completions = 0

    def completed(self, step: PlanStep, result) -> None:
        self.completions += 1
        if self.completions == self.crash_on:
            raise Crash(step.id)
        super().completed(step, result)


def weights_written(platform: DryRunPlatform) -> list[int]:
    return [c.body["canary"] for c in platform.calls if c.method == "WEIGHTS"]


def test_registry_names_every_strategy_and_the_kubernetes_platform() -> None:
    assert set(STRATEGIES) == {"undo", "blue_green", "progressive", "partial"}
    assert all(cls.name == name for name, cls in STRATEGIES.items())
    assert load_platform("kubernetes").name == "kubernetes"
    with pytest.raises(ValueError, match=r"unknown platform .nope.; known: dry-run, ecs, kubernetes, swarm"):
        load_platform("nope")


# ------------------------------------------------------------------------------------------------ undo
def test_undo_plans_executes_and_is_idempotent() -> None:
    platform = DryRunPlatform()
    plan = Undo().plan(platform, RollbackRequest(TARGET))
    assert [s.id for s in plan.steps] == ["revert:checkout:1"]
    assert plan.steps[0].calls[0].body == {"revision": 1}
    ctx = MemoryContext()
    assert Undo().execute(platform, plan, ctx).status is OutcomeStatus.SUCCEEDED
    assert Undo().verify(platform, plan) is True
    again = Undo().execute(platform, plan, ctx)
    assert again.steps_skipped == ("revert:checkout:1",) and len(platform.calls) == 1


def test_undo_without_history_is_a_clear_permanent_error() -> None:
    only = TargetState(TARGET, current_revision=1, revisions=(Revision(1),), capabilities=frozenset(Capability))
    platform = DryRunPlatform({"t": only})
    with pytest.raises(NoPreviousRevisionError, match="no previous revision"):
        Undo().plan(platform, RollbackRequest(TARGET))
    with pytest.raises(RevisionNotFoundError, match=r"revision 7 .* is not in its history \[1\]"):
        Undo().plan(platform, RollbackRequest(TARGET, to_revision=7))


def test_undo_refuses_a_target_that_cannot_revert() -> None:
    state = TargetState(TARGET, None, colors=("blue", "green"), capabilities=frozenset({Capability.SWITCH}))
    with pytest.raises(UnsupportedError, match=r"needs revert .* rolls back with blue_green"):
        Undo().plan(DryRunPlatform({"t": state}), RollbackRequest(TARGET))


# ------------------------------------------------------------------------------------------ blue_green
def test_blue_green_switches_to_the_idle_colour() -> None:
    platform = DryRunPlatform()
    plan = BlueGreen().plan(platform, RollbackRequest(TARGET))
    assert [(s.action, s.params["color"]) for s in plan.steps] == [("switch", "blue")]
    ctx = MemoryContext()
    assert BlueGreen().execute(platform, plan, ctx).status is OutcomeStatus.SUCCEEDED
    assert platform.describe(TARGET).active_color == "blue" and BlueGreen().verify(platform, plan)
    assert BlueGreen().execute(platform, plan, MemoryContext()).status is OutcomeStatus.SUCCEEDED
    assert sum(c.method == "SWITCH" for c in platform.calls) == 1, "an already active colour is not switched again"


def test_blue_green_with_revision_colours_also_reverts() -> None:
    state = replace(
        DryRunPlatform().describe(TARGET),
        colors=("h1", "h2"),
        active_color="h2",
        color_revisions={"h1": 1, "h2": 2},
    )
    platform = DryRunPlatform({"t": state})
    plan = BlueGreen().plan(platform, RollbackRequest(TARGET))
    assert [s.id for s in plan.steps] == ["switch:checkout:h1", "revert:checkout:1"]
    BlueGreen().execute(platform, plan, MemoryContext())
    assert BlueGreen().verify(platform, plan)


def test_blue_green_errors_name_the_colours() -> None:
    with pytest.raises(UnsupportedError, match=r"colours \['blue', 'green'\], not 'red'"):
        BlueGreen().plan(DryRunPlatform(), RollbackRequest(TARGET, to_color="red"))
    lonely = replace(DryRunPlatform().describe(TARGET), colors=("green",), active_color="green")
    with pytest.raises(UnsupportedError, match=r"no idle colour .* Use strategy undo"):
        BlueGreen().plan(DryRunPlatform({"t": lonely}), RollbackRequest(TARGET))


# ----------------------------------------------------------------------------------------- progressive
def test_progressive_steps_down_and_checks_the_stable_side_each_time() -> None:
    platform = DryRunPlatform()
    asked: list[str] = []
    slept: list[float] = []
    ctx = MemoryContext(health=lambda t: asked.append(t.name) or Health.HEALTHY, sleep=slept.append)
    plan = Progressive().plan(platform, RollbackRequest(TARGET, steps=(50, 20, 0), step_interval=30))
    assert [s.id for s in plan.steps] == [
        "weights:checkout:50",
        "weights:checkout:20",
        "weights:checkout:0",
        "revert:checkout:1",
    ]
    outcome = Progressive().execute(platform, plan, ctx)
    assert outcome.status is OutcomeStatus.SUCCEEDED
    assert weights_written(platform) == [50, 20, 0]
    assert asked == ["checkout"] * 3 and slept == [30, 30], "observe between steps, not after the last"
    assert Progressive().verify(platform, plan) is True


def test_progressive_stops_when_the_stable_side_is_unhealthy_too_and_resumes_later() -> None:
    platform = DryRunPlatform()
    health = iter([Health.HEALTHY, Health.UNHEALTHY])
    plan = Progressive().plan(platform, RollbackRequest(TARGET))
    ctx = MemoryContext(health=lambda _t: next(health))
    outcome = Progressive().execute(platform, plan, ctx)
    assert outcome.status is OutcomeStatus.STOPPED
    assert "stable side" in outcome.message and "unhealthy" in outcome.message and "50%" in outcome.message
    assert weights_written(platform) == [50] and Progressive().verify(platform, plan) is False
    resumed = Progressive().execute(platform, plan, _continue(ctx))
    assert resumed.status is OutcomeStatus.SUCCEEDED and resumed.steps_skipped == ("weights:checkout:50",)
    assert weights_written(platform) == [50, 20, 0]


def _continue(ctx: MemoryContext) -> MemoryContext:
    """The same durable progress, now with a healthy stable side."""
    fresh = MemoryContext()
    fresh.results = ctx.results
    return fresh


def test_progressive_critical_request_goes_straight_to_zero() -> None:
    platform = DryRunPlatform()
    plan = Progressive().plan(platform, RollbackRequest(TARGET, critical=True))
    assert [s.id for s in plan.steps] == ["weights:checkout:0", "revert:checkout:1"]
    assert any("critical" in n for n in plan.notes)


def test_progressive_jumps_when_the_canary_turns_critical_and_remembers_it() -> None:
    platform = DryRunPlatform()
    canary = iter([Health.UNHEALTHY, Health.CRITICAL, Health.CRITICAL])
    ctx = MemoryContext(canary=lambda _t: next(canary, Health.CRITICAL))
    plan = Progressive().plan(platform, RollbackRequest(TARGET))
    outcome = Progressive().execute(platform, plan, ctx)
    assert outcome.status is OutcomeStatus.SUCCEEDED
    assert weights_written(platform) == [50, 0], "20 was skipped"
    assert ctx.results["weights:checkout:20"]["skipped"].startswith("critical")
    again = Progressive().execute(platform, plan, _continue(ctx))
    assert "weights:checkout:20" in again.steps_skipped and weights_written(platform) == [50, 0]


def test_progressive_honours_a_stop_request() -> None:
    platform = DryRunPlatform()
    stops = iter([None, "alert resolved"])
    plan = Progressive().plan(platform, RollbackRequest(TARGET))
    outcome = Progressive().execute(platform, plan, MemoryContext(stop=lambda: next(stops, "alert resolved")))
    assert outcome.status is OutcomeStatus.STOPPED and "alert resolved" in outcome.message
    assert weights_written(platform) == [50]


def test_progressive_crash_then_resume_repeats_nothing() -> None:
    platform = DryRunPlatform()
    plan = Progressive().plan(platform, RollbackRequest(TARGET))
    crashing = CrashingContext(crash_on=2)
    with pytest.raises(Crash, match="weights:checkout:20"):
        Progressive().execute(platform, plan, crashing)
    assert weights_written(platform) == [50, 20], "the write of 20 happened, its record did not"
    resumed = Progressive().execute(platform, plan, _continue(crashing))
    assert resumed.status is OutcomeStatus.SUCCEEDED
    assert resumed.steps_skipped == ("weights:checkout:50",)
    assert weights_written(platform) == [50, 20, 0], "20 was found done (share <= 20) and not written again"


def test_progressive_never_moves_traffic_back_to_the_canary() -> None:
    platform = DryRunPlatform()
    plan = Progressive().plan(platform, RollbackRequest(TARGET))
    platform.set_weights(TARGET, {"stable": 100, "canary": 0})  # someone already pulled the canary
    ctx = MemoryContext()
    Progressive().execute(platform, plan, ctx)
    assert weights_written(platform) == [0]
    assert "nothing to move" in ctx.results["weights:checkout:50"]["note"]


def test_progressive_collapses_to_one_step_when_weights_are_not_gradual() -> None:
    state = replace(DryRunPlatform().describe(TARGET), gradual_weights=False, router="argo")
    plan = Progressive().plan(DryRunPlatform({"t": state}), RollbackRequest(TARGET))
    assert plan.steps[0].id == "weights:checkout:0" and "single step" in " ".join(plan.notes)


def test_progressive_only_plans_steps_below_the_current_share_and_ends_at_zero() -> None:
    state = replace(DryRunPlatform().describe(TARGET), traffic={"stable": 70, "canary": 30})
    plan = Progressive().plan(DryRunPlatform({"t": state}), RollbackRequest(TARGET, steps=(50, 20, 10)))
    assert [s.params["weights"]["canary"] for s in plan.steps if s.action == "weights"] == [20, 10, 0]


@pytest.mark.parametrize(("steps", "message"), [((), "empty"), ((50, 60), "strictly decrease"), ((120,), "0..100")])
def test_progressive_steps_are_validated(steps: tuple[int, ...], message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        validate_steps(steps)


def test_progressive_needs_weights() -> None:
    state = TargetState(TARGET, 2, (Revision(1), Revision(2)), capabilities=frozenset({Capability.REVERT}))
    with pytest.raises(UnsupportedError, match="needs weights"):
        Progressive().plan(DryRunPlatform({"t": state}), RollbackRequest(TARGET))


# --------------------------------------------------------------------------------------------- partial
GRAPH = {"frontend": ["checkout", "cart"], "checkout": ["payments"], "cart": []}


def test_rollback_set_is_failing_plus_dependents_dependents_first() -> None:
    assert rollback_set(["payments"], GRAPH) == ["frontend", "checkout", "payments"]
    assert rollback_set(["cart"], GRAPH) == ["frontend", "cart"]
    assert rollback_set(["frontend"], GRAPH) == ["frontend"]
    with pytest.raises(InvalidRequestError, match="dependency cycle a -> b -> a"):
        rollback_set(["a"], {"a": ["b"], "b": ["a"]})


def test_partial_reverts_in_order_then_checks_consistency() -> None:
    platform = DryRunPlatform()
    request = RollbackRequest(
        TARGET.sibling("payments"),
        components=("payments",),
        dependencies=GRAPH,
        component_revisions={"frontend": 1},
    )
    plan = Partial().plan(platform, request)
    assert [s.id for s in plan.steps] == [
        "revert:frontend:1",
        "revert:checkout:1",
        "revert:payments:1",
        "check:payments:frontend,checkout,payments",
    ]
    ctx = MemoryContext()
    outcome = Partial().execute(platform, plan, ctx)
    assert outcome.status is OutcomeStatus.SUCCEEDED
    assert ctx.results[plan.steps[-1].id]["consistent"] is True
    assert [c.path.rsplit("/", 1)[1] for c in platform.calls] == ["frontend", "checkout", "payments"]
    assert Partial().verify(platform, plan)
    assert Partial().execute(platform, plan, ctx).steps_skipped == tuple(s.id for s in plan.steps)


def test_partial_fails_when_a_component_does_not_end_up_on_its_revision() -> None:
    """A revert recorded as done whose effect is gone (redeployed in between): the check catches it."""
    platform = DryRunPlatform()
    plan = Partial().plan(platform, RollbackRequest(TARGET, dependencies={"checkout": []}))
    ctx = MemoryContext()
    for step in plan.steps[:-1]:
        ctx.results[step.id] = {"calls": []}
    outcome = Partial().execute(platform, plan, ctx)
    assert outcome.status is OutcomeStatus.FAILED
    assert "inconsistent" in outcome.message and "checkout does not run revision 1" in outcome.message
