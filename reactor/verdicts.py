"""The verdict of a registered deployment: a pure function of (deployment, facts, now), like the engine.

A pipeline registers a deploy, then waits for one of these verdicts:

``healthy``            the soak ended with no rollback and no rollback-worthy alert: the revision becomes the
                       last known good;
``rolled_back``        a rollback of the target succeeded after the deploy started;
``bad``                the reactor decided the deploy must go but did not (or could not) roll it back: observe
                       mode recorded a rollback, a decision holds for a human, a rollback failed or stopped,
                       the kill switch swallowed a rollback-worthy alert; or a person marked it bad;
``insufficient_data``  the soak ended while an alert reported missing data for the target, or Prometheus says
                       the exporter never had sufficient data during the soak;
``superseded``         another deployment of the same target was registered before this one got a verdict.

Only decisions and alerts from after the deploy started count: an alert that was already firing is
pre-existing (the engine ignores it too), so a fix rolls forward while an old alert still fires.

Nothing here reads a clock or a database: :mod:`reactor.deployments` gathers the :class:`Facts`, calls
:func:`judge`, and stores what it says (the worker on a scheduled job at the end of the soak, and at once
after every decision about the target); the API calls it to show progress.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

IN_PROGRESS = "in_progress"
HEALTHY = "healthy"
ROLLED_BACK = "rolled_back"
BAD = "bad"
INSUFFICIENT = "insufficient_data"
SUPERSEDED = "superseded"
STATUSES = (IN_PROGRESS, HEALTHY, ROLLED_BACK, BAD, INSUFFICIENT, SUPERSEDED)
FINAL = frozenset(STATUSES) - {IN_PROGRESS}

#: Phases of a deployment still in progress (a final deployment's phase is its status).
SOAKING = "soaking"
DECIDING = "deciding"
AWAITING_APPROVAL = "awaiting_approval"
ROLLING_BACK = "rolling_back"
SETTLING = "settling"

#: How soon to look again while something else (the worker, a person) must act first.
RECHECK_SECONDS = 5.0
RECHECK_DECIDING_SECONDS = 1.0

_IN_FLIGHT = frozenset({"queued", "approved", "executing"})
_BAD_OUTCOMES = frozenset({"failed", "stopped"})


@dataclass(frozen=True)
class Facts:
    """What the store knows about a deployment's target since the deploy started.

    ``decisions``: the target's decisions created at or after the deploy's start, oldest first (``id``,
    ``action``, ``status``, ``mode``, ``reasons``, ``kill_switch``, ``alert_started_at``).
    ``firing``: alerts of the target firing now that started at or after the deploy and do not report
    missing data (``id``, ``name``, ``decided``). ``no_data``: alerts of the target firing now that report
    missing data, whenever they started (``id``, ``name``). ``sufficient``: whether Prometheus saw sufficient
    data during the soak (None: not asked).
    """

    decisions: tuple[Mapping[str, Any], ...] = ()
    firing: tuple[Mapping[str, Any], ...] = ()
    no_data: tuple[Mapping[str, Any], ...] = ()
    sufficient: bool | None = None
    sufficiency_detail: str = ""


@dataclass(frozen=True)
class Judgement:
    """``status`` is final or ``in_progress``; ``phase`` and ``message`` say what the deployment waits for."""

    status: str
    phase: str
    message: str
    decision_id: str | None = None
    #: epoch seconds at which the answer may change without any new event (None: only an event changes it).
    recheck_at: float | None = None

    @property
    def final(self) -> bool:
        return self.status in FINAL


def judge(deployment: Mapping[str, Any], facts: Facts, *, now: float) -> Judgement:
    """The verdict of ``deployment`` (a stored row) given ``facts`` at time ``now`` (epoch seconds)."""
    status = deployment["status"]
    if status in FINAL:
        decision_id = (deployment.get("data") or {}).get("decision_id")
        return Judgement(status, status, deployment.get("verdict_reason") or status, decision_id)
    started = float(deployment["started_at"])
    soak_until = float(deployment.get("soak_until") or started)

    by_decision = _from_decisions(facts.decisions, started, now)
    if by_decision is not None:
        return by_decision

    undecided = [a for a in facts.firing if not a.get("decided")]
    if now < soak_until:
        left = soak_until - now
        if undecided:
            return Judgement(
                IN_PROGRESS,
                DECIDING,
                f"alert {undecided[0]['name']!r} fired; waiting for the reactor's decision "
                f"({_secs(left)} of soak left)",
                recheck_at=soak_until,
            )
        return Judgement(
            IN_PROGRESS, SOAKING, f"soaking: {_secs(left)} left, no rollback-worthy alert so far", recheck_at=soak_until
        )
    if undecided:
        return Judgement(
            IN_PROGRESS,
            DECIDING,
            f"the soak is over but alert {undecided[0]['name']!r} is not decided yet",
            recheck_at=now + RECHECK_DECIDING_SECONDS,
        )
    soak = _secs(soak_until - started)
    if facts.no_data:
        alert = facts.no_data[0]
        return Judgement(
            INSUFFICIENT,
            INSUFFICIENT,
            f"the {soak} soak ended while alert {alert['name']!r} reports missing data for the target: "
            "health could not be confirmed",
        )
    if facts.sufficient is False:
        detail = f": {facts.sufficiency_detail}" if facts.sufficiency_detail else ""
        return Judgement(
            INSUFFICIENT, INSUFFICIENT, f"the exporter never had sufficient data during the {soak} soak{detail}"
        )
    return Judgement(HEALTHY, HEALTHY, f"no rollback and no rollback-worthy alert during the {soak} soak")


def _from_decisions(decisions: tuple[Mapping[str, Any], ...], started: float, now: float) -> Judgement | None:
    """The verdict the target's decisions since the deploy imply, or None when they imply nothing."""
    rollbacks = [d for d in decisions if d.get("action") == "rollback"]
    done = [d for d in rollbacks if d.get("status") == "succeeded"]
    if done:
        d = done[0]
        to = f" to revision {d['to_revision']}" if d.get("to_revision") is not None else ""
        return Judgement(ROLLED_BACK, ROLLED_BACK, f"rolled back{to} by decision {d['id']}: {_why(d)}", d["id"])
    running = [d for d in rollbacks if d.get("status") in _IN_FLIGHT]
    if running:
        d = running[0]
        return Judgement(
            IN_PROGRESS,
            ROLLING_BACK,
            f"decision {d['id']} is rolling the target back ({d.get('strategy') or 'strategy pending'})",
            d["id"],
            recheck_at=now + RECHECK_SECONDS,
        )
    waiting = [d for d in rollbacks if d.get("status") == "pending_approval"]
    if waiting:
        d = waiting[0]
        return Judgement(
            IN_PROGRESS,
            AWAITING_APPROVAL,
            f"decision {d['id']} waits for a person to approve or reject the rollback",
            d["id"],
            recheck_at=now + RECHECK_SECONDS,
        )
    for d in decisions:
        status, action = d.get("status"), d.get("action")
        if action == "rollback" and status in _BAD_OUTCOMES:
            return Judgement(BAD, BAD, f"the rollback of decision {d['id']} {status}: {_why(d)}", d["id"])
        if action == "rollback" and status == "recorded":
            return Judgement(
                BAD, BAD, f"decision {d['id']} would roll back (mode {d.get('mode')}, not executed): {_why(d)}", d["id"]
            )
        if action == "hold" or status == "held":
            return Judgement(BAD, BAD, f"decision {d['id']} holds the target for a person: {_why(d)}", d["id"])
        alert_started = d.get("alert_started_at")
        if action == "ignore" and d.get("kill_switch") and alert_started is not None and alert_started >= started:
            return Judgement(
                BAD, BAD, f"the kill switch kept decision {d['id']} from acting on an alert of this deploy", d["id"]
            )
    return None


def _why(decision: Mapping[str, Any]) -> str:
    text = "; ".join(decision.get("reasons") or ()) or "no reason recorded"
    return text if len(text) <= 400 else text[:397] + "..."


def _secs(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"
