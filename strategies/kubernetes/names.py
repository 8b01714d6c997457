"""Names the Kubernetes platform reads and writes: our annotations, the controllers' annotations, selectors.

Pure module (no client import). The user-facing keys are documented in ``docs/kubernetes.md``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

PREFIX = "smart-rollback.io/"

# --- what users put on workloads (or give as per-target options) -------------------------------------
#: Label shared by the components of one release (partial rollback finds siblings by it).
RELEASE = PREFIX + "release"
#: Comma-separated components this one depends on (the policy graph may give them instead).
DEPENDS_ON = PREFIX + "depends-on"
#: Traffic router of a canary pair: ``istio``, ``nginx``, ``gateway`` or ``replicas``.
ROUTER = PREFIX + "router"
#: The router object: VirtualService, canary Ingress or HTTPRoute name (defaults in docs/kubernetes.md).
ROUTER_OBJECT = PREFIX + "router-object"
#: The canary Deployment of a pair (default ``<name>-canary``).
CANARY = PREFIX + "canary"
#: Istio subset (or host) / Gateway backend Service of each side.
STABLE_BACKEND = PREFIX + "stable-backend"
CANARY_BACKEND = PREFIX + "canary-backend"
#: Comma-separated Istio ``http[].name`` routes to change (default: every route naming both sides).
ROUTES = PREFIX + "routes"
#: On a blue-green Service: the selector key holding the colour, and ``blue=dep-a,green=dep-b``.
COLOR_LABEL = PREFIX + "color-label"
COLORS = PREFIX + "colors"

# --- config snapshots ----------------------------------------------------------------------------------
SNAPSHOT = PREFIX + "snapshot"
SNAPSHOT_OF = PREFIX + "snapshot-of"
SNAPSHOT_KIND = PREFIX + "snapshot-kind"
SNAPSHOT_WORKLOAD = PREFIX + "workload"
SNAPSHOT_HASH = PREFIX + "pod-template-hash"
SNAPSHOT_TAKEN = PREFIX + "taken-at"
SNAPSHOT_SOURCE_RV = PREFIX + "source-resource-version"

# --- the controllers' own ------------------------------------------------------------------------------
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
HASH_LABEL = "pod-template-hash"
#: Deployment annotations ``kubectl rollout undo`` keeps; every other one comes from the ReplicaSet.
UNDO_KEEP = (
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
)
CHANGE_CAUSE = "kubernetes.io/change-cause"
ARGO_REVISION = "rollout.argoproj.io/revision"
ARGO_HASH_LABEL = "rollouts-pod-template-hash"

NGINX_CANARY = "nginx.ingress.kubernetes.io/canary"
NGINX_WEIGHT = "nginx.ingress.kubernetes.io/canary-weight"
NGINX_TOTAL = "nginx.ingress.kubernetes.io/canary-weight-total"


def render_selector(selector: Mapping[str, Any]) -> str:
    """A LabelSelector as a ``labelSelector`` query, rendered as Go renders it (keys sorted, set syntax)."""
    terms: list[tuple[str, str]] = [(k, f"{k}={v}") for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        key, values = expr["key"], ",".join(sorted(expr.get("values") or ()))
        terms.append(
            (
                key,
                {
                    "In": f"{key} in ({values})",
                    "NotIn": f"{key} notin ({values})",
                    "Exists": key,
                    "DoesNotExist": f"!{key}",
                }[expr["operator"]],
            )
        )
    return ",".join(text for _k, text in sorted(terms, key=lambda t: t[0]))


def normalized(value: Any) -> Any:
    """Drop nulls and empty maps/lists: how Go's typed comparison sees a template (absent = null = empty)."""
    if isinstance(value, Mapping):
        out = {k: normalized(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [normalized(v) for v in value]
    return value


def strip_label(template: Mapping[str, Any], label: str) -> dict[str, Any]:
    """A copy of a pod template without ``label`` (the hash label kubectl drops before comparing/patching)."""
    out = copy.deepcopy(dict(template))
    labels = (out.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(label, None)
    return out


def same_template(a: Mapping[str, Any], b: Mapping[str, Any], label: str = HASH_LABEL) -> bool:
    return normalized(strip_label(a, label)) == normalized(strip_label(b, label))


def split_list(text: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())


def label_value(text: str) -> str:
    """``text`` if it is a valid label value length, else a stable shortened form."""
    if len(text) <= 63:
        return text
    import hashlib

    return text[:52].rstrip("-._") + "-" + hashlib.sha256(text.encode()).hexdigest()[:10]
