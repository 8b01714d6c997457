"""The decision engine: a pure function of (alert, policy, target state, history) to a decision.

Nothing here reads a clock, a database or a platform: the worker gathers those inputs, calls
:func:`decide`, writes the decision (with every input and reason) to the audit trail, and only then acts.
That makes every rule table-testable and every decision explainable after the fact.

Rules, in the order they are applied (the first that settles the matter wins):

1. a resolved alert never starts a rollback;
2. the global kill switch;
3. alerts that name no workload (or one no platform can hold: a "/" in a name), or report missing data, are
   ignored (missing data never rolls back);
4. the policy's severity filter;
5. an alert that started before the deploy registered for its target is pre-existing (the deploy did not
   cause it, and rolling back would block the fix from rolling forward); without a registered deploy, one
   that started over a minute before the running revision was created (the platform's record) is too;
6. a rollback of the target already in progress;
7. cooldown after the last rollback, then the max-rollbacks-per-window rail (hold and page);
8. ``rollback_safe: false`` (irreversible migrations): hold and page;
9. choose the revision: the last known good, else the platform's stable one, else the previous one,
   never one marked bad; none left → hold and page;
10. choose the strategy from the alert's hint, failure kind, severity and the platform's capabilities;
11. the mode: ``observe`` records, ``recommend`` waits for approval, ``auto`` acts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from reactor.settings import Policy, ReleaseSettings
from reactor.store import History
from strategies import STRATEGIES, Capability, TargetState
from webhooks import Alert

Action = Literal["rollback", "hold", "ignore"]

#: Severities that mean "the new version is broken", not "it is worse".
CRITICAL_SEVERITIES = frozenset({"critical", "page", "p1", "emergency"})
CRASH_KINDS = frozenset({"crash", "crashloop", "crash_loop", "oom", "critical"})
CANARY_KINDS = frozenset({"canary", "degradation", "regression"})
COMPONENT_KINDS = frozenset({"component"})
NO_DATA_KINDS = frozenset({"no_data", "nodata", "insufficient_data", "insufficient"})
#: Decision statuses that mean a rollback was (or is being) carried out.
EXECUTED_STATUSES = frozenset({"approved", "executing", "succeeded", "failed", "stopped"})
IN_FLIGHT_STATUSES = frozenset({"approved", "executing"})
#: Decision.rule codes, in the order the rules apply: bounded, so a metric label can carry them.
RULES = (
    "resolved",
    "kill_switch",
    "no_workload",
    "bad_target",
    "missing_data",
    "severity",
    "pre_existing",
    "in_progress",
    "cooldown",
    "max_rollbacks",
    "rollback_unsafe",
    "platform_error",
    "no_revision",
    "no_strategy",
    "rollback",
)
#: Without a registered deploy, an alert is pre-existing when it started this long before the running revision
#: was created (the platform's clock against the alert source's).
PRE_EXISTING_GRACE = timedelta(seconds=60)
#: The order strategies are tried in when nothing in the alert points to one.
PREFERENCE = ("undo", "blue_green", "progressive", "partial")


@dataclass(frozen=True)
class Decision:
    action: Action
    mode: str
    reasons: tuple[str, ...]
    strategy: str | None = None
    from_revision: int | None = None
    to_revision: int | None = None
    #: hold decisions that must reach a human now (PagerDuty/Opsgenie), not merely wait for one.
    page: bool = False
    inputs: Mapping[str, Any] = field(default_factory=dict)
    #: Which rule settled it, a short fixed code (:data:`RULES`): what dashboards count decisions by, where
    #: the reasons are free text.
    rule: str = "rollback"

    @property
    def status(self) -> str:
        """The decision's first status in the store."""
        if self.action == "rollback":
            return {"auto": "approved", "recommend": "pending_approval"}.get(self.mode, "recorded")
        return {"hold": "held", "ignore": "ignored"}[self.action]


