"""What the sandbox does after a write: defaulting, and controllers that behave like the real ones.

Admission (defaulting + validation) makes stored pod templates look like a real apiserver's, so a template
patched by kubectl (Go-serialised: ``creationTimestamp: null``, ``resources: {}``) and the same template
patched by our platform end up byte-identical (KUBECTL_SANDBOX.md §5.4: "normalise before comparing").

The deployment controller follows ``pkg/controller/deployment`` (CONTRACTS.md §5.1, KUBECTL_SANDBOX.md §5.4):
a changed pod template gets a new ReplicaSet with the next ``deployment.kubernetes.io/revision``; a template
that matches an old ReplicaSet reuses it and re-numbers it to max+1, appending the old number to
``deployment.kubernetes.io/revision-history``; the Deployment's annotations (minus the skip list) are copied
onto the new ReplicaSet; old ReplicaSets scale down as the new one's pods become ready; history beyond
``revisionHistoryLimit`` is pruned (and with it, through owner references, our config snapshots).

The Argo Rollouts emulation is deliberately small (no analysis, no experiments, no timed pauses): revision
numbering with ``rollout.argoproj.io/revision`` and ``rollouts-pod-template-hash``, canary steps with
``setWeight``, ``status.abort``, fully-promoted when the template equals the stable ReplicaSet's, Istio
VirtualService weights when ``trafficRouting.istio`` is set, and blue-green active/preview Services with
auto-promotion and ``scaleDownDelaySeconds``.
"""

from __future__ import annotations

import base64
import copy
import json
import math
import random
import string
import threading
from collections.abc import Mapping
from typing import Any

from sandbox.resources import BY_ID, ResourceType
from sandbox.selectors import selector_matches
from sandbox.store import ApiError, Event, Obj, Store, invalid, parse_time, rfc3339

DEPLOYMENTS = BY_ID["apps/deployments"]
REPLICASETS = BY_ID["apps/replicasets"]
PODS = BY_ID["/pods"]
SERVICES = BY_ID["/services"]
ROLLOUTS = BY_ID["argoproj.io/rollouts"]
VIRTUALSERVICES = BY_ID["networking.istio.io/virtualservices"]
DESTINATIONRULES = BY_ID["networking.istio.io/destinationrules"]

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
HASH_LABEL = "pod-template-hash"
#: Deployment annotations the controller does not copy onto ReplicaSets (``skipCopyAnnotation``).
SKIP_COPY = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION,
        REVISION_HISTORY,
        DESIRED_REPLICAS,
        MAX_REPLICAS,
        "deprecated.deployment.rollback.to",
    }
)
ARGO_REVISION = "rollout.argoproj.io/revision"
ARGO_HASH_LABEL = "rollouts-pod-template-hash"
ARGO_SCALE_DOWN = "argo-rollouts.argoproj.io/scale-down-deadline"
READY_AT = "sandbox.smart-rollback.io/ready-at"

_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


