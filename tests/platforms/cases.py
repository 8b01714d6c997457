"""One scenario builder per platform, with the same methods, so the contract suite runs on each unchanged.

A case builds targets on its engine on demand and returns them with a platform configured for them. Its
``image``/``weights``/``active`` read the engine *directly* (docker SDK, boto3), never through the platform
under test, so a write is checked against what the engine really holds.

Adding a platform means one more class with these methods, one more branch in the ``case`` fixture of
test_contract.py and its name in ``ALL``/``ENGINES`` there.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Protocol

import pytest

from sandbox import seed
from sandbox.resources import BY_KIND
from sandbox.server import SandboxServer
from strategies.base import ApiCall, Capability, Platform, Revision, RollbackRequest, TargetRef, TargetState
from strategies.dryrun import DryRunPlatform
from strategies.ecs import EcsPlatform
from strategies.kubernetes import names
from strategies.kubernetes.platform import KubernetesPlatform
from strategies.swarm import SwarmPlatform
from tests.conftest import free_port

from . import aws_helpers as awsh
from . import swarm_helpers as swh


class Case(Protocol):
    name: ClassVar[str]
    #: Largest difference between asked and realised weights (replica ratios cannot express every split).
    weight_tolerance: float

    def revertible(self) -> tuple[Platform, TargetRef]:
        """A target deployed three times (revisions 1..3, running 3), with no traffic router."""
        ...

    def single_revision(self) -> tuple[Platform, TargetRef]: ...

    def weighted(self) -> tuple[Platform, TargetRef]:
        """A target whose traffic is split stable 50 / canary 50."""
        ...

    def colored(self) -> tuple[Platform, TargetRef]:
        """A blue-green target with blue active."""
        ...

    def release(self) -> tuple[Platform, TargetRef]:
        """Two components of one release, ``checkout`` and ``payments``, each deployed three times.

        Returns the ``payments`` target; ``partial`` gets the graph (checkout depends on payments) from the
        request, so no platform-specific dependency annotation is needed.
        """
        ...

    def missing(self) -> tuple[Platform, TargetRef]: ...

    def unreachable(self) -> tuple[Platform, TargetRef]:
        """A platform whose engine does not answer (nothing listens where it points)."""
        ...

    def image(self, target: TargetRef) -> str:
        """What the engine runs for the target now (image of the current spec/task definition)."""
        ...

    def weights(self, target: TargetRef) -> dict[str, int]: ...

    def active(self, target: TargetRef) -> str | None: ...

    def writes(self) -> int | None:
        """Writes the engine itself saw so far (its own request log), or None where it keeps none."""
        ...

    def close(self) -> None: ...


# -- dry-run -----------------------------------------------------------------------------------------------
class DryRunCase:
    """The record-only platform: no engine, so its own model is the only truth there is."""

    name: ClassVar[str] = "dry-run"
    weight_tolerance = 0.0

    def __init__(self) -> None:
        self.seeded: dict[str, TargetState] = {}
        self.platform = DryRunPlatform()

    def _seed(self, name: str, **changes: Any) -> TargetRef:
        ref = TargetRef("dry-run", "local", "shop", name)
        revisions = tuple(Revision(n, name=f"{name}-{n}", image=f"app:v{n}") for n in (1, 2, 3))
        state = TargetState(
            target=ref,
            current_revision=3,
            revisions=revisions,
            stable_revision=2,
            capabilities=frozenset(Capability),
        )
        self.seeded[str(ref)] = replace(state, **changes)
        self.platform = DryRunPlatform(targets=self.seeded)
        return ref

    def revertible(self) -> tuple[Platform, TargetRef]:
        ref = self._seed("web")
        return self.platform, ref

    def single_revision(self) -> tuple[Platform, TargetRef]:
        ref = self._seed("solo", revisions=(Revision(1, image="app:v1"),), current_revision=1)
        return self.platform, ref

    def weighted(self) -> tuple[Platform, TargetRef]:
        ref = self._seed("canaried", traffic={"stable": 50, "canary": 50})
        return self.platform, ref

    def colored(self) -> tuple[Platform, TargetRef]:
        ref = self._seed("bg", active_color="blue", colors=("blue", "green"))
        return self.platform, ref

    def release(self) -> tuple[Platform, TargetRef]:
        self._seed("checkout")
        payments = self._seed("payments")
        return self.platform, payments

    def missing(self) -> tuple[Platform, TargetRef]:
        raise AssertionError("the dry-run platform invents every target; it has no missing ones")

    def unreachable(self) -> tuple[Platform, TargetRef]:
        raise AssertionError("the dry-run platform has no engine")

    def image(self, target: TargetRef) -> str:
        state = self.platform.describe(target)
        rev = state.revision(state.current_revision or 0)
        return rev.image if rev else ""

    def weights(self, target: TargetRef) -> dict[str, int]:
        return dict(self.platform.describe(target).traffic)

    def active(self, target: TargetRef) -> str | None:
        return self.platform.describe(target).active_color

    def writes(self) -> int | None:
        return len(self.platform.calls)

    def close(self) -> None:
        pass


# -- ECS on moto -------------------------------------------------------------------------------------------
class EcsCase:
    name: ClassVar[str] = "ecs"
    weight_tolerance = 0.0

    def __init__(self, session: Any, endpoint: str) -> None:
        self.session = session
        self.endpoint = endpoint
        self.worlds: dict[TargetRef, awsh.EcsWorld] = {}
        self.counter = 0

    def _platform(self, world: awsh.EcsWorld, **targets: Any) -> EcsPlatform:
        return EcsPlatform(session=self.session, **world.options(**targets))

    def _world(self, **kwargs: Any) -> tuple[awsh.EcsWorld, TargetRef]:
        self.counter += 1
        world = awsh.ecs_world(self.session, self.endpoint, cluster=f"shop{self.counter}", siblings=(), **kwargs)
        ref = TargetRef("ecs", "moto", world.cluster, world.service)
        self.worlds[ref] = world
        return world, ref

    def revertible(self) -> tuple[Platform, TargetRef]:
        world, ref = self._world()
        return self._platform(world), ref

    def single_revision(self) -> tuple[Platform, TargetRef]:
        world, ref = self._world(versions=1)
        return self._platform(world), ref

    def weighted(self) -> tuple[Platform, TargetRef]:
        world, ref = self._world()
        awsh.alb(self.session, self.endpoint, world, ("stable", "canary"), {"stable": 50, "canary": 50})
        settings = {
            "listener_arn": world.listener_arn,
            "weights": {"stable": world.target_groups["stable"], "canary": world.target_groups["canary"]},
        }
        return self._platform(world, **{world.key(): settings}), ref

    def colored(self) -> tuple[Platform, TargetRef]:
        world, ref = self._world()
        awsh.alb(self.session, self.endpoint, world, ("blue", "green"), {"blue": 1, "green": 0})
        settings = {
            "listener_arn": world.listener_arn,
            "colors": {"blue": world.target_groups["blue"], "green": world.target_groups["green"]},
        }
        return self._platform(world, **{world.key(): settings}), ref

    def release(self) -> tuple[Platform, TargetRef]:
        """Both services in one ECS cluster (the components of an ECS target are its cluster's services)."""
        self.counter += 1
        cluster = f"rel{self.counter}"
        for service in ("checkout", "payments"):
            world = awsh.ecs_world(self.session, self.endpoint, cluster=cluster, service=service, siblings=())
            self.worlds[TargetRef("ecs", "moto", cluster, service)] = world
        return self._platform(world), TargetRef("ecs", "moto", cluster, "payments")

    def missing(self) -> tuple[Platform, TargetRef]:
        world, _ = self._world()
        return self._platform(world), TargetRef("ecs", "moto", world.cluster, "no-such-service")

    def unreachable(self) -> tuple[Platform, TargetRef]:
        options = {
            "region": awsh.REGION,
            "endpoint_url": f"http://127.0.0.1:{free_port()}",
            "max_attempts": 1,
        }
        return EcsPlatform(session=self.session, **options), TargetRef("ecs", "moto", "shop", "checkout")

    def image(self, target: TargetRef) -> str:
        ecs = awsh.client(self.session, self.endpoint, "ecs")
        arn = ecs.describe_services(cluster=target.namespace, services=[target.name])["services"][0]["taskDefinition"]
        td = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
        return str(td["containerDefinitions"][0]["image"])

    def weights(self, target: TargetRef) -> dict[str, int]:
        raw = awsh.listener_weights(self.session, self.endpoint, self.worlds[target])
        total = sum(raw.values())
        return {k: round(100 * v / total) for k, v in raw.items()}

    def active(self, target: TargetRef) -> str | None:
        raw = awsh.listener_weights(self.session, self.endpoint, self.worlds[target])
        return max(raw, key=lambda k: raw[k]) if any(raw.values()) else None

    def writes(self) -> int | None:
        return None  # moto keeps no request log; the strategy tests count the platform's own writes

    def close(self) -> None:
        pass


# -- Swarm on a local dockerd ------------------------------------------------------------------------------
class SwarmCase:
    name: ClassVar[str] = "swarm"
    #: Canary pairs run 4 replicas in all: one replica is 25 points of traffic.
    PAIR_TOTAL = 4
    weight_tolerance = 100 / PAIR_TOTAL / 2

    def __init__(self, api: Any, base_url: str) -> None:
        self.api = api
        self.base_url = base_url
        self.stack = swh.unique("s")
        self.targets: dict[str, Any] = {}

    def _platform(self) -> SwarmPlatform:
        return SwarmPlatform(
            clusters={"local": {"base_url": self.base_url}},
            targets=self.targets,
            poll_interval=0.05,
        )

    def _ref(self, name: str) -> TargetRef:
        return TargetRef("swarm", "local", self.stack, name)

    def _svc(self, name: str) -> str:
        return f"{self.stack}_{name}"

    def revertible(self) -> tuple[Platform, TargetRef]:
        ref = self._ref("web")
        swh.create_service(self.api, self._svc("web"), "app:v1", stack=self.stack)
        platform = self._platform()
        # A deploy pipeline registers each deploy; the platform records it (history beyond PreviousSpec).
        for image in ("app:v2", "app:v3"):
            platform.record(ref)
            swh.deploy(self.api, self._svc("web"), image)
        return platform, ref

    def single_revision(self) -> tuple[Platform, TargetRef]:
        swh.create_service(self.api, self._svc("solo"), "app:v1", stack=self.stack)
        return self._platform(), self._ref("solo")

    def weighted(self) -> tuple[Platform, TargetRef]:
        """Two services, ``canaried-stable`` and ``canaried-canary``; the target has no service of its own."""
        stable, canary = self._svc("canaried-stable"), self._svc("canaried-canary")
        half = self.PAIR_TOTAL // 2
        swh.create_service(self.api, stable, "app:v1", replicas=half, stack=self.stack)
        swh.create_service(self.api, canary, "app:v2", replicas=self.PAIR_TOTAL - half, stack=self.stack)
        ref = self._ref("canaried")
        self.targets[f"local/{self.stack}/canaried"] = {"canary": {"stable": stable, "canary": canary}}
        return self._platform(), ref

    def colored(self) -> tuple[Platform, TargetRef]:
        blue, green = self._svc("bg-blue"), self._svc("bg-green")
        swh.create_service(self.api, blue, "app:v1", replicas=1, stack=self.stack)
        swh.create_service(self.api, green, "app:v2", replicas=0, stack=self.stack)
        self.targets[f"local/{self.stack}/bg"] = {"colors": {"blue": blue, "green": green}}
        return self._platform(), self._ref("bg")

    def release(self) -> tuple[Platform, TargetRef]:
        """Two services of the case's stack (a Swarm target's components are its stack's services)."""
        platform = self._platform()
        for service in ("checkout", "payments"):
            name = self._svc(service)
            swh.create_service(self.api, name, "app:v1", stack=self.stack)
            for image in ("app:v2", "app:v3"):
                platform.record(self._ref(service))
                swh.deploy(self.api, name, image)
        return platform, self._ref("payments")

    def missing(self) -> tuple[Platform, TargetRef]:
        return self._platform(), self._ref("no-such-service")

    def unreachable(self) -> tuple[Platform, TargetRef]:
        platform = SwarmPlatform(clusters={"local": {"base_url": f"tcp://127.0.0.1:{free_port()}", "timeout": 2}})
        return platform, self._ref("web")

    def _name(self, target: TargetRef) -> str:
        return self._svc(target.name)

    def image(self, target: TargetRef) -> str:
        svc = swh.wait_converged(self.api, self._name(target))
        images = swh.running_images(self.api, svc["ID"])
        assert len(set(images)) == 1, f"tasks run different images: {images}"
        return images[0]

    def _replicas(self, mapping: dict[str, str]) -> dict[str, int]:
        return {
            role: self.api.inspect_service(service)["Spec"]["Mode"]["Replicated"]["Replicas"]
            for role, service in mapping.items()
        }

    def weights(self, target: TargetRef) -> dict[str, int]:
        counts = self._replicas(self.targets[f"local/{self.stack}/{target.name}"]["canary"])
        total = sum(counts.values())
        return {k: round(100 * v / total) for k, v in counts.items()}

    def active(self, target: TargetRef) -> str | None:
        counts = self._replicas(self.targets[f"local/{self.stack}/{target.name}"]["colors"])
        running = [c for c, n in counts.items() if n > 0]
        return running[0] if len(running) == 1 else None

    def writes(self) -> int | None:
        return None  # dockerd's event stream is not a request log; the tests count the platform's writes

    def close(self) -> None:
        pass


# -- Kubernetes on the sandbox API server ------------------------------------------------------------------
class KubernetesCase:
    """Deployments, Services and an Istio VirtualService on the embedded sandbox API server, over real HTTP.

    Scenarios are built the way ``kubectl apply`` / ``kubectl set image`` would, straight in the sandbox's
    store (its deployment controller makes a ReplicaSet and a revision per template, as the real one does);
    the platform under test reaches the server through a kubeconfig like a user's. Each case works in its
    own namespace, so it can share a server with other objects (e.g. the demo seed).
    """

    name: ClassVar[str] = "kubernetes"
    weight_tolerance = 0.0
    CLUSTER = "sandbox"

    def __init__(self, server: SandboxServer, workdir: Path, *, namespace: str = "parity") -> None:
        self.server = server
        self.ns = namespace
        self.counter = 0
        kubeconfig = server.write_kubeconfig(workdir / "kubeconfig", namespace=namespace)
        self.platform = KubernetesPlatform(clusters={self.CLUSTER: {"kubeconfig": str(kubeconfig)}}, poll_interval=0.01)
        self._platforms: list[KubernetesPlatform] = [self.platform]

    def _name(self, base: str) -> str:
        self.counter += 1
        return f"{base}{self.counter}"

    def _ref(self, name: str, namespace: str | None = None) -> TargetRef:
        return TargetRef("kubernetes", self.CLUSTER, namespace or self.ns, name)

    def _apply(self, obj: dict[str, Any]) -> None:
        seed.apply(self.server.store, obj)

    def _deployed(self, name: str, versions: int = 3, *, namespace: str | None = None, **kwargs: Any) -> None:
        """A Deployment rolled out ``versions`` times: revisions 1..N, running N."""
        ns = namespace or self.ns
        self._apply(seed.workload("Deployment", name, ns, "app:v1", app=name, **kwargs))
        for v in range(2, versions + 1):
            seed.roll(self.server.store, ns, name, f"app:v{v}", change_cause=f"release v{v}")

    def revertible(self) -> tuple[Platform, TargetRef]:
        name = self._name("web")
        self._deployed(name)
        return self.platform, self._ref(name)

    def single_revision(self) -> tuple[Platform, TargetRef]:
        name = self._name("solo")
        self._deployed(name, versions=1)
        return self.platform, self._ref(name)

    def weighted(self) -> tuple[Platform, TargetRef]:
        """A canary pair behind an Istio VirtualService (subsets ``stable``/``canary``) at 50/50.

        The stable Deployment has three revisions, like the ECS service of a weighted case.
        """
        name = self._name("canaried")
        annotations = {names.ROUTER: "istio", names.CANARY: f"{name}-canary"}
        self._deployed(name, pod_labels={"track": "stable"}, annotations=annotations)
        self._apply(
            seed.workload("Deployment", f"{name}-canary", self.ns, "app:v2", app=name, pod_labels={"track": "canary"})
        )
        self._apply(seed.service(name, self.ns, {"app": name}))
        vs = {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": name, "namespace": self.ns},
            "spec": {
                "hosts": [name],
                "http": [
                    {
                        "name": "primary",
                        "route": [
                            {"destination": {"host": name, "subset": side}, "weight": 50}
                            for side in ("stable", "canary")
                        ],
                    }
                ],
            },
        }
        self._apply(vs)
        return self.platform, self._ref(name)

    def colored(self) -> tuple[Platform, TargetRef]:
        """A Service selecting ``<name>-blue`` (1 replica) by colour; ``<name>-green`` idles at 0 replicas."""
        name = self._name("bg")
        for color, image, replicas in (("blue", "app:v1", 1), ("green", "app:v2", 0)):
            self._apply(
                seed.workload(
                    "Deployment",
                    f"{name}-{color}",
                    self.ns,
                    image,
                    app=name,
                    replicas=replicas,
                    pod_labels={"color": color},
                )
            )
        colors = f"blue={name}-blue,green={name}-green"
        annotations = {names.COLOR_LABEL: "color", names.COLORS: colors}
        self._apply(seed.service(name, self.ns, {"app": name, "color": "blue"}, annotations))
        return self.platform, self._ref(name)

    def release(self) -> tuple[Platform, TargetRef]:
        """Two Deployments labelled as one release, in a namespace of their own (components are siblings)."""
        ns = f"{self.ns}-{self._name('rel')}"
        for component in ("checkout", "payments"):
            self._deployed(component, namespace=ns, labels={names.RELEASE: "shop"})
        return self.platform, self._ref("payments", ns)

    def missing(self) -> tuple[Platform, TargetRef]:
        return self.platform, self._ref("no-such-deployment")

    def unreachable(self) -> tuple[Platform, TargetRef]:
        platform = KubernetesPlatform(
            clusters={self.CLUSTER: {"server": f"http://127.0.0.1:{free_port()}", "request_timeout": 2}},
            poll_interval=0.01,
        )
        self._platforms.append(platform)
        return platform, self._ref("web")

    def _get(self, kind: str, target: TargetRef) -> dict[str, Any]:
        return self.server.store.get(BY_KIND[kind], target.namespace, target.name)

    def image(self, target: TargetRef) -> str:
        containers = self._get("Deployment", target)["spec"]["template"]["spec"]["containers"]
        return ",".join(c["image"] for c in containers)

    def weights(self, target: TargetRef) -> dict[str, int]:
        routes = self._get("VirtualService", target)["spec"]["http"][0]["route"]
        raw = {r["destination"]["subset"]: r.get("weight", 0) for r in routes}
        total = sum(raw.values())
        return {k: round(100 * v / total) for k, v in raw.items()}

    def active(self, target: TargetRef) -> str | None:
        selector = self._get("Service", target)["spec"]["selector"]
        return selector.get("color")

    def writes(self) -> int | None:
        return sum(1 for r in list(self.server.requests) if r.method in ("POST", "PUT", "PATCH", "DELETE"))

    def close(self) -> None:
        for platform in self._platforms:
            platform.close()


#: Every platform, and those with a real engine behind them (the dry-run platform invents every target, so
#: missing targets and unreachable engines do not exist for it).
ALL = ["dry-run", "ecs", "swarm", "kubernetes"]
ENGINES = ["ecs", "swarm", "kubernetes"]


def each(names: list[str]) -> Any:
    """Parametrize a test's ``case`` fixture (tests/platforms/conftest.py) over the named platforms."""
    return pytest.mark.parametrize("case", names, indirect=True)


@dataclass
class Recorder:
    """The platform under test, unchanged, with every write it performs for real kept in ``writes``.

    A decorator, not a fake: every call goes to the real platform; only the API calls each write primitive
    reports having made are remembered, so a test can tell "called and found nothing to do" (no calls)
    from "wrote again".
    """

    platform: Platform
    writes: list[tuple[str, TargetRef, list[ApiCall]]] = field(default_factory=list)
    name: ClassVar[str] = "recorder"

    def made(self) -> int:
        return sum(len(calls) for _op, _target, calls in self.writes)

    def describe(self, target: TargetRef) -> TargetState:
        return self.platform.describe(target)

    def wait_ready(self, target: TargetRef, timeout: float) -> TargetState:
        return self.platform.wait_ready(target, timeout)

    def _write(self, op: str, target: TargetRef, dry_run: bool, calls: list[ApiCall]) -> list[ApiCall]:
        if not dry_run:
            self.writes.append((op, target, calls))
        return calls

    def revert(self, target: TargetRef, revision: int | None = None, *, dry_run: bool = False) -> list[ApiCall]:
        return self._write("revert", target, dry_run, self.platform.revert(target, revision, dry_run=dry_run))

    def set_weights(self, target: TargetRef, weights: Mapping[str, int], *, dry_run: bool = False) -> list[ApiCall]:
        return self._write("weights", target, dry_run, self.platform.set_weights(target, weights, dry_run=dry_run))

    def switch(self, target: TargetRef, color: str, *, dry_run: bool = False) -> list[ApiCall]:
        return self._write("switch", target, dry_run, self.platform.switch(target, color, dry_run=dry_run))


# -- one rollback scenario per strategy, on any case ------------------------------------------------------
STRATEGY_NAMES = ("undo", "blue_green", "progressive", "partial")


@dataclass
class Scenario:
    """A target built for one strategy, the request to roll it back, and how to see it happened."""

    platform: Platform
    target: TargetRef
    request: RollbackRequest
    #: Reads the engine directly and raises AssertionError unless the rollback's effect is there.
    check: Callable[[], None]


def _previous_image(platform: Platform, target: TargetRef) -> str:
    state = platform.describe(target)
    previous = state.revision(state.previous_revision())  # type: ignore[arg-type]
    assert previous is not None, f"{target} has no previous revision"
    return previous.image


def undo_scenario(case: Case, wait: float) -> Scenario:
    """A workload deployed three times goes back to the second deploy."""
    platform, target = case.revertible()
    want = _previous_image(platform, target)

    def check() -> None:
        assert case.image(target) == want

    return Scenario(platform, target, RollbackRequest(target, wait_timeout=wait), check)


def blue_green_scenario(case: Case, wait: float) -> Scenario:
    """Blue-green with blue active: green (idle, possibly scaled to zero) takes over."""
    platform, target = case.colored()
    assert case.active(target) == "blue"

    def check() -> None:
        assert case.active(target) == "green"

    return Scenario(platform, target, RollbackRequest(target, wait_timeout=wait), check)


def progressive_scenario(case: Case, wait: float) -> Scenario:
    """A 50/50 canary split steps down 50 -> 20 -> 0 (the 50 step is already done, so two writes)."""
    platform, target = case.weighted()
    request = RollbackRequest(target, steps=(50, 20, 0), wait_timeout=wait, step_interval=30.0)

    def check() -> None:
        assert case.weights(target) == {"stable": 100, "canary": 0}

    return Scenario(platform, target, request, check)


def partial_scenario(case: Case, wait: float) -> Scenario:
    """payments fails; checkout depends on it, so both roll back: checkout first."""
    platform, target = case.release()
    checkout = target.sibling("checkout")
    want = {t: _previous_image(platform, t) for t in (target, checkout)}
    request = RollbackRequest(
        target, components=("payments",), dependencies={"checkout": ("payments",)}, wait_timeout=wait
    )

    def check() -> None:
        assert {t: case.image(t) for t in want} == want

    return Scenario(platform, target, request, check)


#: Strategy name -> scenario builder (case, readiness timeout in seconds). The configured waits between
#: progressive steps (``step_interval``) are set, so a caller that times a run must skip ``ctx.sleep``.
SCENARIOS: dict[str, Callable[[Case, float], Scenario]] = {
    "undo": undo_scenario,
    "blue_green": blue_green_scenario,
    "progressive": progressive_scenario,
    "partial": partial_scenario,
}


def dump(state: TargetState) -> str:
    """A state as JSON: proves it serialises, and gives a readable assertion message."""
    return json.dumps(state.as_dict(), sort_keys=True, default=str)


CaseFactory = Callable[[], Case]
