"""Starting, stopping, restarting with state, and the ``smart-rollback sandbox`` command."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from sandbox import seed
from sandbox.server import SandboxServer
from strategies import TargetRef
from strategies.kubernetes.platform import KubernetesPlatform
from tests.conftest import ROOT, free_port
from tests.sandbox.support import get


def test_state_file_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    port = free_port()
    with SandboxServer(f"127.0.0.1:{port}", seed="demo", state_file=state) as first:
        seed.roll(first.store, "shop", "checkout", "registry.local/shop/checkout:9.9.9", change_cause="9.9.9")
    assert state.exists()
    with SandboxServer(f"127.0.0.1:{port}", seed="demo", state_file=state) as second:
        assert (
            get(second, "Deployment", "checkout")["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
        )
        assert second.store.rv == first.store.rv, "the seed is not applied over a loaded state"
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match="is not a sandbox dump"):
        SandboxServer(state_file=broken)


def test_paused_takes_the_server_away_and_back(sandbox: SandboxServer, kubeconfig: Path) -> None:
    with KubernetesPlatform(clusters={"demo": {"kubeconfig": str(kubeconfig)}}) as platform:
        target = TargetRef("kubernetes", "demo", "shop", "payments")
        with sandbox.paused(), pytest.raises(Exception, match="did not answer"):
            platform.describe(target)
        assert platform.describe(target).current_revision == 2


def test_bad_bind_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="must be HOST:PORT"):
        SandboxServer("8001")


@pytest.mark.e2e
def test_cli_serves_writes_a_kubeconfig_and_persists(tmp_path: Path) -> None:
    port = free_port()
    kubeconfig, state = tmp_path / "kubeconfig", tmp_path / "state.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reactor",
            "sandbox",
            "--bind",
            f"127.0.0.1:{port}",
            "--kubeconfig-out",
            str(kubeconfig),
            "--seed",
            "demo",
            "--state",
            str(state),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not kubeconfig.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        assert kubeconfig.exists(), process.stderr.read() if process.poll() is not None else "no kubeconfig"
        config = json.loads(kubeconfig.read_text())
        assert config["contexts"][0]["context"]["namespace"] == "shop"
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/apis/apps/v1/namespaces/shop/deployments", timeout=5
        ) as r:
            assert "payments" in {d["metadata"]["name"] for d in json.load(r)["items"]}
        with KubernetesPlatform(clusters={"sandbox": {"kubeconfig": str(kubeconfig)}}) as platform:
            platform.revert(TargetRef("kubernetes", "sandbox", "shop", "payments"))
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert f"Kubernetes API on http://127.0.0.1:{port}" in out and "sandbox: stopped" in out
    saved = json.loads(state.read_text())
    deployments = {d["metadata"]["name"]: d for d in saved["objects"]["apps/deployments"]}
    assert deployments["payments"]["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"


@pytest.mark.e2e
def test_cli_rejects_a_busy_port_and_an_unknown_seed(tmp_path: Path) -> None:
    with SandboxServer(f"127.0.0.1:{free_port()}") as busy:
        result = subprocess.run(
            [sys.executable, "-m", "reactor", "sandbox", "--bind", f"127.0.0.1:{busy.port}"],
            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert result.returncode != 0 and "pick another --bind port" in result.stderr
    result = subprocess.run(
        [sys.executable, "-m", "reactor", "sandbox", "--seed", "nope"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2 and "unknown seed 'nope'; known: demo, empty" in result.stderr


def test_reset_restores_the_seed_with_newer_resource_versions(sandbox: SandboxServer) -> None:
    seed.roll(sandbox.store, "shop", "payments", "registry.local/shop/payments:9.9.9", change_cause="9.9.9")
    before = sandbox.store.rv
    request = urllib.request.Request(f"{sandbox.url}/sandbox/v1/reset?seed=demo", method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=5) as response:
        assert json.load(response)["seed"] == "demo"
    deployment = get(sandbox, "Deployment", "payments")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"].endswith("1.5.0")
    assert int(deployment["metadata"]["resourceVersion"]) > before and sandbox.store.rv > before
