"""The live traffic split, per entry point, computed from what is stored: the seam for a traffic simulator.

A simulator (a later issue) needs to know, for each way requests enter a service, which ReplicaSet (hence
revision and image) serves what share right now. This module answers that from the same objects the
strategies change, so a rollback shows up in the split the moment it is written:

- ``service:<name>``: ready pods selected by the Service, in proportion to their count (kube-proxy);
- ``virtualservice:<name>``: each route destination's weight, spread over the ready pods of its host
  Service restricted to its DestinationRule subset labels;
- ``httproute:<name>``: each backendRef's weight over its Service's ready pods;
- ``ingress:<name>``: an NGINX stable Ingress and its canary Ingress (``canary-weight`` out of
  ``canary-weight-total``).

Served over HTTP as ``GET /sandbox/v1/traffic[?namespace=NS]``, and in-process through
:func:`traffic_split`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from sandbox.controllers import ARGO_REVISION, REVISION, revision_of
from sandbox.resources import BY_ID
from sandbox.selectors import selector_matches
from sandbox.store import Obj, Store

CANARY = "nginx.ingress.kubernetes.io/canary"
CANARY_WEIGHT = "nginx.ingress.kubernetes.io/canary-weight"
CANARY_TOTAL = "nginx.ingress.kubernetes.io/canary-weight-total"


def _ready(pod: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


class _Namespace:
    def __init__(self, store: Store, namespace: str) -> None:
        self.store = store
        self.namespace = namespace
        self.pods = [p for p in store.list(BY_ID["/pods"], namespace)[0] if _ready(p)]
        self.replicasets = {rs["metadata"]["uid"]: rs for rs in store.list(BY_ID["apps/replicasets"], namespace)[0]}
        self.services = {s["metadata"]["name"]: s for s in store.list(BY_ID["/services"], namespace)[0]}
        self.rules = store.list(BY_ID["networking.istio.io/destinationrules"], namespace)[0]

    def backend(self, pod: Obj) -> dict[str, Any]:
        owner = next((r for r in pod["metadata"].get("ownerReferences") or [] if r.get("controller")), None)
        rs = self.replicasets.get(owner["uid"]) if owner else None
        workload = ""
        revision = 0
        if rs is not None:
            workload = next((r["name"] for r in rs["metadata"].get("ownerReferences") or [] if r.get("controller")), "")
            revision = revision_of(rs) or revision_of(rs, ARGO_REVISION)
        images = [c.get("image", "") for c in (pod.get("spec") or {}).get("containers") or []]
        return {
            "workload": workload,
            "replicaset": rs["metadata"]["name"] if rs else "",
            "revision": revision,
            "images": images,
            "labels": dict(pod["metadata"].get("labels") or {}),
        }

    def spread(self, selector: Mapping[str, str], weight: float, extra: Mapping[str, str] | None = None) -> list[dict]:
        """Share ``weight`` over the ready pods matching ``selector`` (+ ``extra``), by ReplicaSet."""
        wanted = {**selector, **(extra or {})}
        if not wanted:
            return []
        pods = [p for p in self.pods if selector_matches({"matchLabels": wanted}, p["metadata"].get("labels") or {})]
        groups: dict[str, list[Obj]] = defaultdict(list)
        for pod in pods:
            groups[self.backend(pod)["replicaset"]].append(pod)
        out = []
        for members in groups.values():
            entry = self.backend(members[0])
            entry.pop("labels")
            entry["pods"] = len(members)
            entry["weight"] = weight * len(members) / len(pods)
            out.append(entry)
        return out

    def service_selector(self, host: str) -> dict[str, str]:
        name = host.split(".", 1)[0]
        service = self.services.get(name)
        return dict(((service or {}).get("spec") or {}).get("selector") or {})

    def subset_labels(self, host: str, subset: str | None) -> dict[str, str]:
        if not subset:
            return {}
        name = host.split(".", 1)[0]
        for rule in self.rules:
            if (rule.get("spec") or {}).get("host", "").split(".", 1)[0] != name:
                continue
            for entry in (rule.get("spec") or {}).get("subsets") or []:
                if entry.get("name") == subset:
                    return dict(entry.get("labels") or {})
        return {"__missing_subset__": subset}


def _merge(entries: list[dict]) -> list[dict]:
    merged: dict[str, dict] = {}
    for entry in entries:
        key = entry["replicaset"]
        if key in merged:
            merged[key]["weight"] += entry["weight"]
            merged[key]["pods"] += entry["pods"]
        else:
            merged[key] = dict(entry)
    for entry in merged.values():
        entry["weight"] = round(entry["weight"], 3)
    return sorted(merged.values(), key=lambda e: (-e["weight"], e["replicaset"]))


def traffic_split(store: Store, namespace: str | None = None) -> dict[str, Any]:
    """``{"namespaces": {ns: {"service:checkout": {"backends": [...]}, ...}}}``; weights in percent."""
    with store.lock:
        names = (
            [namespace] if namespace else sorted({ns["metadata"]["name"] for ns in store.list(BY_ID["/namespaces"])[0]})
        )
        out: dict[str, Any] = {}
        for ns_name in names:
            ns = _Namespace(store, ns_name)
            entries: dict[str, Any] = {}
            for name, service in sorted(ns.services.items()):
                selector = (service.get("spec") or {}).get("selector") or {}
                entries[f"service:{name}"] = {"backends": _merge(ns.spread(selector, 100.0))}
            for vs in store.list(BY_ID["networking.istio.io/virtualservices"], ns_name)[0]:
                http = ((vs.get("spec") or {}).get("http") or [{}])[0]
                routes = http.get("route") or []
                backends = []
                for route in routes:
                    destination = route.get("destination") or {}
                    weight = route.get("weight", 100 if len(routes) == 1 else 0)
                    host = destination.get("host", "")
                    backends += ns.spread(
                        ns.service_selector(host),
                        float(weight),
                        ns.subset_labels(host, destination.get("subset")),
                    )
                entries[f"virtualservice:{vs['metadata']['name']}"] = {"backends": _merge(backends)}
            for route in store.list(BY_ID["gateway.networking.k8s.io/httproutes"], ns_name)[0]:
                rule = ((route.get("spec") or {}).get("rules") or [{}])[0]
                refs = rule.get("backendRefs") or []
                total = sum(r.get("weight", 1) for r in refs) or 1
                backends = []
                for ref in refs:
                    share = 100.0 * ref.get("weight", 1) / total
                    backends += ns.spread(ns.service_selector(ref.get("name", "")), share)
                entries[f"httproute:{route['metadata']['name']}"] = {"backends": _merge(backends)}
            ingresses = store.list(BY_ID["networking.k8s.io/ingresses"], ns_name)[0]
            for ingress in ingresses:
                if (ingress["metadata"].get("annotations") or {}).get(CANARY) == "true":
                    continue
                stable_service = _ingress_service(ingress)
                backends = []
                canary_share = 0.0
                for canary in ingresses:
                    annotations = canary["metadata"].get("annotations") or {}
                    if annotations.get(CANARY) != "true" or _ingress_hosts(canary) != _ingress_hosts(ingress):
                        continue
                    total = float(annotations.get(CANARY_TOTAL, "100"))
                    canary_share = 100.0 * float(annotations.get(CANARY_WEIGHT, "0")) / total
                    backends += ns.spread(ns.service_selector(_ingress_service(canary)), canary_share)
                backends += ns.spread(ns.service_selector(stable_service), 100.0 - canary_share)
                entries[f"ingress:{ingress['metadata']['name']}"] = {"backends": _merge(backends)}
            out[ns_name] = entries
        return {"namespaces": out, "resourceVersion": str(store.rv), "revisionAnnotation": REVISION}


def _ingress_service(ingress: Obj) -> str:
    for rule in (ingress.get("spec") or {}).get("rules") or []:
        for path in (rule.get("http") or {}).get("paths") or []:
            service = ((path.get("backend") or {}).get("service") or {}).get("name")
            if service:
                return str(service)
    return str((((ingress.get("spec") or {}).get("defaultBackend") or {}).get("service") or {}).get("name", ""))


def _ingress_hosts(ingress: Obj) -> tuple[str, ...]:
    return tuple(sorted(r.get("host", "") for r in (ingress.get("spec") or {}).get("rules") or []))
