"""The resource types the sandbox serves, and the discovery documents derived from them.

One table drives storage, URL routing, legacy discovery (``/api``, ``/apis``, ``/apis/<g>/<v>``) and
aggregated discovery v2. What kubectl needs from each entry is in KUBECTL_SANDBOX.md §1.2: ``name``,
``namespaced``, ``kind`` and ``shortNames`` in legacy documents; ``responseKind`` and ``scope`` in
aggregated ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    group: str
    versions: tuple[str, ...]
    plural: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    #: Subresources served: ``status`` (writes to the main resource then leave status alone) and/or ``scale``.
    subresources: tuple[str, ...] = ()
    #: Custom resources accept JSON Patch and merge patch only, like a real apiserver.
    custom: bool = False
    categories: tuple[str, ...] = field(default=())

    @property
    def id(self) -> str:
        """Storage key, independent of the version used to reach it: ``apps/deployments``."""
        return f"{self.group}/{self.plural}"

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def preferred_version(self) -> str:
        return self.versions[0]

    def api_version(self, version: str | None = None) -> str:
        version = version or self.preferred_version
        return f"{self.group}/{version}" if self.group else version

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources


RESOURCES: tuple[ResourceType, ...] = (
    ResourceType("", ("v1",), "namespaces", "Namespace", namespaced=False, short_names=("ns",)),
    ResourceType("", ("v1",), "pods", "Pod", short_names=("po",), subresources=("status",), categories=("all",)),
    ResourceType("", ("v1",), "services", "Service", short_names=("svc",), subresources=("status",)),
    ResourceType("", ("v1",), "configmaps", "ConfigMap", short_names=("cm",)),
    ResourceType("", ("v1",), "secrets", "Secret"),
    ResourceType("", ("v1",), "events", "Event", short_names=("ev",)),
    # What deploy/kubernetes applies beside the workloads: identity, RBAC and disruption budgets.
    ResourceType("", ("v1",), "serviceaccounts", "ServiceAccount", short_names=("sa",)),
    ResourceType(
        "apps",
        ("v1",),
        "deployments",
        "Deployment",
        short_names=("deploy",),
        subresources=("status", "scale"),
        categories=("all",),
    ),
    ResourceType(
        "apps",
        ("v1",),
        "replicasets",
        "ReplicaSet",
        short_names=("rs",),
        subresources=("status", "scale"),
        categories=("all",),
    ),
    ResourceType("coordination.k8s.io", ("v1",), "leases", "Lease"),
    ResourceType("rbac.authorization.k8s.io", ("v1",), "roles", "Role"),
    ResourceType("rbac.authorization.k8s.io", ("v1",), "rolebindings", "RoleBinding"),
    ResourceType("rbac.authorization.k8s.io", ("v1",), "clusterroles", "ClusterRole", namespaced=False),
    ResourceType("rbac.authorization.k8s.io", ("v1",), "clusterrolebindings", "ClusterRoleBinding", namespaced=False),
    ResourceType(
        "policy", ("v1",), "poddisruptionbudgets", "PodDisruptionBudget", short_names=("pdb",), subresources=("status",)
    ),
    ResourceType("networking.k8s.io", ("v1",), "ingresses", "Ingress", short_names=("ing",), subresources=("status",)),
    ResourceType(
        "networking.istio.io",
        ("v1", "v1beta1", "v1alpha3"),
        "virtualservices",
        "VirtualService",
        short_names=("vs",),
        subresources=("status",),
        custom=True,
    ),
    ResourceType(
        "networking.istio.io",
        ("v1", "v1beta1", "v1alpha3"),
        "destinationrules",
        "DestinationRule",
        short_names=("dr",),
        subresources=("status",),
        custom=True,
    ),
    ResourceType(
        "gateway.networking.k8s.io",
        ("v1", "v1beta1"),
        "httproutes",
        "HTTPRoute",
        subresources=("status",),
        custom=True,
    ),
    ResourceType(
        "argoproj.io",
        ("v1alpha1",),
        "rollouts",
        "Rollout",
        short_names=("ro",),
        subresources=("status", "scale"),
        custom=True,
    ),
)

BY_ID: dict[str, ResourceType] = {r.id: r for r in RESOURCES}
BY_KIND: dict[str, ResourceType] = {r.kind: r for r in RESOURCES}


def lookup(group: str, version: str, plural: str) -> ResourceType | None:
    rtype = BY_ID.get(f"{group}/{plural}")
    if rtype is None or version not in rtype.versions:
        return None
    return rtype


def groups() -> dict[str, tuple[str, ...]]:
    """Group name -> served versions (preferred first), in a stable order; ``""`` is the core group."""
    out: dict[str, tuple[str, ...]] = {}
    for rtype in RESOURCES:
        out.setdefault(rtype.group, rtype.versions)
    return out


# ------------------------------------------------------------------------------------- legacy discovery
def api_versions() -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}


def api_group_list() -> dict[str, Any]:
    items = []
    for group, versions in groups().items():
        if not group:
            continue
        items.append(
            {
                "name": group,
                "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
                "preferredVersion": {"groupVersion": f"{group}/{versions[0]}", "version": versions[0]},
            }
        )
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": items}


def api_resource_list(group: str, version: str) -> dict[str, Any] | None:
    entries = []
    for rtype in RESOURCES:
        if rtype.group != group or version not in rtype.versions:
            continue
        entry: dict[str, Any] = {
            "name": rtype.plural,
            "singularName": rtype.singular,
            "namespaced": rtype.namespaced,
            "kind": rtype.kind,
            "verbs": list(ALL_VERBS),
        }
        if rtype.short_names:
            entry["shortNames"] = list(rtype.short_names)
        if rtype.categories:
            entry["categories"] = list(rtype.categories)
        entries.append(entry)
        for sub in rtype.subresources:
            kind = "Scale" if sub == "scale" else rtype.kind
            sub_entry = {
                "name": f"{rtype.plural}/{sub}",
                "singularName": "",
                "namespaced": rtype.namespaced,
                "kind": kind,
                "verbs": ["get", "patch", "update"],
            }
            if sub == "scale":
                sub_entry.update(group="autoscaling", version="v1")
            entries.append(sub_entry)
    if not entries:
        return None
    group_version = f"{group}/{version}" if group else version
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": entries,
    }


# ---------------------------------------------------------------------------------- aggregated discovery
AGGREGATED_CONTENT_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def aggregated_discovery(core: bool) -> dict[str, Any]:
    """The ``APIGroupDiscoveryList`` for ``/api`` (core) or ``/apis`` (every named group)."""
    items = []
    for group, versions in groups().items():
        if bool(group) == core:
            continue
        version_entries = []
        for version in versions:
            resources = []
            for rtype in RESOURCES:
                if rtype.group != group or version not in rtype.versions:
                    continue
                resource: dict[str, Any] = {
                    "resource": rtype.plural,
                    "responseKind": {"group": group, "version": version, "kind": rtype.kind},
                    "scope": "Namespaced" if rtype.namespaced else "Cluster",
                    "singularResource": rtype.singular,
                    "verbs": list(ALL_VERBS),
                }
                if rtype.short_names:
                    resource["shortNames"] = list(rtype.short_names)
                if rtype.categories:
                    resource["categories"] = list(rtype.categories)
                if rtype.subresources:
                    resource["subresources"] = [
                        {
                            "subresource": sub,
                            "responseKind": (
                                {"group": "autoscaling", "version": "v1", "kind": "Scale"}
                                if sub == "scale"
                                else {"group": group, "version": version, "kind": rtype.kind}
                            ),
                            "verbs": ["get", "patch", "update"],
                        }
                        for sub in rtype.subresources
                    ]
                resources.append(resource)
            version_entries.append({"version": version, "resources": resources, "freshness": "Current"})
        items.append({"metadata": {"name": group}, "versions": version_entries})
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    }
