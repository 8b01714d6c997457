"""The two plug-in families of this package, and the values they exchange.

A **platform** knows one orchestrator (Kubernetes, ECS, Swarm, the record-only dry run). It can
describe a target and perform four primitive writes: revert to a revision, set traffic weights, switch
the active colour, and wait for readiness. Every write takes ``dry_run`` and returns the exact API calls
it made (or would make), so a plan can show them before anything changes.

A **strategy** (undo, blue-green, progressive, partial) is built only from those primitives, so each
strategy works on every platform that has the capability it needs. A strategy has three phases:

``plan``     reads the target and lists the steps with their API calls; changes nothing.
``execute``  runs the steps, asking the :class:`ExecutionContext` which ones already finished, so that
             running it again after a crash continues where it stopped and never repeats a step.
``verify``   says whether the target reached the planned state (``None`` when it cannot tell).

Nothing here imports a client library; see :mod:`strategies.errors` for the error taxonomy.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol, runtime_checkable


@dataclass(frozen=True, order=True)
class TargetRef:
    """A workload's identity, ``platform/cluster/namespace/name``: ``kubernetes/prod-eu/shop/checkout``."""

    platform: str
    cluster: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.platform}/{self.cluster}/{self.namespace}/{self.name}"

    @classmethod
    def parse(cls, text: str) -> TargetRef:
        """Parse ``platform/cluster/namespace/name``; raise ValueError naming the expected shape."""
        parts = text.split("/")
        if len(parts) != 4 or not all(parts):
            raise ValueError(
                f"target {text!r} must be platform/cluster/namespace/name, e.g. kubernetes/prod-eu/shop/checkout"
            )
        return cls(*parts)

    def sibling(self, name: str) -> TargetRef:
        """The target with the same platform, cluster and namespace but another name (a component)."""
        return TargetRef(self.platform, self.cluster, self.namespace, name)


@dataclass(frozen=True)
class ApiCall:
    """One request to the platform's API, as made or as it would be made."""

    method: str
    path: str
    body: Any = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"method": self.method, "path": self.path}
        if self.body is not None:
            data["body"] = self.body
        if self.note:
            data["note"] = self.note
        return data


@dataclass(frozen=True)
class Revision:
    """One entry of a target's rollout history.

    ``template`` is the platform's own description of what runs (a pod template, a task definition, a
    service spec); ``config`` maps each referenced ConfigMap/Secret (or equivalent) to the snapshot taken
    with that revision, so a rollback can restore configuration together with the code.
    """

    number: int
    name: str = ""
    image: str = ""
    template: Mapping[str, Any] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None


class Capability(enum.StrEnum):
    """What a platform can do for a given target."""

    REVERT = "revert"
    WEIGHTS = "weights"
    SWITCH = "switch"
    COMPONENTS = "components"


@dataclass(frozen=True)
class TargetState:
    """A target as the platform sees it now."""

    target: TargetRef
    current_revision: int | None
    revisions: tuple[Revision, ...] = ()
    #: The revision the platform itself considers stable (Argo's stable RS, the previous Deployment
    #: revision...). The reactor may override it with the last known good revision from its own store.
    stable_revision: int | None = None
    #: Traffic split by side, e.g. ``{"stable": 80, "canary": 20}``; empty when there is no split.
    traffic: Mapping[str, int] = field(default_factory=dict)
    router: str | None = None
    active_color: str | None = None
    colors: tuple[str, ...] = ()
    components: tuple[str, ...] = ()
    ready: bool = True
    desired_replicas: int | None = None
    ready_replicas: int | None = None
    capabilities: frozenset[Capability] = frozenset()
    details: Mapping[str, Any] = field(default_factory=dict)
    #: Component -> the components it depends on, as the platform knows them (e.g. from annotations);
    #: ``partial`` uses the request's graph first and fills gaps from here.
    dependencies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Blue-green colours that map onto this target's revisions (Argo Rollouts: ReplicaSet hash ->
    #: revision), so a switch can be followed by a matching revert. Empty for two separate workloads.
    color_revisions: Mapping[str, int] = field(default_factory=dict)
    #: False when ``set_weights`` can only jump to 0 (another controller, e.g. Argo Rollouts, owns the
    #: weights); ``progressive`` then plans a single step and says why.
    gradual_weights: bool = True

    def revision(self, number: int) -> Revision | None:
        return next((r for r in self.revisions if r.number == number), None)

    def previous_revision(self) -> int | None:
        """The newest revision other than the current one (what ``kubectl rollout undo`` picks)."""
        older = sorted((r.number for r in self.revisions if r.number != self.current_revision), reverse=True)
        return older[0] if older else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": str(self.target),
            "current_revision": self.current_revision,
            "stable_revision": self.stable_revision,
            "revisions": [
                {"number": r.number, "name": r.name, "image": r.image, "config": sorted(r.config)}
                for r in self.revisions
            ],
            "traffic": dict(self.traffic),
            "router": self.router,
            "active_color": self.active_color,
            "colors": list(self.colors),
            "components": list(self.components),
            "ready": self.ready,
            "desired_replicas": self.desired_replicas,
            "ready_replicas": self.ready_replicas,
            "capabilities": sorted(c.value for c in self.capabilities),
            "dependencies": {k: list(v) for k, v in self.dependencies.items()},
            "color_revisions": dict(self.color_revisions),
            "gradual_weights": self.gradual_weights,
            "details": dict(self.details),
        }


