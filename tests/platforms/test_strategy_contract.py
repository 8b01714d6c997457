"""Every strategy, end to end, on every platform: the parity promise of issue 8 checked on the real engines.

Each strategy runs plan -> execute -> verify -> execute again on the platforms whose targets have the
capability it needs (dry-run, ECS on moto, Swarm on a local dockerd, Kubernetes on the sandbox API server):

- planning writes nothing and lists the calls of every write step;
- the engine, read directly (cases.py), ends in the planned state;
- executing again with the same progress skips every step, and with the progress lost (a crash before
  anything was recorded) every step re-checks the target and writes nothing;
- progressive survives a crash between a write and its record: the resumed run skips what was recorded,
  finds the crashed step done, and writes only what is left.

Where a target lacks what a strategy needs, ``plan`` raises UnsupportedError naming the capability; the
matrix of what each kind of target supports on each platform is pinned below (docs/platforms.md#parity).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from strategies import STRATEGIES
from strategies.base import (
    OutcomeStatus,
    Plan,
    PlanStep,
    Platform,
    RollbackRequest,
    TargetRef,
)
from strategies.context import MemoryContext
from strategies.errors import UnsupportedError

from .cases import ALL, SCENARIOS, STRATEGY_NAMES, Case, Recorder, each

WAIT = 60.0


def no_sleep(_seconds: float) -> None:
    """Configured waits (``step_interval``) are policy, not platform behaviour: skipped in these tests."""


# -- the strategies, end to end --------------------------------------------------------------------------
@each(ALL)
@pytest.mark.parametrize("strategy", STRATEGY_NAMES)
def test_strategy_plans_executes_verifies_and_never_writes_twice(case: Case, strategy: str) -> None:
    scenario = SCENARIOS[strategy](case, WAIT)
    implementation = STRATEGIES[strategy]()
    platform = Recorder(scenario.platform)
    assert implementation.requires <= platform.describe(scenario.target).capabilities

    engine_before = case.writes()
    plan = implementation.plan(platform, scenario.request)
    assert platform.writes == [] and case.writes() == engine_before, "planning writes nothing"
    write_steps = [s for s in plan.steps if s.action != "check"]
    assert write_steps, plan.as_dict()
    assert all(s.calls for s in write_steps), f"every write step lists its calls: {plan.as_dict()}"

    ctx = MemoryContext(sleep=no_sleep)
    outcome = implementation.execute(platform, plan, ctx)
    assert outcome.status is OutcomeStatus.SUCCEEDED, outcome.message
    assert outcome.steps_run == tuple(s.id for s in plan.steps)
    assert implementation.verify(platform, plan) is True
    scenario.check()
    made, engine_made = platform.made(), case.writes()
    assert made > 0

    again = implementation.execute(platform, plan, ctx)  # the same progress record: nothing left to do
    assert again.status is OutcomeStatus.SUCCEEDED
    assert again.steps_run == () and again.steps_skipped == tuple(s.id for s in plan.steps)

    lost = MemoryContext(sleep=no_sleep)  # progress lost in a crash: each step re-checks the target
    resumed = implementation.execute(platform, plan, lost)
    assert resumed.status is OutcomeStatus.SUCCEEDED, resumed.message
    for step in write_steps:
        assert lost.results[step.id]["calls"] == [], f"{step.id} wrote again: {lost.results[step.id]}"
    assert platform.made() == made, f"a second write: {platform.writes}"
    assert case.writes() == engine_made, "the engine saw a second write"
    assert implementation.verify(platform, plan) is True
    scenario.check()


class Crash(Exception):
    """The worker dies."""


class CrashAfterWrite(MemoryContext):
    """A worker that dies after the ``n``-th step did its work but before that step was recorded."""

    def __init__(self, n: int) -> None:
        super().__init__(sleep=no_sleep)
        self.n = n

    def completed(self, step: PlanStep, result: Mapping[str, Any]) -> None:
        self.n -= 1
        if self.n == 0:
            raise Crash(step.id)
        super().completed(step, result)


@each(ALL)
def test_progressive_crash_in_the_middle_then_resume(case: Case) -> None:
    platform, target = case.weighted()
    request = RollbackRequest(target, steps=(40, 20, 0), wait_timeout=WAIT)
    progressive = STRATEGIES["progressive"]()
    plan = progressive.plan(platform, request)
    ids = [s.id for s in plan.steps]
    # Then a revert where the target's spec still names the canary's revision (the dry-run model does).
    reverts = [s.id for s in plan.steps if s.action == "revert"]
    assert ids == [f"weights:{target.name}:{w}" for w in (40, 20, 0)] + reverts, plan.as_dict()

    crashed = CrashAfterWrite(2)
    with pytest.raises(Crash, match=ids[1]):
        progressive.execute(platform, plan, crashed)
    assert list(crashed.results) == [ids[0]]
    assert abs(case.weights(target)["canary"] - 20) <= case.weight_tolerance, case.weights(target)

    # A new worker: the durable progress (step 40 recorded, step 20 not), the recorded plan.
    resumed = MemoryContext(sleep=no_sleep)
    resumed.results = dict(crashed.results)
    recorder = Recorder(platform)
    outcome = progressive.execute(recorder, plan, resumed)
    assert outcome.status is OutcomeStatus.SUCCEEDED, outcome.message
    assert outcome.steps_skipped == (ids[0],) and outcome.steps_run == tuple(ids[1:])
    assert resumed.results[ids[1]]["calls"] == [], "the crashed step was found done, not written again"
    written = [op for op, _target, calls in recorder.writes if calls]
    assert written == ["weights"] + ["revert"] * len(reverts), f"only what was left is written: {recorder.writes}"
    assert case.weights(target) == {"stable": 100, "canary": 0}
    assert progressive.verify(platform, plan) is True


# -- what each kind of target supports ---------------------------------------------------------------------
#: (platform, situation) -> the strategies that plan there; every other one must refuse with UnsupportedError.
SUPPORTED: dict[tuple[str, str], set[str]] = {
    # The dry-run model claims every capability, but a target still needs colours or a split to use them.
    ("dry-run", "revertible"): {"undo", "partial"},
    ("dry-run", "weighted"): {"undo", "progressive", "partial"},
    ("dry-run", "colored"): {"undo", "blue_green", "partial"},
    # A plain workload: revert only.
    ("ecs", "revertible"): {"undo", "partial"},
    ("swarm", "revertible"): {"undo", "partial"},
    ("kubernetes", "revertible"): {"undo", "partial"},
    # A canary split: the ECS service and the stable Deployment keep their own history; Swarm's target is
    # the pair of services, which has none of its own.
    ("ecs", "weighted"): {"undo", "progressive", "partial"},
    ("swarm", "weighted"): {"progressive"},
    ("kubernetes", "weighted"): {"undo", "progressive", "partial"},
    # Blue-green: on ECS the colours are target groups in front of one service (which still reverts); on
    # Swarm and Kubernetes they are two workloads, and partial switches such a component back.
    ("ecs", "colored"): {"undo", "blue_green", "partial"},
    ("swarm", "colored"): {"blue_green", "partial"},
    ("kubernetes", "colored"): {"blue_green", "partial"},
}


@each(ALL)
def test_each_strategy_plans_or_refuses_with_a_clear_permanent_error(case: Case) -> None:
    situations: dict[str, Callable[[], tuple[Platform, TargetRef]]] = {
        "revertible": case.revertible,
        "weighted": case.weighted,
        "colored": case.colored,
    }
    for situation, build in situations.items():
        platform, target = build()
        capabilities = platform.describe(target).capabilities
        supported = SUPPORTED[(case.name, situation)]
        for name in STRATEGY_NAMES:
            strategy = STRATEGIES[name]()
            request = RollbackRequest(target, steps=(20, 0))
            where = f"{name} on a {situation} {case.name} target"
            if name in supported:
                plan: Plan = strategy.plan(platform, request)
                assert plan.steps, f"{where}: {plan.as_dict()}"
                continue
            with pytest.raises(UnsupportedError) as refused:
                strategy.plan(platform, request)
            missing = sorted(c.value for c in strategy.requires - capabilities)
            # The dry-run model claims every capability; its targets lack the colours or split instead.
            pattern = f"needs ({'|'.join(missing)})" if missing else "no idle colour|no canary share"
            assert refused.match(pattern), where


@each(ALL)
def test_partial_without_a_dependency_graph_rolls_back_only_the_failing_component(case: Case) -> None:
    """No graph in the request and none on the platform: checkout keeps its new version."""
    platform, target = case.release()
    checkout = target.sibling("checkout")
    before = case.image(checkout)
    partial = STRATEGIES["partial"]()
    plan = partial.plan(platform, RollbackRequest(target, components=("payments",)))
    assert [(s.action, s.target) for s in plan.steps] == [("revert", target), ("check", target)]
    outcome = partial.execute(platform, plan, MemoryContext(sleep=no_sleep))
    assert outcome.status is OutcomeStatus.SUCCEEDED, outcome.message
    assert case.image(checkout) == before
