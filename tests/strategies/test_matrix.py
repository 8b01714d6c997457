"""Every strategy on every kind of target and router the platform supports, on the sandbox, end to end.

Each case plans (the dry run lists every write), executes, verifies, then executes again to show that a
finished rollback repeats no write; where traffic moves, the sandbox's own traffic view (what a simulator
would route by) must show it all on the expected side.
"""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.server import SandboxServer
from sandbox.traffic import traffic_split
from strategies import STRATEGIES, OutcomeStatus, RollbackRequest, TargetRef
from strategies.context import MemoryContext
from strategies.kubernetes.platform import KubernetesPlatform
from tests.sandbox.support import writes

#: (strategy, target, request options, traffic entry that must end up 100 % on one workload, that workload)
CASES: list[tuple[str, str, dict[str, Any], str | None, str | None]] = [
    ("undo", "payments", {}, "service:payments", "payments"),
    ("undo", "frontend", {}, None, None),
    ("undo", "search", {}, "virtualservice:search", "search"),
    ("undo", "recommendations", {}, None, None),
    ("progressive", "frontend", {}, "virtualservice:frontend", "frontend"),
    ("progressive", "catalog", {}, "ingress:catalog", "catalog"),
    ("progressive", "reviews", {}, "httproute:reviews", "reviews"),
    ("progressive", "inventory", {}, "service:inventory", "inventory"),
    ("progressive", "search", {}, "virtualservice:search", "search"),
    ("progressive", "frontend", {"critical": True}, "virtualservice:frontend", "frontend"),
    ("blue_green", "cart", {}, "service:cart", "cart-blue"),
    ("blue_green", "recommendations", {}, "service:recommendations", "recommendations"),
    ("partial", "payments", {"components": ("payments",)}, "service:payments", "payments"),
    ("partial", "catalog", {"components": ("catalog",)}, None, None),
    ("partial", "cart", {"components": ("cart",)}, "service:cart", "cart-blue"),
]


def backends(server: SandboxServer, entry: str) -> list[tuple[str, float]]:
    split = traffic_split(server.store, "shop")["namespaces"]["shop"][entry]["backends"]
    return [(b["workload"], b["weight"]) for b in split if b["weight"] > 0]


@pytest.mark.parametrize(
    ("strategy", "name", "options", "entry", "workload"),
    CASES,
    ids=[f"{c[0]}-{c[1]}{'-critical' if c[2].get('critical') else ''}" for c in CASES],
)
def test_strategy_on_target(
    platform: KubernetesPlatform,
    sandbox: SandboxServer,
    strategy: str,
    name: str,
    options: dict[str, Any],
    entry: str | None,
    workload: str | None,
) -> None:
    target = TargetRef("kubernetes", "demo", "shop", name)
    request = RollbackRequest(target, **options)
    implementation = STRATEGIES[strategy]()
    sandbox.clear_requests()
    plan = implementation.plan(platform, request)
    assert writes(sandbox) == [], "planning writes nothing"
    # Every write the rollback will make is listed (a replica-ratio step that rounds to the current split
    # has none: 20 % of 4 pods is the 1 canary pod it already has).
    assert any(s.calls for s in plan.steps), plan.as_dict()
    ctx = MemoryContext(sleep=lambda _s: None)
    outcome = implementation.execute(platform, plan, ctx)
    assert outcome.status is OutcomeStatus.SUCCEEDED, outcome.message
    assert implementation.verify(platform, plan) is True
    if entry is not None:
        assert backends(sandbox, entry) == [(workload, 100.0)]
    made = len(writes(sandbox))
    again = implementation.execute(platform, plan, ctx)
    assert again.status is OutcomeStatus.SUCCEEDED and again.steps_run == ()
    assert len(writes(sandbox)) == made, "a finished rollback repeats no write"