# ------------------------------------------------------------------------------------ template helpers
def normalized(value: Any) -> Any:
    """Drop nulls, empty maps and empty lists: the Go client treats absent, null and empty alike."""
    if isinstance(value, Mapping):
        out = {k: normalized(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [normalized(v) for v in value]
    return value


def without_hash(template: Mapping[str, Any], label: str = HASH_LABEL) -> Obj:
    out = copy.deepcopy(dict(template))
    labels = (out.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(label, None)
    return out


def templates_equal(a: Mapping[str, Any], b: Mapping[str, Any], label: str = HASH_LABEL) -> bool:
    return normalized(without_hash(a, label)) == normalized(without_hash(b, label))


def _fnv32a(data: bytes) -> int:
    value = 0x811C9DC5
    for byte in data:
        value ^= byte
        value = (value * 0x01000193) & 0xFFFFFFFF
    return value


def template_hash(template: Mapping[str, Any], collision_count: int = 0) -> str:
    """A ``pod-template-hash``-shaped value: FNV-32a, digits mapped like Go's SafeEncodeString."""
    data = json.dumps(normalized(without_hash(template)), sort_keys=True).encode() + str(collision_count).encode()
    digits = str(_fnv32a(data))
    return "".join(_SAFE_ALPHABET[ord(d) % len(_SAFE_ALPHABET)] for d in digits)


def revision_of(obj: Mapping[str, Any], annotation: str = REVISION) -> int:
    text = ((obj.get("metadata") or {}).get("annotations") or {}).get(annotation)
    try:
        return int(text) if text is not None else 0
    except ValueError:
        return 0


def controlled_by(obj: Mapping[str, Any], owner_uid: str) -> bool:
    return any(
        ref.get("controller") and ref.get("uid") == owner_uid
        for ref in (obj.get("metadata") or {}).get("ownerReferences") or []
    )


def owner_ref(owner: Mapping[str, Any]) -> Obj:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _image_pull_policy(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        return "IfNotPresent"
    if ":" not in last or last.endswith(":latest"):
        return "Always"
    return "IfNotPresent"


def default_pod_spec(spec: Obj) -> Obj:
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or []:
            container.setdefault("resources", {})
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("terminationMessagePolicy", "File")
            if container.get("image"):
                container.setdefault("imagePullPolicy", _image_pull_policy(container["image"]))
            for port in container.get("ports") or []:
                port.setdefault("protocol", "TCP")
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    return spec


def default_template(template: Obj) -> Obj:
    meta = template.setdefault("metadata", {})
    meta.setdefault("creationTimestamp", None)
    default_pod_spec(template.setdefault("spec", {}))
    return template


def _check_template(rtype: ResourceType, obj: Obj, *, require_template: bool = True) -> None:
    name = obj["metadata"]["name"]
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        raise invalid(rtype, name, "spec: Required value")
    selector = spec.get("selector")
    if not isinstance(selector, dict) or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        raise invalid(rtype, name, "spec.selector: Required value")
    template = spec.get("template")
    if template is None and not require_template:
        return
    if not isinstance(template, dict):
        raise invalid(rtype, name, "spec.template: Required value")
    labels = (template.get("metadata") or {}).get("labels") or {}
    if not selector_matches(selector, labels):
        raise invalid(
            rtype,
            name,
            f"spec.template.metadata.labels: Invalid value: {labels!r}: `selector` does not match template `labels`",
        )
    containers = (template.get("spec") or {}).get("containers")
    if not containers or not all(isinstance(c, dict) and c.get("name") for c in containers):
        raise invalid(rtype, name, "spec.template.spec.containers: Required value (each with a name)")


# ---------------------------------------------------------------------------------------- admission
def admit_deployment(store: Store, rtype: ResourceType, obj: Obj, old: Obj | None) -> Obj:
    _check_template(rtype, obj)
    spec = obj["spec"]
    if old is not None and normalized(old["spec"].get("selector")) != normalized(spec.get("selector")):
        raise invalid(rtype, obj["metadata"]["name"], "spec.selector: Invalid value: field is immutable")
    replicas = spec.setdefault("replicas", 1)
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise invalid(rtype, obj["metadata"]["name"], f"spec.replicas: Invalid value: {replicas!r}")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    spec.setdefault(
        "strategy", {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    )
    default_template(spec["template"])
    obj["metadata"].setdefault("annotations", {})
    return obj


def admit_replicaset(store: Store, rtype: ResourceType, obj: Obj, old: Obj | None) -> Obj:
    _check_template(rtype, obj)
    obj["spec"].setdefault("replicas", 1)
    default_template(obj["spec"]["template"])
    return obj


def admit_rollout(store: Store, rtype: ResourceType, obj: Obj, old: Obj | None) -> Obj:
    spec = obj.get("spec") or {}
    _check_template(rtype, obj, require_template=not spec.get("workloadRef"))
    spec.setdefault("replicas", 1)
    if spec.get("template"):
        default_template(spec["template"])
    return obj


def admit_pod(store: Store, rtype: ResourceType, obj: Obj, old: Obj | None) -> Obj:
    default_pod_spec(obj.setdefault("spec", {}))
    return obj


def admit_service(store: Store, rtype: ResourceType, obj: Obj, old: Obj | None) -> Obj:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if old is not None and (old.get("spec") or {}).get("clusterIP"):
        spec["clusterIP"] = old["spec"]["clusterIP"]
    elif spec.get("clusterIP") is None:
        octets = _fnv32a(f"{obj['metadata'].get('namespace')}/{obj['metadata']['name']}".encode())
        spec["clusterIP"] = f"10.96.{(octets >> 8) & 0xFF}.{octets & 0xFF or 1}"
    spec.setdefault("clusterIPs", [spec["clusterIP"]])
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))
    return obj


def admit_secret(store: Store, rtype: ResourceType, obj: Obj, old: Obj | None) -> Obj:
    """``stringData`` is write-only, as on the API server: merged into ``data`` base64-encoded (winning)."""
    strings = obj.pop("stringData", None) or {}
    if strings:
        encoded = {k: base64.b64encode(str(v).encode()).decode() for k, v in strings.items()}
        obj["data"] = {**(obj.get("data") or {}), **encoded}
    obj.setdefault("type", "Opaque")
    return obj


def admit_weights(store: Store, rtype: ResourceType, obj: Obj, old: Obj | None) -> Obj:
    """Reject route weights outside 0..100 like Istio's validation (IST0106) and the Gateway API schema."""
    name = obj["metadata"]["name"]
    spec = obj.get("spec") or {}
    routes = [r for http in spec.get("http") or [] for r in http.get("route") or []]
    refs = [b for rule in spec.get("rules") or [] for b in rule.get("backendRefs") or []]
    for entry in (*routes, *refs):
        weight = entry.get("weight")
        if weight is None:
            continue
        if not isinstance(weight, int) or isinstance(weight, bool) or not 0 <= weight <= (100 if routes else 1000000):
            raise invalid(rtype, name, f"weight {weight!r} is not in range 0..100")
    return obj


# ---------------------------------------------------------------------------------------- controllers
class Controllers:
    """The deployment, ReplicaSet and (emulated) Argo Rollouts controllers, plus pod readiness.

    ``ready_delay`` seconds pass between a pod's creation and its readiness (0: at once); pods of a
    workload in :meth:`hold` never become ready until released. Both need :meth:`start` (a ticker
    thread); with a zero delay and no holds, everything settles synchronously inside the write.
    """

    def __init__(self, store: Store, *, ready_delay: float = 0.0, tick: float = 0.05) -> None:
        self.store = store
        self.ready_delay = ready_delay
        self.tick = tick
        self._held: set[tuple[str, str]] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rng = random.Random()
        store.admission.setdefault(DEPLOYMENTS.id, []).append(admit_deployment)
        store.admission.setdefault(REPLICASETS.id, []).append(admit_replicaset)
        store.admission.setdefault(ROLLOUTS.id, []).append(admit_rollout)
        store.admission.setdefault(PODS.id, []).append(admit_pod)
        store.admission.setdefault(SERVICES.id, []).append(admit_service)
        store.admission.setdefault(BY_ID["/secrets"].id, []).append(admit_secret)
        store.admission.setdefault(VIRTUALSERVICES.id, []).append(admit_weights)
        store.admission.setdefault(BY_ID["gateway.networking.k8s.io/httproutes"].id, []).append(admit_weights)
        store.listeners.append(self.on_event)

    # ---------------------------------------------------------------------------------- lifecycle
    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="sandbox-controllers", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.tick):
            try:
                self.tick_once()
            except ApiError:
                continue

    def hold(self, namespace: str, workload: str) -> None:
        """Keep the pods of ``workload`` (Deployment or Rollout) unready until :meth:`release`."""
        with self.store.lock:
            self._held.add((namespace, workload))

    def release(self, namespace: str, workload: str) -> None:
        with self.store.lock:
            self._held.discard((namespace, workload))
        self.tick_once()

    def tick_once(self) -> None:
        """Make due pods ready and scale down blue-green ReplicaSets whose delay expired."""
        store = self.store
        with store.lock:
            now = store.clock()
            pods = store.scan(PODS, None, lambda p: READY_AT in (p["metadata"].get("annotations") or {}))
            for pod in pods:
                ready_at = parse_time((pod["metadata"].get("annotations") or {}).get(READY_AT))
                if ready_at is None or ready_at > now or self._is_held(pod):
                    continue
                annotations = dict(pod["metadata"].get("annotations") or {})
                annotations.pop(READY_AT, None)
                pod["metadata"]["annotations"] = annotations
                namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
                pod = store.replace(PODS, namespace, name, pod)
                pod["status"] = self._pod_status(pod, ready=True)
                store.replace(PODS, namespace, name, pod, subresource="status")
            replicasets = store.scan(
                REPLICASETS, None, lambda r: ARGO_SCALE_DOWN in (r["metadata"].get("annotations") or {})
            )
            for rs in replicasets:
                deadline = parse_time((rs["metadata"].get("annotations") or {}).get(ARGO_SCALE_DOWN))
                if deadline is not None and deadline <= now:
                    annotations = dict(rs["metadata"]["annotations"])
                    annotations.pop(ARGO_SCALE_DOWN)
                    rs["metadata"]["annotations"] = annotations
                    rs["spec"]["replicas"] = 0
                    store.replace(REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"], rs)

    def _is_held(self, pod: Obj) -> bool:
        namespace = pod["metadata"].get("namespace", "")
        workload = (pod["metadata"].get("labels") or {}).get("sandbox.smart-rollback.io/workload")
        return (namespace, workload) in self._held

    # --------------------------------------------------------------------------------------- events
    def on_event(self, store: Store, event: Event) -> None:
        meta = event.object.get("metadata") or {}
        namespace, name = meta.get("namespace", ""), meta.get("name", "")
        if event.rtype == DEPLOYMENTS.id and event.type != "DELETED":
            self.sync_deployment(namespace, name)
        elif event.rtype == ROLLOUTS.id and event.type != "DELETED":
            self.sync_rollout(namespace, name)
        elif event.rtype == REPLICASETS.id:
            if event.type != "DELETED":
                self.sync_replicaset(namespace, name)
            self._sync_owner(event.object)
        elif event.rtype == PODS.id:
            for ref in meta.get("ownerReferences") or []:
                if ref.get("kind") == "ReplicaSet":
                    self._sync_rs_status(namespace, ref["name"])
        if event.rtype == DEPLOYMENTS.id and event.type != "DELETED":
            # A Rollout with a workloadRef takes its template from this Deployment.
            for rollout in store.scan(ROLLOUTS, namespace, lambda r: bool((r.get("spec") or {}).get("workloadRef"))):
                ref = (rollout.get("spec") or {}).get("workloadRef") or {}
                if ref.get("kind") == "Deployment" and ref.get("name") == name:
                    self.sync_rollout(namespace, rollout["metadata"]["name"])

    def _sync_owner(self, rs: Obj) -> None:
        namespace = rs["metadata"].get("namespace", "")
        for ref in rs["metadata"].get("ownerReferences") or []:
            if not ref.get("controller"):
                continue
            if ref.get("kind") == "Deployment":
                if self.store.find(DEPLOYMENTS, namespace, ref["name"]) is not None:
                    self.sync_deployment(namespace, ref["name"])
            elif ref.get("kind") == "Rollout" and self.store.find(ROLLOUTS, namespace, ref["name"]) is not None:
                self.sync_rollout(namespace, ref["name"])

    # ------------------------------------------------------------------------------ ReplicaSets, pods
    def _pod_status(self, pod: Obj, *, ready: bool) -> Obj:
        now = rfc3339(self.store.clock())
        flag = "True" if ready else "False"
        return {
            "phase": "Running",
            "conditions": [
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "Ready", "status": flag, "lastTransitionTime": now},
                {"type": "ContainersReady", "status": flag, "lastTransitionTime": now},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            ],
            "podIP": f"10.244.{self._rng.randint(0, 255)}.{self._rng.randint(1, 254)}",
            "startTime": now,
            "containerStatuses": [
                {
                    "name": c["name"],
                    "image": c.get("image", ""),
                    "imageID": "",
                    "ready": ready,
                    "restartCount": 0,
                    "started": True,
                    "state": {"running": {"startedAt": now}},
                }
                for c in (pod.get("spec") or {}).get("containers") or []
            ],
        }

    @staticmethod
    def _pod_ready(pod: Obj) -> bool:
        return any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (pod.get("status") or {}).get("conditions") or []
        )

    def _suffix(self, namespace: str, prefix: str) -> str:
        """A free 5-character pod name suffix (a state loaded from a file may hold any name already)."""
        alphabet = string.ascii_lowercase + string.digits
        while True:
            suffix = "".join(self._rng.choice(alphabet) for _ in range(5))
            if self.store.find(PODS, namespace, f"{prefix}-{suffix}") is None:
                return suffix

    def _owned_pods(self, rs: Obj) -> list[Obj]:
        uid = rs["metadata"]["uid"]
        return self.store.scan(PODS, rs["metadata"]["namespace"], lambda p: controlled_by(p, uid))

    def sync_replicaset(self, namespace: str, name: str) -> None:
        store = self.store
        rs = store.find(REPLICASETS, namespace, name)
        if rs is None:
            return
        pods = self._owned_pods(rs)
        want = rs["spec"].get("replicas", 1)
        workload = next((r["name"] for r in rs["metadata"].get("ownerReferences") or [] if r.get("controller")), name)
        for pod in sorted(pods, key=lambda p: (self._pod_ready(p), p["metadata"]["name"]))[: max(0, len(pods) - want)]:
            store.delete(PODS, namespace, pod["metadata"]["name"])
        for _ in range(max(0, want - len(pods))):
            template = copy.deepcopy(rs["spec"]["template"])
            labels = dict((template.get("metadata") or {}).get("labels") or {})
            labels["sandbox.smart-rollback.io/workload"] = workload
            suffix = self._suffix(namespace, name)
            new_pod: Obj = {
                "metadata": {
                    "name": f"{name}-{suffix}",
                    "labels": labels,
                    "annotations": dict((template.get("metadata") or {}).get("annotations") or {}),
                    "ownerReferences": [owner_ref(rs)],
                },
                "spec": template.get("spec") or {},
            }
            delayed = self.ready_delay > 0 or (namespace, workload) in self._held
            if delayed:
                new_pod["metadata"]["annotations"][READY_AT] = rfc3339(store.clock() + self.ready_delay, micro=True)
            created = store.create(PODS, namespace, new_pod)
            created["status"] = self._pod_status(created, ready=not delayed)
            store.replace(PODS, namespace, created["metadata"]["name"], created, subresource="status")
        self._sync_rs_status(namespace, name)

    def _sync_rs_status(self, namespace: str, name: str) -> None:
        rs = self.store.find(REPLICASETS, namespace, name)
        if rs is None:
            return
        pods = self._owned_pods(rs)
        ready = sum(1 for p in pods if self._pod_ready(p))
        status = {
            "replicas": len(pods),
            "fullyLabeledReplicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        if rs.get("status") != status:
            rs["status"] = status
            self.store.replace(REPLICASETS, namespace, name, rs, subresource="status")

    def _owned_replicasets(self, owner: Obj) -> list[Obj]:
        uid = owner["metadata"]["uid"]
        return self.store.scan(REPLICASETS, owner["metadata"]["namespace"], lambda rs: controlled_by(rs, uid))

    def _scale(self, rs: Obj, replicas: int) -> None:
        if rs["spec"].get("replicas") != replicas:
            rs["spec"]["replicas"] = replicas
            self.store.replace(REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"], rs)

    # ---------------------------------------------------------------------------------- Deployments
    def sync_deployment(self, namespace: str, name: str) -> None:
        store = self.store
        deploy = store.find(DEPLOYMENTS, namespace, name)
        if deploy is None:
            return
        spec = deploy["spec"]
        owned = self._owned_replicasets(deploy)
        new_rs = next((rs for rs in owned if templates_equal(rs["spec"]["template"], spec["template"])), None)
        if not spec.get("paused"):
            new_rs = self._ensure_new_rs(deploy, owned, new_rs)
            owned = self._owned_replicasets(deploy)
            new_rs = next(rs for rs in owned if rs["metadata"]["uid"] == new_rs["metadata"]["uid"])
            self._scale(new_rs, spec["replicas"])
            new_rs = store.get(REPLICASETS, namespace, new_rs["metadata"]["name"])
            remaining = max(0, spec["replicas"] - (new_rs.get("status") or {}).get("readyReplicas", 0))
            old = sorted(
                (rs for rs in owned if rs["metadata"]["uid"] != new_rs["metadata"]["uid"]),
                key=revision_of,
                reverse=True,
            )
            for rs in old:
                keep = min(rs["spec"].get("replicas", 0), remaining)
                remaining -= keep
                self._scale(rs, keep)
            deploy = store.get(DEPLOYMENTS, namespace, name)
            revision = str(revision_of(new_rs))
            if deploy["metadata"].setdefault("annotations", {}).get(REVISION) != revision:
                deploy["metadata"]["annotations"][REVISION] = revision
                deploy = store.replace(DEPLOYMENTS, namespace, name, deploy)
            self._prune(deploy, new_rs)
        self._deployment_status(namespace, name, new_rs)

    def _ensure_new_rs(self, deploy: Obj, owned: list[Obj], new_rs: Obj | None) -> Obj:
        store = self.store
        namespace, spec = deploy["metadata"]["namespace"], deploy["spec"]
        max_revision = max((revision_of(rs) for rs in owned), default=0)
        copied = {k: v for k, v in (deploy["metadata"].get("annotations") or {}).items() if k not in SKIP_COPY}
        surge = spec["replicas"] + _max_surge(spec)
        if new_rs is None:
            collision = 0
            while True:
                digest = template_hash(spec["template"], collision)
                if store.find(REPLICASETS, namespace, f"{deploy['metadata']['name']}-{digest}") is None:
                    break
                collision += 1
            template = copy.deepcopy(spec["template"])
            template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = digest
            selector = copy.deepcopy(spec["selector"])
            selector.setdefault("matchLabels", {})[HASH_LABEL] = digest
            rs = {
                "metadata": {
                    "name": f"{deploy['metadata']['name']}-{digest}",
                    "labels": dict(template["metadata"]["labels"]),
                    "annotations": {
                        **copied,
                        DESIRED_REPLICAS: str(spec["replicas"]),
                        MAX_REPLICAS: str(surge),
                        REVISION: str(max_revision + 1),
                    },
                    "ownerReferences": [owner_ref(deploy)],
                },
                "spec": {"replicas": 0, "selector": selector, "template": template},
            }
            return store.create(REPLICASETS, namespace, rs)
        annotations = dict(new_rs["metadata"].get("annotations") or {})
        before = dict(annotations)
        old_revision = revision_of(new_rs)
        if old_revision < max_revision:
            annotations[REVISION] = str(max_revision + 1)
            history = [h for h in (annotations.get(REVISION_HISTORY) or "").split(",") if h]
            annotations[REVISION_HISTORY] = ",".join([*history, str(old_revision)])
        annotations.update(copied)
        annotations[DESIRED_REPLICAS] = str(spec["replicas"])
        annotations[MAX_REPLICAS] = str(surge)
        if annotations != before:
            new_rs["metadata"]["annotations"] = annotations
            new_rs = store.replace(REPLICASETS, namespace, new_rs["metadata"]["name"], new_rs)
        return new_rs

    def _prune(self, deploy: Obj, new_rs: Obj) -> None:
        limit = deploy["spec"].get("revisionHistoryLimit", 10)
        idle = [
            rs
            for rs in self._owned_replicasets(deploy)
            if rs["metadata"]["uid"] != new_rs["metadata"]["uid"]
            and rs["spec"].get("replicas", 0) == 0
            and (rs.get("status") or {}).get("replicas", 0) == 0
        ]
        idle.sort(key=revision_of)
        for rs in idle[: max(0, len(idle) - limit)]:
            self.store.delete(REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"])

    def _deployment_status(self, namespace: str, name: str, new_rs: Obj | None) -> None:
        store = self.store
        deploy = store.find(DEPLOYMENTS, namespace, name)
        if deploy is None:
            return
        owned = self._owned_replicasets(deploy)
        statuses = [rs.get("status") or {} for rs in owned]
        new_status = next(
            (rs.get("status") or {} for rs in owned if new_rs and rs["metadata"]["uid"] == new_rs["metadata"]["uid"]),
            {},
        )
        replicas = sum(s.get("replicas", 0) for s in statuses)
        available = sum(s.get("availableReplicas", 0) for s in statuses)
        desired = deploy["spec"]["replicas"]
        updated = new_status.get("replicas", 0)
        complete = updated >= desired and replicas <= updated and available >= updated
        old_conditions = {c["type"]: c for c in (deploy.get("status") or {}).get("conditions") or []}
        now = rfc3339(store.clock())

        def condition(kind: str, ok: bool, reason: str, message: str) -> Obj:
            flag = "True" if ok else "False"
            previous = old_conditions.get(kind)
            if previous and previous.get("status") == flag and previous.get("reason") == reason:
                return previous
            return {
                "type": kind,
                "status": flag,
                "lastUpdateTime": now,
                "lastTransitionTime": now,
                "reason": reason,
                "message": message,
            }

        rs_name = new_rs["metadata"]["name"] if new_rs else ""
        status = {
            "observedGeneration": deploy["metadata"].get("generation", 1),
            "replicas": replicas,
            "updatedReplicas": updated,
            "readyReplicas": sum(s.get("readyReplicas", 0) for s in statuses),
            "availableReplicas": available,
            "unavailableReplicas": max(0, desired - available) if replicas or desired else 0,
            "conditions": [
                condition(
                    "Available",
                    available >= desired - _max_unavailable(deploy["spec"]),
                    "MinimumReplicasAvailable" if available >= desired else "MinimumReplicasUnavailable",
                    "Deployment has minimum availability.",
                ),
                condition(
                    "Progressing",
                    True,
                    "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
                    f'ReplicaSet "{rs_name}" has successfully progressed.'
                    if complete
                    else f'ReplicaSet "{rs_name}" is progressing.',
                ),
            ],
        }
        if deploy.get("status") != status:
            deploy["status"] = status
            store.replace(DEPLOYMENTS, namespace, name, deploy, subresource="status")

    # ------------------------------------------------------------------------------- Argo Rollouts
    def sync_rollout(self, namespace: str, name: str) -> None:
        store = self.store
        rollout = store.find(ROLLOUTS, namespace, name)
        if rollout is None:
            return
        spec = rollout["spec"]
        template = spec.get("template")
        ref = spec.get("workloadRef") or {}
        if ref:
            source = store.find(DEPLOYMENTS, namespace, ref.get("name", ""))
            if source is None:
                return
            template = source["spec"]["template"]
        owned = self._owned_replicasets(rollout)
        current = next((rs for rs in owned if templates_equal(rs["spec"]["template"], template, ARGO_HASH_LABEL)), None)
        max_revision = max((revision_of(rs, ARGO_REVISION) for rs in owned), default=0)
        if current is None:
            digest = template_hash(template)
            labelled = copy.deepcopy(template)
            labelled.setdefault("metadata", {}).setdefault("labels", {})[ARGO_HASH_LABEL] = digest
            selector = copy.deepcopy(spec.get("selector") or {})
            selector.setdefault("matchLabels", {})[ARGO_HASH_LABEL] = digest
            current = store.create(
                REPLICASETS,
                namespace,
                {
                    "metadata": {
                        "name": f"{name}-{digest}",
                        "labels": dict(labelled["metadata"]["labels"]),
                        "annotations": {ARGO_REVISION: str(max_revision + 1)},
                        "ownerReferences": [owner_ref(rollout)],
                    },
                    "spec": {"replicas": 0, "selector": selector, "template": labelled},
                },
            )
        elif revision_of(current, ARGO_REVISION) < max_revision:
            current["metadata"]["annotations"][ARGO_REVISION] = str(max_revision + 1)
            current = store.replace(REPLICASETS, namespace, current["metadata"]["name"], current)
        owned = self._owned_replicasets(rollout)
        by_hash = {rs["metadata"]["labels"].get(ARGO_HASH_LABEL): rs for rs in owned}
        current_hash = current["metadata"]["labels"][ARGO_HASH_LABEL]
        status = copy.deepcopy(rollout.get("status") or {})
        if status.get("currentPodHash") not in (None, current_hash):
            # A new pod template restarts the steps and leaves any abort behind.
            status.update(currentStepIndex=0, abort=False)
        stable_hash: str = status.get("stableRS") or current_hash
        if stable_hash not in by_hash:
            stable_hash = current_hash
        replicas = spec.get("replicas", 1)
        strategy = spec.get("strategy") or {}
        if "blueGreen" in strategy:
            stable_hash = self._sync_blue_green(rollout, status, by_hash, current_hash, stable_hash, replicas)
        else:
            stable_hash = self._sync_canary(rollout, status, by_hash, current_hash, stable_hash, replicas)
        status["currentPodHash"] = current_hash
        status["stableRS"] = stable_hash
        status["observedGeneration"] = str(rollout["metadata"].get("generation", 1))
        owned = self._owned_replicasets(rollout)
        statuses = [rs.get("status") or {} for rs in owned]
        current_status = next(
            (rs.get("status") or {} for rs in owned if rs["metadata"]["uid"] == current["metadata"]["uid"]),
            {},
        )
        status["replicas"] = sum(s.get("replicas", 0) for s in statuses)
        status["readyReplicas"] = sum(s.get("readyReplicas", 0) for s in statuses)
        status["availableReplicas"] = sum(s.get("availableReplicas", 0) for s in statuses)
        status["updatedReplicas"] = current_status.get("replicas", 0)
        status["selector"] = ",".join(
            f"{k}={v}" for k, v in sorted(((spec.get("selector") or {}).get("matchLabels") or {}).items())
        )
        rollout = store.get(ROLLOUTS, namespace, name)
        if rollout.get("status") != status:
            rollout["status"] = status
            store.replace(ROLLOUTS, namespace, name, rollout, subresource="status")

    def _sync_canary(
        self,
        rollout: Obj,
        status: Obj,
        by_hash: dict[str, Obj],
        current_hash: str,
        stable_hash: str,
        replicas: int,
    ) -> str:
        canary = (rollout["spec"].get("strategy") or {}).get("canary") or {}
        steps = canary.get("steps") or []
        routed = bool(canary.get("trafficRouting"))
        index = status.get("currentStepIndex", 0) or 0
        if current_hash != stable_hash and not status.get("abort"):
            # setWeight steps complete at once here; the rollout waits at the next pause step.
            while index < len(steps) and "pause" not in steps[index]:
                index += 1
        if current_hash != stable_hash and not status.get("abort") and index >= len(steps):
            stable_hash = current_hash  # every step done: promoted
        if current_hash == stable_hash:
            weight = 0
            status.update(abort=False, currentStepIndex=len(steps), phase="Healthy", message="")
            status.pop("abortedAt", None)
            counts = {current_hash: replicas}
        elif status.get("abort"):
            weight = 0
            status["phase"] = "Degraded"
            status["message"] = (
                "RolloutAborted: Rollout aborted update to revision "
                f"{revision_of(by_hash[current_hash], ARGO_REVISION)}"
            )
            status.setdefault("abortedAt", rfc3339(self.store.clock()))
            counts = {stable_hash: replicas, current_hash: 0}
        else:
            weight = 0
            for step in steps[: index + 1]:
                if "setWeight" in step:
                    weight = int(step["setWeight"])
            step = steps[index] if index < len(steps) else {}
            status["currentStepIndex"] = index
            status["phase"] = "Paused" if "pause" in step else "Progressing"
            canary_count = math.ceil(replicas * weight / 100)
            counts = {
                current_hash: canary_count,
                stable_hash: replicas if routed else replicas - canary_count,
            }
        for digest, rs in by_hash.items():
            self._scale(rs, counts.get(digest, 0))
        if routed:
            status["canary"] = {
                "weights": {
                    "canary": {"podTemplateHash": current_hash, "weight": weight},
                    "stable": {"podTemplateHash": stable_hash, "weight": 100 - weight},
                }
            }
            self._route_istio(rollout, canary, weight)
            self._label_subsets(rollout, canary, {"stable": stable_hash, "canary": current_hash})
        else:
            status["canary"] = {}
        return stable_hash

    def _route_istio(self, rollout: Obj, canary: Obj, weight: int) -> None:
        istio = (canary.get("trafficRouting") or {}).get("istio") or {}
        refs = [istio["virtualService"]] if istio.get("virtualService") else list(istio.get("virtualServices") or [])
        namespace = rollout["metadata"]["namespace"]
        dr = istio.get("destinationRule") or {}
        stable_key = dr.get("stableSubsetName") or canary.get("stableService")
        canary_key = dr.get("canarySubsetName") or canary.get("canaryService")
        for ref in refs:
            vs = self.store.find(VIRTUALSERVICES, namespace, ref.get("name", ""))
            if vs is None:
                continue
            wanted_routes = set(ref.get("routes") or [])
            changed = False
            for http in (vs.get("spec") or {}).get("http") or []:
                if wanted_routes and http.get("name") not in wanted_routes:
                    continue
                for route in http.get("route") or []:
                    destination = route.get("destination") or {}
                    key = destination.get("subset") if dr else destination.get("host")
                    target = 100 - weight if key == stable_key else weight if key == canary_key else None
                    if target is not None and route.get("weight") != target:
                        route["weight"] = target
                        changed = True
            if changed:
                self.store.replace(VIRTUALSERVICES, namespace, vs["metadata"]["name"], vs)

    def _label_subsets(self, rollout: Obj, canary: Obj, hashes: Mapping[str, str]) -> None:
        """Argo injects ``rollouts-pod-template-hash`` into the DestinationRule's stable/canary subsets."""
        dr_ref = ((canary.get("trafficRouting") or {}).get("istio") or {}).get("destinationRule") or {}
        namespace = rollout["metadata"]["namespace"]
        rule = self.store.find(DESTINATIONRULES, namespace, dr_ref.get("name", "")) if dr_ref else None
        if rule is None:
            return
        wanted = {
            dr_ref.get("stableSubsetName"): hashes["stable"],
            dr_ref.get("canarySubsetName"): hashes["canary"],
        }
        changed = False
        for subset in (rule.get("spec") or {}).get("subsets") or []:
            digest = wanted.get(subset.get("name"))
            if digest and (subset.get("labels") or {}).get(ARGO_HASH_LABEL) != digest:
                subset.setdefault("labels", {})[ARGO_HASH_LABEL] = digest
                changed = True
        if changed:
            self.store.replace(DESTINATIONRULES, namespace, rule["metadata"]["name"], rule)

    def _sync_blue_green(
        self,
        rollout: Obj,
        status: Obj,
        by_hash: dict[str, Obj],
        current_hash: str,
        stable_hash: str,
        replicas: int,
    ) -> str:
        store = self.store
        blue_green = rollout["spec"]["strategy"]["blueGreen"] or {}
        namespace = rollout["metadata"]["namespace"]
        delay = blue_green.get("scaleDownDelaySeconds", 30)
        previous_stable = stable_hash
        if current_hash != stable_hash and status.get("abort"):
            status["phase"] = "Degraded"
            status["message"] = "RolloutAborted: Rollout aborted update"
            self._scale(by_hash[current_hash], 0)
            self._scale(by_hash[stable_hash], replicas)
            preview_hash = stable_hash
        elif current_hash != stable_hash:
            self._scale(by_hash[current_hash], replicas)
            ready = (
                store.get(REPLICASETS, namespace, by_hash[current_hash]["metadata"]["name"]).get("status") or {}
            ).get("readyReplicas", 0)
            preview_hash = current_hash
            if blue_green.get("autoPromotionEnabled", True) and ready >= replicas:
                stable_hash = current_hash
            else:
                status["phase"] = "Paused"
                status["message"] = "BlueGreenPause"
        else:
            preview_hash = current_hash
        if stable_hash == current_hash:
            status.update(abort=False, phase="Healthy", message="")
            status.pop("abortedAt", None)
            self._scale(by_hash[current_hash], replicas)
            for digest, rs in by_hash.items():
                if digest == current_hash:
                    continue
                annotations = rs["metadata"].setdefault("annotations", {})
                if digest == previous_stable and previous_stable != stable_hash and rs["spec"].get("replicas"):
                    annotations[ARGO_SCALE_DOWN] = rfc3339(store.clock() + delay)
                    store.replace(REPLICASETS, namespace, rs["metadata"]["name"], rs)
                elif ARGO_SCALE_DOWN not in annotations:
                    self._scale(rs, 0)
        status["blueGreen"] = {"activeSelector": stable_hash, "previewSelector": preview_hash}
        for key, digest in (("activeService", stable_hash), ("previewService", preview_hash)):
            service_name = str(blue_green.get(key) or "")
            service = store.find(SERVICES, namespace, service_name) if service_name else None
            if service is None:
                continue
            selector = service["spec"].setdefault("selector", {})
            if selector.get(ARGO_HASH_LABEL) != digest:
                selector[ARGO_HASH_LABEL] = digest
                store.replace(SERVICES, namespace, service_name, service)
        return stable_hash


def _percent(value: Any, base: int, *, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        share = base * int(value[:-1]) / 100
        return math.ceil(share) if round_up else math.floor(share)
    return int(value or 0)


def _max_surge(spec: Mapping[str, Any]) -> int:
    rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
    return _percent(rolling.get("maxSurge", "25%"), spec.get("replicas", 1), round_up=True)


def _max_unavailable(spec: Mapping[str, Any]) -> int:
    rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
    return _percent(rolling.get("maxUnavailable", "25%"), spec.get("replicas", 1), round_up=False)
