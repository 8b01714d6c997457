"""The job worker: turns stored alerts into decisions, and approved decisions into executed rollbacks.

Every gunicorn process (and every replica) runs one worker thread. They share the job table, so:

* a job is claimed with a lease; a worker that dies leaves a lease that expires, and the job is claimed
  again and *resumes*: its decision already exists (one per job), and finished steps are skipped;
* the whole evaluation of a target (decide, then execute) happens under that target's actor lock, so two
  alerts about one target never produce two concurrent decisions;
* platform errors are typed: ``TemporaryError`` puts the job back with exponential backoff (the decision
  stays ``executing``), ``PermanentError`` fails the decision; both are written to the audit trail.

Events (decision made, rollback started, step done, succeeded, failed, held) go to ``on_event`` so the
notification hub can pick them up without ever blocking the rollback.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from reactor import metrics
from reactor.deployments import Deployments, Reschedule
from reactor.engine import EXECUTED_STATUSES, Decision, decide
from reactor.health import HealthFn, HealthProbe
from reactor.settings import Policy, Settings
from reactor.store import History, Job, Store, StoreUnavailable
from strategies import (
    STRATEGIES,
    ApiCall,
    Health,
    OutcomeStatus,
    PermanentError,
    Plan,
    PlanStep,
    Platform,
    PlatformError,
    RollbackRequest,
    TargetRef,
    TargetState,
    TemporaryError,
    load_platform,
)
from webhooks import Alert

log = logging.getLogger(__name__)

EventFn = Callable[[str, Mapping[str, Any]], None]


class Platforms:
    """Platform instances by configured name, created on first use and shared by the process."""

    def __init__(self, settings: Settings, *, instances: Mapping[str, Platform] | None = None) -> None:
        self._settings = settings
        self._instances: dict[str, Platform] = dict(instances or {})
        self._lock = threading.Lock()

    def get(self, name: str) -> Platform:
        with self._lock:
            if name not in self._instances:
                config = self._settings.platforms.get(name)
                if config is None:
                    known = ", ".join(sorted(self._settings.platforms))
                    raise PermanentError(f"platform {name!r} is not configured; configured: {known}")
                self._instances[name] = load_platform(config.type)(**config.options)
            return self._instances[name]

    def for_target(self, target: TargetRef, policy: Policy) -> tuple[str, Platform]:
        name = policy.platform or target.platform
        return name, self.get(name)


class Worker:
    """Runs jobs from the store. ``run_once`` processes one job (tests drive it directly)."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        platforms: Platforms | None = None,
        health: HealthFn | None = None,
        on_event: EventFn | None = None,
        owner: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.settings = settings
        self.platforms = platforms or Platforms(settings)
        self.health = health or HealthProbe(settings.health)
        self.on_event = on_event or (lambda _kind, _data: None)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.clock = clock
        #: registered deployments: soak jobs, platform records, verdicts after decisions. The clock is looked
        #: up on each call, so replacing ``worker.clock`` (tests, simulations) reaches it too.
        self.deployments = Deployments(
            store,
            settings,
            platforms=self.platforms,
            clock=lambda: self.clock(),  # noqa: PLW0108
        )
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------------------------------- lifecycle

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="smart-rollback-worker", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wake(self) -> None:
        """New work was stored: look now instead of at the next poll."""
        self._wake.set()

    def _loop(self) -> None:
        poll = self.settings.worker.poll_interval_seconds
        while not self._stop.is_set():
            try:
                worked = self.run_once()
            except StoreUnavailable as exc:
                log.warning("worker: store unavailable: %s", exc)
                worked = False
            except Exception:
                log.exception("worker: unexpected error; continuing")
                worked = False
            if not worked:
                self._wake.wait(poll)
                self._wake.clear()

    def run_once(self) -> bool:
        """Claim and process one job; False when there was nothing to do."""
        lease = self.settings.worker.lease_seconds
        job = self.store.claim_job(self.owner, lease)
        if job is None:
            return False
        beat = _Heartbeat(self.store, job, self.owner, lease)
        beat.start()
        try:
            self._process(job)
        finally:
            beat.stop()
        return True

    def drain(self, limit: int = 1000) -> int:
        """Process jobs until none is runnable (tests and the CLI); returns how many ran."""
        count = 0
        while count < limit and self.run_once():
            count += 1
        return count

    # ---------------------------------------------------------------------------------------- jobs

    def _process(self, job: Job) -> None:
        """Run one claimed job; the claim holds its target lock, released with the job's last write."""
        if job.kind == "resolve":
            self._resolve(job)
            self.store.finish_job(job.id, self.owner)
            return
        target = job.target if job.kind != "resolve" else None
        try:
            if job.kind == "evaluate":
                finished = self._evaluate(job)
            elif job.kind == "execute":
                self._execute_job(job)
                finished = False
            elif job.kind == "soak":
                self.deployments.soak(job)
                finished = False
            elif job.kind == "record":
                self.deployments.record(job)
                finished = False
            else:
                raise ValueError(f"unknown job kind {job.kind!r}")
        except Reschedule as exc:
            self.store.retry_job(job.id, self.owner, exc.delay, exc.reason, target=target)
        except TemporaryError as exc:
            self._retry(job, exc)
        except (StoreUnavailable, PlatformError, ValueError) as exc:
            log.error("job %s failed: %s", job.key, exc)
            self.store.finish_job(job.id, self.owner, status="failed", error=str(exc), target=target)
        except Exception as exc:
            log.exception("job %s failed unexpectedly", job.key)
            self.store.finish_job(job.id, self.owner, status="failed", error=repr(exc), target=target)
        else:
            if not finished:
                self.store.finish_job(job.id, self.owner, target=target)

    def _retry(self, job: Job, exc: TemporaryError) -> None:
        worker = self.settings.worker
        decision = self.store.decision_for_job(job.id) if job.kind == "evaluate" else None
        decision_id = (decision or {}).get("id") or job.decision_id
        if job.attempts >= worker.max_attempts:
            message = f"giving up after {job.attempts} attempts: {exc}"
            if decision_id:
                self._finish(decision_id, "failed", {"error": str(exc)}, message)
            self.store.finish_job(job.id, self.owner, status="failed", error=str(exc), target=job.target)
            return
        delay = min(
            worker.backoff_max_seconds, max(exc.delay, worker.backoff_initial_seconds * 2 ** (job.attempts - 1))
        )
        metrics.JOB_RETRIES.labels(job.kind).inc()
        self.store.audit(
            None,
            "retry",
            f"temporary error, retrying in {delay:.1f}s (attempt {job.attempts}/{worker.max_attempts}): {exc}",
            target=job.target,
            decision_id=decision_id,
            alert_id=job.alert_id,
            data={"error": str(exc), "attempt": job.attempts, "delay": delay},
        )
        self.store.retry_job(job.id, self.owner, delay, str(exc), target=job.target)

    def _evaluate(self, job: Job) -> bool:
        """Decide (and execute if approved). True when the job was finished along with its decision."""
        existing = self.store.decision_for_job(job.id)
        if existing is not None:
            # A crash (or a temporary error) interrupted this job after it decided: carry on, never re-decide.
            if existing["status"] in ("approved", "executing"):
                self._execute(existing)
            return False
        assert job.alert_id is not None
        row = self.store.get_alert(job.alert_id)
        if row is None:
            raise ValueError(f"alert {job.alert_id} of job {job.key} is missing")
        alert = Alert.from_summary(row["summary"], status=row["status"])
        target_key = alert.target.key
        policy = self.settings.policy_for(target_key) if target_key else self.settings.policies.defaults
        state: TargetState | None = None
        state_error: str | None = None
        if target_key and alert.status == "firing" and not alert.target.problem:
            try:
                ref = TargetRef.parse(target_key)
                _, platform = self.platforms.for_target(ref, policy)
                state = platform.describe(ref)
            except TemporaryError:
                raise  # decide once the platform answers: the job is retried with backoff
            except (PermanentError, ValueError, ImportError) as exc:
                state_error = str(exc)
        lookback = max(policy.window_seconds, policy.cooldown_seconds, 86400.0)
        history = (
            self.store.history(target_key, lookback_seconds=lookback, statuses=EXECUTED_STATUSES)
            if target_key
            else History()
        )
        release = self.settings.releases.get(policy.release or alert.target.release or "")
        decision = decide(
            alert,
            policy,
            state,
            history,
            now=self.clock(),
            kill_switch=self.settings.kill_switch,
            release=release,
            state_error=state_error,
        )
        executes = decision.status == "approved"
        stored = self._record(job, alert, decision, finish=not executes)
        self._settle(target_key)
        if executes:
            self._execute(stored)
        return not executes

    def _record(self, job: Job, alert: Alert, decision: Decision, *, finish: bool = False) -> dict[str, Any]:
        row = {
            "job_id": job.id,
            "alert_id": job.alert_id,
            "target": alert.target.key,
            "action": decision.action,
            "strategy": decision.strategy,
            "mode": decision.mode,
            "status": decision.status,
            "from_revision": decision.from_revision,
            "to_revision": decision.to_revision,
            "reasons": list(decision.reasons),
            "inputs": {**decision.inputs, "page": decision.page, "rule": decision.rule},
        }
        summary = f"{decision.action}" + (f" with {decision.strategy}" if decision.strategy else "")
        stored = self.store.create_decision(
            row,
            f"decision: {summary} ({decision.status}): {'; '.join(decision.reasons)}",
            finish=(job.id, self.owner, job.target) if finish else None,
        )
        metrics.DECISIONS.labels(decision.action, decision.strategy or "", decision.mode, decision.rule).inc()
        self.on_event("decision_made", stored)
        if decision.status in ("pending_approval", "held"):
            self.on_event("held_for_approval", stored)
        return stored

    def _execute_job(self, job: Job) -> None:
        """Approved (recommend mode) or manual decisions: execute unless already finished."""
        assert job.decision_id is not None
        decision = self.store.get_decision(job.decision_id)
        if decision is None:
            raise ValueError(f"decision {job.decision_id} of job {job.key} is missing")
        if decision["status"] == "queued":
            decision = self._complete_manual(decision, job.payload or {})
            self._settle(decision.get("target"))
        if decision["status"] in ("approved", "executing"):
            self._execute(decision)

    def _complete_manual(self, decision: dict[str, Any], payload: Mapping[str, Any]) -> dict[str, Any]:
        """A manual rollback: choose the revision and strategy now (skipping analysis), then approve."""
        from reactor.engine import _choose_revision, _choose_strategy  # the same rules as automatic decisions

        target = TargetRef.parse(decision["target"])
        policy = self.settings.policy_for(str(target))
        if self.settings.kill_switch or self.store.flag("kill_switch"):
            reasons = [*decision["reasons"], "the kill switch is on"]
            self.store.update_decision(
                decision["id"], "manual rollback refused: the kill switch is on", status="ignored", reasons=reasons
            )
            return self.store.get_decision(decision["id"]) or decision
        _, platform = self.platforms.for_target(target, policy)
        state = platform.describe(target)
        reasons = list(decision["reasons"])
        to_revision = payload.get("to_revision")
        if to_revision is None:
            to_revision, why = _choose_revision(state, self.store.history(str(target), lookback_seconds=1).marks)
        else:
            to_revision, why = _requested_revision(state, to_revision)
        reasons += why
        blocker = why[-1] if to_revision is None and why else None
        strategy = payload.get("strategy")
        if not strategy:
            probe = Alert.from_summary(
                {
                    "source": "alertmanager",
                    "fingerprint": "manual",
                    "status": "firing",
                    "starts_at": datetime.now(UTC).isoformat(),
                    "identity": {"name": target.name, "platform": target.platform},
                }
            )
            release = self.settings.releases.get(policy.release or "")
            strategy, why = _choose_strategy(probe, policy, state, release, STRATEGIES, to_revision)
            reasons += why
        if to_revision is None or strategy is None:
            self.store.update_decision(decision["id"], "manual rollback cannot proceed: " + (blocker or reasons[-1]),
                                       status="held", reasons=reasons, to_revision=None)  # fmt: skip
            return self.store.get_decision(decision["id"]) or decision
        self.store.update_decision(
            decision["id"],
            f"manual rollback approved: {strategy} to revision {to_revision}",
            status="approved",
            strategy=strategy,
            to_revision=int(to_revision),
            from_revision=state.current_revision,
            reasons=reasons,
        )
        return self.store.get_decision(decision["id"]) or decision

    # ------------------------------------------------------------------------------------ execution

    def _execute(self, decision: Mapping[str, Any]) -> None:
        decision_id = decision["id"]
        strategy_name = decision["strategy"]
        target = TargetRef.parse(decision["target"])
        policy = self.settings.policy_for(str(target))
        try:
            strategy = STRATEGIES[strategy_name]()
        except KeyError:
            self._finish(decision_id, "failed", {"error": f"strategy {strategy_name!r} is not available"},
                         f"strategy {strategy_name!r} is not available")  # fmt: skip
            return
        _, platform = self.platforms.for_target(target, policy)
        first_time = decision["status"] == "approved"
        self.store.update_decision(
            decision_id,
            "rollback started" if first_time else "rollback resumed",
            status="executing",
            audit_kind="execution",
            audit_data={"strategy": strategy_name, "resumed": not first_time},
        )
        if first_time:
            self.on_event("rollback_started", decision)
        plan = _plan_from_dict(decision.get("plan"))
        if plan is None:
            request = self._request(decision, target, policy)
            try:
                plan = strategy.plan(platform, request)
            except PermanentError as exc:
                self._finish(decision_id, "failed", {"error": str(exc)}, f"planning failed: {exc}")
                return
            self.store.update_decision(
                decision_id,
                f"plan: {len(plan.steps)} step(s): " + ", ".join(s.id for s in plan.steps),
                audit_kind="plan",
                audit_data=_plan_to_dict(plan),
                plan=_plan_to_dict(plan),
            )
            refusal = self._refusal(plan, target)
            if refusal is not None:
                self._finish(
                    decision_id, "failed", {"error": refusal}, f"rollback refused before its first step: {refusal}"
                )
                return
        ctx = StoreContext(self, decision_id, str(target))
        try:
            outcome = strategy.execute(platform, plan, ctx)
        except PermanentError as exc:
            self._finish(decision_id, "failed", {"error": str(exc)}, f"rollback failed: {exc}")
            return
        verified = strategy.verify(platform, plan) if outcome.status == OutcomeStatus.SUCCEEDED else None
        status = outcome.status.value
        if outcome.status == OutcomeStatus.SUCCEEDED and verified is False:
            status = "failed"
        result = {
            "status": status,
            "message": outcome.message,
            "steps_run": list(outcome.steps_run),
            "steps_skipped": list(outcome.steps_skipped),
            "verified": verified,
        }
        message = f"rollback {status}" + (f": {outcome.message}" if outcome.message else "")
        if verified is False:
            message += " (verification found the target not in the planned state)"
        self._finish(decision_id, status, result, message, strategy=strategy_name, alert_id=decision.get("alert_id"))

    def _refusal(self, plan: Plan, target: TargetRef) -> str | None:
        """Why the plan must not run: a step acts on another workload (a partial rollback's dependents) whose own
        policy forbids it. The engine checked only the alerting target's policy; irreversible migrations of a
        dependent (``rollback_safe: false``) or a workload that is only observed must not be reverted with it."""
        if plan.strategy != "partial":  # the other strategies act on the target alone
            return None
        for step in plan.steps:
            other = str(step.target)
            if other == str(target):
                continue
            policy = self.settings.policy_for(other)
            if not policy.rollback_safe:
                return f"the plan also reverts {other}, whose policy is rollback_safe: false (irreversible changes)"
            if policy.mode == "observe":
                return f"the plan also acts on {other}, whose policy is observe (record only)"
        return None

    def _request(self, decision: Mapping[str, Any], target: TargetRef, policy: Policy) -> RollbackRequest:
        release = self.settings.releases.get(policy.release or "")
        dependencies = {name: tuple(c.depends_on) for name, c in (release.components.items() if release else ())}
        alert = decision.get("inputs", {}).get("alert") or {}
        component = (alert.get("identity") or {}).get("component") or target.name
        severity = (alert.get("severity") or "").lower()
        deployment = (decision.get("inputs", {}).get("history") or {}).get("deployment") or {}
        started = deployment.get("started_at")
        return RollbackRequest(
            target=target,
            to_revision=decision.get("to_revision"),
            components=(component,) if release else (),
            dependencies=dependencies,
            steps=policy.progressive.steps,
            wait_timeout=policy.wait_timeout_seconds,
            step_interval=policy.progressive.step_interval_seconds,
            critical=severity in ("critical", "page") and decision.get("strategy") == "progressive",
            changed_since=datetime.fromtimestamp(float(started), UTC) if started is not None else None,
        )

    def _finish(
        self,
        decision_id: str,
        status: str,
        outcome: Mapping[str, Any],
        message: str,
        *,
        strategy: str | None = None,
        alert_id: int | None = None,
    ) -> None:
        now = self.clock()
        self.store.update_decision(
            decision_id, message, status=status, outcome=dict(outcome), finished_at=now, audit_kind="outcome"
        )
        decision = self.store.get_decision(decision_id) or {"id": decision_id}
        self._settle(decision.get("target"))
        metrics.ROLLBACKS.labels(strategy or decision.get("strategy") or "", status).inc()
        alert = (decision.get("inputs") or {}).get("alert") or {}
        if status == "succeeded" and alert.get("starts_at"):
            started = datetime.fromisoformat(alert["starts_at"]).timestamp()
            metrics.TIME_TO_ROLLBACK.labels(decision.get("strategy") or "").observe(max(0.0, now - started))
        self.on_event(
            {"succeeded": "rollback_succeeded", "stopped": "rollback_stopped"}.get(status, "rollback_failed"), decision
        )

    def _settle(self, target: str | None) -> None:
        """Give the target's deployments the verdict its decisions imply now (pipeline gates react at once).
        Never in the way of a rollback: the soak job catches up on anything missed here."""
        if not target:
            return
        try:
            self.deployments.settle(target)
        except Exception:
            log.exception("could not settle the deployments of %s; the soak job will", target)

    def _resolve(self, job: Job) -> None:
        """A resolved alert stops in-flight rollbacks it caused and supersedes pending approvals."""
        assert job.alert_id is not None
        for decision in self.store.decisions_for_alert(job.alert_id):
            if decision["status"] in ("approved", "executing"):
                self.store.update_decision(
                    decision["id"],
                    "stop requested: the alert resolved",
                    stop_reason="the alert resolved",
                    audit_kind="stop",
                    audit_data={"reason": "alert resolved"},
                )
            elif decision["status"] == "pending_approval":
                self.store.update_decision(
                    decision["id"],
                    "approval no longer needed: the alert resolved before anyone approved",
                    status="superseded",
                    expect_status=("pending_approval",),
                )
        self.on_event("recovered", {"alert_id": job.alert_id, "target": job.target})