def decide(
    alert: Alert,
    policy: Policy,
    state: TargetState | None,
    history: History,
    *,
    now: float,
    kill_switch: bool = False,
    release: ReleaseSettings | None = None,
    state_error: str | None = None,
    registered: Mapping[str, Any] | None = None,
) -> Decision:
    """Decide what to do about ``alert``. ``state`` is None when the platform could not describe the target
    (``state_error`` says why). ``registered`` maps strategy names to classes (default: the registry)."""
    registered = STRATEGIES if registered is None else registered
    inputs = _inputs(alert, policy, state, history, now, kill_switch, state_error)

    def out(action: Action, rule: str, *reasons: str, **kw: Any) -> Decision:
        return Decision(action, policy.mode, tuple(reasons), inputs=inputs, rule=rule, **kw)

    if alert.status == "resolved":
        return out("ignore", "resolved", "the alert is resolved: a resolved alert never starts a rollback")
    if kill_switch or history.kill_switch:
        return out(
            "ignore", "kill_switch", "the global kill switch is on: decisions are recorded, nothing is rolled back"
        )
    if not alert.target.key:
        return out(
            "ignore",
            "no_workload",
            "the alert names no workload: add a 'target' (or 'deployment'/'service') label to the rule",
        )
    if alert.target.problem:
        return out("ignore", "bad_target", f"{alert.target.problem}: fix the rule's labels")
    if (alert.failure_kind or "").lower() in NO_DATA_KINDS:
        return out(
            "ignore",
            "missing_data",
            f"the alert reports missing data ({alert.failure_kind}): missing data never rolls back",
        )
    if policy.severities and (alert.severity or "") not in policy.severities:
        return out(
            "ignore",
            "severity",
            f"severity {alert.severity!r} is not one that rolls back this target ({', '.join(policy.severities)})",
        )

    deployment = history.deployment
    if deployment is not None and alert.starts_at.timestamp() < float(deployment["started_at"]):
        return out(
            "ignore",
            "pre_existing",
            f"pre-existing alert: it started at {alert.starts_at.isoformat()}, before deployment "
            f"{deployment['id']} of revision {deployment['revision']} was registered; "
            "the new revision did not cause it",
        )
    created = _running_since(state) if deployment is None else None
    if created is not None and alert.starts_at < created - PRE_EXISTING_GRACE:
        # No deploy was registered (no CI/CD plugin): the platform's own record of when the running revision
        # appeared decides. Only a clear "before" counts, so clock skew never ignores a real regression.
        assert state is not None
        return out(
            "ignore",
            "pre_existing",
            f"pre-existing alert: it started at {alert.starts_at.isoformat()}, before revision "
            f"{state.current_revision} was created at {created.isoformat()} (no deploy was registered; the "
            "platform's revision time decides); the running revision did not cause it",
        )

    in_flight = [d for d in history.decisions if d["status"] in IN_FLIGHT_STATUSES]
    if in_flight:
        return out(
            "ignore", "in_progress", f"a rollback of this target is already in progress (decision {in_flight[0]['id']})"
        )

    executed = [d for d in history.decisions if d["action"] == "rollback" and d["status"] in EXECUTED_STATUSES]
    if executed:
        last = max(float(d["created_at"]) for d in executed)
        if now - last < policy.cooldown_seconds:
            return out(
                "ignore",
                "cooldown",
                f"cooldown: the target was rolled back {now - last:.0f}s ago (cooldown {policy.cooldown_seconds:.0f}s)",
            )
        in_window = [d for d in executed if now - float(d["created_at"]) < policy.window_seconds]
        if len(in_window) >= policy.max_rollbacks:
            return out(
                "hold",
                "max_rollbacks",
                f"{len(in_window)} rollbacks in the last {policy.window_seconds:.0f}s reach the limit of "
                f"{policy.max_rollbacks}: holding for a human",
                page=True,
            )

    if not policy.rollback_safe:
        return out(
            "hold",
            "rollback_unsafe",
            "the policy marks this target rollback_safe: false (irreversible changes)",
            page=True,
        )

    if state is None:
        return out(
            "hold",
            "platform_error",
            f"the platform could not describe the target: {state_error or 'unknown error'}",
            page=True,
        )

    to_revision, revision_reasons = _choose_revision(state, history.marks)
    idle = [c for c in state.colors if c != state.active_color]
    if to_revision is None and not state.revisions and idle and state.active_color:
        # A blue-green Service pair keeps no revision history: what ran before is whatever the idle colour runs.
        revision_reasons = [
            f"{state.target} has no revision history (blue-green pair): the idle colour {idle[0]} is the way back"
        ]
    elif to_revision is None:
        return out("hold", "no_revision", *revision_reasons, page=True)

    strategy, strategy_reasons = _choose_strategy(alert, policy, state, release, registered, to_revision)
    if strategy is None:
        return out("hold", "no_strategy", *revision_reasons, *strategy_reasons, page=True)

    mode_reason = {
        "observe": "mode observe: the rollback is recorded, not executed",
        "recommend": "mode recommend: waiting for a person to approve or reject",
        "auto": "mode auto: executing",
    }[policy.mode]
    return out(
        "rollback",
        "rollback",
        *revision_reasons,
        *strategy_reasons,
        mode_reason,
        strategy=strategy,
        from_revision=state.current_revision,
        to_revision=to_revision,
    )


