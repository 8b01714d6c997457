"""AWS ECS platform (boto3): services, task-definition revisions, ALB listeners and CodeDeploy blue/green.

Target identity: ``ecs/<cluster>/<ecs-cluster>/<service>``. ``cluster`` names a connection in the options
(region, endpoint, profile), the namespace is the ECS cluster's name, the name is the ECS service. Example:
``ecs/prod-eu/shop-prod/checkout``.

**Revisions** are the task-definition revisions of the service's family: the current one plus the ACTIVE
revisions *below* it (``history_limit`` of them). A revision registered after the current one was never
deployed, so it is not history; a deregistered (INACTIVE) one cannot be deployed again, so it is listed only
if it is the current one. Task definitions are immutable and carry the image, the environment and the
secret references, so a revert restores configuration together with the code.

**Revert** = ``UpdateService(taskDefinition=<family:N>)`` (the rolling ``ECS`` deployment controller);
:meth:`EcsPlatform.wait_ready` then waits for what botocore's ``services_stable`` waiter calls steady state
(one deployment, running == desired) and fails fast if the circuit breaker marks the deployment FAILED.
Services on the ``CODE_DEPLOY`` controller cannot take a new task definition through UpdateService; roll
them back with ``switch`` (below). ``EXTERNAL`` is not supported.

**Traffic**: ``set_weights`` writes a weighted ``forward`` action (two target groups) on an ALB listener's
default action or on one listener rule. ``switch`` (blue-green) either stops the CodeDeploy deployment in
flight with ``autoRollbackEnabled`` (CodeDeploy re-routes to the original task set itself), or, with no
deployment in flight, points the listener at the chosen colour's target group.

Where moto (the test engine) falls short, see docs/platforms.md: it does not advance ``deployments`` on
UpdateService and does not implement StopServiceDeployment or CodeDeploy's StopDeployment.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import boto3
import botocore.exceptions as bce
from botocore.config import Config
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from strategies.base import ApiCall, Capability, Revision, TargetRef, TargetState
from strategies.errors import (
    ConflictError,
    NoPreviousRevisionError,
    PermanentError,
    PlatformError,
    RevisionNotFoundError,
    TargetNotFoundError,
    TemporaryError,
    UnsupportedError,
)
from strategies.platform_kit import (
    parse_options,
    percentages,
    poll,
    split_target_key,
    target_key,
    validate_weights,
)

#: CodeDeploy deployment states in which a deployment can still be stopped (and rolled back).
CODEDEPLOY_IN_FLIGHT = ["Created", "Queued", "InProgress", "Baking", "Ready"]
#: Task-definition fields that identify a registration rather than what runs.
_TD_VOLATILE = (
    "taskDefinitionArn",
    "revision",
    "status",
    "registeredAt",
    "registeredBy",
    "deregisteredAt",
    "requiresAttributes",
    "compatibilities",
    "deleteRequestedAt",
)
_THROTTLING = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "RequestThrottled",
    "SlowDown",
}
_NOT_FOUND = {"ClusterNotFoundException", "ServiceNotFoundException", "ServiceNotActiveException"}
_CODEDEPLOY_NOT_FOUND = {
    "ApplicationDoesNotExistException",
    "DeploymentGroupDoesNotExistException",
    "DeploymentDoesNotExistException",
}


# -- options -------------------------------------------------------------------------------------------
class EcsConnection(BaseModel):
    """One AWS account/region by name; unset fields fall back to the top-level ones, then to boto3's chain."""

    model_config = ConfigDict(extra="forbid")
    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None


class CodeDeployRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    application: str
    deployment_group: str


