"""What the reactor tells people about: one :class:`Event` per step of a decision's life.

The reactor (engine and worker) builds events; the hub routes them to channels. An event carries
everything a message needs (what happened, why, what was done, where to look), so channels never call
back into the reactor. Events of one decision share ``decision_id``: that is the grouping key for Slack
threads, PagerDuty ``dedup_key``, Opsgenie ``alias``, e-mail ``References`` and Grafana regions.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from strategies.base import TargetRef


class EventKind(enum.StrEnum):
    """The life of a decision, in order. ``step_done`` repeats; ``held_for_approval`` is recommend mode."""

    DECISION_MADE = "decision_made"
    HELD_FOR_APPROVAL = "held_for_approval"
    ROLLBACK_STARTED = "rollback_started"
    STEP_DONE = "step_done"
    ROLLBACK_SUCCEEDED = "rollback_succeeded"
    ROLLBACK_FAILED = "rollback_failed"
    RECOVERED = "recovered"


class Severity(enum.StrEnum):
    """Alert severity, ordered: ``Severity.rank`` compares them for ``min_severity`` routes."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_ORDER.index(self)

    @classmethod
    def parse(cls, text: str | Severity | None) -> Severity:
        """Map the severity label of an alert onto ours; unknown labels count as ``warning``.

        Alert rules use many spellings (``page``, ``high``, ``P1``...); a notification must still go out,
        so this never raises.
        """
        if isinstance(text, Severity):
            return text
        value = (text or "").strip().lower()
        if value in _SEVERITY_ALIASES:
            return _SEVERITY_ALIASES[value]
        try:
            return cls(value)
        except ValueError:
            return cls.WARNING


_SEVERITY_ORDER = (Severity.INFO, Severity.WARNING, Severity.ERROR, Severity.CRITICAL)
_SEVERITY_ALIASES = {
    "page": Severity.CRITICAL,
    "p1": Severity.CRITICAL,
    "fatal": Severity.CRITICAL,
    "high": Severity.ERROR,
    "p2": Severity.ERROR,
    "major": Severity.ERROR,
    "warn": Severity.WARNING,
    "medium": Severity.WARNING,
    "p3": Severity.WARNING,
    "minor": Severity.WARNING,
    "low": Severity.INFO,
    "p4": Severity.INFO,
    "p5": Severity.INFO,
    "none": Severity.INFO,
}


@dataclass(frozen=True)
class Reason:
    """One reason behind the decision: ``error_rate 12.5% > 5%`` with the score it contributed.

    ``score`` is the health score (0-100) or the metric's own score as the engine reports it; ``None``
    when the reason has no number (e.g. "critical metric breached").
    """

    text: str
    score: float | None = None
    metric: str | None = None


@dataclass(frozen=True)
class Step:
    """One thing the rollback did (or tried): ``set_weights stable=80 canary=20 -> ok``."""

    name: str
    status: str = "done"
    detail: str = ""
    at: datetime | None = None


@dataclass(frozen=True)
class Links:
    """Where a reader goes next. Every link is optional; messages show the ones present."""

    explanation: str | None = None
    grafana: str | None = None
    alertmanager: str | None = None

    def items(self) -> list[tuple[str, str]]:
        pairs = [
            ("Decision explanation", self.explanation),
            ("Grafana", self.grafana),
            ("Alertmanager", self.alertmanager),
        ]
        return [(label, url) for label, url in pairs if url]