def _running_since(state: TargetState | None) -> datetime | None:
    """When the platform created the running revision (UTC), if it says."""
    if state is None or state.current_revision is None:
        return None
    running = state.revision(state.current_revision)
    created = running.created_at if running is not None else None
    if created is not None and created.tzinfo is None:
        created = created.replace(tzinfo=UTC)  # platforms report UTC; a naive time must not break the comparison
    return created


def _choose_revision(state: TargetState, marks: Mapping[str, str]) -> tuple[int | None, list[str]]:
    """The revision to return to, never one marked bad, with the reasons for the choice."""
    current = state.current_revision

    def bad(number: int) -> bool:
        revision = state.revision(number)
        names = {str(number)} | ({revision.name, revision.image} if revision else set())
        return any(marks.get(n) == "bad" for n in names if n)

    def good(number: int) -> bool:
        revision = state.revision(number)
        names = {str(number)} | ({revision.name, revision.image} if revision else set())
        return any(marks.get(n) == "good" for n in names if n)

    older = sorted((r.number for r in state.revisions if r.number != current), reverse=True)
    if not older:
        return None, [f"no revision to roll back to: {state.target} has only revision {current}"]
    known_good = [n for n in older if good(n) and not bad(n)]
    if known_good:
        return known_good[0], [f"revision {known_good[0]} is the last known good"]
    reasons: list[str] = []
    preferred = state.stable_revision if state.stable_revision not in (None, current) else None
    candidates = ([preferred] if preferred is not None else []) + [n for n in older if n != preferred]
    for number in candidates:
        if bad(number):
            reasons.append(f"revision {number} is marked bad: skipped")
            continue
        why = "the platform's stable revision" if number == preferred else "the previous revision"
        return number, [*reasons, f"revision {number} is {why}"]
    return None, [*reasons, "every older revision is marked bad: no safe revision to roll back to"]


