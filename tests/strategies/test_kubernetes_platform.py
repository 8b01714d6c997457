"""The Kubernetes platform against the sandbox, through the official client over HTTP."""

from __future__ import annotations

import pytest

from sandbox import seed
from sandbox.server import SandboxServer
from strategies import (
    Capability,
    InvalidRequestError,
    NoPreviousRevisionError,
    PermanentError,
    RevisionNotFoundError,
    TargetNotFoundError,
    TargetRef,
    TemporaryError,
    UnsupportedError,
)
from strategies.kubernetes.platform import KubernetesPlatform
from tests.sandbox.support import get, writes


def t(name: str) -> TargetRef:
    return TargetRef("kubernetes", "demo", "shop", name)


def images(server: SandboxServer, name: str) -> str:
    return get(server, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]["image"].rsplit(":", 1)[1]


def test_describe_a_plain_deployment_with_config_snapshots(platform: KubernetesPlatform) -> None:
    state = platform.describe(t("payments"))
    assert (state.current_revision, state.stable_revision) == (2, 1)
    assert [(r.number, r.image.rsplit(":", 1)[1]) for r in state.revisions] == [(1, "1.4.0"), (2, "1.5.0")]
    snapshot = state.revision(1).config["ConfigMap/payments-config"]
    assert snapshot.startswith("payments-config.snapshot-")
    assert state.capabilities == {Capability.REVERT, Capability.COMPONENTS}
    assert state.ready and state.ready_replicas == 2
    assert state.dependencies["checkout"] == ("payments",)
    assert {"payments", "checkout", "frontend", "cart", "search"} <= set(state.components)
    assert "cart-blue" not in state.components, "colour Deployments belong to their Service"


@pytest.mark.parametrize(
    ("name", "router", "traffic"),
    [
        ("frontend", "istio", {"stable": 40, "canary": 60}),
        ("catalog", "nginx", {"stable": 40, "canary": 60}),
        ("reviews", "gateway", {"stable": 40, "canary": 60}),
        ("inventory", "replicas", {"stable": 50, "canary": 50}),
        ("search", "argo", {"stable": 75, "canary": 25}),
    ],
)
def test_describe_reads_each_router(platform: KubernetesPlatform, name: str, router: str, traffic: dict) -> None:
    state = platform.describe(t(name))
    assert state.router == router and dict(state.traffic) == traffic
    assert Capability.WEIGHTS in state.capabilities
    assert state.gradual_weights is (router != "argo")


def test_describe_blue_green_pairs(platform: KubernetesPlatform) -> None:
    cart = platform.describe(t("cart"))
    assert (cart.colors, cart.active_color, cart.current_revision) == (("blue", "green"), "green", None)
    assert cart.capabilities == {Capability.SWITCH, Capability.COMPONENTS}
    assert cart.details["colors"]["blue"]["image"].endswith("cart:2.3.0")
    reco = platform.describe(t("recommendations"))
    assert len(reco.colors) == 2 and reco.active_color == reco.colors[1]
    assert sorted(reco.color_revisions.values()) == [1, 2]
    assert {Capability.SWITCH, Capability.REVERT} <= reco.capabilities


def test_undo_is_kubectl_rollout_undo_plus_config(platform: KubernetesPlatform, sandbox: SandboxServer) -> None:
    sandbox.clear_requests()
    calls = platform.revert(t("payments"))
    assert [(c.method, c.path.rsplit("/", 2)[-2]) for c in calls] == [
        ("PUT", "configmaps"),
        ("PATCH", "deployments"),
    ]
    patch = writes(sandbox, "/deployments/payments")[0]
    assert patch.content_type == "application/json-patch+json"
    assert [op["path"] for op in patch.body] == [
        "/spec/template",
        "/metadata/annotations",
        "/metadata/resourceVersion",
    ]
    assert "pod-template-hash" not in patch.body[0]["value"]["metadata"]["labels"]
    assert patch.body[1]["value"] == {
        "deployment.kubernetes.io/revision": "2",
        "kubernetes.io/change-cause": "initial",
    }
    assert images(sandbox, "payments") == "1.4.0"
    assert get(sandbox, "ConfigMap", "payments-config")["data"] == {"TIMEOUT_MS": "800", "FEATURE_3DS": "off"}
    state = platform.describe(t("payments"))
    assert [(r.number, r.image.rsplit(":", 1)[1]) for r in state.revisions] == [(2, "1.5.0"), (3, "1.4.0")]
    # Rolling forward again restores the newer config from the snapshot taken with revision 2.
    platform.revert(t("payments"), 2)
    assert images(sandbox, "payments") == "1.5.0"
    assert get(sandbox, "ConfigMap", "payments-config")["data"]["TIMEOUT_MS"] == "1200"


