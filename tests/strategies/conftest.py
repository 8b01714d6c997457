"""Fixtures of the strategy tests: the sandbox (over real HTTP) and a Kubernetes platform pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.server import SandboxServer
from strategies.kubernetes.platform import KubernetesPlatform
from tests.sandbox.support import kubeconfig, sandbox

__all__ = ["kubeconfig", "platform", "sandbox"]


@pytest.fixture
def platform(kubeconfig: Path, sandbox: SandboxServer) -> Iterator[KubernetesPlatform]:
    """The platform with one cluster, ``demo``, reached through a kubeconfig like a user's."""
    with KubernetesPlatform(clusters={"demo": {"kubeconfig": str(kubeconfig)}}, poll_interval=0.01) as kube:
        yield kube
