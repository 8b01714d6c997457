"""The local swarm harness leaves nothing on the host, also when the process that started it is killed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.swarm_engine import CGROUP_ROOT, LocalSwarm, SwarmEngineError, sweep_stale
from tests.conftest import ROOT

SWARM_PORTS = {2377, 7946, 4789}


def host_ports() -> set[int]:
    """Local ports of the host network namespace's TCP/UDP sockets, read from /proc/net."""
    ports: set[int] = set()
    for table in ("tcp", "tcp6", "udp", "udp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            ports.add(int(line.split()[1].rsplit(":", 1)[1], 16))
    return ports


def host_traces() -> dict[str, object]:
    """What a dockerd in the host namespaces would leave: links, swarm ports, /etc/docker, /run entries."""
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True, check=True).stdout
    return {
        "links": sorted(line.split()[0] for line in links.splitlines() if line.startswith(("docker", "veth", "br-"))),
        "swarm_ports": sorted(host_ports() & SWARM_PORTS),
        "etc_docker": Path("/etc/docker").exists(),
        "run": sorted(p.name for p in Path("/run").iterdir() if "docker" in p.name or "containerd" in p.name),
    }


def cgroups(name: str) -> list[Path]:
    return list(CGROUP_ROOT.glob(f"*/{name}"))


def processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A base directory short enough for containerd's socket paths (pytest's tmp_path is not)."""
    path = Path(tempfile.mkdtemp(prefix="srs-"))
    try:
        yield path / "e"
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_a_base_dir_too_long_for_unix_sockets_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SwarmEngineError, match="107-byte"):
        LocalSwarm(base_dir=tmp_path / ("x" * 80), images=[]).up()


def test_up_and_down_leave_the_host_as_they_found_it(short_dir: Path) -> None:
    before = host_traces()
    engine = LocalSwarm(base_dir=short_dir, images=[])
    with engine:
        state_dir = engine.state_dir
        assert state_dir is not None
        assert engine.api().info()["Swarm"]["LocalNodeState"] == "active"
        during = host_traces()
        assert cgroups(state_dir.name) == []  # no container yet, so runc made none
    assert during == before, "swarm ports, bridges or /run entries leaked into the host namespaces"
    assert host_traces() == before
    assert not state_dir.exists()
    assert not short_dir.exists()
    assert processes_mentioning(str(state_dir)) == []


CHILD = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {root!r})
    from pathlib import Path
    from docker.types import ContainerSpec, ServiceMode, TaskTemplate
    from sandbox.swarm_engine import LocalSwarm, version_images
    engine = LocalSwarm(base_dir=Path({base!r}), images=version_images(versions=["v1"])).up()
    api = engine.api()
    mode = ServiceMode("replicated", replicas=2)
    api.create_service(TaskTemplate(ContainerSpec("app:v1")), name="web", mode=mode)
    while sum(t["Status"]["State"] == "running" for t in api.tasks()) < 2:
        time.sleep(0.05)
    print(engine.state_dir, flush=True)
    time.sleep(600)
    """
)


@pytest.mark.e2e
def test_a_killed_run_takes_its_engine_down_and_the_next_start_sweeps_the_rest(short_dir: Path) -> None:
    base = short_dir
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(root=str(ROOT), base=str(base))],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        state_dir = Path(child.stdout.readline().strip())
        assert state_dir.is_dir(), f"the child did not start its engine (exit {child.poll()})"
        assert processes_mentioning(f"{state_dir}/"), "dockerd should be running"
        assert cgroups(state_dir.name), "the two containers should have cgroups"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        if child.stdout:
            child.stdout.close()

    # The parent-death signal chain kills unshare, then the namespace's init: the kernel kills the rest.
    deadline = time.monotonic() + 15
    while processes_mentioning(f"{state_dir}/") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_mentioning(f"{state_dir}/") == []
    assert state_dir.exists()  # what a crash leaves: the state directory and empty cgroups

    assert sweep_stale(base) == [str(state_dir)]
    assert not state_dir.exists()
    assert cgroups(state_dir.name) == []


def test_a_live_run_is_never_swept(short_dir: Path) -> None:
    with LocalSwarm(base_dir=short_dir, images=[]) as engine:
        assert sweep_stale(short_dir) == []
        assert engine.state_dir is not None and engine.state_dir.exists()