def _choose_strategy(
    alert: Alert,
    policy: Policy,
    state: TargetState,
    release: ReleaseSettings | None,
    registered: Mapping[str, Any],
    to_revision: int | None = None,
) -> tuple[str | None, list[str]]:
    allowed = [s for s in (policy.strategies or tuple(registered)) if s in registered]
    idle = [c for c in state.colors if c != state.active_color]
    idle_revisions = {state.color_revisions[c] for c in idle if c in state.color_revisions}

    def usable(name: str) -> bool:
        if name not in allowed:
            return False
        needs: frozenset[Capability] = getattr(registered[name], "requires", frozenset())
        if not needs <= state.capabilities:
            return False
        if name == "partial":
            return bool(alert.target.component or alert.target.name) and release is not None
        if name == "blue_green" and not idle:
            return False
        if name == "blue_green" and to_revision is not None:
            # Switching colours lands on whatever the idle colour runs: only if that is the chosen revision
            # (or, when the platform does not say, the chosen revision is the natural previous one).
            if idle_revisions:
                return to_revision in idle_revisions
            return to_revision in (state.stable_revision, state.previous_revision())
        return True

    def needs_ok(name: str) -> bool:
        return getattr(registered[name], "requires", frozenset()) <= state.capabilities

    def why_not(name: str) -> str:
        if name not in registered:
            return f"strategy {name!r} is not available"
        if name not in allowed:
            return f"the policy does not allow {name!r} (allowed: {', '.join(allowed) or 'none'})"
        if name == "partial" and release is None:
            return "'partial' needs the target's release and its components in the policy"
        if name == "blue_green" and not idle and needs_ok(name):
            return "the target has no idle colour to switch to"
        if name == "blue_green" and to_revision is not None and not usable(name) and needs_ok(name):
            return f"the idle colour does not run revision {to_revision}"
        needs: frozenset[Capability] = getattr(registered[name], "requires", frozenset())
        missing = sorted(c.value for c in needs - state.capabilities)
        return f"the target cannot do {name!r} (missing: {', '.join(missing)})"

    reasons: list[str] = []
    hint = (alert.strategy_hint or "").strip()
    if hint:
        if usable(hint):
            return hint, [f"the alert asks for {hint!r}"]
        reasons.append(f"the alert asks for {hint!r}, but {why_not(hint)}")

    kind = (alert.failure_kind or "").lower()
    severity = (alert.severity or "").lower()
    canary_weight = _canary_weight(state.traffic)

    if severity in CRITICAL_SEVERITIES or kind in CRASH_KINDS:
        cause = f"severity {severity}" if severity in CRITICAL_SEVERITIES else f"failure kind {kind}"
        if usable("blue_green"):
            return "blue_green", [*reasons, f"{cause}: switch back to the other colour at once"]
        if usable("undo"):
            return "undo", [*reasons, f"{cause}: full undo ({why_not('blue_green')})"]
    if kind in COMPONENT_KINDS or (alert.target.component and release is not None and len(release.components) > 1):
        if usable("partial"):
            return "partial", [*reasons, "a component of a multi-component release failed: roll back only it"]
        reasons.append(f"component failure, but {why_not('partial')}")
    if kind in CANARY_KINDS or 0 < canary_weight < 100:
        if usable("progressive"):
            cause = f"the canary takes {canary_weight}% of traffic" if canary_weight else f"failure kind {kind}"
            return "progressive", [*reasons, f"{cause}: shift traffic back step by step"]
        reasons.append(f"degradation during a canary, but {why_not('progressive')}")

    for name in (policy.default_strategy, *PREFERENCE):
        if usable(name):
            return name, [*reasons, f"strategy {name!r}: the policy's default" if name == policy.default_strategy
                          else f"strategy {name!r}: the first the target supports"]  # fmt: skip
    return None, [*reasons, "no allowed strategy fits the target: " + "; ".join(why_not(n) for n in PREFERENCE)]


def _canary_weight(traffic: Mapping[str, int]) -> int:
    return int(traffic.get("canary", 0)) if traffic else 0


def _inputs(
    alert: Alert,
    policy: Policy,
    state: TargetState | None,
    history: History,
    now: float,
    kill_switch: bool,
    state_error: str | None,
) -> dict[str, Any]:
    """Everything the decision was made from, for the audit trail."""
    return {
        "alert": alert.summary(),
        "policy": policy.model_dump(mode="json"),
        "state": state.as_dict() if state is not None else None,
        "state_error": state_error,
        "history": {
            "recent_decisions": [
                {k: d.get(k) for k in ("id", "action", "strategy", "status", "created_at")} for d in history.decisions
            ],
            "deployment": _plain(history.deployment),
            "marks": dict(history.marks),
        },
        "kill_switch": kill_switch or history.kill_switch,
        "decided_at": now,
    }


def _plain(row: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {k: row[k] for k in ("id", "revision", "previous_revision", "started_at", "status") if k in row}
