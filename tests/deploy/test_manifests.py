"""deploy/kubernetes, applied by the real kubectl to the sandbox API server and checked across files.

kubectl renders the kustomization and applies it (plus the two example files a user applies by hand); the
objects read back must be what was written, and a second apply must change nothing. The sandbox serves no
OpenAPI document, so client-side validation is off there; the field check is done instead against the
official Kubernetes client's models (pydantic, unknown fields forbidden). The rest are the joins between
files that no API server checks: ports, names, selectors, env vars, and the reactor's settings, loaded
by the project's own loader and by ``smart-rollback check-config``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
import yaml

import reactor
from exporters.config import load_config
from reactor.settings import ConfigError, load_settings
from sandbox.server import SandboxServer
from tests.conftest import ROOT
from tests.deploy.conftest import EXAMPLES, KUBE, Obj, container, find, parse_cli, port_of, write_mounted
from tests.sandbox.support import start_sandbox

REACTOR = "smart-rollback-reactor"
EXPORTER = "smart-rollback-exporter"
#: Env vars with literal values: paths on the pod's own emptyDir, nothing secret or deployment-specific.
LITERAL_ENV = {"PROMETHEUS_MULTIPROC_DIR", "TMPDIR", "HOME"}


class Kubectl:
    """The real kubectl on one sandbox, with its own discovery cache (KUBECTL_SANDBOX.md §1.2)."""

    def __init__(self, binary: str, server: SandboxServer, home: Path) -> None:
        self.binary, self.home = binary, home
        self.kubeconfig = server.write_kubeconfig(home / "kubeconfig")

    def __call__(self, *args: str) -> str:
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(self.home), "KUBECONFIG": str(self.kubeconfig)}
        result = subprocess.run(
            [self.binary, "--cache-dir", str(self.home / "cache"), *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )
        assert result.returncode == 0, f"kubectl {' '.join(args)} failed: {result.stderr}"
        return result.stdout

    def apply(self) -> list[str]:
        # --validate=false: the sandbox has no /openapi (test_fields_are_kubernetes_fields checks them).
        out = self("apply", "--validate=false", "-k", str(KUBE))
        for example in EXAMPLES:
            out += self("apply", "--validate=false", "-f", str(example))
        return out.splitlines()


@pytest.fixture(scope="module")
def applied(kubectl: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Kubectl, list[str]]]:
    """A demo sandbox (it has the example RoleBinding's namespace, ``shop``) with everything applied once."""
    server = start_sandbox()
    try:
        client = Kubectl(kubectl, server, tmp_path_factory.mktemp("kubectl"))
        yield client, client.apply()
    finally:
        server.stop()


def _name(obj: Obj) -> str:
    """kubectl's ``kind.group/name`` for an object, as apply prints it."""
    group = obj["apiVersion"].rpartition("/")[0]
    return f"{obj['kind'].lower()}{'.' + group if group else ''}/{obj['metadata']['name']}"


def _subset(written: Any, live: Any, where: str = "") -> list[str]:
    """Where ``live`` lacks or differs from what was ``written`` (the server may add fields)."""
    if isinstance(written, dict) and isinstance(live, dict):
        return [p for k, v in written.items() for p in _subset(v, live.get(k), f"{where}.{k}")]
    if isinstance(written, list) and isinstance(live, list) and len(written) == len(live):
        return [p for i, (w, x) in enumerate(zip(written, live)) for p in _subset(w, x, f"{where}[{i}]")]
    return [] if written == live else [f"{where}: wrote {written!r}, read {live!r}"]


def test_kubectl_applies_every_object_and_reads_it_back(applied, rendered: list[Obj]) -> None:
    kube, first = applied
    assert sorted(first) == sorted(f"{_name(obj)} created" for obj in rendered)
    for obj in rendered:
        namespace = ["-n", obj["metadata"]["namespace"]] if "namespace" in obj["metadata"] else []
        live = json.loads(kube("get", _name(obj), *namespace, "-o", "json"))
        written = {k: v for k, v in obj.items() if k not in ("stringData",)}
        assert not _subset(written, live), (_name(obj), _subset(written, live))
        if obj["kind"] == "Secret":  # stringData is write-only: the server keeps it base64-encoded in data
            assert set(live["data"]) == set(obj["stringData"])


def test_a_second_apply_changes_nothing(applied) -> None:
    """Re-applying the kustomization (what an upgrade does) leaves every object as it is."""
    kube, _first = applied
    again = kube("apply", "--validate=false", "-k", str(KUBE)).splitlines()
    changed = [line for line in again if not line.endswith(" unchanged")]
    # kubectl re-sends a PodDisruptionBudget's selector on every apply (its patch strategy is "replace"), so
    # it reports "configured" while the object stays the same; the read-back test covers its content.
    assert changed == [f"poddisruptionbudget.policy/{REACTOR} configured"]


def test_both_deployments_roll_out(applied) -> None:
    kube, _first = applied
    for name in (REACTOR, EXPORTER):
        out = kube("rollout", "status", f"deployment/{name}", "-n", "smart-rollback", "--timeout=20s")
        assert "successfully rolled out" in out


def test_fields_are_kubernetes_fields(rendered: list[Obj]) -> None:
    """A misspelt field (``readinesProbe``) is dropped silently by a lenient server; the models refuse it."""
    for obj in rendered:
        model = getattr(kubernetes.client, f"V1{obj['kind']}", None)
        assert model is not None, f"no kubernetes.client model for {obj['kind']}"
        assert hasattr(model, "model_validate"), "needs the kubernetes client >= 37 (pydantic models)"
        model.model_validate(obj)


def test_ports_line_up(rendered: list[Obj], tmp_path: Path) -> None:
    """Service targetPort = container port = probe ports = the port the reactor's settings bind."""
    reactor_container = container(find(rendered, "Deployment", REACTOR))
    port = port_of(reactor_container, "http")
    service = find(rendered, "Service", REACTOR)
    assert [port_of(reactor_container, p["targetPort"]) for p in service["spec"]["ports"]] == [port]
    for probe in ("readinessProbe", "livenessProbe"):
        assert port_of(reactor_container, reactor_container[probe]["httpGet"]["port"]) == port
    assert reactor_container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert reactor_container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    settings = _reactor_settings(rendered, tmp_path)
    host, _, bind_port = settings.server.bind.rpartition(":")
    assert (host, int(bind_port)) == ("0.0.0.0", port), "the reactor must listen on the pod's address"

    exporter = find(rendered, "Deployment", EXPORTER)
    exporter_container = container(exporter)
    _command, params = parse_cli(exporter_container["args"])
    config = load_config(write_mounted(exporter, rendered, params["config_path"], tmp_path), environ={})
    metrics = port_of(exporter_container, "metrics")
    assert config.listen == f"0.0.0.0:{metrics}" and params["listen"] is None
    for probe in ("readinessProbe", "livenessProbe"):
        assert port_of(exporter_container, exporter_container[probe]["tcpSocket"]["port"]) == metrics


def test_names_and_selectors_join_up(rendered: list[Obj]) -> None:
    namespace = find(rendered, "Namespace")["metadata"]["name"]
    account = find(rendered, "ServiceAccount")
    assert account["metadata"]["namespace"] == namespace
    reactor_deployment = find(rendered, "Deployment", REACTOR)
    assert reactor_deployment["spec"]["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]
    subject = {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": namespace}
    for binding in (d for d in rendered if d["kind"] == "RoleBinding"):
        assert binding["subjects"] == [subject], binding["metadata"]["name"]
        role = find(rendered, binding["roleRef"]["kind"], binding["roleRef"]["name"])
        if role["kind"] == "Role":
            assert role["metadata"]["namespace"] == binding["metadata"]["namespace"]
    for obj in rendered:
        if obj["kind"] not in ("Namespace", "ClusterRole") and obj["metadata"]["name"] != "smart-rollback":
            assert obj["metadata"]["namespace"] == namespace or obj in _target_examples(rendered), _name(obj)
    pods = reactor_deployment["spec"]["template"]["metadata"]["labels"]
    for selector in (
        reactor_deployment["spec"]["selector"]["matchLabels"],
        find(rendered, "Service", REACTOR)["spec"]["selector"],
        find(rendered, "PodDisruptionBudget", REACTOR)["spec"]["selector"]["matchLabels"],
    ):
        assert selector.items() <= pods.items()
    exporter = find(rendered, "Deployment", EXPORTER)
    assert (
        exporter["spec"]["selector"]["matchLabels"].items()
        <= exporter["spec"]["template"]["metadata"]["labels"].items()
    )
    assert (
        find(rendered, "PodDisruptionBudget", REACTOR)["spec"]["minAvailable"] < reactor_deployment["spec"]["replicas"]
    )


def _target_examples(rendered: list[Obj]) -> list[Obj]:
    return [d for d in rendered if d["kind"] == "RoleBinding" and d["roleRef"]["kind"] == "ClusterRole"]


def test_every_env_var_comes_from_the_secret_or_a_configmap(rendered: list[Obj], tmp_path: Path) -> None:
    """Credentials only by reference, every reference resolvable, and every SMART_ROLLBACK_* name read."""
    for deployment in (find(rendered, "Deployment", REACTOR), find(rendered, "Deployment", EXPORTER)):
        for var in container(deployment).get("env", []):
            if "value" in var:
                assert var["name"] in LITERAL_ENV, f"{var['name']}: set it from the Secret or a ConfigMap"
                continue
            ref = var["valueFrom"].get("secretKeyRef") or var["valueFrom"]["configMapKeyRef"]
            kind = "Secret" if "secretKeyRef" in var["valueFrom"] else "ConfigMap"
            source = find(rendered, kind, ref["name"])
            assert ref["key"] in {**source.get("data", {}), **source.get("stringData", {})}, var["name"]
    env = _reactor_env(rendered)
    config = _reactor_config(rendered, tmp_path)
    everything = load_settings(config, env=env)
    for name in (n for n in env if n.startswith("SMART_ROLLBACK_")):
        try:
            without = load_settings(config, env={k: v for k, v in env.items() if k != name})
        except ConfigError:
            continue  # needed at all (the token): read, then
        assert without != everything, f"{name} changes no setting: misspelt? (docs/configuration.md)"
    assert everything.database.url == find(rendered, "Secret", "smart-rollback")["stringData"]["database-url"]


def test_reactor_settings_are_safe_by_default(rendered: list[Obj], tmp_path: Path) -> None:
    """A new install records and recommends; it never rolls back on its own until the user opts in."""
    settings = _reactor_settings(rendered, tmp_path)
    assert settings.policies.defaults.mode == "recommend"
    assert all(policy.mode in (None, "observe", "recommend") for policy in settings.policies.targets)
    assert not settings.kill_switch and settings.auth.tokens and not settings.auth.insecure
    assert settings.database.url.startswith("postgresql"), "replicas share PostgreSQL; SQLite is one pod's"
    kubernetes_platform = settings.platforms[settings.identity.default_platform]
    assert kubernetes_platform.type == "kubernetes"
    clusters = kubernetes_platform.options["clusters"]
    assert clusters[settings.identity.default_cluster] == {"in_cluster": True}
    lock_namespace = kubernetes_platform.options["lock_namespace"]
    assert lock_namespace == find(rendered, "Namespace")["metadata"]["name"]
    role = find(rendered, "Role", "smart-rollback-leases")
    assert role["metadata"]["namespace"] == lock_namespace
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]}
    ]
    assert find(rendered, "Deployment", REACTOR)["spec"]["replicas"] >= 2