class EcsTarget(BaseModel):
    """Per-target settings, keyed ``cluster/ecs-cluster/service``."""

    model_config = ConfigDict(extra="forbid")
    #: The ALB listener whose default action carries the traffic (or give ``rule_arn``).
    listener_arn: str | None = None
    #: A listener rule to edit instead of the listener's default action.
    rule_arn: str | None = None
    #: Progressive: ``{stable: <target group ARN>, canary: <target group ARN>}``.
    weights: dict[str, str] | None = None
    #: Blue-green by listener swap: colour -> target group ARN (exactly two).
    colors: dict[str, str] | None = None
    #: The service's CodeDeploy deployment group; found automatically for CODE_DEPLOY services if unset.
    codedeploy: CodeDeployRef | None = None

    @field_validator("weights")
    @classmethod
    def _sides(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None and set(value) != {"stable", "canary"}:
            raise ValueError(f"weights needs exactly the keys stable and canary, got {sorted(value)}")
        return value

    @field_validator("colors")
    @classmethod
    def _two(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None and len(value) != 2:
            raise ValueError(f"colors needs exactly two entries (colour: target group ARN), got {len(value)}")
        return value

    @model_validator(mode="after")
    def _router(self) -> EcsTarget:
        if (self.weights or self.colors) and not (self.listener_arn or self.rule_arn):
            raise ValueError("weights and colors need listener_arn (or rule_arn) of the ALB that routes them")
        return self


class EcsOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None
    #: Connections by name (the ``cluster`` part of a target). Empty: every name uses the top-level settings.
    clusters: dict[str, EcsConnection] = Field(default_factory=dict)
    targets: dict[str, EcsTarget] = Field(default_factory=dict)
    #: Task-definition revisions listed below the current one.
    history_limit: int = Field(10, ge=1, le=100)
    #: botocore attempts per call (standard retry mode: backoff with jitter on throttling and 5xx).
    max_attempts: int = Field(3, ge=1, le=10)
    connect_timeout: float = Field(5.0, gt=0)
    read_timeout: float = Field(30.0, gt=0)
    #: Seconds between polls while waiting for steady state (botocore's waiter uses 15).
    poll_interval: float = Field(5.0, gt=0)

    @model_validator(mode="after")
    def _targets_name_clusters(self) -> EcsOptions:
        for key in self.targets:
            cluster, _, _ = split_target_key(key)
            if self.clusters and cluster not in self.clusters:
                raise ValueError(f"target {key!r} names cluster {cluster!r}; configured: {sorted(self.clusters)}")
        return self


# -- the platform --------------------------------------------------------------------------------------
class EcsPlatform:
    """AWS ECS through boto3. Options: see :class:`EcsOptions` and docs/platforms.md.

    ``session`` is a ``boto3.Session`` (default: one per connection, from boto3's credential chain and the
    connection's ``profile``); ``clock``/``sleep`` drive the waits.
    """

    name: ClassVar[str] = "ecs"
    Options: ClassVar[type[BaseModel]] = EcsOptions

    def __init__(
        self,
        *,
        session: Any | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        **options: Any,
    ) -> None:
        self.options = parse_options(EcsOptions, self.name, options)
        self._session = session
        self._clock = clock
        self._sleep = sleep
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        # Task definitions are immutable: describe each revision once.
        self._td_cache: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._codedeploy_cache: dict[tuple[str, str, str], CodeDeployRef | None] = {}

    # -- protocol: describe ----------------------------------------------------------------------------
    def describe(self, target: TargetRef) -> TargetState:
        svc = self._service(target)
        settings = self._settings(target)
        current_td = self._task_definition(target, svc["taskDefinition"])
        family, current = current_td["family"], int(current_td["revision"])
        revisions = self._revisions(target, current_td)
        controller = (svc.get("deploymentController") or {}).get("type", "ECS")
        deployments = svc.get("deployments") or []
        capabilities: set[Capability] = set()
        if controller == "ECS":
            capabilities.add(Capability.REVERT)
        details: dict[str, Any] = {
            "service_arn": svc.get("serviceArn"),
            "task_definition": svc["taskDefinition"],
            "family": family,
            "deployment_controller": controller,
            "deployments": [
                {
                    "id": d.get("id"),
                    "status": d.get("status"),
                    "task_definition": d.get("taskDefinition"),
                    "rollout_state": d.get("rolloutState"),
                    "rollout_state_reason": d.get("rolloutStateReason"),
                    "desired": d.get("desiredCount"),
                    "running": d.get("runningCount"),
                    "failed_tasks": d.get("failedTasks"),
                }
                for d in deployments
            ],
            "circuit_breaker": (svc.get("deploymentConfiguration") or {}).get("deploymentCircuitBreaker"),
            "alarms": (svc.get("deploymentConfiguration") or {}).get("alarms"),
            "desired": svc.get("desiredCount"),
            "running": svc.get("runningCount"),
            "pending": svc.get("pendingCount"),
        }
        stable = self._stable_revision(svc, deployments, current)
        stable_rev = next((r for r in revisions if r.number == stable), None)
        details["last_known_good_image"] = stable_rev.image if stable_rev else None
        traffic: dict[str, int] = {}
        router = None
        if settings.weights:
            raw = self._forward_weights(target, settings)
            by_arn = {arn: side for side, arn in settings.weights.items()}
            traffic = percentages({by_arn[arn]: w for arn, w in raw.items() if arn in by_arn})
            router = "alb"
            capabilities.add(Capability.WEIGHTS)
        colors: tuple[str, ...] = ()
        active = None
        color_map = self._colors(target, svc, settings, details)
        if color_map:
            listener, mapping = color_map
            colors = tuple(mapping)
            raw = self._forward_weights(target, settings, listener_arn=listener)
            active = _active(mapping, raw)
            capabilities.add(Capability.SWITCH)
            details["colors"] = {"listener_arn": listener, "target_groups": mapping}
        components = self._components(target)
        if len(components) > 1:
            capabilities.add(Capability.COMPONENTS)
        ready, why = _steady(svc)
        details["steady"] = why or "steady"
        return TargetState(
            target=target,
            current_revision=current,
            revisions=revisions,
            stable_revision=stable,
            traffic=traffic,
            router=router,
            active_color=active,
            colors=colors,
            components=components,
            ready=ready,
            desired_replicas=svc.get("desiredCount"),
            ready_replicas=svc.get("runningCount"),
            capabilities=frozenset(capabilities),
            details=details,
        )

    # -- protocol: writes ------------------------------------------------------------------------------
    def revert(self, target: TargetRef, revision: int | None = None, *, dry_run: bool = False) -> list[ApiCall]:
        svc = self._service(target)
        controller = (svc.get("deploymentController") or {}).get("type", "ECS")
        if controller == "CODE_DEPLOY":
            raise UnsupportedError(
                f"{target} uses the CODE_DEPLOY deployment controller: ECS rejects UpdateService with a new "
                "task definition. Use the blue_green strategy (stops the CodeDeploy deployment with "
                "rollback) "
                "or create a CodeDeploy deployment of the old revision."
            )
        if controller != "ECS":
            raise UnsupportedError(f"{target} uses the {controller} deployment controller; only ECS is supported")
        current_td = self._task_definition(target, svc["taskDefinition"])
        current = int(current_td["revision"])
        revisions = self._revisions(target, current_td)
        if revision is None:
            older = sorted((r.number for r in revisions if r.number < current), reverse=True)
            if not older:
                raise NoPreviousRevisionError(
                    f"{target} runs {current_td['family']}:{current} and the family has no ACTIVE revision "
                    "below it to roll back to"
                )
            revision = older[0]
        if revision == current:
            return []
        wanted = next((r for r in revisions if r.number == revision), None)
        if wanted is None:
            wanted_td = self._try_task_definition(target, f"{current_td['family']}:{revision}")
            if wanted_td is None:
                known = sorted(r.number for r in revisions)
                raise RevisionNotFoundError(
                    f"task definition {current_td['family']}:{revision} does not exist; {target} can go to {known}"
                )
            if wanted_td.get("status") != "ACTIVE":
                raise RevisionNotFoundError(
                    f"task definition {current_td['family']}:{revision} is {wanted_td.get('status')} "
                    "(deregistered): "
                    "ECS cannot deploy it again; register its content as a new revision"
                )
            arn = wanted_td["taskDefinitionArn"]
            image = _image(wanted_td)
        else:
            arn = wanted.name
            image = wanted.image
        body = {"cluster": target.namespace, "service": target.name, "taskDefinition": arn}
        call = ApiCall(
            "POST",
            "ecs:UpdateService",
            body,
            note=f"deploy task definition {current_td['family']}:{revision} ({image}) in place of :{current}",
        )
        if not dry_run:
            ecs = self._client(target, "ecs")
            self._call(lambda: ecs.update_service(**body), what=f"UpdateService {target}")
        return [call]

    def set_weights(self, target: TargetRef, weights: Mapping[str, int], *, dry_run: bool = False) -> list[ApiCall]:
        settings = self._settings(target)
        if not settings.weights:
            raise UnsupportedError(
                f"{target} has no weighted target groups: set platforms.ecs.targets.{target_key(target)}."
                "weights to {stable: <target group ARN>, canary: <target group ARN>} and listener_arn"
            )
        wanted = validate_weights(target, weights, ("stable", "canary"))
        tg_weights = {settings.weights[side]: w for side, w in wanted.items()}
        return self._write_forward(target, settings, tg_weights, dry_run, note=f"weights {wanted}")

    def switch(self, target: TargetRef, color: str, *, dry_run: bool = False) -> list[ApiCall]:
        svc = self._service(target)
        settings = self._settings(target)
        details: dict[str, Any] = {}
        color_map = self._colors(target, svc, settings, details)
        if not color_map:
            raise UnsupportedError(
                f"{target} has no colours: set platforms.ecs.targets.{target_key(target)}.colors "
                "(colour: target group ARN) and listener_arn, or use a CodeDeploy blue/green deployment group"
            )
        listener, mapping = color_map
        if color not in mapping:
            raise UnsupportedError(f"{target} has colours {list(mapping)}, not {color!r}")
        inflight = (details.get("codedeploy") or {}).get("deployment_id")
        if inflight:
            # CodeDeploy owns the listener while it deploys: stopping with rollback is the only safe move,
            # and CodeDeploy itself knows which task set was the original.
            body = {"deploymentId": inflight, "autoRollbackEnabled": True}
            call = ApiCall(
                "POST",
                "codedeploy:StopDeployment",
                body,
                note=f"stop CodeDeploy deployment {inflight} with rollback (traffic back to the original task set)",
            )
            if not dry_run:
                cd = self._client(target, "codedeploy")
                self._call(lambda: cd.stop_deployment(**body), what=f"StopDeployment {inflight}")
            return [call]
        tg_weights = {arn: (100 if c == color else 0) for c, arn in mapping.items()}
        return self._write_forward(
            target, settings, tg_weights, dry_run, note=f"make {color} active", listener_arn=listener
        )

    def wait_ready(self, target: TargetRef, timeout: float) -> TargetState:
        last = [""]

        def check() -> TargetState | None:
            svc = self._service(target)
            for d in svc.get("deployments") or []:
                if d.get("status") == "PRIMARY" and d.get("rolloutState") == "FAILED":
                    raise PermanentError(
                        f"{target}: deployment {d.get('id')} FAILED ({d.get('rolloutStateReason')}); "
                        "the circuit breaker stopped it, so waiting longer will not help"
                    )
            ready, why = _steady(svc)
            last[0] = why
            return self.describe(target) if ready else None

        state = poll(check, timeout=timeout, interval=self.options.poll_interval, clock=self._clock, sleep=self._sleep)
        if state is None:
            raise TemporaryError(f"{target} not steady after {timeout}s: {last[0]}", delay=self.options.poll_interval)
        return state

    # -- internals: reads ------------------------------------------------------------------------------
    def _service(self, target: TargetRef) -> dict[str, Any]:
        ecs = self._client(target, "ecs")
        resp = self._call(
            lambda: ecs.describe_services(cluster=target.namespace, services=[target.name]),
            what=f"DescribeServices {target}",
        )
        services = [s for s in resp.get("services") or [] if s.get("status") == "ACTIVE"]
        if not services:
            reason = next((f.get("reason") for f in resp.get("failures") or []), None)
            status = next((s.get("status") for s in resp.get("services") or []), None)
            raise TargetNotFoundError(
                f"{target}: ECS service {target.name!r} not found in cluster {target.namespace!r} "
                f"({reason or status or 'missing'})"
            )
        return dict(services[0])

    def _try_task_definition(self, target: TargetRef, ref: str) -> dict[str, Any] | None:
        try:
            return self._task_definition(target, ref)
        except PermanentError:
            return None

    def _task_definition(self, target: TargetRef, ref: str) -> dict[str, Any]:
        with self._lock:
            cached = self._td_cache.get(ref)
        if cached is not None and cached.get("status") == "ACTIVE" and ref.startswith("arn:"):
            return cached
        ecs = self._client(target, "ecs")
        td = self._call(lambda: ecs.describe_task_definition(taskDefinition=ref), what=f"DescribeTaskDefinition {ref}")[
            "taskDefinition"
        ]
        with self._lock:
            self._td_cache[td["taskDefinitionArn"]] = td
            while len(self._td_cache) > 512:
                self._td_cache.popitem(last=False)
        return dict(td)

    def _revisions(self, target: TargetRef, current_td: Mapping[str, Any]) -> tuple[Revision, ...]:
        ecs = self._client(target, "ecs")
        family, current = current_td["family"], int(current_td["revision"])
        found: dict[int, str] = {}
        descending = True  # ECS honours sort=DESC; stop paging early only while the answer shows it
        last = None
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"familyPrefix": family, "status": "ACTIVE", "sort": "DESC"}
            if token:
                kwargs["nextToken"] = token
            page = self._call(lambda: ecs.list_task_definitions(**kwargs), what="ListTaskDefinitions")  # noqa: B023
            for arn in page.get("taskDefinitionArns") or []:
                fam, _, rev = arn.rsplit("/", 1)[-1].rpartition(":")
                # familyPrefix is a prefix: "checkout" also lists "checkout-worker".
                if fam != family:
                    continue
                number = int(rev)
                descending = descending and (last is None or number < last)
                last = number
                if number < current:
                    found[number] = arn
            token = page.get("nextToken")
            if not token or (descending and len(found) >= self.options.history_limit):
                break
        newest = sorted(found, reverse=True)[: self.options.history_limit]
        tds = [current_td] + [self._task_definition(target, found[n]) for n in newest]
        return tuple(sorted((_revision(td) for td in tds), key=lambda r: r.number))

    @staticmethod
    def _stable_revision(svc: Mapping[str, Any], deployments: list[dict[str, Any]], current: int) -> int | None:
        """ECS's own view: the PRIMARY if it COMPLETED, else the newest other deployment that COMPLETED.

        During a circuit-breaker rollback the old PRIMARY is ACTIVE with rolloutState FAILED: never stable.
        """
        primary = next((d for d in deployments if d.get("status") == "PRIMARY"), None)
        if primary is None:
            return None
        if primary.get("taskDefinition") != svc.get("taskDefinition"):
            # The deployment list does not describe the service's task definition (moto never moves it;
            # real ECS always does): no trustworthy answer.
            return None
        if primary.get("rolloutState") in (None, "COMPLETED"):
            return current
        others = sorted(
            (d for d in deployments if d.get("status") == "ACTIVE" and d.get("rolloutState") in (None, "COMPLETED")),
            key=lambda d: str(d.get("createdAt")),
            reverse=True,
        )
        return int(str(others[0]["taskDefinition"]).rsplit(":", 1)[-1]) if others else None

    def _components(self, target: TargetRef) -> tuple[str, ...]:
        ecs = self._client(target, "ecs")
        names: list[str] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"cluster": target.namespace, "maxResults": 100}
            if token:
                kwargs["nextToken"] = token
            page = self._call(lambda: ecs.list_services(**kwargs), what="ListServices")  # noqa: B023
            names += [arn.rsplit("/", 1)[-1] for arn in page.get("serviceArns") or []]
            token = page.get("nextToken")
            if not token:
                return tuple(sorted(names))

    # -- internals: ALB and CodeDeploy -----------------------------------------------------------------
    def _actions(
        self, target: TargetRef, settings: EcsTarget, listener_arn: str | None = None
    ) -> tuple[str, list[dict[str, Any]]]:
        elb = self._client(target, "elbv2")
        if settings.rule_arn and listener_arn is None:
            rules = self._call(lambda: elb.describe_rules(RuleArns=[settings.rule_arn]), what="DescribeRules")["Rules"]
            return "rule", list(rules[0].get("Actions") or [])
        arn = listener_arn or settings.listener_arn
        listeners = self._call(lambda: elb.describe_listeners(ListenerArns=[arn]), what="DescribeListeners")[
            "Listeners"
        ]
        return "listener", list(listeners[0].get("DefaultActions") or [])

    def _forward_weights(
        self, target: TargetRef, settings: EcsTarget, listener_arn: str | None = None
    ) -> dict[str, int]:
        _, actions = self._actions(target, settings, listener_arn)
        forward = next((a for a in actions if a.get("Type") == "forward"), None)
        if forward is None:
            return {}
        groups = (forward.get("ForwardConfig") or {}).get("TargetGroups")
        if groups:
            return {g["TargetGroupArn"]: int(g.get("Weight", 1)) for g in groups}
        if forward.get("TargetGroupArn"):
            return {forward["TargetGroupArn"]: 1}
        return {}

    def _write_forward(
        self,
        target: TargetRef,
        settings: EcsTarget,
        tg_weights: Mapping[str, int],
        dry_run: bool,
        *,
        note: str,
        listener_arn: str | None = None,
    ) -> list[ApiCall]:
        kind, actions = self._actions(target, settings, listener_arn)
        index = next((i for i, a in enumerate(actions) if a.get("Type") == "forward"), None)
        if index is None:
            raise UnsupportedError(
                f"{target}: the {kind} has no forward action to weight; found {[a.get('Type') for a in actions]}"
            )
        forward = actions[index]
        current = self._forward_weights(target, settings, listener_arn)
        foreign = sorted(set(current) - set(tg_weights))
        if foreign:
            raise UnsupportedError(
                f"{target}: the {kind} also forwards to {foreign}, which the target's settings do not name; "
                "refusing to drop routes this platform does not own"
            )
        if percentages(current) == percentages(dict(tg_weights)) and set(current) == set(tg_weights):
            return []
        new_forward: dict[str, Any] = {"Type": "forward"}
        if "Order" in forward:
            new_forward["Order"] = forward["Order"]
        config: dict[str, Any] = {
            "TargetGroups": [{"TargetGroupArn": arn, "Weight": int(w)} for arn, w in tg_weights.items()]
        }
        sticky = (forward.get("ForwardConfig") or {}).get("TargetGroupStickinessConfig")
        if sticky:
            config["TargetGroupStickinessConfig"] = sticky
        new_forward["ForwardConfig"] = config
        new_actions = copy.deepcopy(actions)
        new_actions[index] = new_forward
        new_actions = [_clean_action(a) for a in new_actions]
        elb = self._client(target, "elbv2")
        if kind == "rule":
            body: dict[str, Any] = {"RuleArn": settings.rule_arn, "Actions": new_actions}
            call = ApiCall("POST", "elasticloadbalancing:ModifyRule", body, note=note)
            if not dry_run:
                self._call(lambda: elb.modify_rule(**body), what="ModifyRule")
        else:
            body = {"ListenerArn": listener_arn or settings.listener_arn, "DefaultActions": new_actions}
            call = ApiCall("POST", "elasticloadbalancing:ModifyListener", body, note=note)
            if not dry_run:
                self._call(lambda: elb.modify_listener(**body), what="ModifyListener")
        return [call]

    def _colors(
        self, target: TargetRef, svc: Mapping[str, Any], settings: EcsTarget, details: dict[str, Any]
    ) -> tuple[str, dict[str, str]] | None:
        """(listener ARN, colour -> target group ARN), from the settings or the CodeDeploy group."""
        ref = settings.codedeploy or self._find_codedeploy(target, svc)
        group: dict[str, Any] | None = None
        if ref is not None:
            cd = self._client(target, "codedeploy")
            group = self._call(
                lambda: cd.get_deployment_group(
                    applicationName=ref.application, deploymentGroupName=ref.deployment_group
                ),
                what=f"GetDeploymentGroup {ref.application}/{ref.deployment_group}",
            )["deploymentGroupInfo"]
            listed = (
                self._call(
                    lambda: cd.list_deployments(
                        applicationName=ref.application,
                        deploymentGroupName=ref.deployment_group,
                        includeOnlyStatuses=CODEDEPLOY_IN_FLIGHT,
                    ),
                    what="ListDeployments",
                ).get("deployments")
                or []
            )
            inflight = listed[0] if listed else None
            status = None
            if inflight:
                status = self._call(lambda: cd.get_deployment(deploymentId=inflight), what="GetDeployment")[
                    "deploymentInfo"
                ].get("status")
            details["codedeploy"] = {
                "application": ref.application,
                "deployment_group": ref.deployment_group,
                "deployment_id": inflight,
                "status": status,
            }
        if settings.colors:
            return str(settings.listener_arn), dict(settings.colors)
        if group is None:
            return None
        pairs = (group.get("loadBalancerInfo") or {}).get("targetGroupPairInfoList") or []
        if not pairs:
            return None
        names = [tg["name"] for tg in pairs[0].get("targetGroups") or []]
        listeners = (pairs[0].get("prodTrafficRoute") or {}).get("listenerArns") or []
        if len(names) != 2 or not listeners:
            return None
        elb = self._client(target, "elbv2")
        tgs = self._call(lambda: elb.describe_target_groups(Names=names), what="DescribeTargetGroups")["TargetGroups"]
        arn_by_name = {tg["TargetGroupName"]: tg["TargetGroupArn"] for tg in tgs}
        # CodeDeploy calls the original task set's side Blue and the replacement's Green.
        return str(listeners[0]), {"blue": arn_by_name[names[0]], "green": arn_by_name[names[1]]}

    def _find_codedeploy(self, target: TargetRef, svc: Mapping[str, Any]) -> CodeDeployRef | None:
        if (svc.get("deploymentController") or {}).get("type") != "CODE_DEPLOY":
            return None
        key = (target.cluster, target.namespace, target.name)
        with self._lock:
            if key in self._codedeploy_cache:
                return self._codedeploy_cache[key]
        cd = self._client(target, "codedeploy")
        found: CodeDeployRef | None = None
        apps = self._call(cd.list_applications, what="ListApplications").get("applications") or []
        for app in apps:
            groups = (
                self._call(
                    lambda: cd.list_deployment_groups(applicationName=app),  # noqa: B023
                    what="ListDeploymentGroups",
                ).get("deploymentGroups")
                or []
            )
            for group in groups:
                info = self._call(
                    lambda: cd.get_deployment_group(applicationName=app, deploymentGroupName=group),  # noqa: B023
                    what="GetDeploymentGroup",
                )["deploymentGroupInfo"]
                for ecs_svc in info.get("ecsServices") or []:
                    cluster = str(ecs_svc.get("clusterName", "")).rsplit("/", 1)[-1]
                    if ecs_svc.get("serviceName") == target.name and cluster == target.namespace:
                        found = CodeDeployRef(application=app, deployment_group=group)
        with self._lock:
            self._codedeploy_cache[key] = found
        return found

    # -- internals: clients and errors -----------------------------------------------------------------
    def _settings(self, target: TargetRef) -> EcsTarget:
        if self.options.clusters and target.cluster not in self.options.clusters:
            raise TargetNotFoundError(
                f"{target}: unknown ECS connection {target.cluster!r}; configured: {sorted(self.options.clusters)}"
            )
        return self.options.targets.get(target_key(target)) or _NO_SETTINGS

    def _client(self, target: TargetRef, service: str) -> Any:
        self._settings(target)
        key = (target.cluster, service)
        with self._lock:
            client = self._clients.get(key)
        if client is not None:
            return client
        conn = self.options.clusters.get(target.cluster) or EcsConnection()
        region = conn.region or self.options.region
        endpoint = conn.endpoint_url or self.options.endpoint_url
        profile = conn.profile or self.options.profile

        def build() -> Any:
            session = self._session or boto3.Session(profile_name=profile)
            config = Config(
                retries={"mode": "standard", "max_attempts": self.options.max_attempts},
                connect_timeout=self.options.connect_timeout,
                read_timeout=self.options.read_timeout,
            )
            return session.client(service, region_name=region, endpoint_url=endpoint, config=config)

        client = self._call(build, what=f"create {service} client")
        with self._lock:
            return self._clients.setdefault(key, client)

    def _call(self, fn: Callable[[], Any], *, what: str) -> Any:
        try:
            return fn()
        except PlatformError:
            raise
        except Exception as exc:
            raise wrap_aws_error(exc, what) from exc


