"""Traffic routers of a canary pair (a stable and a canary Deployment): read and set the split.

- ``istio``: a VirtualService (``networking.istio.io/v1``). Reads the weights of the http routes that
  name both sides (by subset, or by host); writes a merge-patch of the whole ``spec.http`` (lists are
  replaced wholesale, CONTRACTS.md §5.3).
- ``nginx``: the canary Ingress (``nginx.ingress.kubernetes.io/canary: "true"``). Reads ``canary-weight``
  out of ``canary-weight-total`` (default 100); writes a merge-patch of that annotation.
- ``gateway``: an HTTPRoute (``gateway.networking.k8s.io/v1``). Reads ``backendRefs[].weight`` of the
  rules naming both Services; writes a merge-patch of ``spec.rules``.
- ``replicas``: no router, the two Deployments behind one Service. Reads canary replicas / total; writes
  a merge-patch of each ``spec.replicas``, stable first (capacity before removal).

Every write carries the ``resourceVersion`` it was computed from, so a concurrent change answers 409 and
the platform retries on a fresh read instead of overwriting someone else's edit. A write that would change
nothing is not sent.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from strategies.base import ApiCall
from strategies.errors import UnsupportedError
from strategies.kubernetes import names
from strategies.kubernetes.client import (
    DEPLOYMENT,
    HTTPROUTE,
    INGRESS,
    MERGE_PATCH,
    VIRTUALSERVICE,
    KubeClient,
)


@dataclass(frozen=True)
class Pair:
    """A canary pair and how traffic reaches it."""

    stable: str
    canary: str
    router: str
    object: str
    stable_backend: str
    canary_backend: str
    routes: tuple[str, ...] = ()

    def describe(self) -> dict[str, Any]:
        return {
            "type": self.router,
            "object": self.object,
            "stable": self.stable_backend,
            "canary": self.canary_backend,
            "stable_workload": self.stable,
            "canary_workload": self.canary,
            "routes": list(self.routes),
        }


def _percent(stable: float, canary: float) -> dict[str, int]:
    total = stable + canary
    if total <= 0:
        return {"stable": 100, "canary": 0}
    share = round(100 * canary / total)
    return {"stable": 100 - share, "canary": share}


# ----------------------------------------------------------------------------------------------- Istio
def _istio_side(route: Mapping[str, Any], pair: Pair) -> str | None:
    destination = route.get("destination") or {}
    keys = {
        destination.get("subset"),
        destination.get("host"),
        (destination.get("host") or "").split(".", 1)[0],
    }
    if destination.get("subset"):
        keys = {destination["subset"]}
    if pair.stable_backend in keys:
        return "stable"
    if pair.canary_backend in keys:
        return "canary"
    return None


def _istio_routes(vs: Mapping[str, Any], pair: Pair) -> list[int]:
    """Indexes of the http routes we manage: named in ``pair.routes`` (if any) and naming both sides."""
    out = []
    for index, http in enumerate((vs.get("spec") or {}).get("http") or []):
        if pair.routes and http.get("name") not in pair.routes:
            continue
        sides = {_istio_side(r, pair) for r in http.get("route") or []}
        if {"stable", "canary"} <= sides:
            out.append(index)
    if not out:
        raise UnsupportedError(
            f"VirtualService {vs['metadata']['name']} has no http route with both the stable "
            f"({pair.stable_backend}) "
            f"and the canary ({pair.canary_backend}) destination"
            + (f" among routes {list(pair.routes)}" if pair.routes else "")
            + "; fix the router's stable/canary/routes options or annotations (docs/kubernetes.md#routers)"
        )
    return out


def istio_read(vs: Mapping[str, Any], pair: Pair) -> dict[str, int]:
    http = vs["spec"]["http"][_istio_routes(vs, pair)[0]]
    weights = {"stable": 0.0, "canary": 0.0}
    routes = http.get("route") or []
    for route in routes:
        side = _istio_side(route, pair)
        if side:
            weights[side] += route.get("weight", 100 if len(routes) == 1 else 0)
    return _percent(weights["stable"], weights["canary"])


def istio_body(vs: Mapping[str, Any], pair: Pair, weights: Mapping[str, int]) -> dict[str, Any] | None:
    http = copy.deepcopy((vs.get("spec") or {}).get("http") or [])
    changed = False
    for index in _istio_routes(vs, pair):
        for route in http[index].get("route") or []:
            side = _istio_side(route, pair)
            if side and route.get("weight") != weights[side]:
                route["weight"] = weights[side]
                changed = True
    if not changed:
        return None
    return {"metadata": {"resourceVersion": vs["metadata"]["resourceVersion"]}, "spec": {"http": http}}


# ----------------------------------------------------------------------------------------------- NGINX
def _nginx_total(ingress: Mapping[str, Any]) -> int:
    annotations = (ingress.get("metadata") or {}).get("annotations") or {}
    if annotations.get(names.NGINX_CANARY) != "true":
        raise UnsupportedError(
            f"Ingress {ingress['metadata']['name']} is not an NGINX canary Ingress (annotation "
            f'{names.NGINX_CANARY}: "true" missing); point the router object at the canary Ingress'
        )
    return int(annotations.get(names.NGINX_TOTAL) or 100)


def nginx_read(ingress: Mapping[str, Any]) -> dict[str, int]:
    total = _nginx_total(ingress)
    weight = int((ingress["metadata"].get("annotations") or {}).get(names.NGINX_WEIGHT) or 0)
    return _percent(total - weight, weight)


def nginx_body(ingress: Mapping[str, Any], weights: Mapping[str, int]) -> dict[str, Any] | None:
    total = _nginx_total(ingress)
    wanted = str(round(weights["canary"] * total / 100))
    if (ingress["metadata"].get("annotations") or {}).get(names.NGINX_WEIGHT) == wanted:
        return None
    return {
        "metadata": {
            "resourceVersion": ingress["metadata"]["resourceVersion"],
            "annotations": {names.NGINX_WEIGHT: wanted},
        }
    }


# ------------------------------------------------------------------------------------------ Gateway API
def _gateway_rules(route: Mapping[str, Any], pair: Pair) -> list[int]:
    out = []
    for index, rule in enumerate((route.get("spec") or {}).get("rules") or []):
        refs = {ref.get("name") for ref in rule.get("backendRefs") or []}
        if {pair.stable_backend, pair.canary_backend} <= refs:
            out.append(index)
    if not out:
        raise UnsupportedError(
            f"HTTPRoute {route['metadata']['name']} has no rule with both backendRefs "
            f"{pair.stable_backend!r} and "
            f"{pair.canary_backend!r}; fix the router's stable/canary options (docs/kubernetes.md#routers)"
        )
    return out


def gateway_read(route: Mapping[str, Any], pair: Pair) -> dict[str, int]:
    rule = route["spec"]["rules"][_gateway_rules(route, pair)[0]]
    weights = {"stable": 0.0, "canary": 0.0}
    for ref in rule.get("backendRefs") or []:
        if ref.get("name") == pair.stable_backend:
            weights["stable"] += ref.get("weight", 1)
        elif ref.get("name") == pair.canary_backend:
            weights["canary"] += ref.get("weight", 1)
    return _percent(weights["stable"], weights["canary"])


def gateway_body(route: Mapping[str, Any], pair: Pair, weights: Mapping[str, int]) -> dict[str, Any] | None:
    rules = copy.deepcopy(route["spec"]["rules"])
    changed = False
    for index in _gateway_rules(route, pair):
        for ref in rules[index].get("backendRefs") or []:
            side = (
                "stable"
                if ref.get("name") == pair.stable_backend
                else "canary"
                if ref.get("name") == pair.canary_backend
                else None
            )
            if side and ref.get("weight") != weights[side]:
                ref["weight"] = weights[side]
                changed = True
    if not changed:
        return None
    return {"metadata": {"resourceVersion": route["metadata"]["resourceVersion"]}, "spec": {"rules": rules}}


# ---------------------------------------------------------------------------------------- replica ratio
def replicas_read(stable: Mapping[str, Any], canary: Mapping[str, Any]) -> dict[str, int]:
    return _percent(stable["spec"].get("replicas", 1), canary["spec"].get("replicas", 1))


def replica_split(total: int, canary_percent: int) -> tuple[int, int]:
    """(stable, canary) replicas for ``canary_percent`` of ``total``; a non-zero share keeps a pod."""
    canary = round(total * canary_percent / 100)
    if canary_percent > 0 and canary == 0:
        canary = 1
    if canary_percent < 100 and canary == total and total > 1:
        canary = total - 1
    return total - canary, canary


# ---------------------------------------------------------------------------------------------- facade
def read(kube: KubeClient, namespace: str, pair: Pair) -> dict[str, int]:
    if pair.router == "istio":
        return istio_read(kube.get(VIRTUALSERVICE, namespace, pair.object), pair)
    if pair.router == "nginx":
        return nginx_read(kube.get(INGRESS, namespace, pair.object))
    if pair.router == "gateway":
        return gateway_read(kube.get(HTTPROUTE, namespace, pair.object), pair)
    return replicas_read(kube.get(DEPLOYMENT, namespace, pair.stable), kube.get(DEPLOYMENT, namespace, pair.canary))


def write(kube: KubeClient, namespace: str, pair: Pair, weights: Mapping[str, int], *, dry_run: bool) -> list[ApiCall]:
    """Set the split; one attempt (the caller retries a ConflictError on a fresh read)."""
    note = f"{pair.router}: stable {weights['stable']}%, canary {weights['canary']}%"
    writes: list[tuple[Any, str, dict[str, Any]]] = []
    if pair.router == "replicas":
        stable = kube.get(DEPLOYMENT, namespace, pair.stable)
        canary = kube.get(DEPLOYMENT, namespace, pair.canary)
        total = stable["spec"].get("replicas", 1) + canary["spec"].get("replicas", 1)
        if total == 0:
            raise UnsupportedError(
                f"{pair.stable} and {pair.canary} both have 0 replicas; a replica-ratio split needs pods to share"
            )
        want_stable, want_canary = replica_split(total, weights["canary"])
        for obj, replicas in ((stable, want_stable), (canary, want_canary)):
            if obj["spec"].get("replicas") != replicas:
                body = {
                    "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
                    "spec": {"replicas": replicas},
                }
                writes.append((DEPLOYMENT, obj["metadata"]["name"], body))
    else:
        kind, name = {
            "istio": (VIRTUALSERVICE, pair.object),
            "nginx": (INGRESS, pair.object),
            "gateway": (HTTPROUTE, pair.object),
        }[pair.router]
        obj = kube.get(kind, namespace, name)
        if pair.router == "istio":
            patch = istio_body(obj, pair, weights)
        elif pair.router == "nginx":
            patch = nginx_body(obj, weights)
        else:
            patch = gateway_body(obj, pair, weights)
        if patch is not None:
            writes.append((kind, name, patch))
    calls = []
    for kind, name, body in writes:
        calls.append(ApiCall("PATCH", kind.path(namespace, name), body, note=f"{note} ({MERGE_PATCH})"))
        if not dry_run:
            kube.patch(kind, namespace, name, body, MERGE_PATCH)
    return calls
