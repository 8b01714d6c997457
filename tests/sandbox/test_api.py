"""The sandbox as the official Python client and a raw HTTP client see it (KUBECTL_SANDBOX.md §1-§3, §8)."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch

from sandbox.resources import AGGREGATED_CONTENT_TYPE
from sandbox.server import SandboxServer
from tests.sandbox.support import get


def api_client(kubeconfig: Path) -> client.ApiClient:
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    return client.ApiClient(configuration)


def http(
    server: SandboxServer, method: str, path: str, body: Any = None, headers: dict | None = None
) -> tuple[int, dict, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(server.url + path, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read() or b"null")


def test_version_picks_the_dispatchers_embedded_kubectl(sandbox: SandboxServer) -> None:
    status, headers, body = http(sandbox, "GET", "/version")
    assert status == 200 and body["major"] == "1" and body["minor"] == "32"
    assert headers["Content-Type"] == "application/json"


def test_legacy_discovery(sandbox: SandboxServer) -> None:
    _, _, groups = http(sandbox, "GET", "/apis")
    names = {g["name"] for g in groups["groups"]}
    assert {
        "apps",
        "coordination.k8s.io",
        "networking.istio.io",
        "gateway.networking.k8s.io",
        "argoproj.io",
    } <= names
    _, _, apps = http(sandbox, "GET", "/apis/apps/v1")
    deploy = next(r for r in apps["resources"] if r["name"] == "deployments")
    assert deploy["kind"] == "Deployment" and deploy["namespaced"] and "deploy" in deploy["shortNames"]
    _, _, istio = http(sandbox, "GET", "/apis/networking.istio.io/v1beta1")
    assert any(r["name"] == "virtualservices" for r in istio["resources"]), "older Istio versions are served too"


def test_aggregated_discovery_on_request(sandbox: SandboxServer) -> None:
    accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
    status, headers, body = http(sandbox, "GET", "/apis", headers={"Accept": accept})
    assert status == 200 and headers["Content-Type"] == AGGREGATED_CONTENT_TYPE
    apps = next(i for i in body["items"] if i["metadata"]["name"] == "apps")
    resource = next(r for r in apps["versions"][0]["resources"] if r["resource"] == "deployments")
    assert resource["scope"] == "Namespaced" and resource["responseKind"]["kind"] == "Deployment"
    _, _, core = http(sandbox, "GET", "/api", headers={"Accept": accept})
    assert core["items"][0]["metadata"]["name"] == ""


def test_typed_client_models_accept_our_objects(kubeconfig: Path) -> None:
    """The 37.x pydantic models are strict (§8.2): whole lists fail on one bad item."""
    with api_client(kubeconfig) as api:
        apps = client.AppsV1Api(api)
        deployments = apps.list_deployment_for_all_namespaces()
        assert {"payments", "checkout", "frontend"} <= {d.metadata.name for d in deployments.items}
        payments = apps.read_namespaced_deployment("payments", "shop")
        assert payments.metadata.annotations["deployment.kubernetes.io/revision"] == "2"
        rs = apps.list_namespaced_replica_set("shop", label_selector="app=payments")
        assert sorted(r.metadata.annotations["deployment.kubernetes.io/revision"] for r in rs.items) == [
            "1",
            "2",
        ]
        core = client.CoreV1Api(api)
        assert core.read_namespaced_config_map("payments-config", "shop").data["TIMEOUT_MS"] == "1200"
        assert core.list_namespaced_pod("shop", label_selector="app=payments").items
        assert client.CoordinationV1Api(api).list_namespaced_lease("shop").items == []
        custom = client.CustomObjectsApi(api)
        vs = custom.get_namespaced_custom_object("networking.istio.io", "v1", "shop", "virtualservices", "frontend")
        assert [r["weight"] for r in vs["spec"]["http"][0]["route"]] == [40, 60]


def test_patches_through_the_client(sandbox: SandboxServer, kubeconfig: Path) -> None:
    with api_client(kubeconfig) as api:
        apps = client.AppsV1Api(api)
        # dict body -> strategic merge patch (containers merge by name)
        apps.patch_namespaced_deployment(
            "checkout",
            "shop",
            {"spec": {"template": {"spec": {"containers": [{"name": "checkout", "image": "x:1"}]}}}},
        )
        container = get(sandbox, "Deployment", "checkout")["spec"]["template"]["spec"]["containers"][0]
        assert container["image"] == "x:1" and container["envFrom"], "SMP kept the other container fields"
        # list body -> JSON patch
        apps.patch_namespaced_deployment("checkout", "shop", [{"op": "replace", "path": "/spec/replicas", "value": 3}])
        assert get(sandbox, "Deployment", "checkout")["spec"]["replicas"] == 3
        # merge patch on a custom resource needs the explicit content type (§8.1)
        client.CustomObjectsApi(api).patch_namespaced_custom_object(
            "networking.istio.io",
            "v1",
            "shop",
            "virtualservices",
            "frontend",
            {"metadata": {"labels": {"x": "y"}}},
        )
        assert get(sandbox, "VirtualService", "frontend")["metadata"]["labels"] == {"x": "y"}
    content_types = {r.content_type for r in sandbox.requests if r.method == "PATCH"}
    assert {
        "application/strategic-merge-patch+json",
        "application/json-patch+json",
        "application/merge-patch+json",
    } <= content_types


def test_custom_resources_reject_strategic_merge(sandbox: SandboxServer) -> None:
    status, _, body = http(
        sandbox,
        "PATCH",
        "/apis/networking.istio.io/v1/namespaces/shop/virtualservices/frontend",
        {"spec": {}},
        {"Content-Type": "application/strategic-merge-patch+json"},
    )
    assert status == 415 and body["reason"] == "UnsupportedMediaType"


def test_stale_resource_version_conflicts(sandbox: SandboxServer) -> None:
    path = "/apis/apps/v1/namespaces/shop/deployments/payments"
    body = {"metadata": {"resourceVersion": "1"}, "spec": {"replicas": 5}}
    status, _, answer = http(sandbox, "PATCH", path, body, {"Content-Type": "application/merge-patch+json"})
    assert status == 409 and answer["reason"] == "Conflict"
    assert "the object has been modified" in answer["message"]
    assert get(sandbox, "Deployment", "payments")["spec"]["replicas"] == 2
    current = get(sandbox, "Deployment", "payments")["metadata"]["resourceVersion"]
    body["metadata"]["resourceVersion"] = current
    status, _, answer = http(sandbox, "PATCH", path, body, {"Content-Type": "application/merge-patch+json"})
    assert status == 200 and answer["spec"]["replicas"] == 5
    assert int(answer["metadata"]["resourceVersion"]) > int(current)


def test_dry_run_is_not_persisted(sandbox: SandboxServer) -> None:
    path = "/apis/apps/v1/namespaces/shop/deployments/payments?dryRun=All"
    status, _, answer = http(
        sandbox, "PATCH", path, {"spec": {"replicas": 7}}, {"Content-Type": "application/merge-patch+json"}
    )
    assert status == 200 and answer["spec"]["replicas"] == 7
    assert get(sandbox, "Deployment", "payments")["spec"]["replicas"] == 2


def test_create_without_content_type_and_errors_as_status(sandbox: SandboxServer) -> None:
    """The client's create/replace send no Content-Type (§8.1): the body is JSON anyway."""
    lease = {
        "metadata": {"name": "l1"},
        "spec": {"holderIdentity": "a", "renewTime": "2026-11-26T14:52:57.569408+00:00"},
    }
    status, _, answer = http(sandbox, "POST", "/apis/coordination.k8s.io/v1/namespaces/shop/leases", lease)
    assert status == 201 and answer["kind"] == "Lease" and answer["apiVersion"] == "coordination.k8s.io/v1"
    status, _, answer = http(sandbox, "POST", "/apis/coordination.k8s.io/v1/namespaces/shop/leases", lease)
    assert status == 409 and answer["reason"] == "AlreadyExists"
    status, _, answer = http(sandbox, "GET", "/apis/apps/v1/namespaces/shop/deployments/nope")
    assert status == 404 and answer == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'deployments.apps "nope" not found',
        "reason": "NotFound",
        "code": 404,
        "details": {"name": "nope", "group": "apps", "kind": "deployments"},
    }


