"""``/api/v1/deployments`` and ``/api/v1/marks``: what CI/CD registers, the verdicts pipeline gates wait for, and
the revision marks people give (audited with who and why)."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, abort, current_app, g, jsonify, request, url_for

from reactor.api import authenticated
from reactor.api.v1 import _object, _optional_text, _target
from reactor.app import runtime
from reactor.deployments import Deployments
from reactor.store.deployments import last_known_good
from reactor.verdicts import FINAL, STATUSES
from reactor.views import deployment_view, iso

bp = Blueprint("deployments", __name__, url_prefix="/api/v1")

#: How often a long-polling request looks at the store (verdicts may come from another process or replica).
POLL_SECONDS = 0.5
_WAITERS = "smart_rollback_deployment_waiters"
VERDICTS = ("good", "bad")
ARGOCD_HINT = (
    "target is required: subscribe the Argo CD application with the target as the recipient, e.g. the annotation "
    "notifications.argoproj.io/subscribe.on-sync-running-smart-rollback.smart-rollback: kubernetes/prod/shop/checkout"
)


@bp.record_once
def _setup(state: Any) -> None:
    # Long polls hold a request thread each: at most half of a process's threads may wait, so webhooks always
    # find a free one. Past that, a request answers at once and the gate polls again.
    threads = state.app.extensions["smart_rollback"].settings.server.threads
    state.app.extensions[_WAITERS] = threading.BoundedSemaphore(max(1, threads // 2))


def _deployments() -> Deployments:
    rt = runtime()
    return Deployments(rt.store, rt.settings, platforms=rt.worker.platforms, clock=rt.store.clock)


# ------------------------------------------------------------------------------------------ deployments


@bp.post("/deployments")
@authenticated
def register_deployment() -> Any:
    body = _object()
    if body.get("target") in (None, "") and body.get("source") == "argocd":
        abort(400, ARGOCD_HINT)
    target = _target(body)
    revision = _optional_text(body, "revision", limit=128)
    if revision is None:
        abort(400, "revision is required (the revision being deployed, e.g. 7 or an image tag)")
    key = request.headers.get("Idempotency-Key") or _optional_text(body, "idempotency_key", limit=1024)
    if key is not None and not 0 < len(key) <= 1024:
        abort(400, "Idempotency-Key must be 1 to 1024 characters")
    context = _context(body.get("context"))
    source = _optional_text(body, "source", limit=32)
    rt = runtime()
    row = rt.store.register_deployment(
        {
            "target": target,
            "revision": revision,
            "previous_revision": _optional_text(body, "previous_revision", limit=128),
            "pipeline_url": _optional_text(body, "pipeline_url"),
            "actor": _optional_text(body, "actor", limit=255) or g.actor,
            "data": {"source": source, "context": context, "authenticated_as": g.actor} if source or context else None,
        },
        soak_seconds=rt.settings.soak_for(target),
        idempotency_key=key,
    )
    duplicate = bool(row.pop("duplicate", False))
    rt.worker.wake()
    view = deployment_view(rt.store, row)
    view["duplicate"] = duplicate
    response = jsonify(view)
    response.status_code = 200 if duplicate else 201
    response.headers["Location"] = url_for("deployments.get_deployment", deployment_id=row["id"])
    return response


def _context(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) > 32:
        abort(400, "context must be an object of at most 32 string values (e.g. repository, commit, application)")
    out = {}
    for key, item in value.items():
        if not isinstance(item, str | int | float) or isinstance(item, bool) or len(str(key)) > 64:
            abort(400, f"context.{key} must be a string (and its name at most 64 characters)")
        out[str(key)] = str(item)[:512]
    return out


@bp.get("/deployments")
@authenticated
def list_deployments() -> Any:
    args = request.args
    status = args.get("status")
    if status and status not in STATUSES:
        abort(400, f"status must be one of {', '.join(STATUSES)}")
    try:
        limit = int(args.get("limit", 50))
        before = float(args["before"]) if "before" in args else None
    except ValueError:
        abort(400, "limit must be an integer and before an epoch time in seconds")
    if not 1 <= limit <= 500:
        abort(400, "limit must be between 1 and 500")
    store = runtime().store
    rows = store.list_deployments(
        target=args.get("target"), status=status, revision=args.get("revision"), limit=limit, before=before
    )
    next_before = rows[-1]["started_at"] if len(rows) >= limit else None
    return jsonify(deployments=[deployment_view(store, r) for r in rows], next_before=next_before)


@bp.get("/deployments/<deployment_id>")
@authenticated
def get_deployment(deployment_id: str) -> Any:
    """The deployment and its verdict. ``?wait=SECONDS`` long-polls: the answer comes as soon as ``state``
    differs from ``since`` (default: the state when the request arrived) or the deployment is final, or when
    the wait (bounded by ``deployments.max_wait_seconds``) is over."""
    store = runtime().store
    row = store.get_deployment(deployment_id)
    if row is None:
        abort(404, f"no deployment {deployment_id!r}")
    try:
        wait = float(request.args.get("wait", 0))
    except ValueError:
        abort(400, "wait must be a number of seconds")
    if not 0 <= wait < float("inf"):
        abort(400, "wait must be a number of seconds, 0 or more")
    since = request.args.get("since")
    view = deployment_view(store, row)
    wait = min(wait, runtime().settings.deployments.max_wait_seconds)
    if wait <= 0 or row["status"] in FINAL or (since is not None and since != view["state"]):
        return jsonify(view)
    waiters: threading.BoundedSemaphore = current_app.extensions[_WAITERS]
    if not waiters.acquire(blocking=False):
        response = jsonify(view)
        response.headers["Retry-After"] = "1"
        return response
    try:
        seen = since if since is not None else view["state"]
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
            row = store.get_deployment(deployment_id) or row
            view = deployment_view(store, row)
            if view["state"] != seen or row["status"] in FINAL:
                break
    finally:
        waiters.release()
    return jsonify(view)


@bp.post("/deployments/<deployment_id>/mark")
@authenticated
def mark_deployment(deployment_id: str) -> Any:
    body = _object()
    verdict, actor, reason = _verdict(body)
    row = _deployments().mark(deployment_id, verdict, actor=actor, reason=reason, authenticated_as=g.actor)
    if row is None:
        abort(404, f"no deployment {deployment_id!r}")
    return jsonify(deployment_view(runtime().store, row))


def _verdict(body: Mapping[str, Any]) -> tuple[str, str, str]:
    verdict = body.get("verdict")
    if verdict not in VERDICTS:
        abort(400, "verdict must be 'good' or 'bad'")
    reason = _optional_text(body, "reason")
    if not reason:
        abort(400, "reason is required: say why, it goes to the audit trail (e.g. 'INC-42: checkout errors')")
    actor = _optional_text(body, "actor", limit=255) or g.actor
    return str(verdict), actor, reason


# ------------------------------------------------------------------------------------------------ marks


@bp.post("/marks")
@authenticated
def mark_revision() -> Any:
    body = _object()
    target = _target(body)
    revision = _optional_text(body, "revision", limit=128)
    if revision is None:
        abort(400, "revision is required (as registered, or the platform's revision number or name)")
    verdict, actor, reason = _verdict(body)
    settled = _deployments().mark_target(
        target, revision, verdict, actor=actor, reason=reason, authenticated_as=g.actor
    )
    marks = runtime().store.revision_marks(target)
    return (
        jsonify(target=target, revision=revision, verdict=verdict, actor=actor, deployments=settled,
                last_good=_mark_view(last_known_good(marks))),
        201,
    )  # fmt: skip


@bp.get("/marks")
@authenticated
def list_marks() -> Any:
    target = request.args.get("target")
    if not target:
        abort(400, "target is required: platform/cluster/namespace/name")
    try:
        limit = int(request.args.get("limit", 100))
    except ValueError:
        abort(400, "limit must be an integer")
    if not 1 <= limit <= 500:
        abort(400, "limit must be between 1 and 500")
    marks = runtime().store.revision_marks(target, limit=limit)
    return jsonify(target=target, last_good=_mark_view(last_known_good(marks)), marks=[_mark_view(m) for m in marks])


def _mark_view(mark: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if mark is None:
        return None
    keys = ("revision", "verdict", "actor", "reason")
    return {**{k: mark.get(k) for k in keys}, "at": iso(mark.get("at"))}