@runtime_checkable
class Platform(Protocol):
    """An orchestrator adapter. Implementations wrap their client's errors into :mod:`strategies.errors`."""

    name: ClassVar[str]

    def describe(self, target: TargetRef) -> TargetState:
        """Read the target's revisions, traffic, colours, components and readiness."""
        ...

    def revert(self, target: TargetRef, revision: int | None = None, *, dry_run: bool = False) -> list[ApiCall]:
        """Roll the target's spec back to ``revision`` (``None``: the previous one)."""
        ...

    def set_weights(self, target: TargetRef, weights: Mapping[str, int], *, dry_run: bool = False) -> list[ApiCall]:
        """Set the traffic split, e.g. ``{"stable": 80, "canary": 20}``; weights sum to 100."""
        ...

    def switch(self, target: TargetRef, color: str, *, dry_run: bool = False) -> list[ApiCall]:
        """Make ``color`` the active side of a blue-green pair."""
        ...

    def wait_ready(self, target: TargetRef, timeout: float) -> TargetState:
        """Block until the target is ready, or raise TemporaryError after ``timeout`` seconds."""
        ...


class Health(enum.StrEnum):
    """What a health probe says about one side of a rollout."""

    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    CRITICAL = "critical"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class RollbackRequest:
    """What the reactor asks a strategy to do."""

    target: TargetRef
    #: Revision to return to; ``None``: the previous one (the reactor passes the last known good).
    to_revision: int | None = None
    #: For ``partial``: the components that failed, and the policy's dependency graph
    #: (component -> the components it depends on).
    components: tuple[str, ...] = ()
    dependencies: Mapping[str, Sequence[str]] = field(default_factory=dict)
    #: For ``progressive``: the canary weights to step through, e.g. (50, 20, 0).
    steps: tuple[int, ...] = (50, 20, 0)
    #: Seconds to wait for readiness after a write (0: do not wait).
    wait_timeout: float = 0.0
    #: Seconds to observe the stable side between progressive steps.
    step_interval: float = 0.0
    #: Skip the gradual path (critical signal): progressive jumps straight to 0.
    critical: bool = False
    #: For ``partial``: revision per component (default: each component's previous revision).
    component_revisions: Mapping[str, int] = field(default_factory=dict)
    #: For ``blue_green``: the colour to make active (default: the only other one).
    to_color: str | None = None
    #: For ``partial``: when the failing deploy was registered. A dependent whose current revision is older
    #: did not change with it, so it still runs what worked before and is left alone (None: revert them all).
    changed_since: datetime | None = None


@dataclass(frozen=True)
class PlanStep:
    """One idempotent unit of a plan. ``id`` is stable across re-planning, so progress can be matched."""

    id: str
    action: str
    target: TargetRef
    params: Mapping[str, Any] = field(default_factory=dict)
    calls: tuple[ApiCall, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "action": self.action,
            "target": str(self.target),
            "params": dict(self.params),
            "calls": [c.as_dict() for c in self.calls],
        }


@dataclass(frozen=True)
class Plan:
    strategy: str
    request: RollbackRequest
    steps: tuple[PlanStep, ...]
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "target": str(self.request.target),
            "steps": [s.as_dict() for s in self.steps],
            "notes": list(self.notes),
        }


class OutcomeStatus(enum.StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    #: Stopped on purpose: the alert resolved, or the stable side is unhealthy too.
    STOPPED = "stopped"


@dataclass(frozen=True)
class Outcome:
    status: OutcomeStatus
    message: str = ""
    steps_run: tuple[str, ...] = ()
    steps_skipped: tuple[str, ...] = ()


class ExecutionContext(Protocol):
    """What a strategy needs from its caller while executing: progress, health and a clock.

    The reactor backs it with its durable store (so progress survives a crash); tests and the CLI back
    it with memory.
    """

    def finished(self, step: PlanStep) -> Mapping[str, Any] | None:
        """The recorded result if ``step`` already finished, else None."""
        ...

    def started(self, step: PlanStep) -> None:
        """Record that ``step`` is about to run (before any API call)."""
        ...

    def completed(self, step: PlanStep, result: Mapping[str, Any]) -> None:
        """Record that ``step`` finished with ``result``."""
        ...

    def stable_health(self, target: TargetRef) -> Health:
        """Health of the stable side, asked between progressive steps."""
        ...

    # Optional: ``canary_health(target) -> Health``. Contexts that have it let ``progressive`` jump
    # straight to 0 when the canary turns CRITICAL mid-way (see :func:`canary_health`).

    def stop_requested(self) -> str | None:
        """A reason to stop now (e.g. the alert resolved), or None."""
        ...

    def sleep(self, seconds: float) -> None: ...


@runtime_checkable
class Strategy(Protocol):
    name: ClassVar[str]
    #: Capabilities the target must have for this strategy to apply.
    requires: ClassVar[frozenset[Capability]]

    def plan(self, platform: Platform, request: RollbackRequest) -> Plan: ...

    def execute(self, platform: Platform, plan: Plan, ctx: ExecutionContext) -> Outcome: ...

    def verify(self, platform: Platform, plan: Plan) -> bool | None: ...


def canary_health(ctx: ExecutionContext, target: TargetRef) -> Health:
    """The context's ``canary_health`` if it has one (an optional extension), else UNKNOWN."""
    probe = getattr(ctx, "canary_health", None)
    return probe(target) if callable(probe) else Health.UNKNOWN


def template_fingerprint(template: Mapping[str, Any]) -> str:
    """A stable digest of a workload template, to compare revisions whose numbers changed (undo renumbers)."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(template, sort_keys=True, default=str).encode()).hexdigest()[:16]