class StoreContext:
    """The durable :class:`~strategies.ExecutionContext`: progress in the steps table, audited."""

    def __init__(self, worker: Worker, decision_id: str, target: str) -> None:
        self._worker = worker
        self._store = worker.store
        self._decision_id = decision_id
        self._target = target

    def finished(self, step: PlanStep) -> Mapping[str, Any] | None:
        return self._store.step_result(self._decision_id, step.id)

    def started(self, step: PlanStep) -> None:
        self._store.step_started(self._decision_id, step.id, step.action, str(step.target), step.as_dict())

    def completed(self, step: PlanStep, result: Mapping[str, Any]) -> None:
        self._store.step_finished(self._decision_id, step.id, str(step.target), result)
        metrics.STEPS.labels(step.action, "done").inc()
        self._worker.on_event("step_done", {"id": self._decision_id, "target": self._target, "step": step.id})

    def stable_health(self, target: TargetRef) -> Health:
        health = self._worker.health(target)
        self._store.audit(None, "health", f"stable side of {target} is {health.value}", target=self._target,
                          decision_id=self._decision_id, data={"health": health.value})  # fmt: skip
        return health

    def stop_requested(self) -> str | None:
        decision = self._store.get_decision(self._decision_id)
        return (decision or {}).get("stop_reason")

    def sleep(self, seconds: float) -> None:
        self._worker._stop.wait(seconds)