def test_undo_snapshots_the_current_revision_before_reverting(
    platform: KubernetesPlatform, sandbox: SandboxServer
) -> None:
    seed.roll(
        sandbox.store,
        "shop",
        "checkout",
        "registry.local/shop/checkout:3.3.0",
        change_cause="3.3.0",
        config={"checkout-config": {"RETRIES": "9"}},
    )
    calls = platform.revert(t("checkout"))
    assert calls[0].method == "POST" and calls[0].note.startswith("snapshot ConfigMap/checkout-config")
    assert get(sandbox, "ConfigMap", "checkout-config")["data"]["RETRIES"] == "5"
    platform.revert(t("checkout"), 3)  # 3.3.0 again (revision 2 became 4)
    assert get(sandbox, "ConfigMap", "checkout-config")["data"]["RETRIES"] == "9"


def test_dry_run_changes_nothing(platform: KubernetesPlatform, sandbox: SandboxServer) -> None:
    sandbox.clear_requests()
    calls = platform.revert(t("payments"), dry_run=True)
    assert len(calls) == 2 and writes(sandbox) == []
    assert images(sandbox, "payments") == "1.5.0"


def test_no_previous_revision_is_a_clear_permanent_error(platform: KubernetesPlatform, sandbox: SandboxServer) -> None:
    seed.apply(sandbox.store, seed.workload("Deployment", "solo", "shop", "registry.local/solo:1", app="solo"))
    with pytest.raises(NoPreviousRevisionError) as error:
        platform.revert(t("solo"))
    assert 'no rollout history found for deployment "solo": it has only revision 1' in str(error.value)
    assert "nothing to roll back to" in str(error.value)
    with pytest.raises(RevisionNotFoundError, match=r"unable to find specified revision 5 in history .* \[1, 2\]"):
        platform.revert(t("payments"), 5)


def test_paused_deployment_and_template_already_matching(platform: KubernetesPlatform, sandbox: SandboxServer) -> None:
    assert platform.revert(t("payments"), 2) == [], "kubectl: skipped rollback (current template already matches)"
    deployment = get(sandbox, "Deployment", "payments")
    deployment["spec"]["paused"] = True
    sandbox.store.replace(seed.BY_KIND["Deployment"], "shop", "payments", deployment)
    with pytest.raises(PermanentError, match="cannot rollback a paused deployment; resume it first"):
        platform.revert(t("payments"))


@pytest.mark.parametrize(
    ("name", "kind", "read"),
    [
        ("frontend", "VirtualService", lambda o: [r["weight"] for r in o["spec"]["http"][0]["route"]]),
        (
            "catalog-canary",
            "Ingress",
            lambda o: int(o["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-weight"]),
        ),
        ("reviews", "HTTPRoute", lambda o: [b["weight"] for b in o["spec"]["rules"][0]["backendRefs"]]),
    ],
)
def test_set_weights_on_each_router(
    platform: KubernetesPlatform, sandbox: SandboxServer, name: str, kind: str, read
) -> None:
    target = t(name.removesuffix("-canary"))
    calls = platform.set_weights(target, {"stable": 90, "canary": 10})
    assert len(calls) == 1 and calls[0].method == "PATCH"
    assert read(get(sandbox, kind, name)) in ([90, 10], 10)
    assert platform.describe(target).traffic == {"stable": 90, "canary": 10}
    assert platform.set_weights(target, {"stable": 90, "canary": 10}) == [], "no write when nothing changes"


