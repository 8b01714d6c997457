"""JSON views of stored rows, shared by the HTTP API and the command line (times as RFC 3339 UTC)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from reactor.store import Store

_TIME_FIELDS = ("created_at", "updated_at", "finished_at", "started_at", "verdict_at", "at", "soak_until")


def iso(value: float | None) -> str | None:
    return None if value is None else datetime.fromtimestamp(value, UTC).isoformat().replace("+00:00", "Z")


def _times(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: iso(v) if k in _TIME_FIELDS and isinstance(v, int | float) else v for k, v in row.items()}


def decision_view(row: Mapping[str, Any], *, brief: bool = False) -> dict[str, Any]:
    """A decision as the API shows it; the full view explains it: inputs, plan, steps, audit trail."""
    keys = ["id", "target", "action", "strategy", "mode", "status", "from_revision", "to_revision", "reasons"]
    keys += ["actor", "created_at", "updated_at", "finished_at", "alert_id"]
    view = _times({k: row.get(k) for k in keys})
    view["explanation"] = explain_line(row)
    if brief:
        return view
    view.update(
        {
            "alert": row.get("alert"),
            "inputs": row.get("inputs"),
            "plan": row.get("plan"),
            "outcome": row.get("outcome"),
            "stop_reason": row.get("stop_reason"),
            "steps": [_times(s) for s in row.get("steps", [])],
            "audit": [_times(a) for a in row.get("audit", [])],
        }
    )
    return view


def explain_line(row: Mapping[str, Any]) -> str:
    """One sentence: what was decided and the deciding reason."""
    reasons = row.get("reasons") or []
    what = {
        "rollback": f"roll back with {row.get('strategy')}"
        + (f" to revision {row['to_revision']}" if row.get("to_revision") is not None else ""),
        "hold": "hold for a human",
        "ignore": "do nothing",
    }.get(row.get("action") or "", str(row.get("action")))
    return f"{what} [{row.get('status')}]" + (f": {'; '.join(reasons)}" if reasons else "")


def deployment_view(store: Store, row: Mapping[str, Any], *, now: float | None = None) -> dict[str, Any]:
    """A deployment with its verdict and, while it has none, what it waits for (``progress``).

    ``state`` changes whenever the status, the phase or the decision in play changes: long-polling gates wait
    for it to differ from the one they saw.
    """
    from reactor.deployments import current

    judgement = current(store, row, now=store.clock() if now is None else now)
    view = _times({k: v for k, v in row.items() if k != "idempotency_key"})
    soak_until = row.get("soak_until")
    left = max(0.0, float(soak_until) - (store.clock() if now is None else now)) if soak_until else None
    view["progress"] = {
        "phase": judgement.phase,
        "message": judgement.message,
        "decision_id": judgement.decision_id,
        "soak_seconds_left": None if row["status"] != "in_progress" or left is None else round(left, 1),
    }
    view["state"] = f"{row['status']}:{judgement.phase}:{judgement.decision_id or ''}"
    return view