class _Heartbeat:
    """Renews a running job's lease (and its target lock) until stopped."""

    def __init__(self, store: Store, job: Job, owner: str, lease: float) -> None:
        self._store, self._job, self._owner, self._lease = store, job, owner, lease
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job.id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._done.wait(self._lease / 3):
            try:
                self._store.heartbeat(self._job.id, self._owner, self._lease, self._job.target)
            except StoreUnavailable as exc:
                log.warning("heartbeat for job %s failed: %s", self._job.key, exc)


def _plan_to_dict(plan: Plan) -> dict[str, Any]:
    data = plan.as_dict()
    request = plan.request
    data["request"] = {
        "target": str(request.target),
        "to_revision": request.to_revision,
        "components": list(request.components),
        "dependencies": {k: list(v) for k, v in request.dependencies.items()},
        "steps": list(request.steps),
        "wait_timeout": request.wait_timeout,
        "step_interval": request.step_interval,
        "critical": request.critical,
        "changed_since": request.changed_since.timestamp() if request.changed_since else None,
    }
    return data


def _plan_from_dict(data: Mapping[str, Any] | None) -> Plan | None:
    """Rebuild a stored plan, so a resumed rollback runs the plan it started, not a fresh one."""
    if not data or "request" not in data:
        return None
    req = data["request"]
    request = RollbackRequest(
        target=TargetRef.parse(req["target"]),
        to_revision=req.get("to_revision"),
        components=tuple(req.get("components", ())),
        dependencies={k: tuple(v) for k, v in req.get("dependencies", {}).items()},
        steps=tuple(req.get("steps", (50, 20, 0))),
        wait_timeout=req.get("wait_timeout", 0.0),
        step_interval=req.get("step_interval", 0.0),
        critical=req.get("critical", False),
        changed_since=datetime.fromtimestamp(req["changed_since"], UTC) if req.get("changed_since") else None,
    )
    steps = tuple(
        PlanStep(
            id=step["id"],
            action=step["action"],
            target=TargetRef.parse(step["target"]),
            params=step.get("params", {}),
            calls=tuple(
                ApiCall(c["method"], c["path"], c.get("body"), c.get("note", "")) for c in step.get("calls", ())
            ),
        )
        for step in data.get("steps", ())
    )
    return Plan(data["strategy"], request, steps, tuple(data.get("notes", ())))


