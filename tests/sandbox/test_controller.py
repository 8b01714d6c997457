"""The deployment controller and the Argo emulation: revision numbering, scale-down, pruning, GC."""

from __future__ import annotations

from sandbox import seed
from sandbox.controllers import REVISION, REVISION_HISTORY, revision_of
from sandbox.resources import BY_KIND
from sandbox.server import SandboxServer
from tests.sandbox.support import get

RS = BY_KIND["ReplicaSet"]


def history(server: SandboxServer, app: str) -> list[tuple[int, str, str, int]]:
    """(revision, image tag, revision-history annotation, replicas) of a Deployment's ReplicaSets."""
    items, _ = server.store.list(RS, "shop", label_selector=f"app={app}")
    rows = [
        (
            revision_of(rs),
            rs["spec"]["template"]["spec"]["containers"][0]["image"].rsplit(":", 1)[1],
            rs["metadata"]["annotations"].get(REVISION_HISTORY, ""),
            rs["spec"]["replicas"],
        )
        for rs in items
    ]
    return sorted(rows)


def undo_to(server: SandboxServer, name: str, revision: int) -> None:
    """What kubectl's undo PATCH does, straight on the store."""
    items, _ = server.store.list(RS, "shop", label_selector=f"app={name}")
    template = next(rs for rs in items if revision_of(rs) == revision)["spec"]["template"]
    template["metadata"]["labels"].pop("pod-template-hash")
    server.store.patch(
        BY_KIND["Deployment"],
        "shop",
        name,
        [{"op": "replace", "path": "/spec/template", "value": template}],
        "application/json-patch+json",
    )


def test_revisions_are_renumbered_like_the_real_controller(sandbox: SandboxServer) -> None:
    assert history(sandbox, "payments") == [(1, "1.4.0", "", 0), (2, "1.5.0", "", 2)]
    undo_to(sandbox, "payments", 1)
    assert history(sandbox, "payments") == [(2, "1.5.0", "", 0), (3, "1.4.0", "1", 2)]
    undo_to(sandbox, "payments", 2)
    undo_to(sandbox, "payments", 3)
    assert history(sandbox, "payments") == [(4, "1.5.0", "2", 0), (5, "1.4.0", "1,3", 2)]
    assert get(sandbox, "Deployment", "payments")["metadata"]["annotations"][REVISION] == "5"


def test_a_new_template_makes_a_new_replicaset_and_old_ones_drain_as_new_pods_get_ready(
    sandbox: SandboxServer,
) -> None:
    sandbox.controllers.hold("shop", "checkout")
    seed.roll(sandbox.store, "shop", "checkout", "registry.local/shop/checkout:3.3.0", change_cause="3.3.0")
    rows = history(sandbox, "checkout")
    assert rows[-1][:2] == (3, "3.3.0") and rows[-2][3] == 2, "old pods keep serving while the new ones are unready"
    status = get(sandbox, "Deployment", "checkout")["status"]
    assert status["updatedReplicas"] == 2 and status["availableReplicas"] == 2 and status["replicas"] == 4
    sandbox.controllers.release("shop", "checkout")
    assert [row[3] for row in history(sandbox, "checkout")] == [0, 0, 2]
    assert get(sandbox, "Deployment", "checkout")["status"]["conditions"][1]["reason"] == "NewReplicaSetAvailable"


def test_history_beyond_the_limit_is_pruned_with_its_snapshots(sandbox: SandboxServer) -> None:
    deployment = get(sandbox, "Deployment", "payments")
    deployment["spec"]["revisionHistoryLimit"] = 1
    sandbox.store.replace(BY_KIND["Deployment"], "shop", "payments", deployment)
    seed.roll(sandbox.store, "shop", "payments", "registry.local/shop/payments:1.6.0", change_cause="1.6.0")
    assert [row[0] for row in history(sandbox, "payments")] == [2, 3], "revision 1 was pruned"
    snapshots, _ = sandbox.store.list(
        BY_KIND["ConfigMap"], "shop", label_selector="smart-rollback.io/workload=payments"
    )
    assert len(snapshots) == 1, "the snapshot owned by revision 1's ReplicaSet went with it (GC)"


def test_argo_canary_abort_and_return_to_stable(sandbox: SandboxServer) -> None:
    rollouts = BY_KIND["Rollout"]
    status = get(sandbox, "Rollout", "search")["status"]
    assert (status["phase"], status["currentStepIndex"], status["canary"]["weights"]["canary"]["weight"]) == (
        "Paused",
        1,
        25,
    )
    sandbox.store.patch(
        rollouts,
        "shop",
        "search",
        {"status": {"abort": True}},
        "application/merge-patch+json",
        subresource="status",
    )
    status = get(sandbox, "Rollout", "search")["status"]
    assert status["phase"] == "Degraded" and status["canary"]["weights"]["canary"]["weight"] == 0
    assert [r["weight"] for r in get(sandbox, "VirtualService", "search")["spec"]["http"][0]["route"]] == [
        100,
        0,
    ]
    subsets = {
        s["name"]: s["labels"]["rollouts-pod-template-hash"]
        for s in get(sandbox, "DestinationRule", "search")["spec"]["subsets"]
    }
    assert subsets == {"stable": status["stableRS"], "canary": status["currentPodHash"]}
    # Retrying (abort false) re-attempts the new version: abort leaves the bad template (CONTRACTS §5.2).
    sandbox.store.patch(
        rollouts,
        "shop",
        "search",
        {"status": {"abort": False}},
        "application/merge-patch+json",
        subresource="status",
    )
    assert get(sandbox, "Rollout", "search")["status"]["canary"]["weights"]["canary"]["weight"] == 25


def test_argo_blue_green_promotes_and_keeps_the_old_side_up_for_the_delay(sandbox: SandboxServer) -> None:
    status = get(sandbox, "Rollout", "recommendations")["status"]
    active = get(sandbox, "Service", "recommendations")["spec"]["selector"]["rollouts-pod-template-hash"]
    assert active == status["stableRS"] == status["currentPodHash"]
    replicas = sorted(
        rs["spec"]["replicas"] for rs in sandbox.store.list(RS, "shop", label_selector="app=recommendations")[0]
    )
    assert replicas == [2, 2], "scaleDownDelaySeconds keeps the previous revision up"
