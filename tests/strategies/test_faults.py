"""Rollbacks when the API server misbehaves: 409 storms, real races, 5xx, the server gone, a worker crash."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sandbox.resources import BY_KIND
from sandbox.server import SandboxServer
from strategies import (
    STRATEGIES,
    ConflictError,
    Health,
    OutcomeStatus,
    Plan,
    PlanStep,
    RollbackRequest,
    TargetRef,
    TemporaryError,
)
from strategies.base import Outcome
from strategies.context import MemoryContext
from strategies.kubernetes.platform import KubernetesPlatform
from tests.sandbox.support import get, writes


def t(name: str) -> TargetRef:
    return TargetRef("kubernetes", "demo", "shop", name)


def vs_weights(server: SandboxServer, name: str = "frontend") -> list[int]:
    return [r["weight"] for r in get(server, "VirtualService", name)["spec"]["http"][0]["route"]]


def execute_with_retries(
    plan: Plan,
    platform: KubernetesPlatform,
    ctx: MemoryContext,
    *,
    before_retry: Callable[[], None] = lambda: None,
) -> tuple[Outcome, list[TemporaryError]]:
    """What the reactor's worker does: run, and on TemporaryError record it and run again after its delay."""
    errors: list[TemporaryError] = []
    for _attempt in range(5):
        try:
            return STRATEGIES[plan.strategy]().execute(platform, plan, ctx), errors
        except TemporaryError as exc:
            assert exc.delay > 0
            errors.append(exc)
            before_retry()
    raise AssertionError(f"still failing after 5 attempts: {errors}")


def test_a_409_storm_is_retried_on_fresh_reads(platform: KubernetesPlatform, sandbox: SandboxServer) -> None:
    sandbox.faults.conflicts(3, path_contains="/deployments/payments")
    platform.revert(t("payments"))
    assert platform.conflicts == 3
    assert [r.fault for r in writes(sandbox, "/deployments/payments")] == [True, True, True, False]
    assert platform.describe(t("payments")).current_revision == 3


def test_an_endless_409_storm_ends_in_a_conflict_error(platform: KubernetesPlatform, sandbox: SandboxServer) -> None:
    sandbox.faults.conflicts(1000, path_contains="/virtualservices/frontend")
    with pytest.raises(ConflictError, match="kept changing under us \\(6 attempts") as error:
        platform.set_weights(t("frontend"), {"stable": 100, "canary": 0})
    assert isinstance(error.value, TemporaryError) and error.value.delay > 0
    assert vs_weights(sandbox) == [40, 60], "nothing was half-written"


def test_a_real_race_keeps_the_other_writers_change(platform: KubernetesPlatform, sandbox: SandboxServer) -> None:
    """Someone edits the VirtualService between our read and our write: 409, fresh read, both changes kept."""
    raced: list[str] = []

    def race(method: str, path: str) -> None:
        if method == "PATCH" and path.endswith("/virtualservices/frontend") and not raced:
            raced.append(path)
            vs = get(sandbox, "VirtualService", "frontend")
            vs["metadata"].setdefault("labels", {})["edited-by"] = "someone-else"
            sandbox.store.replace(BY_KIND["VirtualService"], "shop", "frontend", vs)

    sandbox.faults.before(race)
    platform.set_weights(t("frontend"), {"stable": 100, "canary": 0})
    assert platform.conflicts == 1
    assert vs_weights(sandbox) == [100, 0]
    assert get(sandbox, "VirtualService", "frontend")["metadata"]["labels"] == {"edited-by": "someone-else"}


def test_server_errors_surface_as_temporary_errors_and_the_retry_finishes(
    platform: KubernetesPlatform, sandbox: SandboxServer
) -> None:
    plan = STRATEGIES["undo"]().plan(platform, RollbackRequest(t("payments")))
    sandbox.faults.unavailable(times=2)
    outcome, errors = execute_with_retries(plan, platform, MemoryContext())
    assert outcome.status is OutcomeStatus.SUCCEEDED and len(errors) == 2
    assert all("HTTP 503" in str(e) for e in errors)
    assert STRATEGIES["undo"]().verify(platform, plan)


def test_api_server_gone_mid_rollback_then_back(platform: KubernetesPlatform, sandbox: SandboxServer) -> None:
    """The server disappears between two progressive steps; the retry once it is back finishes the job."""
    platform.set_weights(t("frontend"), {"stable": 0, "canary": 100})  # the canary had been promoted to 100 %
    sandbox.clear_requests()
    plan = STRATEGIES["progressive"]().plan(platform, RollbackRequest(t("frontend")))
    calls = {"health": 0}

    def health(_target: TargetRef) -> Health:
        calls["health"] += 1
        if calls["health"] == 2:
            sandbox.stop()  # gone after the 50 % step, before the 20 % one
        return Health.HEALTHY

    ctx = MemoryContext(health=health)
    outcome, errors = execute_with_retries(plan, platform, ctx, before_retry=sandbox.start)
    assert outcome.status is OutcomeStatus.SUCCEEDED
    assert len(errors) == 1 and "did not answer" in str(errors[0]) and "unreachable" in str(errors[0])
    assert outcome.steps_skipped == ("weights:frontend:50",), "the finished step was not repeated"
    assert ("completed", "weights:frontend:50") in ctx.events
    assert vs_weights(sandbox) == [100, 0]
    patches = [r.body["spec"]["http"][0]["route"][1]["weight"] for r in writes(sandbox, "/virtualservices/frontend")]
    assert patches == [50, 20, 0]


class Crash(Exception):
    pass


class CrashAfterWrite(MemoryContext):
    """The worker dies after the ``n``-th write but before recording it."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def completed(self, step: PlanStep, result) -> None:
        self.n -= 1
        if self.n == 0:
            raise Crash(step.id)
        super().completed(step, result)


def test_crash_in_the_middle_of_a_progressive_rollback_then_resume(kubeconfig: Path, sandbox: SandboxServer) -> None:
    options = {"clusters": {"demo": {"kubeconfig": str(kubeconfig)}}}
    request = RollbackRequest(t("frontend"), steps=(50, 20, 0))
    with KubernetesPlatform(**options) as first:
        first.set_weights(t("frontend"), {"stable": 0, "canary": 100})
        sandbox.clear_requests()
        plan = STRATEGIES["progressive"]().plan(first, request)
        crashed = CrashAfterWrite(2)
        with pytest.raises(Crash, match="weights:frontend:20"):
            STRATEGIES["progressive"]().execute(first, plan, crashed)
    assert vs_weights(sandbox) == [80, 20]
    # A new worker process: a new platform, the durable progress, the recorded plan.
    with KubernetesPlatform(**options) as second:
        resumed = MemoryContext()
        resumed.results = dict(crashed.results)
        outcome = STRATEGIES["progressive"]().execute(second, plan, resumed)
        assert outcome.status is OutcomeStatus.SUCCEEDED
        assert outcome.steps_skipped == ("weights:frontend:50",)
        assert resumed.results["weights:frontend:20"]["calls"] == [], "found done, not written again"
        assert STRATEGIES["progressive"]().verify(second, plan)
    patches = [r.body["spec"]["http"][0]["route"][1]["weight"] for r in writes(sandbox, "/virtualservices/frontend")]
    assert patches == [50, 20, 0]