def _requested_revision(state: TargetState, wanted: int | str) -> tuple[int | None, list[str]]:
    """The revision a person asked for: a number in the history, or the newest revision whose name, image or
    image tag is ``wanted`` (people know ``v1.4.2``, not the platform's revision number)."""
    known = ", ".join(f"{r.number} ({r.image or r.name})" if (r.image or r.name) else str(r.number)
                      for r in state.revisions)  # fmt: skip
    if isinstance(wanted, int):
        if state.revisions and state.revision(wanted) is None:
            return None, [f"revision {wanted} is not in the rollout history of {state.target} (known: {known})"]
        return wanted, [f"revision {wanted}, as requested"]
    matches = [r for r in state.revisions if wanted in (r.name, r.image, _image_tag(r.image))]
    if not matches:
        return None, [f"no revision of {state.target} is named or tagged {wanted!r} (known: {known or 'none'})"]
    chosen = max(matches, key=lambda r: r.number)
    also = f", the newest of {len(matches)} with it" if len(matches) > 1 else ""
    return chosen.number, [f"revision {chosen.number} is {wanted!r}{also}, as requested"]


def _image_tag(image: str) -> str:
    """``registry:5000/shop/cart:2.5.0@sha256:...`` -> ``2.5.0`` (a registry's port is not a tag)."""
    last = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return last.partition(":")[2]
