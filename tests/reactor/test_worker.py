"""The job worker: crash and resume, retries with backoff, permanent failures, resolve, one actor per target.

The platform here is the record-only dry-run platform with faults injected at its boundary (a crash
between a write and its record, temporary and permanent errors), which is where real platforms fail.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Mapping
from typing import Any

import pytest
from flask import Flask

from reactor.worker import Platforms, Worker
from strategies import ApiCall, PermanentError, TargetRef, TargetState, TemporaryError
from strategies.dryrun import DryRunPlatform
from tests.conftest import load_fixture
from tests.reactor.conftest import AUTH, make_settings, rt

FIRING = load_fixture("alertmanager-0.25-webhook-firing.json")
RESOLVED = load_fixture("alertmanager-0.25-webhook-resolved.json")
TARGET = "kubernetes/e2e/prod/checkout"


class Crash(BaseException):
    """The process dying: not an Exception, so nothing in the reactor catches it."""


class FaultyPlatform(DryRunPlatform):
    """The dry-run platform with scripted failures."""

    def __init__(self) -> None:
        super().__init__()
        self.describe_failures: list[BaseException] = []
        self.revert_failures: list[BaseException] = []
        self.crash_after_revert = False

    def describe(self, target: TargetRef) -> TargetState:
        if self.describe_failures:
            raise self.describe_failures.pop(0)
        return super().describe(target)

    def revert(self, target: TargetRef, revision: int | None = None, *, dry_run: bool = False) -> list[ApiCall]:
        if not dry_run and self.revert_failures:
            raise self.revert_failures.pop(0)
        calls = super().revert(target, revision, dry_run=dry_run)
        if not dry_run and self.crash_after_revert:
            self.crash_after_revert = False
            raise Crash("killed between the write and its record")
        return calls


class Clock:
    def __init__(self) -> None:
        self.now = 2_000_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def platform() -> FaultyPlatform:
    return FaultyPlatform()


def build(app_factory: Any, db_url: str, platform: FaultyPlatform, clock: Clock, events: list | None = None,
          **overrides: Any) -> Flask:  # fmt: skip
    # These tests exercise the worker's mechanics through undo's revert step (where the faults are injected).
    base = {"policies.defaults.mode": "auto", "policies.defaults.strategies": ["undo"]}
    settings = make_settings(db_url, **{**base, **overrides})
    sink = events if events is not None else []
    app = app_factory(
        settings,
        platforms=Platforms(settings, instances={"kubernetes": platform}),
        on_event=lambda kind, data: sink.append((kind, data.get("id"))),
    )
    runtime = rt(app)
    runtime.store.clock = clock
    runtime.worker.clock = clock
    return app


def second_worker(app: Flask, platform: FaultyPlatform, clock: Clock) -> Worker:
    """Another gunicorn process (or replica) on the same database."""
    runtime = rt(app)
    return Worker(
        runtime.store,
        runtime.settings,
        platforms=Platforms(runtime.settings, instances={"kubernetes": platform}),
        owner="replica-2",
        clock=clock,
    )


def send(app: Flask, body: Mapping[str, Any] = FIRING) -> None:
    assert app.test_client().post("/webhooks/alertmanager", json=body, headers=AUTH).status_code == 202


def decisions(app: Flask) -> list[dict[str, Any]]:
    return rt(app).store.list_decisions()


def test_crash_between_write_and_record_resumes_without_repeating(
    app_factory: Any, db_url: str, platform: FaultyPlatform, clock: Clock
) -> None:
    app = build(app_factory, db_url, platform, clock)
    send(app)
    platform.crash_after_revert = True
    with pytest.raises(Crash):
        rt(app).worker.run_once()
    [decision] = decisions(app)
    assert decision["status"] == "executing"
    assert len(platform.calls) == 1, "the revert reached the platform before the crash"

    replica = second_worker(app, platform, clock)
    assert replica.run_once() is False, "the dead worker's lease has not expired yet"
    clock.now += rt(app).settings.worker.lease_seconds + 1
    assert replica.run_once() is True
    [decision] = decisions(app)
    assert decision["status"] == "succeeded"
    assert len(platform.calls) == 1, "resuming must not revert a second time"
    detail = rt(app).store.get_decision(decision["id"], with_trail=True)
    messages = [a["message"] for a in detail["audit"]]
    assert "rollback resumed" in messages
    assert [s["status"] for s in detail["steps"]] == ["done"]


def test_crash_after_deciding_never_decides_twice(
    app_factory: Any, db_url: str, platform: FaultyPlatform, clock: Clock
) -> None:
    app = build(app_factory, db_url, platform, clock)
    send(app)
    platform.revert_failures = [Crash("killed before the write")]
    with pytest.raises(Crash):
        rt(app).worker.run_once()
    clock.now += 60
    assert second_worker(app, platform, clock).drain() == 1
    assert len(decisions(app)) == 1
    assert decisions(app)[0]["status"] == "succeeded"
    assert len(platform.calls) == 1


def test_temporary_errors_are_retried_with_backoff_and_recorded(
    app_factory: Any, db_url: str, platform: FaultyPlatform, clock: Clock
) -> None:
    app = build(app_factory, db_url, platform, clock)
    send(app)
    platform.describe_failures = [TemporaryError("API server unavailable", delay=0.1)] * 2
    worker = rt(app).worker
    assert worker.run_once() is True
    assert decisions(app) == [], "no decision while the platform cannot say what the target is"
    assert worker.run_once() is False, "backing off"
    clock.now += 1.0
    assert worker.run_once() is True
    assert worker.run_once() is False
    clock.now += 2.0
    assert worker.run_once() is True
    [decision] = decisions(app)
    assert decision["status"] == "succeeded"
    retries = [a for a in rt(app).store.audit_trail() if a["kind"] == "retry"]
    assert [r["data"]["delay"] for r in retries] == [1.0, 2.0]
    assert "API server unavailable" in retries[0]["message"]


def test_temporary_errors_during_execution_keep_the_decision(
    app_factory: Any, db_url: str, platform: FaultyPlatform, clock: Clock
) -> None:
    app = build(app_factory, db_url, platform, clock)
    send(app)
    platform.revert_failures = [TemporaryError("connection refused")]
    rt(app).worker.run_once()
    [decision] = decisions(app)
    assert decision["status"] == "executing"
    clock.now += 5
    rt(app).worker.run_once()
    [decision] = decisions(app)
    assert decision["status"] == "succeeded"
    assert len(platform.calls) == 1


def test_giving_up_after_max_attempts(app_factory: Any, db_url: str, platform: FaultyPlatform, clock: Clock) -> None:
    app = build(app_factory, db_url, platform, clock, **{"worker.max_attempts": 3})
    send(app)
    platform.revert_failures = [TemporaryError("still down")] * 10
    for _ in range(3):
        rt(app).worker.run_once()
        clock.now += 100
    [decision] = decisions(app)
    assert decision["status"] == "failed"
    assert "giving up after 3 attempts" in rt(app).store.audit_trail()[-1]["message"]


def test_permanent_error_fails_the_decision_once(
    app_factory: Any, db_url: str, platform: FaultyPlatform, clock: Clock
) -> None:
    events: list[tuple[str, Any]] = []
    app = build(app_factory, db_url, platform, clock, events)
    send(app)
    platform.revert_failures = [PermanentError('deployments.apps "checkout" is forbidden')]
    assert rt(app).worker.drain() == 1
    [decision] = decisions(app)
    assert decision["status"] == "failed"
    assert decision["outcome"]["error"] == 'deployments.apps "checkout" is forbidden'
    assert [k for k, _ in events] == ["decision_made", "rollback_started", "rollback_failed"]


def test_events_of_a_successful_rollback(app_factory: Any, db_url: str, platform: FaultyPlatform, clock: Clock) -> None:
    events: list[tuple[str, Any]] = []
    app = build(app_factory, db_url, platform, clock, events)
    send(app)
    rt(app).worker.drain()
    assert [k for k, _ in events] == ["decision_made", "rollback_started", "step_done", "rollback_succeeded"]


def test_one_rollback_per_target_even_with_several_alerts(
    app_factory: Any, db_url: str, platform: FaultyPlatform, clock: Clock
) -> None:
    app = build(app_factory, db_url, platform, clock)
    other = json.loads(json.dumps(FIRING))
    other["alerts"][0]["labels"]["alertname"] = "ErrorRateHigh"
    other["alerts"][0]["fingerprint"] = "0000000000000001"
    send(app)
    send(app, other)
    replica = second_worker(app, platform, clock)
    while rt(app).worker.run_once() | replica.run_once():
        pass
    actions = sorted((d["action"], d["status"]) for d in decisions(app))
    assert actions == [("ignore", "ignored"), ("rollback", "succeeded")]
    assert len(platform.calls) == 1
    assert "cooldown" in next(d for d in decisions(app) if d["action"] == "ignore")["reasons"][0]


def test_a_storm_of_ignored_alerts_stays_out_of_later_decisions(
    app_factory: Any, db_url: str, platform: FaultyPlatform, clock: Clock
) -> None:
    """Each decision records the history it was made from. Only the rollbacks count for the rules, and an
    alert storm leaves thousands of ignored decisions per target: they must not be loaded and copied into
    every later decision's inputs."""
    app = build(app_factory, db_url, platform, clock)
    send(app)
    for n in range(1, 8):
        clock.now += 1
        storm = json.loads(json.dumps(FIRING))
        storm["alerts"][0]["fingerprint"] = f"{n:016x}"
        send(app, storm)
    rt(app).worker.drain()
    [rollback] = [d["id"] for d in decisions(app) if d["action"] == "rollback"]
    ignored = [d["id"] for d in decisions(app) if d["action"] == "ignore"]
    assert len(ignored) == 7
    for decision in ignored:
        recent = rt(app).store.get_decision(decision)["inputs"]["history"]["recent_decisions"]
        assert [d["id"] for d in recent] == [rollback]