def test_replica_ratio_keeps_the_total(platform: KubernetesPlatform, sandbox: SandboxServer) -> None:
    assert platform.set_weights(t("inventory"), {"stable": 50, "canary": 50}) == [], "2 + 2 is 50/50 already"
    platform.set_weights(t("inventory"), {"stable": 80, "canary": 20})
    assert (
        get(sandbox, "Deployment", "inventory")["spec"]["replicas"],
        get(sandbox, "Deployment", "inventory-canary")["spec"]["replicas"],
    ) == (3, 1), "20 % of 4 pods is the nearest reachable split: 1 pod"
    assert platform.describe(t("inventory")).traffic == {"stable": 75, "canary": 25}
    calls = platform.set_weights(t("inventory"), {"stable": 100, "canary": 0})
    assert [c.path.rsplit("/", 1)[1] for c in calls] == ["inventory", "inventory-canary"], "stable scales up first"
    assert get(sandbox, "Deployment", "inventory")["spec"]["replicas"] == 4
    assert get(sandbox, "Deployment", "inventory-canary")["status"]["replicas"] == 0


def test_weights_errors(platform: KubernetesPlatform) -> None:
    with pytest.raises(InvalidRequestError, match="sum to 100"):
        platform.set_weights(t("frontend"), {"stable": 50, "canary": 20})
    with pytest.raises(InvalidRequestError, match="exactly the keys"):
        platform.set_weights(t("frontend"), {"blue": 100})
    with pytest.raises(UnsupportedError, match="has no traffic router: annotate the Deployment"):
        platform.set_weights(t("payments"), {"stable": 100, "canary": 0})
    with pytest.raises(UnsupportedError, match="Argo owns its traffic weights"):
        platform.set_weights(t("search"), {"stable": 50, "canary": 50})


def test_switch_a_service_between_two_deployments(platform: KubernetesPlatform, sandbox: SandboxServer) -> None:
    calls = platform.switch(t("cart"), "blue")
    assert calls[0].body["spec"] == {"selector": {"color": "blue"}}
    assert get(sandbox, "Service", "cart")["spec"]["selector"] == {"app": "cart", "color": "blue"}
    assert platform.switch(t("cart"), "blue") == []
    with pytest.raises(UnsupportedError, match="not 'red'"):
        platform.switch(t("cart"), "red")


def test_switch_scales_an_idle_colour_up_and_waits(kubeconfig, sandbox: SandboxServer) -> None:
    sandbox.store.patch(
        seed.BY_KIND["Deployment"],
        "shop",
        "cart-blue",
        {"spec": {"replicas": 0}},
        "application/merge-patch+json",
    )
    sandbox.controllers.ready_delay = 0.2
    with KubernetesPlatform(clusters={"demo": {"kubeconfig": str(kubeconfig)}}, poll_interval=0.05) as platform:
        calls = platform.switch(t("cart"), "blue")
    assert [c.note.split(" (")[0] for c in calls] == ["scale idle colour blue to 2", "make blue active"]
    assert get(sandbox, "Deployment", "cart-blue")["status"]["readyReplicas"] == 2


def test_switch_refuses_while_the_idle_colour_is_not_ready(kubeconfig, sandbox: SandboxServer) -> None:
    sandbox.store.patch(
        seed.BY_KIND["Deployment"],
        "shop",
        "cart-blue",
        {"spec": {"replicas": 0}},
        "application/merge-patch+json",
    )
    sandbox.controllers.hold("shop", "cart-blue")
    options = {
        "clusters": {"demo": {"kubeconfig": str(kubeconfig)}},
        "poll_interval": 0.02,
        "switch_ready_timeout": 0.2,
    }
    with KubernetesPlatform(**options) as platform, pytest.raises(TemporaryError, match="0/2 ready pods"):
        platform.switch(t("cart"), "blue")
    assert get(sandbox, "Service", "cart")["spec"]["selector"]["color"] == "green", "traffic stayed put"


def test_argo_canary_revert_is_abort_then_undo(platform: KubernetesPlatform, sandbox: SandboxServer) -> None:
    sandbox.clear_requests()
    calls = platform.revert(t("search"))
    assert [(c.method, c.path.rsplit("/", 1)[1]) for c in calls] == [("PATCH", "status"), ("PATCH", "search")]
    assert calls[0].body == {"status": {"abort": True}}
    assert [op["path"] for op in calls[1].body] == ["/spec/template", "/metadata/resourceVersion"]
    state = platform.describe(t("search"))
    assert state.current_revision == state.stable_revision == 3 and state.traffic == {
        "stable": 100,
        "canary": 0,
    }
    assert [r["weight"] for r in get(sandbox, "VirtualService", "search")["spec"]["http"][0]["route"]] == [
        100,
        0,
    ]