def test_field_selector_and_table(sandbox: SandboxServer) -> None:
    _, _, listing = http(
        sandbox, "GET", "/apis/apps/v1/namespaces/shop/deployments?fieldSelector=metadata.name%3Dpayments"
    )
    assert [d["metadata"]["name"] for d in listing["items"]] == ["payments"]
    assert listing["kind"] == "DeploymentList" and listing["metadata"]["resourceVersion"]
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    _, headers, table = http(sandbox, "GET", "/apis/apps/v1/deployments?limit=500", headers={"Accept": accept})
    assert headers["Content-Type"].startswith("application/json;as=Table")
    assert [c["name"] for c in table["columnDefinitions"]][:5] == [
        "Name",
        "Ready",
        "Up-to-date",
        "Available",
        "Age",
    ]
    row = next(r for r in table["rows"] if r["cells"][0] == "inventory")
    assert row["cells"][1] == "2/2"
    assert row["object"]["kind"] == "PartialObjectMetadata" and row["object"]["metadata"]["namespace"] == "shop"


def test_scale_subresource(sandbox: SandboxServer) -> None:
    path = "/apis/apps/v1/namespaces/shop/deployments/payments/scale"
    _, _, scale = http(sandbox, "GET", path)
    assert scale["kind"] == "Scale" and scale["apiVersion"] == "autoscaling/v1" and scale["spec"]["replicas"] == 2
    _, _, scale = http(
        sandbox, "PATCH", path, {"spec": {"replicas": 4}}, {"Content-Type": "application/merge-patch+json"}
    )
    assert scale["spec"]["replicas"] == 4 and get(sandbox, "Deployment", "payments")["status"]["readyReplicas"] == 4


