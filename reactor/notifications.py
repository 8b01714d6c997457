"""Wiring the notification hub to the worker and the store.

The worker reports what happens to a decision (``on_event(kind, data)``); :class:`Notifier` turns that into
a :class:`reactor.notify.Event` carrying what a person needs (what, why, what was done, links) and hands it
to the hub, which delivers asynchronously: a slow or failing channel never delays the rollback. Every
delivery status the hub reports is appended to the audit trail of its decision (secrets are already
redacted by the hub).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from reactor.notify import Delivery, Event, EventKind, Links, NotificationHub, Reason, Severity, Step
from reactor.settings import Settings
from reactor.store import Store, StoreUnavailable
from strategies import TargetRef

log = logging.getLogger(__name__)

#: Worker event kinds that are not hub kinds of the same name.
_STOPPED = "rollback_stopped"


class Notifier:
    """The worker's ``on_event`` callback: builds events from the store and publishes them."""

    def __init__(self, settings: Settings, store: Store, *, hub: NotificationHub | None = None) -> None:
        self.settings = settings
        self.store = store
        self.hub = hub if hub is not None else NotificationHub(settings.notifications, record=self.record)

    def __call__(self, kind: str, data: Mapping[str, Any]) -> None:
        try:
            for event in self._events(kind, data):
                self.hub.publish(event)
        except Exception:  # a notification problem must never reach the rollback
            log.exception("could not build the %s notification", kind)

    def record(self, delivery: Delivery) -> None:
        """Append a delivery status to the audit trail of its decision."""
        try:
            self.store.audit(
                None,
                "notification",
                f"{delivery.kind} to {delivery.channel}: {delivery.status.value}"
                + (f" ({delivery.error})" if delivery.error else ""),
                target=delivery.target or None,
                decision_id=delivery.decision_id or None,
                data=delivery.as_dict(),
            )
        except StoreUnavailable as exc:
            log.warning("delivery status of %s not recorded: %s", delivery.id, exc)

    def close(self) -> None:
        self.hub.close()

    # ------------------------------------------------------------------------------------------ events

    def _events(self, kind: str, data: Mapping[str, Any]) -> list[Event]:
        if kind == "recovered":
            alert_id = data.get("alert_id")
            decisions = self.store.decisions_for_alert(int(alert_id)) if alert_id else []
            return [self._event(EventKind.RECOVERED, d["id"], "the alert resolved") for d in decisions]
        decision_id = data.get("id")
        if not decision_id:
            return []
        if kind == _STOPPED:
            decision = self.store.get_decision(decision_id) or {}
            reason = decision.get("stop_reason") or ""
            if "resolved" in reason:
                return [self._event(EventKind.RECOVERED, decision_id, f"rollback stopped: {reason}")]
            return [self._event(EventKind.ROLLBACK_FAILED, decision_id, f"rollback stopped: {reason}")]
        try:
            event_kind = EventKind(kind)
        except ValueError:
            return []
        return [self._event(event_kind, decision_id)]

    def _event(self, kind: EventKind, decision_id: str, summary: str = "") -> Event:
        decision = self.store.get_decision(decision_id, with_trail=True)
        if decision is None:
            raise LookupError(f"decision {decision_id} is gone")
        alert = (decision.get("inputs") or {}).get("alert") or decision.get("alert") or {}
        steps = tuple(
            Step(
                name=s["step_id"],
                status=s["status"],
                detail=s.get("action") or "",
                at=datetime.fromtimestamp(s["finished_at"] or s["started_at"], UTC),
            )
            for s in decision.get("steps", [])
            if s["status"] in ("done", "failed")
        )
        outcome = decision.get("outcome") or {}
        if not summary and kind is EventKind.ROLLBACK_FAILED:
            summary = str(outcome.get("error") or outcome.get("message") or "")
        started = [a["at"] for a in decision.get("audit", []) if a["kind"] == "execution"]
        return Event(
            kind=kind,
            decision_id=decision_id,
            target=TargetRef.parse(decision["target"]),
            severity=Severity.parse(alert.get("severity")),
            strategy=decision.get("strategy"),
            mode=decision.get("mode") or "auto",
            reasons=tuple(Reason(text=r) for r in decision.get("reasons") or ()),
            steps=steps,
            links=self._links(decision_id, decision, alert),
            health_score=alert.get("value") if isinstance(alert.get("value"), int | float) else None,
            from_revision=_text(decision.get("from_revision")),
            to_revision=_text(decision.get("to_revision")),
            summary=summary,
            started_at=datetime.fromtimestamp(started[0], UTC) if started else None,
        )

    def _links(self, decision_id: str, decision: Mapping[str, Any], alert: Mapping[str, Any]) -> Links:
        public = (self.settings.server.public_url or f"http://{self.settings.server.bind}").rstrip("/")
        grafana = self.settings.server.grafana_url
        target = decision.get("target") or ""
        return Links(
            explanation=f"{public}/api/v1/decisions/{decision_id}",
            grafana=grafana.format(target=target, name=target.rsplit("/", 1)[-1]) if grafana else None,
            alertmanager=((alert.get("annotations") or {}).get("alertmanager_url") or None),
        )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
