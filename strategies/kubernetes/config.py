"""The Kubernetes platform's options (the YAML ``platforms.kubernetes`` block), validated at start-up.

    clusters:
      prod-eu: {kubeconfig: /etc/smart-rollback/kubeconfig, context: prod-eu}   # GKE/AKS: exec-auth contexts
      local:   {in_cluster: true}                                                # the pod's service account
      sandbox: {server: "http://127.0.0.1:8001"}                                 # no auth: the sandbox only
    targets:
      prod-eu/shop/frontend:
        canary: frontend-canary
        router: {type: istio, object: frontend, stable: stable, canary: canary, routes: [primary]}
        depends_on: [checkout]
      prod-eu/shop/cart:
        blue_green: {service: cart, label: color, colors: {blue: cart-blue, green: cart-green}}

Everything a target option says can also be said with annotations on the workload (docs/kubernetes.md);
an option wins over an annotation. Validation checks shapes, files and kubeconfig contexts without
contacting any cluster, so a bad config fails start-up instead of the first rollback.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ROUTER_TYPES = ("istio", "nginx", "gateway", "replicas")
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class KubernetesConfigError(ValueError):
    """The platform options are invalid; the message lists every problem and where it is."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClusterOptions(_Model):
    #: Path to a kubeconfig (default: ``$KUBECONFIG`` or ``~/.kube/config``).
    kubeconfig: str | None = None
    #: Context in that kubeconfig (default: its current-context).
    context: str | None = None
    #: Use the pod's service account (the reactor running in the cluster it acts on).
    in_cluster: bool = False
    #: A bare API URL without auth or TLS: for the sandbox and local development only.
    server: str | None = None
    #: Seconds for connect and for read, per request.
    request_timeout: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _one_source(self) -> ClusterOptions:
        sources = [bool(self.in_cluster), bool(self.server), bool(self.kubeconfig or self.context)]
        if sum(sources) > 1:
            raise ValueError("give one of in_cluster, server, or kubeconfig/context")
        if self.server and not self.server.startswith(("http://", "https://")):
            raise ValueError(f"server {self.server!r} must be an http:// or https:// URL")
        return self


class RouterOptions(_Model):
    type: Literal["istio", "nginx", "gateway", "replicas"]
    #: VirtualService / HTTPRoute name (default: the target name), or the canary Ingress
    #: (default ``<name>-canary``).
    object: str | None = None
    #: Istio subset (or host) / Gateway backend Service of the stable and canary sides.
    stable: str | None = None
    canary: str | None = None
    #: Istio ``http[].name`` routes to change (default: every route that names both sides).
    routes: tuple[str, ...] = ()


class BlueGreenOptions(_Model):
    #: The Service whose selector picks the active colour (default: the target name).
    service: str | None = None
    #: The selector key holding the colour.
    label: str = "color"
    #: Colour -> Deployment (default: discovered from the Deployments the selector would match).
    colors: dict[str, str] = Field(default_factory=dict)


class TargetOptions(_Model):
    kind: Literal["Deployment", "Rollout", "Service"] | None = None
    #: The object's name when it differs from the target's.
    workload: str | None = None
    #: The canary Deployment of a canary pair (default ``<name>-canary`` when a router is set).
    canary: str | None = None
    router: RouterOptions | None = None
    blue_green: BlueGreenOptions | None = None
    release: str | None = None
    depends_on: tuple[str, ...] = ()


class KubernetesOptions(_Model):
    clusters: dict[str, ClusterOptions] = Field(default_factory=dict)
    #: Keyed ``cluster/namespace/name`` (``kubernetes/`` prefix allowed).
    targets: dict[str, TargetOptions] = Field(default_factory=dict)
    #: Fresh-read retries of a write that lost a resourceVersion race (409), before ConflictError.
    conflict_retries: int = Field(default=5, ge=0, le=50)
    #: Seconds between reads while waiting for readiness.
    poll_interval: float = Field(default=0.5, gt=0)
    #: Seconds ``switch`` waits for an idle colour it had to scale up before it moves traffic.
    switch_ready_timeout: float = Field(default=60.0, ge=0)
    #: Snapshot and restore referenced ConfigMaps/Secrets (docs/kubernetes.md#config-snapshots).
    snapshot_config: bool = True
    #: Namespace of the per-target Lease locks (default: the target's namespace).
    lock_namespace: str | None = None

    @field_validator("targets")
    @classmethod
    def _target_keys(cls, value: dict[str, TargetOptions]) -> dict[str, TargetOptions]:
        out = {}
        for key, options in value.items():
            parts = key.split("/")
            if len(parts) == 4 and parts[0] == "kubernetes":
                parts = parts[1:]
            if len(parts) != 3 or not all(parts):
                raise ValueError(f"target key {key!r} must be cluster/namespace/name, e.g. prod-eu/shop/checkout")
            out["/".join(parts)] = options
        return out

    @model_validator(mode="after")
    def _known_clusters(self) -> KubernetesOptions:
        clusters = self.clusters or {"default": ClusterOptions()}
        for key in self.targets:
            cluster = key.split("/", 1)[0]
            if cluster not in clusters:
                raise ValueError(f"target {key!r} names cluster {cluster!r}; configured: {', '.join(sorted(clusters))}")
        return self