def test_argo_canary_weight_zero_is_an_abort(platform: KubernetesPlatform, sandbox: SandboxServer) -> None:
    calls = platform.set_weights(t("search"), {"stable": 100, "canary": 0})
    assert calls[0].path.endswith("/rollouts/search/status")
    assert get(sandbox, "Rollout", "search")["status"]["abort"] is True
    assert platform.describe(t("search")).traffic == {"stable": 100, "canary": 0}
    assert platform.set_weights(t("search"), {"stable": 100, "canary": 0}) == []


def test_argo_blue_green_switch_points_the_active_service(platform: KubernetesPlatform, sandbox: SandboxServer) -> None:
    state = platform.describe(t("recommendations"))
    old = state.colors[0]
    platform.switch(t("recommendations"), old)
    assert get(sandbox, "Service", "recommendations")["spec"]["selector"]["rollouts-pod-template-hash"] == old


def test_wait_ready_times_out_with_a_temporary_error(kubeconfig, sandbox: SandboxServer) -> None:
    sandbox.controllers.hold("shop", "payments")
    with KubernetesPlatform(clusters={"demo": {"kubeconfig": str(kubeconfig)}}, poll_interval=0.02) as platform:
        platform.revert(t("payments"))
        with pytest.raises(TemporaryError, match=r"not ready after 0.2s"):
            platform.wait_ready(t("payments"), 0.2)
        sandbox.controllers.release("shop", "payments")
        assert platform.wait_ready(t("payments"), 5).ready


def test_unknown_targets_and_clusters(platform: KubernetesPlatform) -> None:
    with pytest.raises(
        TargetNotFoundError,
        match=r"found no Deployment, Argo Rollout, blue-green Service named 'nope' in namespace 'shop'",
    ):
        platform.describe(t("nope"))
    with pytest.raises(TargetNotFoundError, match=r"cluster 'prod' is not configured .* configured: demo"):
        platform.describe(TargetRef("kubernetes", "prod", "shop", "payments"))


def test_argo_rollout_with_a_workload_ref_undoes_the_referenced_deployment(
    platform: KubernetesPlatform, sandbox: SandboxServer
) -> None:
    """The template lives in the Deployment the Rollout references (CONTRACTS.md §5.2)."""
    source = seed.workload("Deployment", "legacy", "shop", "registry.local/legacy:1", app="legacy", replicas=0)
    seed.apply(sandbox.store, source)
    rollout = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "legacy-ro", "namespace": "shop"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "legacy"}},
            "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "legacy"},
            "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}},
        },
    }
    seed.apply(sandbox.store, rollout)
    seed.roll(sandbox.store, "shop", "legacy", "registry.local/legacy:2", change_cause="2")
    state = platform.describe(t("legacy-ro"))
    assert (state.current_revision, state.stable_revision, state.traffic) == (
        2,
        1,
        {"stable": 50, "canary": 50},
    )
    calls = platform.revert(t("legacy-ro"))
    assert [c.path for c in calls] == [
        "/apis/argoproj.io/v1alpha1/namespaces/shop/rollouts/legacy-ro/status",
        "/apis/apps/v1/namespaces/shop/deployments/legacy",
    ]
    assert get(sandbox, "Deployment", "legacy")["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1")
    state = platform.describe(t("legacy-ro"))
    assert state.current_revision == state.stable_revision == 3 and state.traffic == {
        "stable": 100,
        "canary": 0,
    }


def test_deploy_time_record_snapshots_the_new_revision_config(
    platform: KubernetesPlatform, sandbox: SandboxServer
) -> None:
    """The reactor calls ``record`` when a deployment is registered; the new revision's config is kept."""
    seed.roll(
        sandbox.store,
        "shop",
        "checkout",
        "registry.local/shop/checkout:3.3.0",
        change_cause="3.3.0",
        config={"checkout-config": {"RETRIES": "9"}},
    )
    assert platform.record(t("checkout")) == 3
    state = platform.describe(t("checkout"))
    snapshot = state.revision(3).config["ConfigMap/checkout-config"]
    assert snapshot is not None and snapshot.startswith("checkout-config.snapshot-")
    assert get(sandbox, "ConfigMap", snapshot)["data"]["RETRIES"] == "9"
