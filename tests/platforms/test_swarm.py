"""Swarm-specific behaviour on a real dockerd: what describe reads, the two revert paths, the revision record,
stacks, label switching, failed updates and the error mapping. The shared behaviour is in test_contract.py.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from sandbox.swarm_engine import LocalSwarm
from strategies import load_platform
from strategies.base import TargetRef
from strategies.errors import (
    ConflictError,
    NoPreviousRevisionError,
    PermanentError,
    TargetNotFoundError,
)
from strategies.platform_kit import PlatformConfigError
from strategies.swarm import LABEL_REVISION, LABEL_SERVICE, SwarmPlatform, wrap_docker_error

from . import swarm_helpers as swh


@pytest.fixture
def stack() -> str:
    return swh.unique("st")


def platform_for(engine: LocalSwarm, **options: Any) -> SwarmPlatform:
    return SwarmPlatform(clusters={"local": {"base_url": engine.base_url}}, poll_interval=0.05, **options)


def ref(stack: str, name: str) -> TargetRef:
    return TargetRef("swarm", "local", stack, name)


def env_of(api: Any, service: str) -> list[str]:
    return list(api.inspect_service(service)["Spec"]["TaskTemplate"]["ContainerSpec"].get("Env") or [])


def test_registry_loads_the_swarm_platform() -> None:
    assert load_platform("swarm") is SwarmPlatform


def test_describe_a_never_updated_service(swarm_engine: LocalSwarm, swarm_api: Any, stack: str) -> None:
    swh.create_service(swarm_api, f"{stack}_web", "app:v1", stack=stack, replicas=2)
    state = platform_for(swarm_engine).describe(ref(stack, "web"))
    assert [r.image for r in state.revisions] == ["app:v1"]
    assert state.current_revision == state.stable_revision == 1
    assert state.details["update_status"] is None
    assert state.details["previous_image"] is None
    assert state.details["last_known_good_image"] == "app:v1"
    assert (state.desired_replicas, state.ready_replicas, state.ready) == (2, 2, True)


def test_describe_after_a_deploy_reads_spec_previous_spec_and_update_status(
    swarm_engine: LocalSwarm, swarm_api: Any, stack: str
) -> None:
    swh.create_service(swarm_api, f"{stack}_web", "app:v1", stack=stack)
    swh.deploy(swarm_api, f"{stack}_web", "app:v2")
    state = platform_for(swarm_engine).describe(ref(stack, "web"))
    assert [(r.number, r.image) for r in state.revisions] == [(1, "app:v1"), (2, "app:v2")]
    assert state.details["image"] == "app:v2" and state.details["previous_image"] == "app:v1"
    assert state.details["update_status"]["State"] == "completed"
    # Not recorded yet: shown with the next free numbers, written on the first write (or record()).
    assert state.details["unrecorded_revisions"] == [1, 2]
    assert swarm_api.configs(filters={"label": f"{LABEL_SERVICE}={stack}_web"}) == []


def test_revert_to_previous_uses_the_server_side_rollback(swarm_engine: LocalSwarm, swarm_api: Any, stack: str) -> None:
    swh.create_service(swarm_api, f"{stack}_web", "app:v1", stack=stack, replicas=2)
    swh.deploy(swarm_api, f"{stack}_web", "app:v2")
    platform = platform_for(swarm_engine)
    target = ref(stack, "web")

    calls = platform.revert(target)
    assert calls[-1].path.endswith("&rollback=previous")
    # The body is the current spec (the Engine ignores it but rejects an empty one).
    assert calls[-1].body["TaskTemplate"]["ContainerSpec"]["Image"] == "app:v2"
    state = platform.wait_ready(target, 30)
    assert state.details["update_status"]["State"] == "rollback_completed"
    assert swh.running_images(swarm_api, f"{stack}_web") == ["app:v1", "app:v1"]
    # Both specs were recorded before the write, so the history survives the swap.
    records = swarm_api.configs(filters={"label": f"{LABEL_SERVICE}={stack}_web"})
    assert sorted(r["Spec"]["Labels"][LABEL_REVISION] for r in records) == ["1", "2"]


def test_revert_to_an_older_recorded_revision_restores_image_and_environment(
    swarm_engine: LocalSwarm, swarm_api: Any, stack: str
) -> None:
    name = f"{stack}_web"
    swh.create_service(swarm_api, name, "app:v1", stack=stack, env={"FEATURE": "off"})
    platform = platform_for(swarm_engine)
    target = ref(stack, "web")
    platform.record(target)
    swh.deploy(swarm_api, name, "app:v2", env={"FEATURE": "on"})
    platform.record(target)
    swh.deploy(swarm_api, name, "app:v3", env={"FEATURE": "on", "CACHE": "big"})

    state = platform.describe(target)
    assert [(r.number, r.image) for r in state.revisions] == [(1, "app:v1"), (2, "app:v2"), (3, "app:v3")]
    calls = platform.revert(target, 1)
    update = calls[-1]
    assert "rollback=previous" not in update.path  # v1 is not PreviousSpec: a normal update to the record
    platform.wait_ready(target, 30)
    assert swh.running_images(swarm_api, name) == ["app:v1"]
    assert env_of(swarm_api, name) == ["FEATURE=off"]  # configuration rolls back with the code
    assert platform.describe(target).current_revision == 1


def test_a_second_platform_instance_sees_the_same_history(swarm_engine: LocalSwarm, swarm_api: Any, stack: str) -> None:
    """Records live in the swarm (Docker configs), so another reactor replica or a restart reads them."""
    name = f"{stack}_web"
    swh.create_service(swarm_api, name, "app:v1", stack=stack)
    first = platform_for(swarm_engine)
    first.record(ref(stack, "web"))
    swh.deploy(swarm_api, name, "app:v2")
    first.record(ref(stack, "web"))
    swh.deploy(swarm_api, name, "app:v3")
    second = platform_for(swarm_engine)
    assert [r.image for r in second.describe(ref(stack, "web")).revisions] == ["app:v1", "app:v2", "app:v3"]
    record = swarm_api.configs(filters={"label": f"{LABEL_SERVICE}={name}"})[0]
    data = json.loads(base64.b64decode(record["Spec"]["Data"]))
    assert data["service"] == name and "ContainerSpec" in data["template"]


def test_history_is_pruned_to_the_limit(swarm_engine: LocalSwarm, swarm_api: Any, stack: str) -> None:
    name = f"{stack}_web"
    swh.create_service(swarm_api, name, "app:v1", stack=stack)
    platform = platform_for(swarm_engine, history_limit=2)
    for image in ("app:v2", "app:v3"):
        platform.record(ref(stack, "web"))
        swh.deploy(swarm_api, name, image)
    platform.record(ref(stack, "web"))
    labels = [c["Spec"]["Labels"] for c in swarm_api.configs(filters={"label": f"{LABEL_SERVICE}={name}"})]
    assert sorted(label[LABEL_REVISION] for label in labels) == ["2", "3"]


def test_stack_services_are_components_and_siblings_revert_alone(
    swarm_engine: LocalSwarm, swarm_api: Any, stack: str
) -> None:
    for svc in ("checkout", "payments"):
        swh.create_service(swarm_api, f"{stack}_{svc}", "app:v1", stack=stack)
        swh.deploy(swarm_api, f"{stack}_{svc}", "app:v2")
    platform = platform_for(swarm_engine)
    target = ref(stack, "checkout")
    state = platform.describe(target)
    assert state.components == ("checkout", "payments")
    platform.revert(target.sibling("payments"))
    platform.wait_ready(target.sibling("payments"), 30)
    assert swh.running_images(swarm_api, f"{stack}_payments") == ["app:v1"]
    assert swh.running_images(swarm_api, f"{stack}_checkout") == ["app:v2"]


def test_services_outside_a_stack_use_the_default_namespace(swarm_engine: LocalSwarm, swarm_api: Any) -> None:
    name = swh.unique("plain")
    swh.create_service(swarm_api, name, "app:v1")
    platform = platform_for(swarm_engine)
    assert platform.describe(TargetRef("swarm", "local", "default", name)).components == ()
    with pytest.raises(TargetNotFoundError):
        platform.describe(TargetRef("swarm", "local", "other-stack", name))


def test_switch_by_label_restarts_no_task(swarm_engine: LocalSwarm, swarm_api: Any, stack: str) -> None:
    blue, green = f"{stack}_bg-blue", f"{stack}_bg-green"
    swh.create_service(swarm_api, blue, "app:v1", stack=stack, labels={"traefik.enable": "true"})
    swh.create_service(swarm_api, green, "app:v2", stack=stack, labels={"traefik.enable": "false"})
    tasks_before = {t["ID"] for t in swarm_api.tasks(filters={"desired-state": "running"})}
    settings = {"colors": {"blue": blue, "green": green}, "active_label": "traefik.enable"}
    platform = platform_for(swarm_engine, targets={f"local/{stack}/bg": settings})
    target = ref(stack, "bg")
    assert platform.describe(target).active_color == "blue"

    calls = platform.switch(target, "green")
    assert [c.note.split(" on ")[0] for c in calls if "label" in c.note] == [
        "set label traefik.enable=true",
        "set label traefik.enable=false",
    ]
    platform.wait_ready(target, 30)
    assert platform.describe(target).active_color == "green"
    assert swarm_api.inspect_service(green)["Spec"]["Labels"]["traefik.enable"] == "true"
    assert {t["ID"] for t in swarm_api.tasks(filters={"desired-state": "running"})} >= tasks_before


def test_a_paused_update_is_reported_and_reverted(swarm_engine: LocalSwarm, swarm_api: Any, stack: str) -> None:
    name = f"{stack}_web"
    swh.create_service(swarm_api, name, "app:v1", stack=stack, replicas=2)
    swh.deploy_failing(swarm_api, name, failure_action="pause")
    platform = platform_for(swarm_engine)
    target = ref(stack, "web")

    state = platform.describe(target)
    assert state.details["update_status"]["State"] == "paused"
    assert not state.ready
    assert state.details["last_known_good_image"] == "app:v1"
    assert state.revision(state.stable_revision).image == "app:v1"  # type: ignore[union-attr, arg-type]
    failed = [t for t in state.details["tasks"] if t["image"] == "app:bad" and t["state"] == "failed"]
    assert failed and "exit" in failed[0]["message"]  # why it paused, from the task history
    with pytest.raises(PermanentError, match="paused"):
        platform.wait_ready(target, 5)

    platform.revert(target, state.stable_revision)
    platform.wait_ready(target, 30)
    assert swh.running_images(swarm_api, name) == ["app:v1", "app:v1"]


def test_after_swarms_own_automatic_rollback(swarm_engine: LocalSwarm, swarm_api: Any, stack: str) -> None:
    """FailureAction=rollback: Swarm restores the old spec itself and clears PreviousSpec."""
    name = f"{stack}_web"
    swh.create_service(swarm_api, name, "app:v1", stack=stack)
    swh.deploy_failing(swarm_api, name, failure_action="rollback")
    state = platform_for(swarm_engine).describe(ref(stack, "web"))
    assert state.details["update_status"]["State"] == "rollback_completed"
    assert state.details["previous_image"] is None
    assert [r.image for r in state.revisions] == ["app:v1"]
    assert state.stable_revision == state.current_revision
    with pytest.raises(NoPreviousRevisionError):
        platform_for(swarm_engine).revert(ref(stack, "web"))


def test_stale_version_is_a_conflict_and_missing_previous_spec_is_permanent(
    swarm_engine: LocalSwarm, swarm_api: Any, stack: str
) -> None:
    """The Engine's own answers, mapped: 500 'update out of sequence' and 400 'no previous spec'."""
    import docker.errors

    name = f"{stack}_web"
    swh.create_service(swarm_api, name, "app:v1", stack=stack)
    svc = swarm_api.inspect_service(name)
    url = f"{swarm_api.base_url}/v{swarm_api.api_version}/services/{svc['ID']}/update"
    headers = {"Content-Type": "application/json"}
    answers = []
    for params in ({"version": 1}, {"version": svc["Version"]["Index"], "rollback": "previous"}):
        resp = swarm_api.post(url, params=params, data=json.dumps(svc["Spec"]), headers=headers)
        with pytest.raises(docker.errors.APIError) as err:
            _raise(resp)
        answers.append(wrap_docker_error(err.value, "update"))
    assert isinstance(answers[0], ConflictError) and answers[0].delay > 0
    assert isinstance(answers[1], NoPreviousRevisionError)