def executing(app: Flask, platform: FaultyPlatform) -> Flask:
    """``app`` with a rollback in flight: its revert met a slow cluster and waits for its retry."""
    send(app)
    platform.revert_failures = [TemporaryError("slow cluster")]
    rt(app).worker.run_once()
    assert decisions(app)[0]["status"] == "executing"
    return app


def pending_approval(app: Flask) -> Flask:
    """``app`` (in ``recommend`` mode) with a decision waiting for approval."""
    send(app)
    rt(app).worker.drain()
    assert decisions(app)[0]["status"] == "pending_approval"
    return app


def test_resolved_alert_stops_an_in_flight_rollback(
    app_factory: Any, db_url: str, platform: FaultyPlatform, clock: Clock
) -> None:
    app = executing(build(app_factory, db_url, platform, clock), platform)
    send(app, RESOLVED)
    rt(app).worker.run_once()  # the resolve job runs although the target is locked by the rollback
    [decision] = decisions(app)
    assert decision["stop_reason"] == "the alert resolved"


def register(app: Flask, revision: str) -> None:
    response = app.test_client().post(
        "/api/v1/deployments", json={"target": TARGET, "revision": revision}, headers=AUTH
    )
    assert response.status_code == 201, response.json


def test_a_deploy_registered_during_a_rollback_stops_it_before_its_next_step(
    app_factory: Any, db_url: str, platform: FaultyPlatform, clock: Clock
) -> None:
    # The fix must not be reverted by a decision taken about the revision it replaces.
    app = executing(build(app_factory, db_url, platform, clock), platform)
    register(app, "8")
    clock.now += 60
    rt(app).worker.drain()
    [decision] = decisions(app)
    assert decision["status"] == "stopped"
    assert decision["stop_reason"].endswith("of revision 8 was registered")
    assert platform.calls == []
    stops = [e for e in rt(app).store.audit_trail(decision_id=decision["id"]) if e["kind"] == "stop"]
    assert len(stops) == 1 and "revision 8" in stops[0]["message"]


