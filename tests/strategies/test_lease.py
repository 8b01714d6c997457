"""The Lease lock: one holder per target across replicas, expiry, takeover races, release."""

from __future__ import annotations

import pytest

from sandbox.server import SandboxServer
from strategies import TargetRef
from strategies.kubernetes.lease import LeaseLock, LockHeldError
from strategies.kubernetes.platform import KubernetesPlatform
from tests.sandbox.support import get

TARGET = TargetRef("kubernetes", "demo", "shop", "checkout")


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def lock_for(kubeconfig):
    """Locks for several replicas, each with its own platform (its own connection pool), closed afterwards."""
    platforms: list[KubernetesPlatform] = []

    def make(holder: str, clock: Clock) -> LeaseLock:
        platform = KubernetesPlatform(clusters={"demo": {"kubeconfig": str(kubeconfig)}}, now=clock)
        platforms.append(platform)
        return platform.lock(TARGET, holder, duration=15)

    yield make
    for platform in platforms:
        platform.close()


def test_one_holder_at_a_time_until_release_or_expiry(lock_for, sandbox: SandboxServer) -> None:
    clock = Clock()
    a, b = lock_for("reactor-a", clock), lock_for("reactor-b", clock)
    assert a.acquire() and a.acquire(), "re-acquiring your own lock is fine"
    lease = get(sandbox, "Lease", a.name)
    assert lease["spec"]["holderIdentity"] == "reactor-a" and lease["spec"]["leaseDurationSeconds"] == 15
    assert lease["metadata"]["annotations"]["smart-rollback.io/target"] == str(TARGET)
    assert not b.acquire() and b.holder_of() == "reactor-a"
    clock.now += 10
    assert a.renew()
    clock.now += 10
    assert not b.acquire(), "renewed 10 s ago: still held"
    clock.now += 6
    assert b.acquire(), "expired: taken over"
    assert get(sandbox, "Lease", a.name)["spec"]["leaseTransitions"] == 1
    assert not a.renew(), "the old holder learns it lost the lock"
    b.release()
    assert a.holder_of() is None and a.acquire()


def test_context_manager_and_held_error(lock_for, sandbox: SandboxServer) -> None:
    clock = Clock()
    a, b = lock_for("reactor-a", clock), lock_for("reactor-b", clock)
    with a:
        with pytest.raises(LockHeldError, match="held by 'reactor-a'") as error:
            b.__enter__()
        assert error.value.delay == 15
    assert b.acquire()


def test_a_lost_race_for_an_expired_lease_is_a_clean_no(lock_for, sandbox: SandboxServer) -> None:
    clock = Clock()
    a, b = lock_for("reactor-a", clock), lock_for("reactor-b", clock)
    assert a.acquire()
    clock.now += 60
    sandbox.faults.conflicts(1, path_contains="/leases/")  # reactor-a's own takeover write won meanwhile
    assert not b.acquire()
    assert b.acquire()
