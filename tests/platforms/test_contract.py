"""The contract every platform passes: describe, revert, weights, switch, idempotence, and the error split.

Parametrized over the platforms (cases.py builds the same situations on each engine: dry-run, ECS on moto,
Swarm on a local dockerd, Kubernetes on the sandbox API server). What a platform cannot have is not
skipped: the engine-only checks (missing targets, unreachable engine, absent capabilities) are
parametrized over ``ENGINES`` only, because the dry-run platform invents every target. The strategies
themselves run on every platform in test_strategy_contract.py.
"""

from __future__ import annotations

import pytest

from strategies import STRATEGIES
from strategies.base import Capability, RollbackRequest, template_fingerprint
from strategies.context import MemoryContext
from strategies.errors import (
    InvalidRequestError,
    NoPreviousRevisionError,
    PermanentError,
    PlatformError,
    RevisionNotFoundError,
    TargetNotFoundError,
    TemporaryError,
    UnsupportedError,
)
from strategies.undo import Undo

from .cases import ALL, ENGINES, Case, dump, each

WAIT = 60.0


# -- describe ----------------------------------------------------------------------------------------------
@each(ALL)
def test_describe_reports_history_and_capabilities(case: Case) -> None:
    platform, target = case.revertible()
    state = platform.describe(target)
    numbers = [r.number for r in state.revisions]
    assert state.target == target
    assert len(numbers) >= 3, dump(state)
    assert state.current_revision == max(numbers), dump(state)
    assert state.previous_revision() is not None
    assert Capability.REVERT in state.capabilities
    assert state.revision(state.current_revision).image == case.image(target)  # type: ignore[union-attr]
    assert state.ready


# -- revert ------------------------------------------------------------------------------------------------
@each(ALL)
def test_revert_dry_run_lists_calls_and_changes_nothing(case: Case) -> None:
    platform, target = case.revertible()
    before = case.image(target)
    calls = platform.revert(target, dry_run=True)
    assert calls and all(c.method and c.path for c in calls)
    assert case.image(target) == before
    assert platform.describe(target).current_revision == 3


@each(ALL)
def test_revert_to_previous_then_to_given_revision(case: Case) -> None:
    platform, target = case.revertible()
    state = platform.describe(target)
    previous = state.revision(state.previous_revision())  # type: ignore[arg-type]
    oldest = state.revision(min(r.number for r in state.revisions))
    assert previous is not None and oldest is not None

    platform.revert(target)
    after = platform.wait_ready(target, WAIT)
    assert case.image(target) == previous.image
    current = after.revision(after.current_revision)  # type: ignore[arg-type]
    assert current is not None
    assert template_fingerprint(current.template) == template_fingerprint(previous.template)

    platform.revert(target, oldest.number)
    platform.wait_ready(target, WAIT)
    assert case.image(target) == oldest.image


@each(ALL)
def test_revert_twice_is_harmless(case: Case) -> None:
    platform, target = case.revertible()
    oldest = min(r.number for r in platform.describe(target).revisions)
    platform.revert(target, oldest)
    first = platform.wait_ready(target, WAIT)
    image = case.image(target)
    platform.revert(target, oldest)
    second = platform.wait_ready(target, WAIT)
    assert case.image(target) == image
    assert second.current_revision == first.current_revision


@each(ALL)
def test_undo_plans_executes_verifies_and_resumes_without_repeating(case: Case) -> None:
    platform, target = case.revertible()
    request = RollbackRequest(target, wait_timeout=WAIT)
    undo = STRATEGIES["undo"]()
    assert isinstance(undo, Undo)
    plan = undo.plan(platform, request)
    assert plan.steps and plan.steps[0].calls
    ctx = MemoryContext(sleep=lambda _s: None)

    outcome = undo.execute(platform, plan, ctx)
    assert outcome.status == "succeeded", outcome
    assert undo.verify(platform, plan) is True
    image = case.image(target)

    again = undo.execute(platform, plan, ctx)  # same progress record: every step is skipped
    assert again.steps_run == () and again.steps_skipped == tuple(s.id for s in plan.steps)

    # Progress lost in a crash: the step re-checks the target and writes nothing.
    lost = MemoryContext(sleep=lambda _s: None)
    resumed = undo.execute(platform, plan, lost)
    assert resumed.status == "succeeded"
    assert lost.results[plan.steps[0].id] == {"calls": []}
    assert case.image(target) == image


