"""``/api/v1``: decisions (why the reactor did what it did), approvals, manual rollbacks through the same
engine and audit trail, and the kill switch's state. Deployments (what CI/CD registers) and revision marks:
:mod:`reactor.api.deployments`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Blueprint, abort, g, jsonify, request, url_for

from reactor.api import authenticated, json_body
from reactor.app import runtime
from reactor.views import decision_view, iso
from strategies import STRATEGIES, TargetRef

bp = Blueprint("v1", __name__, url_prefix="/api/v1")

DECISION_STATUSES = (
    "queued",
    "pending_approval",
    "approved",
    "executing",
    "succeeded",
    "failed",
    "stopped",
    "recorded",
    "held",
    "ignored",
    "rejected",
    "superseded",
)


def _object() -> Mapping[str, Any]:
    body = json_body()
    if not isinstance(body, dict):
        abort(400, "the body must be a JSON object")
    return body


def _target(body: Mapping[str, Any]) -> str:
    value = body.get("target")
    if not isinstance(value, str):
        abort(400, "target is required: platform/cluster/namespace/name, e.g. kubernetes/prod/shop/checkout")
    try:
        return str(TargetRef.parse(value))
    except ValueError as exc:
        abort(400, str(exc))


def _optional_text(body: Mapping[str, Any], key: str, *, limit: int = 2048) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        abort(400, f"{key} must be a string")
    text = str(value).strip()
    if len(text) > limit:
        abort(400, f"{key} is longer than {limit} characters")
    return text or None


# ------------------------------------------------------------------------------------------ decisions


@bp.get("/decisions")
@authenticated
def list_decisions() -> Any:
    args = request.args
    status = args.get("status")
    if status and status not in DECISION_STATUSES:
        abort(400, f"status must be one of {', '.join(DECISION_STATUSES)}")
    try:
        limit = int(args.get("limit", 50))
        before = float(args["before"]) if "before" in args else None
    except ValueError:
        abort(400, "limit must be an integer and before an epoch time in seconds")
    if not 1 <= limit <= 500:
        abort(400, "limit must be between 1 and 500")
    rows = runtime().store.list_decisions(
        target=args.get("target"), status=status, action=args.get("action"), limit=limit, before=before
    )
    items = [decision_view(r, brief=True) for r in rows]
    next_before = rows[-1]["created_at"] if len(rows) >= limit else None
    return jsonify(decisions=items, next_before=next_before)


@bp.get("/decisions/<decision_id>")
@authenticated
def get_decision(decision_id: str) -> Any:
    row = runtime().store.get_decision(decision_id, with_trail=True)
    if row is None:
        abort(404, f"no decision {decision_id!r}")
    return jsonify(decision_view(row))


def _verdict(decision_id: str, verb: str) -> Any:
    body = json_body(required=False)
    if not isinstance(body, dict):
        abort(400, "the body must be a JSON object (or empty)")
    actor = _optional_text(body, "actor", limit=255) or g.actor
    reason = _optional_text(body, "reason") or ""
    rt = runtime()
    method = rt.store.approve_decision if verb == "approve" else rt.store.reject_decision
    result = method(decision_id, actor=actor, reason=reason)
    if result is None:
        abort(404, f"no decision {decision_id!r}")
    changed, found = result
    if not changed:
        wanted = "approved" if verb == "approve" else "rejected"
        abort(409, f"decision {decision_id} is {found}; only a decision pending approval can be {wanted}")
    if verb == "approve":
        rt.worker.wake()
    return jsonify(id=decision_id, status=found, actor=actor), 202 if verb == "approve" else 200


@bp.post("/decisions/<decision_id>/approve")
@authenticated
def approve(decision_id: str) -> Any:
    return _verdict(decision_id, "approve")


@bp.post("/decisions/<decision_id>/reject")
@authenticated
def reject(decision_id: str) -> Any:
    return _verdict(decision_id, "reject")


# ------------------------------------------------------------------------------------------ rollbacks


@bp.post("/rollbacks")
@authenticated
def manual_rollback() -> Any:
    body = _object()
    target = _target(body)
    strategy = _optional_text(body, "strategy", limit=32)
    if strategy is not None and strategy not in STRATEGIES:
        abort(400, f"unknown strategy {strategy!r}; available: {', '.join(sorted(STRATEGIES))}")
    to_revision = body.get("to_revision")
    if to_revision is not None and not (
        (isinstance(to_revision, int) and not isinstance(to_revision, bool))
        or (isinstance(to_revision, str) and 0 < len(to_revision.strip()) <= 255)
    ):
        abort(400, "to_revision must be a revision number or a revision name or image tag (1 to 255 characters)")
    if isinstance(to_revision, str):
        to_revision = to_revision.strip()
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 0 < len(key) <= 128:
        abort(400, "Idempotency-Key must be 1 to 128 characters")
    rt = runtime()
    row = rt.store.create_manual(
        target,
        actor=_optional_text(body, "actor", limit=255) or g.actor,
        reason=_optional_text(body, "reason") or "",
        payload={"target": target, "strategy": strategy, "to_revision": to_revision},
        idempotency_key=key,
    )
    rt.worker.wake()
    url = url_for("v1.get_decision", decision_id=row["id"])
    status = 200 if row.get("duplicate") else 202
    return jsonify(decision_id=row["id"], status=row["status"], url=url), status, {"Location": url}


# ------------------------------------------------------------------------------------------ kill switch


@bp.get("/kill-switch")
@authenticated
def kill_switch() -> Any:
    """Whether automatic rollbacks are stopped, and by what: the ``kill_switch`` setting (this process's
    configuration) or the flag ``smart-rollback kill-switch on`` sets in the store (every replica). The worker
    refuses to roll back when either is on; this says which, so a person knows what to switch off."""
    rt = runtime()
    flag = rt.store.flag_record("kill_switch")
    flag_on = bool(flag and flag["enabled"])
    return jsonify(
        enabled=rt.settings.kill_switch or flag_on,
        setting=rt.settings.kill_switch,
        flag=flag_on,
        flag_actor=flag["actor"] if flag else None,
        flag_updated_at=iso(flag["updated_at"]) if flag else None,
    )