_NO_SETTINGS = EcsTarget()


def wrap_aws_error(exc: Exception, what: str) -> PlatformError:
    """Map botocore exceptions onto :mod:`strategies.errors`: throttling and 5xx are temporary."""
    if isinstance(exc, bce.ClientError):
        error = exc.response.get("Error") or {}
        code = str(error.get("Code", ""))
        message = str(error.get("Message", ""))[:300]
        status = int((exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
        operation = getattr(exc, "operation_name", "") or what
        if code in _THROTTLING or status == 429:
            return TemporaryError(f"{what}: throttled by AWS ({code}); retry later", delay=5.0)
        if code in _NOT_FOUND or code in _CODEDEPLOY_NOT_FOUND:
            return TargetNotFoundError(f"{what}: {code}: {message}")
        if code in ("AccessDeniedException", "AccessDenied", "UnauthorizedOperation"):
            return PermanentError(
                f"{what}: access denied ({message}); grant the IAM action for {operation} to the "
                "reactor's role "
                "(see the permissions table in docs/platforms.md)"
            )
        if code in ("ConflictException", "ConcurrentModificationException", "ResourceInUse"):
            return ConflictError(f"{what}: {code}: {message}")
        if status >= 500 or code in ("ServerException", "ServiceUnavailable", "InternalFailure"):
            return TemporaryError(f"{what}: AWS error {status} {code}: {message}", delay=5.0)
        return PermanentError(f"{what}: {code or status}: {message}")
    if isinstance(exc, bce.NoRegionError):
        return PermanentError(f"{what}: no AWS region: set platforms.ecs.region (or the connection's region)")
    if isinstance(exc, bce.NoCredentialsError | bce.PartialCredentialsError | bce.ProfileNotFound):
        return PermanentError(f"{what}: AWS credentials: {exc}; configure a role, profile or environment credentials")
    if isinstance(exc, bce.ParamValidationError):
        return PermanentError(f"{what}: invalid request: {exc}")
    if isinstance(exc, bce.EndpointConnectionError | bce.ConnectionError | bce.HTTPClientError):
        return TemporaryError(f"{what}: AWS endpoint unreachable: {exc}", delay=5.0)
    if isinstance(exc, bce.BotoCoreError):
        return TemporaryError(f"{what}: {exc}", delay=5.0)
    return PermanentError(f"{what}: unexpected {type(exc).__name__}: {exc}")


def _image(td: Mapping[str, Any]) -> str:
    containers = td.get("containerDefinitions") or []
    essential = [c for c in containers if c.get("essential", True)] or containers
    return str(essential[0].get("image", "")) if essential else ""


def _revision(td: Mapping[str, Any]) -> Revision:
    template = {k: v for k, v in td.items() if k not in _TD_VOLATILE}
    config: dict[str, Any] = {}
    for c in td.get("containerDefinitions") or []:
        for s in c.get("secrets") or []:
            config[f"secret:{c.get('name')}/{s.get('name')}"] = s.get("valueFrom")
        for f in c.get("environmentFiles") or []:
            config[f"envfile:{c.get('name')}"] = f.get("value")
    created = td.get("registeredAt")
    return Revision(
        int(td["revision"]),
        name=str(td["taskDefinitionArn"]),
        image=_image(td),
        template=template,
        config=config,
        created_at=created if hasattr(created, "isoformat") else None,
    )


def _steady(svc: Mapping[str, Any]) -> tuple[bool, str]:
    """botocore's ``services_stable`` waiter: one deployment, running == desired (and the service ACTIVE)."""
    deployments = svc.get("deployments") or []
    running, desired = svc.get("runningCount", 0), svc.get("desiredCount", 0)
    if svc.get("status") != "ACTIVE":
        return False, f"service is {svc.get('status')}"
    if len(deployments) != 1:
        return False, f"{len(deployments)} deployments in flight"
    if running != desired:
        return False, f"{running}/{desired} tasks running"
    return True, ""


def _active(mapping: Mapping[str, str], raw: Mapping[str, int]) -> str | None:
    weights = {color: raw.get(arn, 0) for color, arn in mapping.items()}
    top = max(weights.values(), default=0)
    winners = [c for c, w in weights.items() if w == top and w > 0]
    return winners[0] if len(winners) == 1 else None


def _clean_action(action: Mapping[str, Any]) -> dict[str, Any]:
    """Actions as ModifyListener takes them: a forward with a ForwardConfig must not repeat TargetGroupArn."""
    cleaned = dict(action)
    if cleaned.get("Type") == "forward" and cleaned.get("ForwardConfig") and cleaned.get("TargetGroupArn"):
        cleaned.pop("TargetGroupArn")
    return cleaned
