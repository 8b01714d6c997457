"""ECS-specific behaviour on moto's server over real HTTP: revisions, revert, ALB weights and listener
swaps, CodeDeploy blue/green, steady-state waits, the error mapping, and moto's known gaps (asserted, not
papered over). The shared behaviour is in test_contract.py.
"""

from __future__ import annotations

from typing import Any

import botocore.exceptions
import pytest

from strategies import load_platform
from strategies.base import Capability, TargetRef
from strategies.ecs import EcsPlatform, wrap_aws_error
from strategies.errors import (
    ConflictError,
    PermanentError,
    RevisionNotFoundError,
    TargetNotFoundError,
    TemporaryError,
    UnsupportedError,
)
from strategies.platform_kit import PlatformConfigError

from . import aws_helpers as awsh

SERVICE_ROLE = "arn:aws:iam::123456789012:role/codedeploy"


def ref(world: awsh.EcsWorld, service: str | None = None) -> TargetRef:
    return TargetRef("ecs", "moto", world.cluster, service or world.service)


def platform(aws: Any, world: awsh.EcsWorld, **targets: Any) -> EcsPlatform:
    return EcsPlatform(session=aws, **world.options(**targets))


def test_registry_loads_the_ecs_platform() -> None:
    assert load_platform("ecs") is EcsPlatform


def test_describe_reads_revisions_deployments_and_components(aws: Any, moto_url: str) -> None:
    world = awsh.ecs_world(aws, moto_url)
    ecs = awsh.client(aws, moto_url, "ecs")
    awsh.register(ecs, "checkout", "registry.local/checkout:2.0")  # registered, never deployed
    awsh.register(ecs, "checkout-worker", "registry.local/worker:1.0")  # same prefix, other family
    state = platform(aws, world).describe(ref(world))

    assert [(r.number, r.image) for r in state.revisions] == [
        (1, "registry.local/checkout:1.1"),
        (2, "registry.local/checkout:1.2"),
        (3, "registry.local/checkout:1.3"),
    ]
    assert state.current_revision == 3 and state.previous_revision() == 2
    assert state.revision(3).template["containerDefinitions"][0]["environment"] == [  # type: ignore[union-attr]
        {"name": "APP_VERSION", "value": "v3"}
    ]
    assert state.components == ("checkout", "payments")
    assert state.capabilities == {Capability.REVERT, Capability.COMPONENTS}
    assert (state.desired_replicas, state.ready_replicas, state.ready) == (2, 2, True)
    assert state.details["deployment_controller"] == "ECS"
    assert state.details["family"] == "checkout"


def test_history_limit_bounds_the_revisions_listed(aws: Any, moto_url: str) -> None:
    world = awsh.ecs_world(aws, moto_url, versions=4)
    options = world.options()
    options["history_limit"] = 2
    state = EcsPlatform(session=aws, **options).describe(ref(world))
    assert [r.number for r in state.revisions] == [2, 3, 4]


def test_moto_leaves_deployments_stale_so_stable_revision_is_unknown(aws: Any, moto_url: str) -> None:
    """moto 5.2 keeps the first PRIMARY deployment (task definition :1, IN_PROGRESS) after every update, and
    does not echo deploymentConfiguration. Real ECS moves the PRIMARY to the new task definition. The
    platform notices the mismatch and says "unknown" rather than guessing (docs/platforms.md, moto gaps)."""
    world = awsh.ecs_world(aws, moto_url)
    state = platform(aws, world).describe(ref(world))
    (deployment,) = state.details["deployments"]
    assert deployment["task_definition"].endswith(":1") and deployment["rollout_state"] == "IN_PROGRESS"
    assert state.stable_revision is None
    assert state.details["circuit_breaker"] is None


def test_revert_updates_the_service_and_waits_for_steady_state(aws: Any, moto_url: str) -> None:
    world = awsh.ecs_world(aws, moto_url)
    plat = platform(aws, world)
    calls = plat.revert(ref(world))
    assert [(c.method, c.path) for c in calls] == [("POST", "ecs:UpdateService")]
    assert calls[0].body == {
        "cluster": world.cluster,
        "service": world.service,
        "taskDefinition": world.task_definitions[1],
    }
    assert awsh.service_task_definition(aws, moto_url, world) == world.task_definitions[1]
    state = plat.wait_ready(ref(world), 5)
    assert state.current_revision == 2
    assert plat.revert(ref(world), 2) == []  # already there: no call