def _raise(resp: Any) -> None:
    import docker.errors
    import requests

    try:
        resp.raise_for_status()
    except requests.exceptions.HTTPError as exc:
        raise docker.errors.create_api_error_from_http_exception(exc) from None


def test_unknown_cluster_is_permanent(swarm_engine: LocalSwarm) -> None:
    with pytest.raises(TargetNotFoundError, match="unknown swarm cluster"):
        platform_for(swarm_engine).describe(TargetRef("swarm", "elsewhere", "shop", "web"))


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"targets": {"shop/web": {}}}, "cluster/namespace/name"),
        ({"targets": {"prod/shop/web": {}}}, "names cluster 'prod'"),
        ({"targets": {"local/shop/web": {"colors": {"a": "x", "b": "y", "c": "z"}}}}, "exactly two"),
        ({"targets": {"local/shop/web": {"canary": {"stable": "x", "preview": "y"}}}}, "stable and canary"),
        ({"history_limit": 1}, "history_limit"),
        ({"clusters": {"local": {"base_url": "unix:///x", "bogus": 1}}}, "bogus"),
        ({"pool": 3}, "pool"),
    ],
)
def test_invalid_options_fail_at_start_up(options: dict[str, Any], problem: str) -> None:
    with pytest.raises(PlatformConfigError, match="invalid options for platform 'swarm'") as err:
        SwarmPlatform(**options)
    assert problem in str(err.value)