def test_partial_rolls_back_dependents_first_across_kinds(platform: KubernetesPlatform, sandbox: SandboxServer) -> None:
    """payments fails: checkout (depends on it) and frontend (an Istio pair depending on checkout) go too."""
    request = RollbackRequest(TargetRef("kubernetes", "demo", "shop", "payments"), components=("payments",))
    plan = STRATEGIES["partial"]().plan(platform, request)
    assert [s.id for s in plan.steps] == [
        "revert:frontend:1",
        "revert:checkout:1",
        "revert:payments:1",
        "check:payments:frontend,checkout,payments",
    ]
    sandbox.clear_requests()
    outcome = STRATEGIES["partial"]().execute(platform, plan, MemoryContext())
    assert outcome.status is OutcomeStatus.SUCCEEDED
    order = [r.path.rsplit("/", 1)[1] for r in writes(sandbox, "/deployments/")]
    assert order == ["frontend", "checkout", "payments"]


def test_partial_switches_a_blue_green_component(platform: KubernetesPlatform) -> None:
    """cart (a blue-green Service) fails: frontend, which depends on it, is reverted; cart switches colour."""
    request = RollbackRequest(TargetRef("kubernetes", "demo", "shop", "cart"), components=("cart",))
    plan = STRATEGIES["partial"]().plan(platform, request)
    assert [s.id for s in plan.steps] == ["revert:frontend:1", "switch:cart:blue", "check:cart:frontend,cart"]


def test_partial_with_a_policy_graph_and_readiness(platform: KubernetesPlatform) -> None:
    """The policy's graph wins over annotations; with a wait_timeout the check waits for readiness."""
    request = RollbackRequest(
        TargetRef("kubernetes", "demo", "shop", "reviews"),
        components=("reviews",),
        dependencies={"catalog": ["reviews"]},
        wait_timeout=5,
    )
    plan = STRATEGIES["partial"]().plan(platform, request)
    assert [s.target.name for s in plan.steps if s.action == "revert"] == ["catalog", "reviews"]
    ctx = MemoryContext()
    assert STRATEGIES["partial"]().execute(platform, plan, ctx).status is OutcomeStatus.SUCCEEDED
    assert ctx.results[plan.steps[-1].id]["ready"] == ["catalog", "reviews"]


def test_blue_green_on_a_target_without_colours_is_refused(platform: KubernetesPlatform) -> None:
    from strategies import UnsupportedError

    with pytest.raises(UnsupportedError, match="needs switch"):
        STRATEGIES["blue_green"]().plan(platform, RollbackRequest(TargetRef("kubernetes", "demo", "shop", "payments")))
    with pytest.raises(UnsupportedError, match="needs weights"):
        STRATEGIES["progressive"]().plan(platform, RollbackRequest(TargetRef("kubernetes", "demo", "shop", "cart")))


def test_partial_leaves_alone_dependents_that_did_not_change_with_the_deploy(
    platform: KubernetesPlatform, sandbox: SandboxServer
) -> None:
    """checkout is deployed (after frontend last changed) and fails: frontend still runs what worked, so stays."""
    from datetime import UTC, datetime

    from sandbox.seed import REGISTRY, roll

    since = datetime.fromtimestamp(sandbox.store.clock(), UTC)
    roll(sandbox.store, "shop", "checkout", f"{REGISTRY}/checkout:3.3.0", change_cause="release 3.3.0")
    target = TargetRef("kubernetes", "demo", "shop", "checkout")
    plan = STRATEGIES["partial"]().plan(
        platform, RollbackRequest(target, components=("checkout",), changed_since=since)
    )
    assert [s.id for s in plan.steps] == ["revert:checkout:2", "check:checkout:checkout"]
    assert any("left alone ['frontend']" in note for note in plan.notes)
    # Without the deploy time every dependent goes too (as before).
    plan = STRATEGIES["partial"]().plan(platform, RollbackRequest(target, components=("checkout",)))
    assert next(s.id for s in plan.steps) == "revert:frontend:1"