def test_a_deploy_registered_supersedes_a_pending_approval(
    app_factory: Any, db_url: str, platform: FaultyPlatform, clock: Clock
) -> None:
    app = pending_approval(build(app_factory, db_url, platform, clock, **{"policies.defaults.mode": "recommend"}))
    register(app, "8")
    [decision] = decisions(app)
    assert decision["status"] == "superseded"
    approve = app.test_client().post(f"/api/v1/decisions/{decision['id']}/approve", headers=AUTH)
    assert approve.status_code == 409
    assert platform.calls == []


def test_resolved_alert_supersedes_a_pending_approval(
    app_factory: Any, db_url: str, platform: FaultyPlatform, clock: Clock
) -> None:
    app = pending_approval(build(app_factory, db_url, platform, clock, **{"policies.defaults.mode": "recommend"}))
    send(app, RESOLVED)
    rt(app).worker.drain()
    [decision] = decisions(app)
    assert decision["status"] == "superseded"
    assert platform.calls == []


def test_observe_mode_changes_nothing(app_factory: Any, db_url: str, platform: FaultyPlatform, clock: Clock) -> None:
    app = build(app_factory, db_url, platform, clock, **{"policies.defaults.mode": "observe"})
    send(app)
    rt(app).worker.drain()
    [decision] = decisions(app)
    assert (decision["action"], decision["status"]) == ("rollback", "recorded")
    assert platform.calls == []


