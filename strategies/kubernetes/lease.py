"""A ``coordination.k8s.io/v1`` Lease as the per-target actor lock, where no shared database exists.

Only one reactor replica may act on a target at a time (ARCHITECTURE.md §4). With PostgreSQL the store's
row lock does it; a set of replicas that share only the cluster use this: the holder writes its identity
and a renew time into a Lease; anyone else may take the Lease over only once ``renewTime +
leaseDurationSeconds`` has passed. Every takeover is a write conditioned on the resourceVersion it read,
so of two replicas racing for an expired Lease exactly one wins (the other gets 409 and backs off).

    lock = platform.lock(target, holder="reactor-0")
    if lock.acquire():
        try: ...            # renew() at least every duration/3 while working
        finally: lock.release()

Clock skew between replicas shortens or lengthens the effective duration by the skew; keep durations well
above it (the default 30 s is what Kubernetes leader election uses).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from strategies.base import TargetRef
from strategies.errors import ConflictError, TemporaryError
from strategies.kubernetes import names
from strategies.kubernetes.client import LEASE, KubeClient


class LockHeldError(TemporaryError):
    """Someone else holds the target's lock; retry after ``delay``."""


def _micro(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: str | None) -> float | None:
    if not text:
        return None
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


class LeaseLock:
    """A Lease named ``name`` in ``namespace`` held by ``holder`` for ``duration`` seconds per renewal."""

    def __init__(
        self,
        kube: KubeClient,
        namespace: str,
        name: str,
        holder: str,
        *,
        duration: float = 30.0,
        now: Callable[[], float] = time.time,
        annotations: dict[str, str] | None = None,
    ) -> None:
        if duration < 1:
            raise ValueError(f"lease duration must be at least 1 second, got {duration}")
        if not holder:
            raise ValueError("a lease holder identity is required (e.g. the pod name)")
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.holder = holder
        self.duration = int(duration)
        self._now = now
        self._annotations = dict(annotations or {})

    @classmethod
    def for_target(
        cls,
        kube: KubeClient,
        target: TargetRef,
        holder: str,
        *,
        namespace: str | None = None,
        duration: float = 30.0,
        now: Callable[[], float] = time.time,
    ) -> LeaseLock:
        """The lock of one target: a Lease ``smart-rollback-<digest>`` (names stay valid for any target)."""
        digest = hashlib.sha256(str(target).encode()).hexdigest()[:16]
        return cls(
            kube,
            namespace or target.namespace,
            f"smart-rollback-{digest}",
            holder,
            duration=duration,
            now=now,
            annotations={names.PREFIX + "target": str(target)},
        )

    # ------------------------------------------------------------------------------------- state
    def read(self) -> dict[str, Any] | None:
        return self.kube.find(LEASE, self.namespace, self.name)

    def _expired(self, spec: dict[str, Any], now: float) -> bool:
        renewed = _parse(spec.get("renewTime")) or _parse(spec.get("acquireTime"))
        if renewed is None:
            return True
        return renewed + int(spec.get("leaseDurationSeconds") or self.duration) < now

    def holder_of(self) -> str | None:
        """Who holds the lock now (None: free or expired)."""
        lease = self.read()
        if lease is None:
            return None
        spec = lease.get("spec") or {}
        if not spec.get("holderIdentity") or self._expired(spec, self._now()):
            return None
        return str(spec["holderIdentity"])

    # ------------------------------------------------------------------------------------ writes
    def acquire(self) -> bool:
        """Take (or keep) the lock; False if someone else holds it or won a race for it. Never blocks."""
        now = self._now()
        lease = self.read()
        if lease is None:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {
                    "name": self.name,
                    "namespace": self.namespace,
                    "labels": {"app.kubernetes.io/managed-by": "smart-rollback"},
                    "annotations": self._annotations,
                },
                "spec": {
                    "holderIdentity": self.holder,
                    "leaseDurationSeconds": self.duration,
                    "acquireTime": _micro(now),
                    "renewTime": _micro(now),
                    "leaseTransitions": 0,
                },
            }
            try:
                self.kube.create(LEASE, self.namespace, body)
                return True
            except ConflictError:
                lease = self.read()  # created by someone else in between
                if lease is None:
                    return False
        spec = dict(lease.get("spec") or {})
        current = spec.get("holderIdentity")
        if current and current != self.holder and not self._expired(spec, now):
            return False
        if current != self.holder:
            spec["acquireTime"] = _micro(now)
            if current:
                spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        spec.update(holderIdentity=self.holder, leaseDurationSeconds=self.duration, renewTime=_micro(now))
        lease["spec"] = spec
        try:
            self.kube.replace(LEASE, self.namespace, self.name, lease)
        except ConflictError:
            return False
        return True

    def renew(self) -> bool:
        """Extend our hold; False if we lost it (then stop acting on the target)."""
        lease = self.read()
        if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.holder:
            return False
        lease["spec"]["renewTime"] = _micro(self._now())
        try:
            self.kube.replace(LEASE, self.namespace, self.name, lease)
        except ConflictError:
            return False
        return True

    def release(self) -> None:
        """Give the lock up at once (others need not wait for expiry). A no-op if we do not hold it."""
        lease = self.read()
        if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.holder:
            return
        spec = dict(lease["spec"])
        spec.pop("holderIdentity", None)
        spec["leaseDurationSeconds"] = 1
        lease["spec"] = spec
        try:
            self.kube.replace(LEASE, self.namespace, self.name, lease)
        except ConflictError:
            return  # someone changed it meanwhile: it is no longer ours to release

    def __enter__(self) -> LeaseLock:
        if not self.acquire():
            raise LockHeldError(
                f"lease {self.namespace}/{self.name} is held by {self.holder_of()!r}; another replica is "
                "acting on "
                "this target",
                delay=float(self.duration),
            )
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