def test_a_deregistered_revision_cannot_be_deployed_again(aws: Any, moto_url: str) -> None:
    world = awsh.ecs_world(aws, moto_url)
    ecs = awsh.client(aws, moto_url, "ecs")
    ecs.deregister_task_definition(taskDefinition=world.task_definitions[0])
    plat = platform(aws, world)
    assert [r.number for r in plat.describe(ref(world)).revisions] == [2, 3]
    with pytest.raises(RevisionNotFoundError, match="INACTIVE"):
        plat.revert(ref(world), 1)


def test_a_deregistered_current_revision_is_still_described(aws: Any, moto_url: str) -> None:
    world = awsh.ecs_world(aws, moto_url)
    awsh.client(aws, moto_url, "ecs").deregister_task_definition(taskDefinition=world.task_definitions[2])
    state = platform(aws, world).describe(ref(world))
    assert [r.number for r in state.revisions] == [1, 2, 3] and state.current_revision == 3


def test_wait_ready_gives_up_with_a_temporary_error(aws: Any, moto_url: str) -> None:
    world = awsh.ecs_world(aws, moto_url)
    ecs = awsh.client(aws, moto_url, "ecs")
    # A fresh service in moto reports 0 of 2 tasks running until its desired count is set again.
    ecs.create_service(
        cluster=world.cluster, serviceName="cold", taskDefinition=world.task_definitions[0], desiredCount=2
    )
    with pytest.raises(TemporaryError, match="0/2 tasks running"):
        platform(aws, world).wait_ready(ref(world, "cold"), 0.2)


def test_set_weights_on_a_listener_rule(aws: Any, moto_url: str) -> None:
    world = awsh.ecs_world(aws, moto_url)
    awsh.alb(aws, moto_url, world, ("stable", "canary", "default"), {"default": 1})
    elb = awsh.client(aws, moto_url, "elbv2")
    forward = {
        "Type": "forward",
        "ForwardConfig": {
            "TargetGroups": [
                {"TargetGroupArn": world.target_groups["stable"], "Weight": 90},
                {"TargetGroupArn": world.target_groups["canary"], "Weight": 10},
            ]
        },
    }
    rule = elb.create_rule(
        ListenerArn=world.listener_arn,
        Priority=10,
        Conditions=[{"Field": "path-pattern", "Values": ["/checkout/*"]}],
        Actions=[forward],
    )["Rules"][0]["RuleArn"]
    settings = {
        "rule_arn": rule,
        "weights": {"stable": world.target_groups["stable"], "canary": world.target_groups["canary"]},
    }
    plat = platform(aws, world, **{world.key(): settings})
    assert plat.describe(ref(world)).traffic == {"stable": 90, "canary": 10}
    calls = plat.set_weights(ref(world), {"stable": 100, "canary": 0})
    assert [c.path for c in calls] == ["elasticloadbalancing:ModifyRule"]
    actions = elb.describe_rules(RuleArns=[rule])["Rules"][0]["Actions"]
    weights = {g["TargetGroupArn"]: g["Weight"] for g in actions[0]["ForwardConfig"]["TargetGroups"]}
    assert weights == {world.target_groups["stable"]: 100, world.target_groups["canary"]: 0}
    # The listener's default action (another route) is untouched.
    assert awsh.listener_weights(aws, moto_url, world) == {"default": 1}


def test_routes_the_platform_does_not_own_are_not_dropped(aws: Any, moto_url: str) -> None:
    world = awsh.ecs_world(aws, moto_url)
    awsh.alb(aws, moto_url, world, ("stable", "canary", "other"), {"stable": 50, "canary": 25, "other": 25})
    settings = {
        "listener_arn": world.listener_arn,
        "weights": {"stable": world.target_groups["stable"], "canary": world.target_groups["canary"]},
    }
    plat = platform(aws, world, **{world.key(): settings})
    with pytest.raises(UnsupportedError, match="does not own"):
        plat.set_weights(ref(world), {"stable": 100, "canary": 0})
    assert awsh.listener_weights(aws, moto_url, world) == {"stable": 50, "canary": 25, "other": 25}