def test_check_config_accepts_the_reactor_config(rendered: list[Obj], tmp_path: Path) -> None:
    """``smart-rollback check-config`` with the pod's env. Outside a pod, ``in_cluster`` cannot be checked: the
    file must fail on that alone, and pass once that one cluster points at a sandbox instead."""
    config = _reactor_config(rendered, tmp_path)
    env = {**_reactor_env(rendered), "PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}

    def check(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "reactor", "check-config", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            cwd=ROOT,
            check=False,
        )

    result = check(config)
    problems = [line for line in result.stderr.splitlines() if line.startswith("  - ")]
    assert result.returncode == 1 and len(problems) == 1, result.stderr
    assert "clusters.local: in_cluster is set but this process is not running in a pod" in result.stderr
    document = yaml.safe_load(config.read_text())
    document["platforms"]["kubernetes"]["clusters"]["local"] = {"server": "http://127.0.0.1:1"}
    elsewhere = tmp_path / "outside-a-pod.yaml"
    elsewhere.write_text(yaml.safe_dump(document))
    result = check(elsewhere)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout and "default mode recommend" in result.stdout


def test_containers_are_locked_down(rendered: list[Obj]) -> None:
    """Non-root, read-only root filesystem, every write on an emptyDir, requests and a memory limit."""
    for name in (REACTOR, EXPORTER):
        deployment = find(rendered, "Deployment", name)
        pod = deployment["spec"]["template"]["spec"]
        spec = container(deployment)
        assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] > 0
        assert spec["securityContext"]["readOnlyRootFilesystem"]
        assert not spec["securityContext"]["allowPrivilegeEscalation"]
        assert spec["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert {"cpu", "memory"} <= spec["resources"]["requests"].keys() and "memory" in spec["resources"]["limits"]
        empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
        writable = [m["mountPath"] for m in spec["volumeMounts"] if m["name"] in empty_dirs]
        env = {v["name"]: v.get("value") for v in spec.get("env", [])}
        for var in ("TMPDIR", "HOME", "PROMETHEUS_MULTIPROC_DIR"):
            if var in env:
                assert any(env[var].startswith(path) for path in writable), f"{name}: {var} is not writable"
    assert "PROMETHEUS_MULTIPROC_DIR" in {v["name"] for v in container(find(rendered, "Deployment", REACTOR))["env"]}


def test_the_image_is_this_release_and_runs_real_commands(rendered: list[Obj]) -> None:
    kustomization = yaml.safe_load((KUBE / "kustomization.yaml").read_text())
    (image,) = kustomization["images"]
    assert image["newTag"] == reactor.__version__, "tag the image of this release in kustomization.yaml"
    for name in (REACTOR, EXPORTER):
        spec = container(find(rendered, "Deployment", name))
        assert spec["image"] == f"{image['newName']}:{image['newTag']}"
        assert "command" not in spec, "keep the image's ENTRYPOINT (smart-rollback); set args only"
        parse_cli(spec["args"])
    assert parse_cli(container(find(rendered, "Deployment", REACTOR))["args"])[0] == "serve"
    assert parse_cli(container(find(rendered, "Deployment", EXPORTER))["args"])[0] == "exporter"


# --------------------------------------------------------------------------------------------- helpers


def _reactor_env(rendered: list[Obj]) -> dict[str, str]:
    """The reactor container's environment, with the Secret example's placeholder values."""
    env = {}
    for var in container(find(rendered, "Deployment", REACTOR)).get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        elif "secretKeyRef" in var["valueFrom"]:
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = find(rendered, "Secret", ref["name"])["stringData"][ref["key"]]
        else:
            ref = var["valueFrom"]["configMapKeyRef"]
            env[var["name"]] = find(rendered, "ConfigMap", ref["name"])["data"][ref["key"]]
    return env


def _reactor_config(rendered: list[Obj], into: Path) -> Path:
    deployment = find(rendered, "Deployment", REACTOR)
    _command, params = parse_cli(container(deployment)["args"])
    return write_mounted(deployment, rendered, params["config"], into)


def _reactor_settings(rendered: list[Obj], into: Path) -> Any:
    return load_settings(_reactor_config(rendered, into), env=_reactor_env(rendered))