def test_watch_streams_changes(sandbox: SandboxServer, kubeconfig: Path) -> None:
    with api_client(kubeconfig) as api:
        apps = client.AppsV1Api(api)
        rv = apps.list_namespaced_deployment("shop").metadata.resource_version
        seen: list[tuple[str, int]] = []

        def change() -> None:
            apps.patch_namespaced_deployment("payments", "shop", {"spec": {"replicas": 3}})

        timer = threading.Timer(0.2, change)
        timer.start()
        stream = watch.Watch()
        for event in stream.stream(
            apps.list_namespaced_deployment,
            "shop",
            field_selector="metadata.name=payments",
            resource_version=rv,
            timeout_seconds=5,
        ):
            seen.append((event["type"], event["object"].spec.replicas))
            if event["object"].spec.replicas == 3:
                stream.stop()
        timer.join()
    assert seen and seen[-1] == ("MODIFIED", 3)


def test_traffic_endpoint(sandbox: SandboxServer) -> None:
    _, _, split = http(sandbox, "GET", "/sandbox/v1/traffic?namespace=shop")
    frontend = split["namespaces"]["shop"]["virtualservice:frontend"]["backends"]
    assert [(b["workload"], b["weight"]) for b in frontend] == [("frontend-canary", 60.0), ("frontend", 40.0)]
    catalog = split["namespaces"]["shop"]["ingress:catalog"]["backends"]
    assert [(b["workload"], b["weight"]) for b in catalog] == [("catalog-canary", 60.0), ("catalog", 40.0)]


@pytest.mark.parametrize("status", [409, 503])
def test_fault_injection(sandbox: SandboxServer, status: int) -> None:
    if status == 409:
        sandbox.faults.conflicts(2)
    else:
        sandbox.faults.unavailable(times=2)
    path = "/apis/apps/v1/namespaces/shop/deployments/payments"
    headers = {"Content-Type": "application/merge-patch+json"}
    codes = [http(sandbox, "PATCH", path, {"spec": {"replicas": 3}}, headers)[0] for _ in range(3)]
    assert codes == [status, status, 200]
    assert [r.fault for r in sandbox.requests if r.method == "PATCH"] == [True, True, False]
