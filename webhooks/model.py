"""The normalized alert every parser produces, whatever sent it.

The reactor never looks at a sender's payload again after parsing: it decides on :class:`Alert` alone, and
keeps ``raw`` only for the audit trail. The target an alert is about is read from labels (Alertmanager,
Grafana) or tags (Datadog) by :class:`IdentityRules`, so alert rules that keep the exporter's identity labels
need no lookup table in the reactor (ARCHITECTURE §3.3–3.4).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Status = Literal["firing", "resolved"]
Source = Literal["alertmanager", "grafana", "datadog"]


@dataclass(frozen=True)
class IdentityRules:
    """Which labels name the target, and what to assume when a label is absent.

    The defaults read the exporter's own labels first (``platform``, ``cluster``, ``namespace``,
    ``target``) and then the usual Kubernetes ones (``deployment``, ``rollout``, ``service``...), so both
    our shipped rules and a team's existing rules work.
    """

    default_platform: str = "kubernetes"
    default_cluster: str = "default"
    default_namespace: str = "default"
    platform_labels: tuple[str, ...] = ("platform",)
    cluster_labels: tuple[str, ...] = ("cluster", "kube_cluster_name", "cluster_name")
    namespace_labels: tuple[str, ...] = ("namespace", "exported_namespace", "kube_namespace")
    name_labels: tuple[str, ...] = (
        "target",
        "deployment",
        "rollout",
        "kube_deployment",
        "service",
        "ecs_service",
        "statefulset",
        "app",
    )
    component_labels: tuple[str, ...] = ("component",)
    revision_labels: tuple[str, ...] = ("revision", "version")
    release_labels: tuple[str, ...] = ("release",)

    def identify(self, labels: Mapping[str, str]) -> TargetIdentity:
        # On the intake hot path: plain loops, no closures.
        found: list[str | None] = []
        for keys in (
            self.platform_labels,
            self.cluster_labels,
            self.namespace_labels,
            self.name_labels,
            self.component_labels,
            self.revision_labels,
            self.release_labels,
        ):
            value = None
            for key in keys:
                value = labels.get(key)
                if value:
                    break
            found.append(value or None)
        platform, cluster, namespace, name, component, revision, release = found
        return TargetIdentity(
            platform=platform or self.default_platform,
            cluster=cluster or self.default_cluster,
            namespace=namespace or self.default_namespace,
            name=name,
            component=component,
            revision=revision,
            release=release,
        )


@dataclass(frozen=True)
class TargetIdentity:
    """``platform/cluster/namespace/name`` plus the optional component, revision and release labels."""

    platform: str
    cluster: str
    namespace: str
    name: str | None
    component: str | None = None
    revision: str | None = None
    release: str | None = None

    @property
    def key(self) -> str | None:
        """``platform/cluster/namespace/name``, or None when the alert names no workload."""
        if not self.name:
            return None
        return f"{self.platform}/{self.cluster}/{self.namespace}/{self.name}"

    @property
    def problem(self) -> str | None:
        """Why this identity cannot name a workload, or None. The key's parts are separated by ``/``, and no
        Kubernetes, ECS or Swarm name holds one: a label like ``deployment="shop/cart"`` is a rule's mistake."""
        for part, value in (("platform", self.platform), ("cluster", self.cluster), ("namespace", self.namespace),
                            ("name", self.name)):  # fmt: skip
            if value and "/" in value:
                return f"the alert's {part} {value!r} contains '/', which no workload identity can hold"
        return None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "platform": self.platform,
            "cluster": self.cluster,
            "namespace": self.namespace,
            "name": self.name,
            "component": self.component,
            "revision": self.revision,
            "release": self.release,
        }


@dataclass(frozen=True)
class Alert:
    """One alert from one notification.

    ``fingerprint`` and ``starts_at`` identify an occurrence: Alertmanager resends the same pair (repeats,
    retries, HA peers) and the reactor stores it once. ``ends_at`` is None while firing (Alertmanager's
    zero time ``0001-01-01T00:00:00Z``).
    """

    source: Source
    fingerprint: str
    status: Status
    name: str
    target: TargetIdentity
    starts_at: datetime
    ends_at: datetime | None = None
    severity: str | None = None
    #: What kind of failure the rule detected (``crash``, ``errors``, ``latency``, ``canary``,
    #: ``component``, ``no_data``...), from the ``failure_kind`` label; None when the rule does not say.
    failure_kind: str | None = None
    #: The ``strategy`` label: the rule's hint, honoured within what the target's policy allows.
    strategy_hint: str | None = None
    value: float | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    generator_url: str = ""
    #: Sender-specific repeats (Datadog ``Re-Triggered``, ``Renotify``): never a new occurrence.
    repeat: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_summary(cls, data: Mapping[str, Any], *, status: Status | None = None) -> Alert:
        """Rebuild an alert from :meth:`summary` (what the reactor stores), optionally with a newer status."""
        identity = data.get("identity") or {}
        ends = data.get("ends_at")
        return cls(
            source=data["source"],
            fingerprint=data["fingerprint"],
            status=status or data["status"],
            name=data.get("name", ""),
            target=TargetIdentity(
                platform=identity.get("platform") or "",
                cluster=identity.get("cluster") or "",
                namespace=identity.get("namespace") or "",
                name=identity.get("name"),
                component=identity.get("component"),
                revision=identity.get("revision"),
                release=identity.get("release"),
            ),
            starts_at=datetime.fromisoformat(data["starts_at"]),
            ends_at=datetime.fromisoformat(ends) if ends else None,
            severity=data.get("severity"),
            failure_kind=data.get("failure_kind"),
            strategy_hint=data.get("strategy_hint"),
            value=data.get("value"),
            labels=data.get("labels") or {},
            annotations=data.get("annotations") or {},
        )

    def summary(self) -> dict[str, Any]:
        """A compact, JSON-safe view for the audit trail and the API."""
        return {
            "source": self.source,
            "fingerprint": self.fingerprint,
            "status": self.status,
            "name": self.name,
            "target": self.target.key,
            "identity": self.target.as_dict(),
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat() if self.ends_at else None,
            "severity": self.severity,
            "failure_kind": self.failure_kind,
            "strategy_hint": self.strategy_hint,
            "value": self.value,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
        }


@dataclass(frozen=True)
class Notification:
    """One webhook delivery: an envelope around one or more alerts."""

    source: Source
    status: Status
    alerts: tuple[Alert, ...]
    receiver: str = ""
    group_key: str = ""
    #: Alerts Alertmanager left out because of ``max_alerts``: they were not delivered, so not stored.
    truncated_alerts: int = 0
    external_url: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict)