def codedeploy_world(aws: Any, moto_url: str, *, in_flight: bool) -> awsh.EcsWorld:
    """A CODE_DEPLOY service with its deployment group (blue/green target groups, prod listener)."""
    world = awsh.ecs_world(aws, moto_url, versions=1)
    ecs = awsh.client(aws, moto_url, "ecs")
    awsh.alb(aws, moto_url, world, ("blue", "green"), {"blue": 1})
    ecs.create_service(
        cluster=world.cluster,
        serviceName="storefront",
        taskDefinition=world.task_definitions[0],
        desiredCount=1,
        deploymentController={"type": "CODE_DEPLOY"},
    )
    cd = awsh.client(aws, moto_url, "codedeploy")
    cd.create_application(applicationName="shop", computePlatform="ECS")
    cd.create_deployment_group(
        applicationName="shop",
        deploymentGroupName="storefront",
        serviceRoleArn=SERVICE_ROLE,
        deploymentStyle={"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"},
        ecsServices=[{"serviceName": "storefront", "clusterName": world.cluster}],
        loadBalancerInfo={
            "targetGroupPairInfoList": [
                {
                    "targetGroups": [{"name": f"{world.service}-blue"}, {"name": f"{world.service}-green"}],
                    "prodTrafficRoute": {"listenerArns": [world.listener_arn]},
                }
            ]
        },
    )
    if in_flight:
        cd.create_deployment(
            applicationName="shop",
            deploymentGroupName="storefront",
            revision={"revisionType": "AppSpecContent", "appSpecContent": {"content": "version: 0.0"}},
        )
    return world


def test_codedeploy_service_is_found_and_rolled_back_by_stopping_its_deployment(aws: Any, moto_url: str) -> None:
    world = codedeploy_world(aws, moto_url, in_flight=True)
    plat = platform(aws, world)  # no codedeploy settings: found from the deployment groups
    target = ref(world, "storefront")
    state = plat.describe(target)
    assert state.details["codedeploy"]["application"] == "shop"
    assert state.details["codedeploy"]["deployment_group"] == "storefront"
    assert state.details["codedeploy"]["status"] == "Created"
    assert state.colors == ("blue", "green") and state.active_color == "blue"
    assert Capability.SWITCH in state.capabilities and Capability.REVERT not in state.capabilities
    with pytest.raises(UnsupportedError, match="CODE_DEPLOY"):
        plat.revert(target, dry_run=True)

    (call,) = plat.switch(target, "blue", dry_run=True)
    assert call.path == "codedeploy:StopDeployment"
    assert call.body == {
        "deploymentId": state.details["codedeploy"]["deployment_id"],
        "autoRollbackEnabled": True,
    }
    # moto 5.2 has no StopDeployment: the server answers 500. The platform reports it as it would a real
    # 5xx (temporary), with the client's error chained; nothing pretends the rollback happened.
    with pytest.raises(TemporaryError) as err:
        plat.switch(target, "blue")
    cause = err.value.__cause__
    assert isinstance(cause, botocore.exceptions.ClientError)
    assert cause.operation_name == "StopDeployment"
    assert cause.response["ResponseMetadata"]["HTTPStatusCode"] == 500


def test_codedeploy_with_nothing_in_flight_swaps_the_listener(aws: Any, moto_url: str) -> None:
    world = codedeploy_world(aws, moto_url, in_flight=False)
    plat = platform(
        aws,
        world,
        **{world.key("storefront"): {"codedeploy": {"application": "shop", "deployment_group": "storefront"}}},
    )
    target = ref(world, "storefront")
    (call,) = plat.switch(target, "green")
    assert call.path == "elasticloadbalancing:ModifyListener"
    assert awsh.listener_weights(aws, moto_url, world) == {"blue": 0, "green": 100}
    assert plat.describe(target).active_color == "green"


def test_moto_gaps_are_the_ones_documented(aws: Any, moto_url: str) -> None:
    """If this fails, moto gained a call we can now test for real: update docs/platforms.md and the tests."""
    world = awsh.ecs_world(aws, moto_url)
    ecs = awsh.client(aws, moto_url, "ecs")
    cd = awsh.client(aws, moto_url, "codedeploy")
    arn = f"arn:aws:ecs:{awsh.REGION}:123456789012:service-deployment/{world.cluster}/{world.service}/x"
    for call in (
        lambda: ecs.list_service_deployments(cluster=world.cluster, service=world.service),
        lambda: ecs.stop_service_deployment(serviceDeploymentArn=arn, stopType="ROLLBACK"),
        lambda: cd.stop_deployment(deploymentId="d-123456789", autoRollbackEnabled=True),
    ):
        with pytest.raises(botocore.exceptions.ClientError) as err:
            call()
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    svc = ecs.describe_services(cluster=world.cluster, services=[world.service])["services"][0]
    assert svc["taskDefinition"] == world.task_definitions[2]
    assert [d["taskDefinition"] for d in svc["deployments"]] == [world.task_definitions[0]]