def test_kill_switch_flag_stops_automatic_rollbacks(
    app_factory: Any, db_url: str, platform: FaultyPlatform, clock: Clock
) -> None:
    app = build(app_factory, db_url, platform, clock)
    rt(app).store.set_flag("kill_switch", True, actor="sre")
    send(app)
    rt(app).worker.drain()
    [decision] = decisions(app)
    assert decision["action"] == "ignore" and "kill switch" in decision["reasons"][0]
    assert platform.calls == []


def test_unconfigured_platform_is_a_hold_not_a_crash(app_factory: Any, sqlite_url: str, clock: Clock) -> None:
    settings = make_settings(sqlite_url, **{"platforms": {"ecs": {"type": "dry-run"}}})
    app = app_factory(settings)
    send(app)
    rt(app).worker.drain()
    [decision] = decisions(app)
    assert decision["action"] == "hold"
    assert "platform 'kubernetes' is not configured" in decision["reasons"][0]


def test_worker_thread_picks_up_new_alerts(app_factory: Any, sqlite_url: str) -> None:
    app = app_factory(make_settings(sqlite_url, **{"policies.defaults.mode": "auto"}), start_worker=True)
    send(app)
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not [d for d in decisions(app) if d["status"] == "succeeded"]:
        time.sleep(0.05)
    assert decisions(app)[0]["status"] == "succeeded"


def test_decision_explains_itself(app_factory: Any, db_url: str, platform: FaultyPlatform, clock: Clock) -> None:
    app = build(app_factory, db_url, platform, clock)
    send(app)
    rt(app).worker.drain()
    decision = decisions(app)[0]
    view = app.test_client().get(f"/api/v1/decisions/{decision['id']}", headers=AUTH).json
    assert view["inputs"]["state"]["current_revision"] == 2
    assert view["inputs"]["policy"]["mode"] == "auto"
    assert view["plan"]["steps"][0]["calls"][0]["method"] == "REVERT"
    assert view["explanation"].startswith("roll back with undo to revision 1 [succeeded]")