@each(ALL)
def test_unknown_revision_is_permanent(case: Case) -> None:
    platform, target = case.revertible()
    with pytest.raises(RevisionNotFoundError) as err:
        platform.revert(target, 999)
    assert isinstance(err.value, PermanentError)
    assert "999" in str(err.value)


@each(ALL)
def test_nothing_to_roll_back_to_is_permanent(case: Case) -> None:
    platform, target = case.single_revision()
    with pytest.raises(NoPreviousRevisionError):
        platform.revert(target)
    with pytest.raises(NoPreviousRevisionError):
        Undo().plan(platform, RollbackRequest(target))


# -- traffic -----------------------------------------------------------------------------------------------
@each(ALL)
def test_weights_step_back_like_a_progressive_rollback(case: Case) -> None:
    platform, target = case.weighted()
    state = platform.describe(target)
    assert Capability.WEIGHTS in state.capabilities
    assert state.traffic == case.weights(target)

    before = case.weights(target)
    assert platform.set_weights(target, {"stable": 80, "canary": 20}, dry_run=True)
    assert case.weights(target) == before

    for canary in (50, 20, 0):
        platform.set_weights(target, {"stable": 100 - canary, "canary": canary})
        platform.wait_ready(target, WAIT)
        real = case.weights(target)
        assert abs(real["canary"] - canary) <= case.weight_tolerance, (canary, real)
        assert platform.describe(target).traffic == real
    platform.set_weights(target, {"stable": 100, "canary": 0})  # again: nothing changes
    assert case.weights(target) == {"stable": 100, "canary": 0}


@each(ALL)
def test_weights_that_do_not_sum_to_100_are_refused(case: Case) -> None:
    platform, target = case.weighted()
    with pytest.raises(InvalidRequestError, match="sum to 100"):
        platform.set_weights(target, {"stable": 70, "canary": 20})


@each(ALL)
def test_switch_makes_the_other_colour_active(case: Case) -> None:
    platform, target = case.colored()
    state = platform.describe(target)
    assert Capability.SWITCH in state.capabilities
    assert state.active_color == "blue" == case.active(target)
    assert set(state.colors) == {"blue", "green"}

    assert platform.switch(target, "green", dry_run=True)
    assert case.active(target) == "blue"

    platform.switch(target, "green")
    platform.wait_ready(target, WAIT)
    assert case.active(target) == "green"
    assert platform.describe(target).active_color == "green"
    platform.switch(target, "green")  # again: still green
    assert case.active(target) == "green"

    with pytest.raises(UnsupportedError):
        platform.switch(target, "purple")


# -- engine-only: errors and absent capabilities -----------------------------------------------------------
@each(ENGINES)
def test_missing_target_is_permanent(case: Case) -> None:
    platform, target = case.missing()
    with pytest.raises(TargetNotFoundError):
        platform.describe(target)
    with pytest.raises(TargetNotFoundError):
        platform.revert(target, dry_run=True)


@each(ENGINES)
def test_unreachable_engine_is_temporary(case: Case) -> None:
    platform, target = case.unreachable()
    for action in (
        lambda: platform.describe(target),
        lambda: platform.revert(target, dry_run=True),
        lambda: platform.wait_ready(target, 0.1),
    ):
        with pytest.raises(TemporaryError) as err:
            action()
        assert err.value.delay > 0
        assert err.value.__cause__ is not None  # the client's exception is chained, not leaked


@each(ENGINES)
def test_weights_and_switch_without_a_router_are_unsupported(case: Case) -> None:
    platform, target = case.revertible()
    state = platform.describe(target)
    assert Capability.WEIGHTS not in state.capabilities
    assert Capability.SWITCH not in state.capabilities
    with pytest.raises(UnsupportedError, match=r"weight|canary|router"):
        platform.set_weights(target, {"stable": 100, "canary": 0})
    with pytest.raises(UnsupportedError, match=r"colou?rs"):
        platform.switch(target, "blue")


@each(ALL)
def test_unknown_traffic_side_is_refused(case: Case) -> None:
    platform, target = case.weighted()
    with pytest.raises(InvalidRequestError, match="preview"):
        platform.set_weights(target, {"stable": 50, "preview": 50})


@each(ALL)
def test_every_error_is_a_platform_error(case: Case) -> None:
    platform, target = case.revertible()
    for action in (
        lambda: platform.revert(target, 12345),
        lambda: platform.set_weights(target, {"stable": 1, "canary": 1}),
    ):
        with pytest.raises(PlatformError):
            action()
