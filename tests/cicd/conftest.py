"""CI/CD fixtures: reactor apps with a controllable clock, a dry-run cluster that can roll out revisions,
Alertmanager payloads about a target, and helpers to register and read deployments."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask

from reactor.worker import Platforms
from strategies import Capability, Revision, TargetRef, TargetState
from strategies.dryrun import DryRunPlatform
from tests.conftest import load_fixture
from tests.reactor.conftest import AUTH, TOKEN, app_factory, db_url, make_settings, rt, sqlite_url

__all__ = ["AUTH", "TOKEN", "app_factory", "db_url", "make_settings", "rt", "sqlite_url"]

TARGET = "kubernetes/prod/shop/checkout"
REF = TargetRef.parse(TARGET)
FIRING = load_fixture("alertmanager-0.25-webhook-firing.json")


class Clock:
    """The reactor's time, moved by the test (store, worker and views read it)."""

    def __init__(self, now: float = 2_000_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Cluster(DryRunPlatform):
    """The record-only platform with revisions a test can roll out, like a pipeline's deploy step would."""

    def roll_out(self, target: TargetRef, image: str) -> int:
        state = self.describe(target)
        number = max(r.number for r in state.revisions) + 1
        with self._lock:
            self._states[target] = replace(
                state,
                current_revision=number,
                revisions=(*state.revisions, Revision(number, name=f"{target.name}-{number}", image=image)),
            )
        return number


def seeded_cluster(target: TargetRef = REF, *, revisions: int = 3, stable: int | None = None) -> Cluster:
    """A cluster where ``target`` runs revision ``revisions`` (images shop:1..N), the platform's stable one
    being ``stable`` (default: the one before)."""
    state = TargetState(
        target=target,
        current_revision=revisions,
        revisions=tuple(Revision(n, name=f"{target.name}-{n}", image=f"shop:{n}") for n in range(1, revisions + 1)),
        stable_revision=stable if stable is not None else revisions - 1,
        capabilities=frozenset(Capability),
    )
    return Cluster(targets={str(target): state})


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cluster() -> Cluster:
    return seeded_cluster()


def build(app_factory: Any, db_url: str, cluster: DryRunPlatform, clock: Clock, **overrides: Any) -> Flask:
    """An app in auto mode on ``cluster`` (as every platform label), its worker driven by the test."""
    base = {"policies.defaults.mode": "auto", "policies.defaults.wait_timeout_seconds": 0,
            "deployments.soak_seconds": 600}  # fmt: skip
    settings = make_settings(db_url, **{**base, **overrides})
    instances = dict.fromkeys(("kubernetes", "dry-run", "ecs", "swarm"), cluster)
    app = app_factory(settings, platforms=Platforms(settings, instances=instances), on_event=lambda *_: None)
    runtime = rt(app)
    runtime.store.clock = clock
    runtime.worker.clock = clock
    return app


def alert_payload(
    starts_at: float,
    *,
    target: str = TARGET,
    name: str = "DeploymentHealthLow",
    fingerprint: str | None = None,
    status: str = "firing",
    **labels: str,
) -> dict[str, Any]:
    """The captured Alertmanager 0.25 notification, about ``target``, started at ``starts_at``."""
    ref = TargetRef.parse(target)
    body = copy.deepcopy(FIRING)
    alert = body["alerts"][0]
    alert["labels"] = {**alert["labels"], "alertname": name, "cluster": ref.cluster, "namespace": ref.namespace,
                       "deployment": ref.name, **labels}  # fmt: skip
    alert["startsAt"] = datetime.fromtimestamp(starts_at, UTC).isoformat().replace("+00:00", "Z")
    alert["fingerprint"] = fingerprint or hashlib.sha1(f"{target}|{name}|{starts_at}".encode()).hexdigest()[:16]
    alert["status"] = status
    body["status"] = status
    if status == "resolved":
        alert["endsAt"] = datetime.fromtimestamp(starts_at + 1, UTC).isoformat().replace("+00:00", "Z")
    body["commonLabels"] = alert["labels"]
    return body


def send(app: Flask, body: Mapping[str, Any]) -> dict[str, Any]:
    response = app.test_client().post("/webhooks/alertmanager", json=body, headers=AUTH)
    assert response.status_code == 202, response.json
    return dict(response.json)


def register(app: Flask, revision: str, *, target: str = TARGET, **extra: Any) -> dict[str, Any]:
    headers = {**AUTH, **extra.pop("headers", {})}
    response = app.test_client().post(
        "/api/v1/deployments", json={"target": target, "revision": revision, **extra}, headers=headers
    )
    assert response.status_code in (200, 201), response.json
    return dict(response.json)


def view(app: Flask, deployment_id: str, **params: Any) -> dict[str, Any]:
    response = app.test_client().get(f"/api/v1/deployments/{deployment_id}", query_string=params, headers=AUTH)
    assert response.status_code == 200, response.json
    return dict(response.json)


def decisions(app: Flask) -> list[dict[str, Any]]:
    return rt(app).store.list_decisions()
