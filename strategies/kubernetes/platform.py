"""The Kubernetes platform: one :class:`~strategies.base.Platform` over several clusters.

A target ``kubernetes/<cluster>/<namespace>/<name>`` resolves, in this order, to

1. a **Deployment** ``<name>``, alone or as the stable side of a **canary pair** (``<name>-canary`` by
   default) behind a traffic router (Istio, NGINX, Gateway API, or the replica ratio);
2. an **Argo Rollout** ``<name>`` (canary or blue-green);
3. a **blue-green Service** ``<name>`` whose selector picks one of two Deployments by a colour label.

Per-target options (``targets:``) or annotations on the object say which router, canary, colours,
release and dependencies apply (docs/kubernetes.md). The primitive writes:

- ``revert``: ``kubectl rollout undo [--to-revision]`` exactly (CONTRACTS.md §5.1), preceded by restoring
  the ConfigMaps/Secrets the target revision referenced from their snapshots (:mod:`.snapshots`). On an
  Argo Rollout: abort, then the same undo on the Rollout's template (§5.2).
- ``set_weights``: the pair's router (:mod:`.routers`); on an Argo Rollout only the jump to 0 (abort),
  since Argo owns its weights.
- ``switch``: the Service selector (scaling the idle colour up first if it was at zero), or an Argo
  blue-green Rollout's active Service.
- ``wait_ready``: polls with the injected clock until ready or the timeout.

Every write is computed from a fresh read and carries that read's resourceVersion; a 409 is retried on a
new read up to ``conflict_retries`` times. Client errors become :mod:`strategies.errors` at
:class:`~strategies.kubernetes.client.KubeClient`.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from strategies.base import ApiCall, Capability, Revision, TargetRef, TargetState
from strategies.errors import (
    ConflictError,
    InvalidRequestError,
    NoPreviousRevisionError,
    PermanentError,
    RevisionNotFoundError,
    TargetNotFoundError,
    TemporaryError,
    UnsupportedError,
)
from strategies.kubernetes import names, routers, snapshots
from strategies.kubernetes.client import (
    CONFIG_KINDS,
    DEPLOYMENT,
    JSON_PATCH,
    MERGE_PATCH,
    REPLICASET,
    ROLLOUT,
    SERVICE,
    Kind,
    KubeClient,
    NotFound,
)
from strategies.kubernetes.config import ClusterOptions, TargetOptions, build_api_client, parse_options
from strategies.kubernetes.routers import Pair

WORKLOAD_KINDS: dict[str, Kind] = {"Deployment": DEPLOYMENT, "Rollout": ROLLOUT, "Service": SERVICE}


@dataclass
class Binding:
    """What a target resolved to, with the options and annotations merged."""

    kind: str
    name: str
    obj: dict[str, Any]
    pair: Pair | None = None
    color_label: str | None = None
    colors: dict[str, str] = field(default_factory=dict)
    release: str | None = None
    depends_on: tuple[str, ...] = ()

    @property
    def hash_label(self) -> str:
        return names.ARGO_HASH_LABEL if self.kind == "Rollout" else names.HASH_LABEL

    @property
    def revision_annotation(self) -> str:
        return names.ARGO_REVISION if self.kind == "Rollout" else names.REVISION


def _annotations(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("annotations") or {})


def _revision(obj: Mapping[str, Any], annotation: str) -> int | None:
    text = _annotations(obj).get(annotation)
    if text is None:
        return 0
    try:
        return int(text)
    except ValueError:
        return None  # kubectl skips a ReplicaSet with an unparsable revision


def _images(template: Mapping[str, Any]) -> str:
    return ",".join(c.get("image", "") for c in (template.get("spec") or {}).get("containers") or [])


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def deployment_ready(obj: Mapping[str, Any]) -> bool:
    """``kubectl rollout status`` semantics (KUBECTL_SANDBOX.md §6)."""
    status = obj.get("status") or {}
    desired = (obj.get("spec") or {}).get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    return (
        (obj.get("metadata") or {}).get("generation", 0) <= status.get("observedGeneration", 0)
        and updated >= desired
        and status.get("replicas", 0) <= updated
        and status.get("availableReplicas", 0) >= updated
    )


class KubernetesPlatform:
    """Kubernetes through the official client. Keyword options: see :mod:`strategies.kubernetes.config`.

    Collaborators (keyword, production defaults): ``clock`` (monotonic seconds, for timeouts), ``sleep``,
    ``now`` (wall-clock seconds, for snapshot and lease timestamps), ``environ`` (where ``$KUBECONFIG``
    and in-cluster detection come from) and ``api_client_factory`` (cluster name, options -> ApiClient).
    """

    name: ClassVar[str] = "kubernetes"

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], float] = time.time,
        environ: Mapping[str, str] | None = None,
        api_client_factory: Callable[[str, ClusterOptions], Any] | None = None,
        **options: Any,
    ) -> None:
        self.options = parse_options(options, environ=environ)
        self._clusters: dict[str, ClusterOptions] = dict(self.options.clusters) or {"default": ClusterOptions()}
        self._clock, self._sleep, self._now = clock, sleep, now
        self._factory = api_client_factory or (lambda name, cluster: build_api_client(name, cluster, environ))
        self._clients: dict[str, KubeClient] = {}
        self._lock = threading.Lock()
        #: 409s met and retried, for the audit trail and tests.
        self.conflicts = 0

    # ------------------------------------------------------------------------------------ plumbing
    def client(self, cluster: str) -> KubeClient:
        """The client of ``cluster`` (created on first use)."""
        with self._lock:
            if cluster not in self._clients:
                options = self._clusters.get(cluster)
                if options is None:
                    raise TargetNotFoundError(
                        f"cluster {cluster!r} is not configured for the kubernetes platform; configured: "
                        f"{', '.join(sorted(self._clusters))} (platforms.kubernetes.clusters)"
                    )
                try:
                    api = self._factory(cluster, options)
                except Exception as exc:  # e.g. the client's ConfigException: never past this boundary
                    raise PermanentError(
                        f"cannot set up the client of cluster {cluster!r}: {exc}. Check its kubeconfig and "
                        "context (docs/kubernetes.md#clusters-aks-and-gke)"
                    ) from exc
                self._clients[cluster] = KubeClient(api, cluster=cluster, timeout=options.request_timeout)
            return self._clients[cluster]

    def close(self) -> None:
        with self._lock:
            for kube in self._clients.values():
                close = getattr(kube.api, "close", None)
                if callable(close):
                    close()
            self._clients.clear()

    def __enter__(self) -> KubernetesPlatform:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _retrying(self, what: str, attempt: Callable[[], list[ApiCall]]) -> list[ApiCall]:
        """Run ``attempt`` (which reads fresh state, then writes) again after each 409."""
        tries = self.options.conflict_retries + 1
        last: ConflictError | None = None
        for number in range(tries):
            try:
                return attempt()
            except ConflictError as exc:
                last = exc
                self.conflicts += 1
                if number + 1 < tries:
                    self._sleep(min(0.02 * 2**number, 0.5))
        raise ConflictError(
            f"{what}: the object kept changing under us ({tries} attempts, each on a fresh read; last: "
            f"{last}); "
            "someone else is writing to it, retry later",
            delay=2.0,
        ) from last

    def _timestamp(self) -> str:
        return datetime.fromtimestamp(self._now(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    # ----------------------------------------------------------------------------------- resolution
    def _target_options(self, target: TargetRef) -> TargetOptions:
        return self.options.targets.get(f"{target.cluster}/{target.namespace}/{target.name}") or TargetOptions()

    def resolve(self, target: TargetRef) -> tuple[KubeClient, Binding]:
        """Find what ``target`` names and merge its options with its annotations."""
        kube = self.client(target.cluster)
        opts = self._target_options(target)
        name = opts.workload or (
            opts.blue_green.service if opts.blue_green and opts.blue_green.service else target.name
        )
        if opts.kind:
            kinds = [opts.kind]
        elif opts.blue_green:
            kinds = ["Service"]
        else:
            kinds = ["Deployment", "Rollout", "Service"]
        for kind in kinds:
            obj = kube.find(WORKLOAD_KINDS[kind], target.namespace, name)
            if obj is None:
                continue
            annotations = _annotations(obj)
            if kind == "Service":
                label = (opts.blue_green.label if opts.blue_green else None) or annotations.get(names.COLOR_LABEL)
                selector = (obj.get("spec") or {}).get("selector") or {}
                if label is None and "color" in selector:
                    label = "color"
                if label is None:
                    continue
                return kube, self._service_binding(kube, target, obj, opts, label)
            binding = Binding(
                kind=kind,
                name=name,
                obj=obj,
                release=opts.release or ((obj.get("metadata") or {}).get("labels") or {}).get(names.RELEASE),
                depends_on=opts.depends_on or names.split_list(annotations.get(names.DEPENDS_ON)),
            )
            if kind == "Deployment":
                binding.pair = self._pair(name, annotations, opts)
            return kube, binding
        looked = ", ".join(
            {"Deployment": "Deployment", "Rollout": "Argo Rollout", "Service": "blue-green Service"}[k] for k in kinds
        )
        raise TargetNotFoundError(
            f"{target}: found no {looked} named {name!r} in namespace {target.namespace!r} of cluster "
            f"{target.cluster!r} ({kube.host}); check the target name, or map it with "
            "platforms.kubernetes.targets"
        )

    @staticmethod
    def _pair(name: str, annotations: Mapping[str, str], opts: TargetOptions) -> Pair | None:
        router = opts.router.type if opts.router else annotations.get(names.ROUTER)
        if not router:
            return None
        if router not in ("istio", "nginx", "gateway", "replicas"):
            raise InvalidRequestError(
                f"Deployment {name}: annotation {names.ROUTER}={router!r} is not one of istio, nginx, gateway, replicas"
            )
        canary = opts.canary or annotations.get(names.CANARY) or f"{name}-canary"
        ropts = opts.router
        default_object = {"istio": name, "gateway": name, "nginx": f"{name}-canary", "replicas": ""}[router]
        default_stable = {"istio": "stable", "gateway": name}.get(router, "")
        default_canary = {"istio": "canary", "gateway": f"{name}-canary"}.get(router, "")
        return Pair(
            stable=name,
            canary=canary,
            router=router,
            object=(ropts.object if ropts and ropts.object else None)
            or annotations.get(names.ROUTER_OBJECT)
            or default_object,
            stable_backend=(ropts.stable if ropts and ropts.stable else None)
            or annotations.get(names.STABLE_BACKEND)
            or default_stable,
            canary_backend=(ropts.canary if ropts and ropts.canary else None)
            or annotations.get(names.CANARY_BACKEND)
            or default_canary,
            routes=(ropts.routes if ropts and ropts.routes else ()) or names.split_list(annotations.get(names.ROUTES)),
        )

    def _service_binding(
        self, kube: KubeClient, target: TargetRef, svc: dict[str, Any], opts: TargetOptions, label: str
    ) -> Binding:
        annotations = _annotations(svc)
        colors = dict(opts.blue_green.colors) if opts.blue_green and opts.blue_green.colors else {}
        if not colors and annotations.get(names.COLORS):
            for item in names.split_list(annotations[names.COLORS]):
                color, _, color_deployment = item.partition("=")
                if not color_deployment:
                    raise InvalidRequestError(
                        f"Service {svc['metadata']['name']}: annotation {names.COLORS} must look like "
                        f"blue=web-blue,green=web-green; got {annotations[names.COLORS]!r}"
                    )
                colors[color.strip()] = color_deployment.strip()
        if not colors:
            selector = dict((svc.get("spec") or {}).get("selector") or {})
            selector.pop(label, None)
            for deployment in kube.list(DEPLOYMENT, target.namespace):
                labels = ((deployment["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
                if label in labels and all(labels.get(k) == v for k, v in selector.items()):
                    colors[labels[label]] = deployment["metadata"]["name"]
        if len(colors) < 2:
            raise UnsupportedError(
                f"Service {svc['metadata']['name']} selects colours by {label!r} but only "
                f"{sorted(colors) or 'no'} "
                f"colour Deployment(s) were found; give both with annotation {names.COLORS} or the "
                "blue_green option"
            )
        return Binding(
            kind="Service",
            name=svc["metadata"]["name"],
            obj=svc,
            color_label=label,
            colors=colors,
            release=opts.release or ((svc.get("metadata") or {}).get("labels") or {}).get(names.RELEASE),
            depends_on=opts.depends_on or names.split_list(annotations.get(names.DEPENDS_ON)),
        )

    # -------------------------------------------------------------------------------------- history
    def _history(
        self, kube: KubeClient, namespace: str, owner: Mapping[str, Any], annotation: str
    ) -> list[tuple[int, dict]]:
        """(revision, ReplicaSet) owned by ``owner``, as kubectl finds them (selector + controllerRef uid)."""
        selector = names.render_selector((owner.get("spec") or {}).get("selector") or {})
        uid = owner["metadata"]["uid"]
        out = []
        for rs in kube.list(REPLICASET, namespace, label_selector=selector):
            refs = (rs.get("metadata") or {}).get("ownerReferences") or []
            if not any(ref.get("controller") and ref.get("uid") == uid for ref in refs):
                continue
            number = _revision(rs, annotation)
            if number is not None:
                out.append((number, rs))
        return sorted(out, key=lambda item: item[0])

    def _template_of(self, kube: KubeClient, namespace: str, binding: Binding, obj: Mapping[str, Any]) -> dict:
        ref = (obj.get("spec") or {}).get("workloadRef") or {}
        if binding.kind == "Rollout" and ref:
            return dict(kube.get(DEPLOYMENT, namespace, ref["name"])["spec"]["template"])
        return dict(obj["spec"]["template"])

    @staticmethod
    def _pick(
        history: list[tuple[int, dict]], revision: int | None, what: str, annotation: str = names.REVISION
    ) -> tuple[int, dict]:
        """kubectl's choice: ``revision`` if given, else the second-highest revision.

        One departure: a ``revision`` that an earlier undo renumbered (its ReplicaSet now carries a new
        number and lists the old one in ``<annotation>-history``) still names that ReplicaSet, where
        kubectl would answer "unable to find". A retried ``revert(target, N)`` is then a no-op instead of
        a permanent error, as on ECS and Swarm whose revision numbers never move.
        """
        by_number = dict(history)  # a duplicate number keeps the last ReplicaSet, as kubectl does
        if revision:
            if revision not in by_number:
                for number, rs in reversed(history):
                    if str(revision) in names.split_list(_annotations(rs).get(f"{annotation}-history")):
                        return number, rs
                raise RevisionNotFoundError(
                    f"unable to find specified revision {revision} in history of {what}; it has {sorted(by_number)}"
                )
            return revision, by_number[revision]
        if len(by_number) < 2:
            raise NoPreviousRevisionError(
                f"no rollout history found for {what}: it has "
                f"{'only revision ' + str(min(by_number)) if by_number else 'no revision'}, "
                "so there is nothing to roll back to; fix forward or deploy a known good image"
            )
        second = sorted(by_number)[-2]
        return second, by_number[second]

    def _snapshot_index(self, kube: KubeClient, namespace: str, workload: str) -> dict[tuple[str, str, str], dict]:
        """(template hash, kind, source name) -> snapshot object, for one workload."""
        if not self.options.snapshot_config:
            return {}
        selector = f"{names.SNAPSHOT}=true,{names.SNAPSHOT_WORKLOAD}={names.label_value(workload)}"
        index = {}
        for kind, api in CONFIG_KINDS.items():
            for snap in kube.list(api, namespace, label_selector=selector):
                meta = snap.get("metadata") or {}
                key = (
                    (meta.get("labels") or {}).get(names.SNAPSHOT_HASH, ""),
                    kind,
                    _annotations(snap).get(names.SNAPSHOT_OF, ""),
                )
                index[key] = snap
        return index

    # ------------------------------------------------------------------------------------- describe
    def describe(self, target: TargetRef) -> TargetState:
        kube, binding = self.resolve(target)
        if binding.kind == "Service":
            return self._describe_service(target, kube, binding)
        return self._describe_workload(target, kube, binding)

    def _components(
        self, kube: KubeClient, target: TargetRef, binding: Binding
    ) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
        if not binding.release:
            deps = {target.name: binding.depends_on} if binding.depends_on else {}
            return (), deps
        selector = f"{names.RELEASE}={binding.release}"
        members: dict[str, tuple[str, ...]] = {}
        for kind in (DEPLOYMENT, ROLLOUT, SERVICE):
            try:
                items = kube.list(kind, target.namespace, label_selector=selector)
            except NotFound:
                continue  # Argo Rollouts not installed
            for obj in items:
                members[obj["metadata"]["name"]] = names.split_list(_annotations(obj).get(names.DEPENDS_ON))
        prefix = f"{target.cluster}/{target.namespace}/"
        for key, opts in self.options.targets.items():
            if key.startswith(prefix) and opts.release == binding.release:
                component = key.removeprefix(prefix)
                members[component] = opts.depends_on or members.get(component, ())
        # Colour Deployments belong to their blue-green Service, not to the release on their own.
        for color_deployment in binding.colors.values():
            members.pop(color_deployment, None)
        members[target.name] = binding.depends_on or members.get(target.name, ())
        return tuple(sorted(members)), {k: v for k, v in members.items() if v}

    def _revisions(
        self, kube: KubeClient, namespace: str, binding: Binding, history: list[tuple[int, dict]]
    ) -> tuple[Revision, ...]:
        references = any(snapshots.referenced_config(rs["spec"]["template"]) for _n, rs in history)
        index = self._snapshot_index(kube, namespace, binding.name) if references else {}
        out = []
        for number, rs in history:
            template = names.normalized(names.strip_label(rs["spec"]["template"], binding.hash_label))
            digest = ((rs.get("metadata") or {}).get("labels") or {}).get(binding.hash_label, "")
            config: dict[str, Any] = {}
            if self.options.snapshot_config:
                for kind, source in snapshots.referenced_config(template):
                    snap = index.get((digest, kind, source))
                    config[f"{kind}/{source}"] = snap["metadata"]["name"] if snap else None
            out.append(
                Revision(
                    number=number,
                    name=rs["metadata"]["name"],
                    image=_images(template),
                    template=template,
                    config=config,
                    created_at=_parse_time((rs.get("metadata") or {}).get("creationTimestamp")),
                )
            )
        return tuple(out)

    def _describe_workload(self, target: TargetRef, kube: KubeClient, binding: Binding) -> TargetState:
        ns, obj = target.namespace, binding.obj
        history = self._history(kube, ns, obj, binding.revision_annotation)
        revisions = self._revisions(kube, ns, binding, history)
        template = self._template_of(kube, ns, binding, obj)
        current = next(
            (
                n
                for n, rs in reversed(history)
                if names.same_template(rs["spec"]["template"], template, binding.hash_label)
            ),
            None,
        )
        components, dependencies = self._components(kube, target, binding)
        capabilities = {Capability.REVERT}
        if components:
            capabilities.add(Capability.COMPONENTS)
        details: dict[str, Any] = {
            "kind": binding.kind,
            "name": binding.name,
            "paused": bool(obj["spec"].get("paused")),
        }
        traffic: dict[str, int] = {}
        router: str | None = None
        colors: tuple[str, ...] = ()
        active: str | None = None
        color_revisions: dict[str, int] = {}
        gradual = True
        status = obj.get("status") or {}
        desired = obj["spec"].get("replicas", 1)
        if binding.kind == "Deployment":
            if current is None:
                current = _revision(obj, names.REVISION) or None
            numbers = sorted(n for n, _rs in history)
            stable = numbers[-2] if len(numbers) >= 2 else None
            ready = deployment_ready(obj)
            ready_replicas = status.get("readyReplicas", 0)
            if binding.pair is not None:
                traffic = routers.read(kube, ns, binding.pair)
                router = binding.pair.router
                capabilities.add(Capability.WEIGHTS)
                stable = current
                canary = kube.find(DEPLOYMENT, ns, binding.pair.canary)
                details["router"] = binding.pair.describe()
                details["canary"] = (
                    {
                        "workload": binding.pair.canary,
                        "image": _images(canary["spec"]["template"]),
                        "replicas": canary["spec"].get("replicas", 1),
                        "ready_replicas": (canary.get("status") or {}).get("readyReplicas", 0),
                    }
                    if canary
                    else None
                )
        else:
            by_hash = {
                ((rs.get("metadata") or {}).get("labels") or {}).get(names.ARGO_HASH_LABEL): (n, rs)
                for n, rs in history
            }
            stable_hash, current_hash = status.get("stableRS"), status.get("currentPodHash")
            stable = by_hash[stable_hash][0] if stable_hash in by_hash else None
            if current_hash in by_hash:
                current = by_hash[current_hash][0]
            strategy = obj["spec"].get("strategy") or {}
            serving = by_hash.get(stable_hash, (None, {}))[1]
            ready_replicas = ((serving or {}).get("status") or {}).get("readyReplicas", 0)
            ready = ready_replicas >= desired
            details["phase"] = status.get("phase")
            details["aborted"] = bool(status.get("abort"))
            if "blueGreen" in strategy:
                blue_green = strategy["blueGreen"] or {}
                live = [
                    (n, h)
                    for h, (n, rs) in by_hash.items()
                    if h and ((rs.get("status") or {}).get("readyReplicas", 0) > 0)
                ]
                colors = tuple(h for _n, h in sorted(live))
                color_revisions = {h: n for n, h in live}
                service = (
                    kube.find(SERVICE, ns, blue_green.get("activeService", ""))
                    if blue_green.get("activeService")
                    else None
                )
                active = ((service or {}).get("spec") or {}).get("selector", {}).get(names.ARGO_HASH_LABEL) or (
                    status.get("blueGreen") or {}
                ).get("activeSelector")
                if len(colors) >= 2:
                    capabilities.add(Capability.SWITCH)
                details["active_service"] = blue_green.get("activeService")
                details["preview_service"] = blue_green.get("previewService")
            else:
                capabilities.add(Capability.WEIGHTS)
                gradual = False
                router = "argo"
                traffic = self._rollout_traffic(obj, by_hash)
                routing = (strategy.get("canary") or {}).get("trafficRouting")
                details["traffic_routing"] = sorted(routing) if isinstance(routing, dict) else None
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
            desired_replicas=desired,
            ready_replicas=ready_replicas,
            capabilities=frozenset(capabilities),
            details=details,
            dependencies=dependencies,
            color_revisions=color_revisions,
            gradual_weights=gradual,
        )

    @staticmethod
    def _rollout_traffic(obj: Mapping[str, Any], by_hash: Mapping[Any, tuple[int, dict]]) -> dict[str, int]:
        status = obj.get("status") or {}
        if status.get("abort") or status.get("currentPodHash") == status.get("stableRS"):
            return {"stable": 100, "canary": 0}
        weights = (status.get("canary") or {}).get("weights") or {}
        if weights.get("canary") is not None:
            share = int(weights["canary"].get("weight", 0))
            return {"stable": 100 - share, "canary": share}
        stable = by_hash.get(status.get("stableRS"), (0, {}))[1]
        canary = by_hash.get(status.get("currentPodHash"), (0, {}))[1]
        return routers._percent(
            ((stable or {}).get("spec") or {}).get("replicas", 0),
            ((canary or {}).get("spec") or {}).get("replicas", 0),
        )

    def _describe_service(self, target: TargetRef, kube: KubeClient, binding: Binding) -> TargetState:
        label = binding.color_label or "color"
        active = ((binding.obj.get("spec") or {}).get("selector") or {}).get(label)
        details: dict[str, Any] = {"kind": "Service", "name": binding.name, "label": label, "colors": {}}
        ready, desired, ready_replicas = False, None, None
        for color, deployment_name in sorted(binding.colors.items()):
            deployment = kube.find(DEPLOYMENT, target.namespace, deployment_name)
            entry: dict[str, Any] = {"deployment": deployment_name, "exists": deployment is not None}
            if deployment is not None:
                entry.update(
                    image=_images(deployment["spec"]["template"]),
                    replicas=deployment["spec"].get("replicas", 1),
                    ready_replicas=(deployment.get("status") or {}).get("readyReplicas", 0),
                    ready=deployment_ready(deployment),
                    revision=_revision(deployment, names.REVISION),
                )
                if color == active:
                    ready, desired, ready_replicas = (
                        entry["ready"],
                        entry["replicas"],
                        entry["ready_replicas"],
                    )
            details["colors"][color] = entry
        components, dependencies = self._components(kube, target, binding)
        capabilities = {Capability.SWITCH}
        if components:
            capabilities.add(Capability.COMPONENTS)
        return TargetState(
            target=target,
            current_revision=None,
            active_color=active,
            colors=tuple(sorted(binding.colors)),
            components=components,
            ready=ready,
            desired_replicas=desired,
            ready_replicas=ready_replicas,
            capabilities=frozenset(capabilities),
            details=details,
            dependencies=dependencies,
        )

    # --------------------------------------------------------------------------------------- revert
    def revert(self, target: TargetRef, revision: int | None = None, *, dry_run: bool = False) -> list[ApiCall]:
        kube, binding = self.resolve(target)
        if binding.kind == "Service":
            raise UnsupportedError(
                f"{target} is a blue-green Service over {sorted(binding.colors.values())}; it has no "
                "revision history "
                "of its own. Use strategy blue_green, or target one colour's Deployment for undo"
            )
        what = f'{binding.kind.lower()} "{binding.name}"'
        calls: list[ApiCall] = []
        owner = binding.obj
        if binding.kind == "Deployment" and owner["spec"].get("paused"):
            raise PermanentError(
                f"you cannot rollback a paused deployment; resume it first with 'kubectl rollout resume "
                f"deployment/{binding.name} -n {target.namespace}' and try again"
            )
        history = self._history(kube, target.namespace, owner, binding.revision_annotation)
        number, rs = self._pick(history, revision, what, binding.revision_annotation)
        template = self._template_of(kube, target.namespace, binding, owner)
        if names.same_template(rs["spec"]["template"], template, binding.hash_label):
            return []  # kubectl: "skipped rollback (current template already matches revision N)"
        if self.options.snapshot_config:
            calls += self._snapshot(kube, target.namespace, binding, owner, template, history, dry_run=dry_run)
            calls += self._restore_config(kube, target.namespace, binding, rs, dry_run=dry_run)
        if binding.kind == "Rollout":
            calls += self._retrying(
                f"abort {what}", lambda: self._abort(kube, target.namespace, binding.name, dry_run=dry_run)
            )
        calls += self._retrying(
            f"undo {what} to revision {number}",
            lambda: self._undo_patch(kube, target.namespace, binding, number, dry_run=dry_run),
        )
        return calls

    def _undo_patch(
        self, kube: KubeClient, namespace: str, binding: Binding, number: int, *, dry_run: bool
    ) -> list[ApiCall]:
        """One fresh-read attempt at kubectl's undo PATCH (CONTRACTS.md §5.1 steps 1-8, §5.2 for Argo)."""
        kind = DEPLOYMENT if binding.kind == "Deployment" else ROLLOUT
        owner = kube.get(kind, namespace, binding.name)
        history = self._history(kube, namespace, owner, binding.revision_annotation)
        by_number = dict(history)
        rs = by_number.get(number)
        if rs is None:
            return []  # renumbered since the first read: the controller already re-used it
        template = self._template_of(kube, namespace, binding, owner)
        if names.same_template(rs["spec"]["template"], template, binding.hash_label):
            return []
        value = names.strip_label(rs["spec"]["template"], binding.hash_label)
        ref = owner["spec"].get("workloadRef") or {}
        if binding.kind == "Rollout" and ref:
            # The template lives in the referenced Deployment (CONTRACTS.md §5.2).
            source = kube.get(DEPLOYMENT, namespace, ref["name"])
            path_kind, path_name, rv = DEPLOYMENT, ref["name"], source["metadata"]["resourceVersion"]
            body: list[dict[str, Any]] = [{"op": "replace", "path": "/spec/template", "value": value}]
        elif binding.kind == "Rollout":
            path_kind, path_name, rv = ROLLOUT, binding.name, owner["metadata"]["resourceVersion"]
            body = [{"op": "replace", "path": "/spec/template", "value": value}]
        else:
            current = _annotations(owner)
            merged = {k: current[k] for k in names.UNDO_KEEP if k in current}
            merged.update({k: v for k, v in _annotations(rs).items() if k not in names.UNDO_KEEP})
            path_kind, path_name, rv = DEPLOYMENT, binding.name, owner["metadata"]["resourceVersion"]
            body = [
                {"op": "replace", "path": "/spec/template", "value": value},
                {"op": "replace", "path": "/metadata/annotations", "value": merged},
            ]
        # Precondition: apply only to the object we computed from (a stale write answers 409).
        body.append({"op": "replace", "path": "/metadata/resourceVersion", "value": rv})
        call = ApiCall(
            "PATCH",
            path_kind.path(namespace, path_name),
            body,
            note=f"rollout undo {binding.kind.lower()}/{binding.name} to revision {number} "
            f"({_images(value)}) ({JSON_PATCH})",
        )
        if not dry_run:
            kube.patch(path_kind, namespace, path_name, body, JSON_PATCH)
        return [call]

    def _abort(self, kube: KubeClient, namespace: str, name: str, *, dry_run: bool) -> list[ApiCall]:
        """Argo's ``abort``: status merge-patch, on the main resource if there is no status subresource."""
        rollout = kube.get(ROLLOUT, namespace, name)
        status = rollout.get("status") or {}
        if status.get("abort") or status.get("currentPodHash") in (None, status.get("stableRS")):
            return []
        body = {"status": {"abort": True}}
        call = ApiCall(
            "PATCH",
            ROLLOUT.path(namespace, name, "status"),
            body,
            note=f"abort rollout/{name} ({MERGE_PATCH})",
        )
        if not dry_run:
            try:
                kube.patch(ROLLOUT, namespace, name, body, MERGE_PATCH, sub="status")
            except NotFound:
                kube.patch(ROLLOUT, namespace, name, body, MERGE_PATCH)
                call = ApiCall(
                    "PATCH", ROLLOUT.path(namespace, name), body, note=f"abort rollout/{name} ({MERGE_PATCH})"
                )
        return [call]

    # ------------------------------------------------------------------------------ config snapshots
    def record(self, target: TargetRef) -> int | None:
        """The deploy-time hook (the reactor calls it when a deployment is registered): snapshot the config
        the current revision references, so a later rollback to this revision restores it as well."""
        self.snapshot(target)
        return self.describe(target).current_revision

    def snapshot(self, target: TargetRef, *, dry_run: bool = False) -> list[ApiCall]:
        """Snapshot the ConfigMaps/Secrets the current revision references (idempotent).

        Call it when a deploy is registered, before the new revision rolls out: that is what lets a later
        rollback to the current revision restore today's config.
        """
        kube, binding = self.resolve(target)
        if binding.kind == "Service":
            return []
        owner = binding.obj
        history = self._history(kube, target.namespace, owner, binding.revision_annotation)
        template = self._template_of(kube, target.namespace, binding, owner)
        return self._snapshot(kube, target.namespace, binding, owner, template, history, dry_run=dry_run)

    def _snapshot(
        self,
        kube: KubeClient,
        namespace: str,
        binding: Binding,
        owner: Mapping[str, Any],
        template: Mapping[str, Any],
        history: list[tuple[int, dict]],
        *,
        dry_run: bool,
    ) -> list[ApiCall]:
        current = next(
            (
                rs
                for _n, rs in reversed(history)
                if names.same_template(rs["spec"]["template"], template, binding.hash_label)
            ),
            None,
        )
        if current is None:
            return []
        digest = current["metadata"]["labels"].get(binding.hash_label, "")
        calls = []
        for kind, source_name in snapshots.referenced_config(template):
            api = CONFIG_KINDS[kind]
            snap_name = snapshots.snapshot_name(source_name, digest)
            if kube.find(api, namespace, snap_name) is not None:
                continue
            source = kube.find(api, namespace, source_name)
            if source is None:
                continue
            body = snapshots.snapshot_object(
                kind,
                {**source, "kind": kind},
                workload=binding.name,
                template_hash=digest,
                owner=current,
                taken_at=self._timestamp(),
            )
            calls.append(
                ApiCall(
                    "POST",
                    api.path(namespace),
                    body,
                    note=f"snapshot {kind}/{source_name} for revision {digest}",
                )
            )
            if not dry_run:
                try:
                    kube.create(api, namespace, body)
                except ConflictError:
                    if kube.find(api, namespace, snap_name) is None:
                        raise  # an injected or real conflict, not "already exists": let the caller retry
        return calls

    def _restore_config(
        self, kube: KubeClient, namespace: str, binding: Binding, rs: Mapping[str, Any], *, dry_run: bool
    ) -> list[ApiCall]:
        digest = ((rs.get("metadata") or {}).get("labels") or {}).get(binding.hash_label, "")
        calls: list[ApiCall] = []
        for kind, source_name in snapshots.referenced_config(rs["spec"]["template"]):
            api = CONFIG_KINDS[kind]
            snap = kube.find(api, namespace, snapshots.snapshot_name(source_name, digest))
            if snap is None:
                continue

            def attempt(
                api: Kind = api, kind: str = kind, source_name: str = source_name, snap: dict = snap
            ) -> list[ApiCall]:
                live = kube.find(api, namespace, source_name)
                if live is not None and snapshots.content({**live, "kind": kind}) == snapshots.content(
                    {**snap, "kind": kind}
                ):
                    return []
                if live is not None and live.get("immutable"):
                    raise UnsupportedError(
                        f"{kind} {source_name} is immutable and differs from its snapshot "
                        f"{snap['metadata']['name']}; "
                        "immutable config should get a new name per revision (then no restore is needed)"
                    )
                body = snapshots.restored(live, snap, kind)
                note = f"restore {kind}/{source_name} from {snap['metadata']['name']}"
                if live is None:
                    call = ApiCall("POST", api.path(namespace), body, note=note + " (it was deleted)")
                    if not dry_run:
                        kube.create(api, namespace, body)
                else:
                    call = ApiCall("PUT", api.path(namespace, source_name), body, note=note)
                    if not dry_run:
                        kube.replace(api, namespace, source_name, body)
                return [call]

            calls += self._retrying(f"restore {kind} {source_name}", attempt)
        return calls

    # ------------------------------------------------------------------------------------- weights
    def set_weights(self, target: TargetRef, weights: Mapping[str, int], *, dry_run: bool = False) -> list[ApiCall]:
        wanted = _check_weights(weights)
        kube, binding = self.resolve(target)
        if binding.kind == "Rollout":
            if "blueGreen" in (binding.obj["spec"].get("strategy") or {}):
                raise UnsupportedError(
                    f"{target} is a blue-green Argo Rollout: it has colours, not weights; use switch"
                )
            if wanted["canary"] != 0:
                history = self._history(kube, target.namespace, binding.obj, names.ARGO_REVISION)
                current = self._rollout_traffic(
                    binding.obj,
                    {
                        ((rs.get("metadata") or {}).get("labels") or {}).get(names.ARGO_HASH_LABEL): (n, rs)
                        for n, rs in history
                    },
                )
                if current == wanted:
                    return []
                raise UnsupportedError(
                    f"{target} is an Argo Rollout: Argo owns its traffic weights and would overwrite a "
                    "manual "
                    f"{wanted['canary']}% canary weight; only 0 (abort) is possible. Use steps (0,) or "
                    "strategy undo"
                )
            return self._retrying(
                f"abort rollout {binding.name}",
                lambda: self._abort(kube, target.namespace, binding.name, dry_run=dry_run),
            )
        if binding.pair is None:
            raise UnsupportedError(
                f"{target} has no traffic router: annotate the Deployment with {names.ROUTER} "
                "(istio|nginx|gateway|replicas) or set platforms.kubernetes.targets.<target>.router "
                "(docs/kubernetes.md#routers)"
            )
        pair = binding.pair
        return self._retrying(
            f"set weights of {target}",
            lambda: routers.write(kube, target.namespace, pair, wanted, dry_run=dry_run),
        )

    # -------------------------------------------------------------------------------------- switch
    def switch(self, target: TargetRef, color: str, *, dry_run: bool = False) -> list[ApiCall]:
        kube, binding = self.resolve(target)
        if binding.kind == "Rollout" and "blueGreen" in (binding.obj["spec"].get("strategy") or {}):
            return self._retrying(
                f"switch {target}",
                lambda: self._switch_rollout(kube, target, binding, color, dry_run=dry_run),
            )
        if binding.kind != "Service":
            raise UnsupportedError(
                f"{target} is a {binding.kind} without colours; blue-green needs a Service switching between "
                "two "
                f"Deployments (annotation {names.COLOR_LABEL}) or an Argo blue-green Rollout"
            )
        if color not in binding.colors:
            raise UnsupportedError(f"{target} has colours {sorted(binding.colors)}, not {color!r}")
        calls = self._ensure_color_ready(kube, target, binding, color, dry_run=dry_run)
        return calls + self._retrying(
            f"switch {target}", lambda: self._switch_service(kube, target, binding, color, dry_run=dry_run)
        )

    def _ensure_color_ready(
        self, kube: KubeClient, target: TargetRef, binding: Binding, color: str, *, dry_run: bool
    ) -> list[ApiCall]:
        """An idle colour at 0 replicas is scaled to the active colour's size and waited for."""
        ns = target.namespace
        deployment = kube.get(DEPLOYMENT, ns, binding.colors[color])
        calls: list[ApiCall] = []
        if deployment["spec"].get("replicas", 1) == 0:
            active_color = ((binding.obj.get("spec") or {}).get("selector") or {}).get(binding.color_label or "color")
            active = kube.find(DEPLOYMENT, ns, binding.colors.get(active_color or "", "")) if active_color else None
            replicas = max(1, ((active or {}).get("spec") or {}).get("replicas", 1))
            body = {
                "metadata": {"resourceVersion": deployment["metadata"]["resourceVersion"]},
                "spec": {"replicas": replicas},
            }
            calls.append(
                ApiCall(
                    "PATCH",
                    DEPLOYMENT.path(ns, binding.colors[color]),
                    body,
                    note=f"scale idle colour {color} to {replicas} ({MERGE_PATCH})",
                )
            )
            if dry_run:
                return calls
            kube.patch(DEPLOYMENT, ns, binding.colors[color], body, MERGE_PATCH)
        elif dry_run or deployment_ready(deployment):
            return calls
        deadline = self._clock() + self.options.switch_ready_timeout
        while True:
            deployment = kube.get(DEPLOYMENT, ns, binding.colors[color])
            if deployment_ready(deployment):
                return calls
            if self._clock() >= deadline:
                status = deployment.get("status") or {}
                raise TemporaryError(
                    f"{target}: colour {color} ({binding.colors[color]}) has "
                    f"{status.get('readyReplicas', 0)}/"
                    f"{deployment['spec'].get('replicas')} ready pods after "
                    f"{self.options.switch_ready_timeout:g}s; "
                    "traffic stays on the active colour, retry when it is ready",
                    delay=5.0,
                )
            self._sleep(self.options.poll_interval)

    def _switch_service(
        self, kube: KubeClient, target: TargetRef, binding: Binding, color: str, *, dry_run: bool
    ) -> list[ApiCall]:
        svc = kube.get(SERVICE, target.namespace, binding.name)
        label = binding.color_label or "color"
        if ((svc.get("spec") or {}).get("selector") or {}).get(label) == color:
            return []
        body = {
            "metadata": {"resourceVersion": svc["metadata"]["resourceVersion"]},
            "spec": {"selector": {label: color}},
        }
        call = ApiCall(
            "PATCH",
            SERVICE.path(target.namespace, binding.name),
            body,
            note=f"make {color} active ({MERGE_PATCH})",
        )
        if not dry_run:
            kube.patch(SERVICE, target.namespace, binding.name, body, MERGE_PATCH)
        return [call]

    def _switch_rollout(
        self, kube: KubeClient, target: TargetRef, binding: Binding, color: str, *, dry_run: bool
    ) -> list[ApiCall]:
        rollout = kube.get(ROLLOUT, target.namespace, binding.name)
        service_name = ((rollout["spec"].get("strategy") or {}).get("blueGreen") or {}).get("activeService")
        if not service_name:
            raise UnsupportedError(f"{target}: the blue-green Rollout has no activeService")
        history = self._history(kube, target.namespace, rollout, names.ARGO_REVISION)
        by_hash = {
            ((rs.get("metadata") or {}).get("labels") or {}).get(names.ARGO_HASH_LABEL): rs for _n, rs in history
        }
        if color not in by_hash:
            raise UnsupportedError(
                f"{target} has no ReplicaSet with hash {color!r}; colours are {sorted(h for h in by_hash if h)}"
            )
        if ((by_hash[color].get("status") or {}).get("readyReplicas", 0)) == 0:
            raise TemporaryError(
                f"{target}: ReplicaSet {by_hash[color]['metadata']['name']} has no ready pods (scaled down "
                "after "
                "scaleDownDelaySeconds?); switching would drop traffic. Use strategy undo, which lets Argo "
                "scale it up",
                delay=5.0,
            )
        svc = kube.get(SERVICE, target.namespace, service_name)
        if ((svc.get("spec") or {}).get("selector") or {}).get(names.ARGO_HASH_LABEL) == color:
            return []
        body = {
            "metadata": {"resourceVersion": svc["metadata"]["resourceVersion"]},
            "spec": {"selector": {names.ARGO_HASH_LABEL: color}},
        }
        call = ApiCall(
            "PATCH",
            SERVICE.path(target.namespace, service_name),
            body,
            note=f"point active Service at {color} ({MERGE_PATCH})",
        )
        if not dry_run:
            kube.patch(SERVICE, target.namespace, service_name, body, MERGE_PATCH)
        return [call]

    # ---------------------------------------------------------------------------------------- waits
    def wait_ready(self, target: TargetRef, timeout: float) -> TargetState:
        deadline = self._clock() + timeout
        while True:
            state = self.describe(target)
            if state.ready:
                return state
            if self._clock() >= deadline:
                raise TemporaryError(
                    f"{target} is not ready after {timeout:g}s "
                    f"({state.ready_replicas}/{state.desired_replicas} ready "
                    "replicas); the rollback's writes are done, the pods are still coming up",
                    delay=max(5.0, self.options.poll_interval),
                )
            self._sleep(self.options.poll_interval)

    # ---------------------------------------------------------------------------------------- locks
    def lock(self, target: TargetRef, holder: str, *, duration: float = 30.0) -> Any:
        """A :class:`~strategies.kubernetes.lease.LeaseLock` for ``target`` (the per-target actor lock)."""
        from strategies.kubernetes.lease import LeaseLock

        return LeaseLock.for_target(
            self.client(target.cluster),
            target,
            holder,
            namespace=self.options.lock_namespace,
            duration=duration,
            now=self._now,
        )


def _check_weights(weights: Mapping[str, int]) -> dict[str, int]:
    if set(weights) != {"stable", "canary"}:
        raise InvalidRequestError(f"weights need exactly the keys 'stable' and 'canary', got {sorted(weights)}")
    out = {}
    for side, value in weights.items():
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 100:
            raise InvalidRequestError(f"weight of {side!r} must be an integer 0..100, got {value!r}")
        out[side] = value
    if out["stable"] + out["canary"] != 100:
        raise InvalidRequestError(f"weights must sum to 100, got {dict(weights)}")
    return copy.deepcopy(out)
