"""Build ECS/ALB/CodeDeploy states in moto the way a deploy pipeline would, through boto3 over HTTP."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

REGION = "us-east-1"


@dataclass
class EcsWorld:
    """What a scenario created: names and ARNs the tests and platform options refer to."""

    endpoint: str
    cluster: str
    service: str
    family: str
    task_definitions: list[str] = field(default_factory=list)
    listener_arn: str = ""
    target_groups: dict[str, str] = field(default_factory=dict)

    def options(self, **targets: Any) -> dict[str, Any]:
        """Platform options for this world: one connection named ``moto``."""
        return {
            "region": REGION,
            "endpoint_url": self.endpoint,
            "clusters": {"moto": {}},
            "targets": targets,
            "max_attempts": 1,
            "poll_interval": 0.05,
        }

    def key(self, service: str | None = None) -> str:
        return f"moto/{self.cluster}/{service or self.service}"


def client(session: Any, endpoint: str, name: str) -> Any:
    return session.client(name, region_name=REGION, endpoint_url=endpoint)


def register(ecs: Any, family: str, image: str, env: str = "") -> str:
    container: dict[str, Any] = {"name": "app", "image": image, "memory": 256, "essential": True}
    if env:
        container["environment"] = [{"name": "APP_VERSION", "value": env}]
    td = ecs.register_task_definition(family=family, containerDefinitions=[container])
    return str(td["taskDefinition"]["taskDefinitionArn"])


def settle(ecs: Any, cluster: str, service: str, desired: int) -> None:
    """moto runs no tasks; setting desiredCount makes it report them running (its stand-in scheduler)."""
    ecs.update_service(cluster=cluster, service=service, desiredCount=desired)


def ecs_world(
    session: Any,
    endpoint: str,
    *,
    cluster: str = "shop",
    service: str = "checkout",
    versions: int = 3,
    desired: int = 2,
    siblings: tuple[str, ...] = ("payments",),
    circuit_breaker: bool = True,
) -> EcsWorld:
    """A service deployed ``versions`` times (task definitions 1..N, running N), plus sibling services."""
    ecs = client(session, endpoint, "ecs")
    ecs.create_cluster(clusterName=cluster)
    family = service
    world = EcsWorld(endpoint, cluster, service, family)
    for v in range(1, versions + 1):
        world.task_definitions.append(register(ecs, family, f"registry.local/{service}:1.{v}", env=f"v{v}"))
    config: dict[str, Any] = {"maximumPercent": 200, "minimumHealthyPercent": 100}
    if circuit_breaker:
        config["deploymentCircuitBreaker"] = {"enable": True, "rollback": True}
    ecs.create_service(
        cluster=cluster,
        serviceName=service,
        taskDefinition=world.task_definitions[0],
        desiredCount=desired,
        deploymentConfiguration=config,
        deploymentController={"type": "ECS"},
    )
    for arn in world.task_definitions[1:]:
        ecs.update_service(cluster=cluster, service=service, taskDefinition=arn)
    settle(ecs, cluster, service, desired)
    for sibling in siblings:
        arn = register(ecs, sibling, f"registry.local/{sibling}:1.0")
        ecs.create_service(cluster=cluster, serviceName=sibling, taskDefinition=arn, desiredCount=1)
        settle(ecs, cluster, sibling, 1)
    return world


def alb(session: Any, endpoint: str, world: EcsWorld, groups: tuple[str, ...], forward: dict[str, int]) -> None:
    """An ALB with one HTTP listener forwarding to ``groups`` with the given weights."""
    ec2 = client(session, endpoint, "ec2")
    elb = client(session, endpoint, "elbv2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{az}")["Subnet"]["SubnetId"]
        for i, az in enumerate("ab")
    ]
    lb = elb.create_load_balancer(Name=f"{world.service}-alb", Subnets=subnets, Type="application")
    lb_arn = lb["LoadBalancers"][0]["LoadBalancerArn"]
    for name in groups:
        tg = elb.create_target_group(
            Name=f"{world.service}-{name}", Protocol="HTTP", Port=80, VpcId=vpc, TargetType="ip"
        )
        world.target_groups[name] = tg["TargetGroups"][0]["TargetGroupArn"]
    listener = elb.create_listener(
        LoadBalancerArn=lb_arn,
        Protocol="HTTP",
        Port=80,
        DefaultActions=[
            {
                "Type": "forward",
                "ForwardConfig": {
                    "TargetGroups": [
                        {"TargetGroupArn": world.target_groups[g], "Weight": w} for g, w in forward.items()
                    ]
                },
            }
        ],
    )
    world.listener_arn = listener["Listeners"][0]["ListenerArn"]


def listener_weights(session: Any, endpoint: str, world: EcsWorld) -> dict[str, int]:
    """The listener's forward weights by our group names, read straight from the ELB API."""
    elb = client(session, endpoint, "elbv2")
    actions = elb.describe_listeners(ListenerArns=[world.listener_arn])["Listeners"][0]["DefaultActions"]
    forward = next(a for a in actions if a["Type"] == "forward")
    by_arn = {arn: name for name, arn in world.target_groups.items()}
    return {by_arn[g["TargetGroupArn"]]: g["Weight"] for g in forward["ForwardConfig"]["TargetGroups"]}


def service_task_definition(session: Any, endpoint: str, world: EcsWorld) -> str:
    ecs = client(session, endpoint, "ecs")
    return str(ecs.describe_services(cluster=world.cluster, services=[world.service])["services"][0]["taskDefinition"])
