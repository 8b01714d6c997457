"""Real engines for the platform tests: moto's threaded server (ECS, ELBv2, CodeDeploy), a local dockerd, and
the sandbox Kubernetes API server.

moto and dockerd are started once per test session (per xdist worker) and stopped at its end; the sandbox
(``tests.sandbox.support``) is cheap enough to start per test. The swarm engine runs in
private namespaces and cleans up what an earlier crashed run left (sandbox/swarm_engine.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.swarm_engine import ImageSpec, LocalSwarm, SwarmEngineError, version_images
from tests.conftest import free_port
from tests.sandbox.support import sandbox

from .cases import Case, DryRunCase, EcsCase, KubernetesCase, SwarmCase
from .swarm_helpers import remove_test_objects

__all__ = ["aws", "case", "moto_url", "sandbox", "swarm_api", "swarm_engine"]


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """A moto server over real HTTP on a free loopback port."""
    from moto.server import ThreadedMotoServer

    # moto's werkzeug logs every request and the tracebacks of unimplemented actions on stderr.
    logging.getLogger("werkzeug").setLevel(logging.CRITICAL)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws(moto_url: str) -> Iterator[Any]:
    """A fresh moto state for one test and a boto3 session with dummy credentials for it."""
    import boto3
    import requests

    requests.post(f"{moto_url}/moto-api/reset", timeout=10).raise_for_status()
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
    yield session


@pytest.fixture(scope="session")
def swarm_engine() -> Iterator[LocalSwarm]:
    """A real dockerd in swarm mode with app:v1..v3 and app:bad (exits 3 after 0.2 s).

    Missing prerequisites fail the tests with the reason; they never skip.
    """
    bad = ImageSpec("app:bad", env={"APP_VERSION": "bad"}, cmd=("/bin/sh", "-c", "sleep 0.2; exit 3"))
    engine = LocalSwarm(images=[*version_images(), bad])
    try:
        engine.up()
    except SwarmEngineError as exc:
        pytest.fail(f"could not start the local swarm engine: {exc}\nSee ../shared/contracts/SWARM_LOCAL.md")
    try:
        yield engine
    finally:
        engine.down()


@pytest.fixture
def swarm_api(swarm_engine: LocalSwarm) -> Iterator[Any]:
    """A low-level docker client for the session's engine; removes the test's services and records after."""
    api = swarm_engine.api()
    try:
        yield api
    finally:
        remove_test_objects(api)
        api.close()


@pytest.fixture
def case(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Case]:
    """The scenario builder of the platform named by the test's parameter (``indirect`` parametrization)."""
    name = request.param
    built: Case
    if name == "dry-run":
        built = DryRunCase()
    elif name == "ecs":
        built = EcsCase(request.getfixturevalue("aws"), request.getfixturevalue("moto_url"))
    elif name == "swarm":
        engine = request.getfixturevalue("swarm_engine")
        built = SwarmCase(request.getfixturevalue("swarm_api"), engine.base_url)
    elif name == "kubernetes":
        built = KubernetesCase(request.getfixturevalue("sandbox"), tmp_path)
    else:
        raise AssertionError(f"no case for {name}")
    try:
        yield built
    finally:
        built.close()