def client_error(code: str, status: int, operation: str = "UpdateService") -> botocore.exceptions.ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": f"{code} happened"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return botocore.exceptions.ClientError(response, operation)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (client_error("ThrottlingException", 400), TemporaryError),
        (client_error("ServerException", 500), TemporaryError),
        (client_error("ServiceUnavailable", 503), TemporaryError),
        (client_error("ServiceNotFoundException", 400), TargetNotFoundError),
        (client_error("ClusterNotFoundException", 400), TargetNotFoundError),
        (client_error("DeploymentGroupDoesNotExistException", 400), TargetNotFoundError),
        (client_error("AccessDeniedException", 400), PermanentError),
        (client_error("InvalidParameterException", 400), PermanentError),
        (client_error("ConcurrentModificationException", 400), ConflictError),
        (botocore.exceptions.EndpointConnectionError(endpoint_url="https://ecs.example"), TemporaryError),
        (botocore.exceptions.NoRegionError(), PermanentError),
        (botocore.exceptions.NoCredentialsError(), PermanentError),
    ],
)
def test_aws_errors_map_onto_the_taxonomy(exc: Exception, kind: type[Exception]) -> None:
    wrapped = wrap_aws_error(exc, "UpdateService")
    assert type(wrapped) is kind
    if isinstance(wrapped, TemporaryError):
        assert wrapped.delay > 0


def test_access_denied_names_the_action_to_grant() -> None:
    wrapped = wrap_aws_error(client_error("AccessDeniedException", 400, "UpdateService"), "UpdateService x")
    assert "UpdateService" in str(wrapped) and "docs/platforms.md" in str(wrapped)


def test_unknown_connection_and_cluster_are_permanent(aws: Any, moto_url: str) -> None:
    world = awsh.ecs_world(aws, moto_url)
    plat = platform(aws, world)
    with pytest.raises(TargetNotFoundError, match="unknown ECS connection"):
        plat.describe(TargetRef("ecs", "elsewhere", world.cluster, world.service))
    with pytest.raises(TargetNotFoundError):
        plat.describe(TargetRef("ecs", "moto", "no-such-cluster", world.service))


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"targets": {"a/b/c": {"weights": {"stable": "x", "canary": "y"}}}}, "listener_arn"),
        ({"targets": {"a/b/c": {"listener_arn": "l", "weights": {"stable": "x"}}}}, "stable and canary"),
        ({"targets": {"a/b/c": {"listener_arn": "l", "colors": {"blue": "x"}}}}, "exactly two"),
        ({"clusters": {"prod": {}}, "targets": {"qa/b/c": {}}}, "names cluster 'qa'"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"regoin": "eu-west-1"}, "regoin"),
    ],
)
def test_invalid_options_fail_at_start_up(options: dict[str, Any], problem: str) -> None:
    with pytest.raises(PlatformConfigError, match="invalid options for platform 'ecs'") as err:
        EcsPlatform(**options)
    assert problem in str(err.value)


def deployment(status: str, revision: int, rollout: str, created: str) -> dict[str, Any]:
    """A Deployment as real ECS returns it (CONTRACTS §6.1 fields), for the cases moto cannot produce."""
    return {
        "status": status,
        "taskDefinition": f"arn:aws:ecs:eu-west-1:123456789012:task-definition/checkout:{revision}",
        "rolloutState": rollout,
        "createdAt": created,
    }


@pytest.mark.parametrize(
    ("deployments", "stable"),
    [
        ([deployment("PRIMARY", 3, "COMPLETED", "t3")], 3),
        ([deployment("PRIMARY", 3, "IN_PROGRESS", "t3"), deployment("ACTIVE", 2, "COMPLETED", "t2")], 2),
        # A circuit-breaker rollback in progress: the failed deployment is never the stable one.
        ([deployment("PRIMARY", 3, "IN_PROGRESS", "t4"), deployment("ACTIVE", 4, "FAILED", "t3")], None),
        ([deployment("PRIMARY", 1, "IN_PROGRESS", "t1")], None),  # moto's stale list: PRIMARY is not :3
        ([], None),
    ],
)
def test_stable_revision_follows_ecs_rollout_states(deployments: list[dict[str, Any]], stable: int | None) -> None:
    svc = {"taskDefinition": "arn:aws:ecs:eu-west-1:123456789012:task-definition/checkout:3"}
    assert EcsPlatform._stable_revision(svc, deployments, 3) == stable
