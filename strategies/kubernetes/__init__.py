"""The Kubernetes platform: Deployments, Argo Rollouts, routers, blue-green Services, config snapshots.

Import :class:`strategies.kubernetes.platform.KubernetesPlatform` (registered as ``kubernetes`` in
:data:`strategies.PLATFORMS`). This package's ``__init__`` stays light on purpose: the pure modules
(:mod:`~strategies.kubernetes.names`, :mod:`~strategies.kubernetes.snapshots`) are usable without loading
the ``kubernetes`` client, e.g. by the sandbox's seed.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("KubernetesPlatform", "LeaseLock"):
        from strategies.kubernetes import lease, platform

        return {"KubernetesPlatform": platform.KubernetesPlatform, "LeaseLock": lease.LeaseLock}[name]
    raise AttributeError(name)