def parse_options(raw: Mapping[str, Any], *, environ: Mapping[str, str] | None = None) -> KubernetesOptions:
    """Validate ``raw`` ; raise KubernetesConfigError listing every problem."""
    try:
        options = KubernetesOptions.model_validate(dict(raw))
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"]) or "(top level)"
            lines.append(f"  {where}: {error['msg'].removeprefix('Value error, ')}")
        raise KubernetesConfigError(
            "invalid kubernetes platform options:\n" + "\n".join(lines) + "\nSee docs/kubernetes.md#configuration"
        ) from None
    env = os.environ if environ is None else environ
    problems = []
    for name, cluster in (options.clusters or {"default": ClusterOptions()}).items():
        problem = check_cluster(name, cluster, env)
        if problem:
            problems.append(f"  clusters.{name}: {problem}")
    if problems:
        raise KubernetesConfigError(
            "invalid kubernetes platform options:\n"
            + "\n".join(problems)
            + "\nSee docs/kubernetes.md#clusters-aks-and-gke"
        )
    return options


def kubeconfig_path(cluster: ClusterOptions, environ: Mapping[str, str]) -> Path:
    if cluster.kubeconfig:
        return Path(cluster.kubeconfig).expanduser()
    first = (environ.get("KUBECONFIG") or "").split(os.pathsep)[0]
    return Path(first).expanduser() if first else Path.home() / ".kube" / "config"


def check_cluster(name: str, cluster: ClusterOptions, environ: Mapping[str, str]) -> str | None:
    """What is wrong with one cluster's options, without contacting it; None if nothing."""
    if cluster.server:
        return None
    if cluster.in_cluster:
        if not environ.get("KUBERNETES_SERVICE_HOST") or not (SERVICE_ACCOUNT / "token").exists():
            return (
                "in_cluster is set but this process is not running in a pod (no KUBERNETES_SERVICE_HOST or "
                f"{SERVICE_ACCOUNT}/token); use kubeconfig/context outside the cluster"
            )
        return None
    path = kubeconfig_path(cluster, environ)
    if not path.is_file():
        return f"kubeconfig {path} does not exist; set clusters.{name}.kubeconfig (or in_cluster: true in a pod)"
    import yaml

    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        return f"kubeconfig {path} cannot be read as YAML: {exc}"
    contexts = [c.get("name") for c in document.get("contexts") or [] if isinstance(c, dict)]
    wanted = cluster.context or document.get("current-context")
    if not wanted:
        return f"kubeconfig {path} has no current-context; set clusters.{name}.context to one of {contexts}"
    if wanted not in contexts:
        return f"context {wanted!r} is not in kubeconfig {path}; it has {contexts}"
    return _check_exec_plugin(document, wanted, path, environ)


def _check_exec_plugin(document: Mapping[str, Any], context: str, path: Path, environ: Mapping[str, str]) -> str | None:
    """An exec credential plugin (AKS kubelogin, GKE gke-gcloud-auth-plugin) must be installed.

    Without this check the client logs the failure and carries on unauthenticated, and the first rollback
    fails with a 401 that says nothing about the missing plugin.
    """
    import shutil

    ctx = next((c.get("context") or {} for c in document.get("contexts") or [] if c.get("name") == context), {})
    user = next((u.get("user") or {} for u in document.get("users") or [] if u.get("name") == ctx.get("user")), {})
    plugin = user.get("exec") or {}
    command = plugin.get("command")
    if not command:
        return None
    search = environ.get("PATH", os.defpath)
    for entry in plugin.get("env") or []:
        if entry.get("name") == "PATH":
            search = entry.get("value", search)
    if os.path.isabs(command) or os.sep in command:
        found = (path.parent / command).is_file() if not os.path.isabs(command) else Path(command).is_file()
    else:
        found = shutil.which(command, path=search) is not None
    if found:
        return None
    hint = {
        "kubelogin": "AKS: install it with 'az aks install-cli' (or from the kubelogin releases)",
        "gke-gcloud-auth-plugin": "GKE: install it with 'gcloud components install gke-gcloud-auth-plugin'",
    }.get(Path(command).name, "install it or fix the kubeconfig's users[].user.exec.command")
    return f"context {context!r} of {path} uses exec plugin {command!r}, which is not installed; {hint}"


def build_api_client(name: str, cluster: ClusterOptions, environ: Mapping[str, str] | None = None) -> Any:
    """A ``kubernetes.client.ApiClient`` for one cluster (exec plugins, tokens, TLS)."""
    import urllib3
    from kubernetes import client, config

    env = os.environ if environ is None else environ
    configuration = client.Configuration()
    if cluster.server:
        configuration.host = cluster.server.rstrip("/")
    elif cluster.in_cluster:
        config.load_incluster_config(client_configuration=configuration)
    else:
        config.load_kube_config(
            config_file=str(kubeconfig_path(cluster, env)),
            context=cluster.context,
            client_configuration=configuration,
            persist_config=False,
        )
    # One reconnect for a pooled connection the server closed; retrying beyond that is the caller's job
    # (TemporaryError with a delay), so a dead API server fails fast instead of hanging a worker.
    configuration.retries = urllib3.Retry(total=1, connect=1, read=0, status=0, redirect=0, backoff_factor=0)
    api = client.ApiClient(configuration)
    api.user_agent = "smart-rollback/kubernetes"
    return api
