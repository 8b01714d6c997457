"""Platform options: validation at start-up, several clusters, exec-auth (AKS/GKE-style) contexts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from sandbox.server import SandboxServer
from strategies import TargetRef
from strategies.kubernetes.config import KubernetesConfigError
from strategies.kubernetes.platform import KubernetesPlatform
from tests.sandbox.support import get, start_sandbox

EXEC_PLUGIN = """\
import json
print(json.dumps({
    "kind": "ExecCredential",
    "apiVersion": "client.authentication.k8s.io/v1beta1",
    "status": {"token": "token-from-plugin", "expirationTimestamp": "2099-01-01T00:00:00Z"},
}))
"""


def error_of(**options) -> str:
    with pytest.raises(KubernetesConfigError) as error:
        KubernetesPlatform(environ={}, **options)
    return str(error.value)


def test_shapes_are_validated_with_every_problem_listed(kubeconfig: Path) -> None:
    message = error_of(
        clusters={"demo": {"kubeconfig": str(kubeconfig), "contxt": "x"}},
        targets={"shop/checkout": {}},
        conflict_retries=-1,
    )
    assert message.startswith("invalid kubernetes platform options:")
    assert "clusters.demo.contxt: Extra inputs are not permitted" in message
    assert "conflict_retries: Input should be greater than or equal to 0" in message
    assert "See docs/kubernetes.md#configuration" in message
    assert "must be cluster/namespace/name" in error_of(targets={"shop/checkout": {}})
    assert "names cluster 'prod'; configured: demo" in error_of(
        clusters={"demo": {"kubeconfig": str(kubeconfig)}}, targets={"prod/shop/checkout": {}}
    )
    assert "router.type: Input should be 'istio', 'nginx', 'gateway' or 'replicas'" in error_of(
        clusters={"demo": {"kubeconfig": str(kubeconfig)}},
        targets={"demo/shop/x": {"router": {"type": "linkerd"}}},
    )
    assert "give one of in_cluster, server, or kubeconfig/context" in error_of(
        clusters={"demo": {"kubeconfig": str(kubeconfig), "server": "http://x"}}
    )


def test_clusters_are_checked_without_contacting_them(tmp_path: Path, kubeconfig: Path) -> None:
    assert f"kubeconfig {tmp_path}/none does not exist" in error_of(
        clusters={"p": {"kubeconfig": str(tmp_path / "none")}}
    )
    assert "context 'prod' is not in kubeconfig" in error_of(
        clusters={"p": {"kubeconfig": str(kubeconfig), "context": "prod"}}
    )
    assert "not running in a pod" in error_of(clusters={"p": {"in_cluster": True}})
    # No clusters at all: the default kubeconfig ($KUBECONFIG, then ~/.kube/config), checked the same way.
    with pytest.raises(KubernetesConfigError, match=r"clusters.default: kubeconfig .* does not exist"):
        KubernetesPlatform(environ={"KUBECONFIG": str(tmp_path / "missing")})
    with KubernetesPlatform(environ={"KUBECONFIG": str(kubeconfig)}) as platform:
        assert platform.describe(TargetRef("kubernetes", "default", "shop", "payments")).current_revision == 2


def test_exec_auth_contexts_send_the_plugins_token(sandbox: SandboxServer, tmp_path: Path) -> None:
    """AKS (kubelogin) and GKE (gke-gcloud-auth-plugin) contexts are exec plugins: the client runs them."""
    plugin = tmp_path / "plugin.py"
    plugin.write_text(EXEC_PLUGIN)
    config = sandbox.kubeconfig()
    config["users"] = [
        {
            "name": "sandbox",
            "user": {
                "exec": {
                    "apiVersion": "client.authentication.k8s.io/v1beta1",
                    "command": sys.executable,
                    "args": [str(plugin)],
                    "interactiveMode": "Never",
                }
            },
        }
    ]
    (tmp_path / "kubeconfig").write_text(json.dumps(config))
    with KubernetesPlatform(clusters={"gke": {"kubeconfig": str(tmp_path / "kubeconfig")}}) as platform:
        platform.describe(TargetRef("kubernetes", "gke", "shop", "payments"))
    assert {r.authorization for r in sandbox.requests} == {"Bearer token-from-plugin"}
    for plugin_name, hint in (
        ("kubelogin", "az aks install-cli"),
        ("gke-gcloud-auth-plugin", "gcloud components install gke-gcloud-auth-plugin"),
    ):
        config["users"][0]["user"]["exec"]["command"] = plugin_name
        (tmp_path / "kubeconfig").write_text(json.dumps(config))
        with pytest.raises(KubernetesConfigError) as error:
            KubernetesPlatform(
                environ={"PATH": str(tmp_path)}, clusters={"c": {"kubeconfig": str(tmp_path / "kubeconfig")}}
            )
        assert f"exec plugin {plugin_name!r}, which is not installed" in str(error.value) and hint in str(error.value)


def test_several_clusters_by_name(tmp_path: Path) -> None:
    prod, staging = start_sandbox(), start_sandbox()
    try:
        clusters = {
            "prod": {"kubeconfig": str(prod.write_kubeconfig(tmp_path / "prod"))},
            "staging": {"server": staging.url},
        }
        with KubernetesPlatform(clusters=clusters) as platform:
            platform.revert(TargetRef("kubernetes", "prod", "shop", "payments"))
            assert platform.describe(TargetRef("kubernetes", "prod", "shop", "payments")).current_revision == 3
            assert platform.describe(TargetRef("kubernetes", "staging", "shop", "payments")).current_revision == 2
        assert get(staging, "Deployment", "payments")["spec"]["template"]["spec"]["containers"][0]["image"].endswith(
            "1.5.0"
        )
    finally:
        prod.stop()
        staging.stop()


def test_per_target_options_override_annotations(sandbox: SandboxServer, kubeconfig: Path) -> None:
    """The catalog pair is annotated as NGINX; an explicit option makes it a replica-ratio pair instead."""
    options = {
        "clusters": {"demo": {"kubeconfig": str(kubeconfig)}},
        "targets": {"demo/shop/catalog": {"router": {"type": "replicas"}, "depends_on": ["reviews"], "release": "r2"}},
    }
    with KubernetesPlatform(**options) as platform:
        state = platform.describe(TargetRef("kubernetes", "demo", "shop", "catalog"))
    assert state.router == "replicas" and state.traffic == {"stable": 67, "canary": 33}
    assert state.dependencies == {"catalog": ("reviews",)} and state.components == ("catalog",)


def test_a_kubeconfig_the_client_cannot_load_is_a_permanent_error(tmp_path: Path) -> None:
    """Valid YAML with the context present, but no usable cluster entry: fails at first use, wrapped."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [],
        "users": [{"name": "u", "user": {}}],
        "contexts": [{"name": "c", "context": {"cluster": "missing", "user": "u"}}],
        "current-context": "c",
    }
    (tmp_path / "kubeconfig").write_text(json.dumps(config))
    from strategies import PermanentError

    with (
        KubernetesPlatform(clusters={"c": {"kubeconfig": str(tmp_path / "kubeconfig")}}) as platform,
        pytest.raises(PermanentError, match="cannot set up the client of cluster 'c'"),
    ):
        platform.describe(TargetRef("kubernetes", "c", "shop", "payments"))