def test_a_target_label_with_a_slash_is_ignored_with_its_reason(
    app_factory: Any, db_url: str, platform: FaultyPlatform, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """No workload name holds a '/'. Such a label split the target key into five parts, which the platform
    lookup and the notifier could not parse ("could not build the held_for_approval notification")."""
    app = build(app_factory, db_url, platform, clock, **{"policies.defaults.mode": "recommend"})
    payload = copy.deepcopy(FIRING)
    for labels in (payload["alerts"][0]["labels"], payload["commonLabels"]):
        labels["deployment"] = "shop/checkout"
    send(app, payload)
    with caplog.at_level(logging.WARNING):
        rt(app).worker.drain()
    [decision] = decisions(app)
    assert (decision["action"], decision["status"]) == ("ignore", "ignored"), decision
    assert any("'shop/checkout' contains '/'" in r for r in decision["reasons"]), decision["reasons"]
    assert platform.calls == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


def test_a_requested_revision_is_found_by_name_image_or_tag() -> None:
    from reactor.worker import _requested_revision
    from strategies import Revision

    image = "registry.example:5000/shop/cart"
    state = TargetState(
        target=TargetRef.parse("kubernetes/prod/shop/cart"),
        current_revision=4,
        revisions=(
            Revision(2, image=f"{image}:2.4.0"),
            Revision(3, image=f"{image}:2.5.0@sha256:0123"),
            Revision(4, image=f"{image}:2.5.0", name="cart-7d9f"),
        ),
    )
    assert _requested_revision(state, "2.4.0")[0] == 2
    number, why = _requested_revision(state, "2.5.0")
    assert number == 4 and "the newest of 2" in why[0]
    assert _requested_revision(state, "cart-7d9f")[0] == 4
    assert _requested_revision(state, f"{image}:2.4.0")[0] == 2
    number, why = _requested_revision(state, "5000")  # the registry's port is not a tag
    assert number is None and "known: 2 (registry.example:5000/shop/cart:2.4.0)" in why[0]


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"rollback_safe": False}, "whose policy is rollback_safe: false"),
        ({"mode": "observe"}, "whose policy is observe"),
    ],
)
def test_a_partial_rollback_respects_its_dependents_own_policy(
    app_factory: Any, sqlite_url: str, clock: Clock, override: dict[str, Any], reason: str
) -> None:
    """checkout fails; payments depends on it, so a partial rollback reverts payments too. payments' own policy
    (irreversible migrations, or observe only) forbids that: nothing is reverted and people are told why."""
    platform = DryRunPlatform()
    settings = make_settings(
        sqlite_url,
        **{
            "policies.defaults.mode": "auto",
            "policies.defaults.strategies": ["partial"],
            "policies.defaults.default_strategy": "partial",
            "policies.defaults.release": "shop",
            "policies.targets": [{"match": "*/payments", **override}],
            "releases": {"shop": {"components": {"checkout": {}, "payments": {"depends_on": ["checkout"]}}}},
        },
    )
    events: list[tuple[str, Any]] = []
    app = app_factory(settings, platforms=Platforms(settings, instances={"kubernetes": platform}),
                      on_event=lambda kind, data: events.append((kind, data.get("id"))))  # fmt: skip
    rt(app).store.clock = rt(app).worker.clock = clock
    send(app)
    rt(app).worker.drain()
    [decision] = decisions(app)
    assert (decision["strategy"], decision["status"]) == ("partial", "failed"), decision
    detail = rt(app).store.get_decision(decision["id"], with_trail=True)
    assert detail is not None
    [refused] = [a["message"] for a in detail["audit"] if a["message"].startswith("rollback refused")]
    assert "kubernetes/e2e/prod/payments" in refused and reason in refused, refused
    assert any(a["kind"] == "plan" for a in detail["audit"]), "the plan is recorded for the people who decide"
    assert platform.calls == [], "nothing was reverted"
    assert ("rollback_failed", decision["id"]) in events
