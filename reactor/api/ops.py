"""Operational endpoints: liveness, readiness (the store answers), metrics and the OpenAPI document."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from reactor import metrics
from reactor.api import authenticated
from reactor.app import runtime
from reactor.openapi import spec
from reactor.store import StoreUnavailable

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> Any:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> Any:
    rt = runtime()
    try:
        rt.store.ping()
    except StoreUnavailable as exc:
        return jsonify(status="unavailable", error=str(exc)), 503
    return jsonify(status="ready")


@bp.get("/metrics")
def metrics_endpoint() -> Any:
    rt = runtime()
    if not rt.settings.auth.metrics_public:
        return authenticated(_render)()
    return _render()


def _render() -> Response:
    body, content_type = metrics.render([metrics.QueueDepthCollector(runtime().store.queue_depth)])
    return Response(body, content_type=content_type)


@bp.get("/openapi.json")
def openapi() -> Any:
    return jsonify(spec(request.host_url.rstrip("/")))
