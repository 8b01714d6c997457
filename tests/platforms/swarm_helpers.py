"""What a deploy tool would do to a swarm (create services, roll out a new image), for building test states.

Everything here talks to the real engine through the docker SDK; nothing of the platform under test is used.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

from docker.types import ContainerSpec, RollbackConfig, ServiceMode, TaskTemplate, UpdateConfig

#: Fast rollouts: all tasks at once, start-first, a short monitor and stop grace (SWARM_LOCAL.md, step 3).
FAST_UPDATE = {"parallelism": 0, "monitor": int(2e8), "order": "start-first"}
TEST_LABEL = "io.smart-rollback.test"


def unique(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:6]}"


def create_service(
    api: Any,
    name: str,
    image: str = "app:v1",
    *,
    replicas: int = 1,
    stack: str | None = None,
    labels: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    all_labels = {TEST_LABEL: "1", **(labels or {})}
    if stack:
        all_labels["com.docker.stack.namespace"] = stack
    spec = ContainerSpec(image, env=dict(env or {}), stop_grace_period=int(1e9))
    svc = api.create_service(
        TaskTemplate(spec),
        name=name,
        mode=ServiceMode("replicated", replicas=replicas),
        update_config=UpdateConfig(**FAST_UPDATE),
        rollback_config=RollbackConfig(**FAST_UPDATE),
        labels=all_labels,
    )
    wait_converged(api, svc["ID"])
    return str(svc["ID"])


def deploy(api: Any, name: str, image: str, *, env: Mapping[str, str] | None = None) -> None:
    """Roll out a new image (and environment) the way `docker service update --image` does."""
    svc = api.inspect_service(name)
    spec = copy.deepcopy(svc["Spec"])
    cs = spec["TaskTemplate"]["ContainerSpec"]
    cs["Image"] = image
    if env is not None:
        cs["Env"] = [f"{k}={v}" for k, v in env.items()]
    url = f"{api.base_url}/v{api.api_version}/services/{svc['ID']}/update"
    resp = api.post(
        url,
        params={"version": svc["Version"]["Index"]},
        data=json.dumps(spec),
        headers={"Content-Type": "application/json"},
    )
    resp.raise_for_status()
    wait_converged(api, svc["ID"])


def wait_converged(api: Any, service: str, timeout: float = 60.0) -> dict[str, Any]:
    """Until no update is in flight and every desired task runs the current spec."""
    deadline = time.monotonic() + timeout
    while True:
        svc = api.inspect_service(service)
        state = (svc.get("UpdateStatus") or {}).get("State")
        tasks = api.tasks(filters={"service": svc["ID"], "desired-state": "running"})
        cs = svc["Spec"]["TaskTemplate"]["ContainerSpec"]
        want = svc["Spec"]["Mode"].get("Replicated", {}).get("Replicas", 1)
        ok = [t for t in tasks if t["Spec"]["ContainerSpec"] == cs and t["Status"]["State"] == "running"]
        if state not in ("updating", "rollback_started") and len(ok) == want == len(tasks):
            return dict(svc)
        if time.monotonic() > deadline:
            raise AssertionError(f"{service} did not converge: state={state} tasks={[t['Status'] for t in tasks]}")
        time.sleep(0.05)


def running_images(api: Any, service: str) -> list[str]:
    tasks = api.tasks(filters={"service": service, "desired-state": "running"})
    return sorted(t["Spec"]["ContainerSpec"]["Image"] for t in tasks if t["Status"]["State"] == "running")


def remove_test_objects(api: Any) -> None:
    """Remove every service and revision record the tests created (without waiting for tasks to stop)."""
    for svc in api.services(filters={"label": TEST_LABEL}):
        api.remove_service(svc["ID"])
    for cfg in api.configs(filters={"label": "io.smart-rollback.service"}):
        api.remove_config(cfg["ID"])


def deploy_failing(api: Any, name: str, *, failure_action: str, timeout: float = 30.0) -> dict[str, Any]:
    """Roll out app:bad with ``UpdateConfig.FailureAction`` = pause or rollback; return the settled spec."""
    svc = api.inspect_service(name)
    spec = copy.deepcopy(svc["Spec"])
    spec["TaskTemplate"]["ContainerSpec"]["Image"] = "app:bad"
    spec["UpdateConfig"].update({"FailureAction": failure_action, "Monitor": int(1e9), "Parallelism": 1})
    url = f"{api.base_url}/v{api.api_version}/services/{svc['ID']}/update"
    resp = api.post(
        url,
        params={"version": svc["Version"]["Index"]},
        data=json.dumps(spec),
        headers={"Content-Type": "application/json"},
    )
    resp.raise_for_status()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        svc = api.inspect_service(name)
        if (svc.get("UpdateStatus") or {}).get("State") in (
            "paused",
            "rollback_completed",
            "rollback_paused",
        ):
            return dict(svc)
        time.sleep(0.05)
    raise AssertionError(f"{name}: the failing update did not settle: {svc.get('UpdateStatus')}")