@dataclass(frozen=True)
class Event:
    """One notification-worthy moment of a decision.

    ``event_id`` makes publishing idempotent: the hub drops an event whose id it has already seen (a
    worker that crashed and re-ran a step publishes the same event again). By default it is derived
    from the decision and the kind; for ``step_done`` also from the number of steps and the last step, so
    a ``step_done`` event carries the steps done so far, the last one being the one just finished.
    """

    kind: EventKind
    decision_id: str
    target: TargetRef
    severity: Severity = Severity.WARNING
    strategy: str | None = None
    #: observe | recommend | auto
    mode: str = "auto"
    reasons: tuple[Reason, ...] = ()
    steps: tuple[Step, ...] = ()
    links: Links = field(default_factory=Links)
    #: The target's health score (0-100) when the decision was taken.
    health_score: float | None = None
    from_revision: str | None = None
    to_revision: str | None = None
    #: Free text: the error of a failed rollback, who approved, why the target counts as recovered...
    summary: str = ""
    occurred_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    #: When the rollback started (Grafana regions start here when the start annotation was missed).
    started_at: datetime | None = None
    event_id: str = ""

    def __post_init__(self) -> None:
        if not self.decision_id:
            raise ValueError("Event.decision_id must not be empty: it groups the messages of one decision")
        if not isinstance(self.kind, EventKind):
            object.__setattr__(self, "kind", EventKind(self.kind))
        if not isinstance(self.severity, Severity):
            object.__setattr__(self, "severity", Severity.parse(self.severity))
        if isinstance(self.target, str):
            object.__setattr__(self, "target", TargetRef.parse(self.target))
        if self.occurred_at.tzinfo is None:
            object.__setattr__(self, "occurred_at", self.occurred_at.replace(tzinfo=UTC))
        if not self.event_id:
            suffix = ""
            if self.kind is EventKind.STEP_DONE and self.steps:
                last = self.steps[-1]
                suffix = f":{len(self.steps)}:{last.name}:{last.detail}"
            object.__setattr__(self, "event_id", f"{self.decision_id}:{self.kind.value}{suffix}")

    def top_reasons(self, limit: int = 3) -> tuple[Reason, ...]:
        """The reasons worth a line in a message: the engine lists them most important first."""
        return self.reasons[:limit]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form; the generic webhook sends it (schema documented in docs/notifications.md)."""
        return {
            "event_id": self.event_id,
            "kind": self.kind.value,
            "decision_id": self.decision_id,
            "target": str(self.target),
            "platform": self.target.platform,
            "cluster": self.target.cluster,
            "namespace": self.target.namespace,
            "name": self.target.name,
            "severity": self.severity.value,
            "strategy": self.strategy,
            "mode": self.mode,
            "health_score": self.health_score,
            "from_revision": self.from_revision,
            "to_revision": self.to_revision,
            "summary": self.summary,
            "reasons": [{"text": r.text, "score": r.score, "metric": r.metric} for r in self.reasons],
            "steps": [{"name": s.name, "status": s.status, "detail": s.detail, "at": _iso(s.at)} for s in self.steps],
            "links": {
                "explanation": self.links.explanation,
                "grafana": self.links.grafana,
                "alertmanager": self.links.alertmanager,
            },
            "occurred_at": _iso(self.occurred_at),
            "started_at": _iso(self.started_at),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Event:
        """The inverse of :meth:`as_dict` (extra keys are ignored)."""
        links = data.get("links") or {}
        return cls(
            kind=EventKind(data["kind"]),
            decision_id=str(data["decision_id"]),
            target=TargetRef.parse(str(data["target"])),
            severity=Severity.parse(data.get("severity")),
            strategy=data.get("strategy"),
            mode=str(data.get("mode") or "auto"),
            reasons=tuple(
                Reason(text=str(r["text"]), score=r.get("score"), metric=r.get("metric"))
                for r in data.get("reasons") or ()
            ),
            steps=tuple(
                Step(
                    name=str(s["name"]),
                    status=str(s.get("status") or "done"),
                    detail=str(s.get("detail") or ""),
                    at=_parse_time(s.get("at")),
                )
                for s in data.get("steps") or ()
            ),
            links=Links(
                explanation=links.get("explanation"),
                grafana=links.get("grafana"),
                alertmanager=links.get("alertmanager"),
            ),
            health_score=data.get("health_score"),
            from_revision=_opt_str(data.get("from_revision")),
            to_revision=_opt_str(data.get("to_revision")),
            summary=str(data.get("summary") or ""),
            occurred_at=_parse_time(data.get("occurred_at")) or datetime.now(UTC),
            started_at=_parse_time(data.get("started_at")),
            event_id=str(data.get("event_id") or ""),
        )


def sample_event(kind: EventKind = EventKind.ROLLBACK_SUCCEEDED, *, decision_id: str = "test") -> Event:
    """A realistic event for ``smart-rollback notify test`` and the docs: clearly marked as a test."""
    now = datetime.now(UTC)
    return Event(
        kind=kind,
        decision_id=decision_id,
        target=TargetRef("kubernetes", "prod-eu", "shop", "checkout"),
        severity=Severity.CRITICAL,
        strategy="progressive",
        mode="auto",
        health_score=23.0,
        from_revision="7",
        to_revision="6",
        reasons=(
            Reason("http error ratio 12.4% vs baseline 0.8% (Mann-Whitney p=0.001)", 18.0, "error_ratio"),
            Reason("p99 latency 1.9 s vs baseline 0.4 s", 31.0, "latency_p99"),
            Reason("saturation within bounds", 92.0, "cpu_saturation"),
        ),
        steps=(
            Step("set_weights", "done", "stable=50 canary=50", now),
            Step("set_weights", "done", "stable=100 canary=0", now),
        ),
        summary="TEST: sent by `smart-rollback notify test` to check the wiring; nothing was rolled back.",
        occurred_at=now,
        started_at=now,
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse_time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)
