"""Fixtures shared by every test package: free ports, fixture payloads, the real PostgreSQL server."""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from reactor.liveloop.processes import free_port

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
#: The shared design material, present beside the project in development and CI.
SHARED = ROOT.parent / "shared"

POSTGRES_ADMIN_URL = os.environ.get("SMART_ROLLBACK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def load_fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def port() -> int:
    return free_port()


def _postgres_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The admin URL of the machine's PostgreSQL server. Missing server = a failed test, not a skip."""
    if not _postgres_available():
        pytest.fail("PostgreSQL is not listening on 127.0.0.1:5432; start it (see docs/DEVELOPING.md)")
    return POSTGRES_ADMIN_URL


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database on the real server for one test, dropped afterwards."""
    import psycopg

    name = f"sr_test_{uuid.uuid4().hex[:12]}"
    admin = postgres_server.replace("postgresql://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin.rsplit("/", 1)[0]
    try:
        yield f"postgresql+psycopg://{base.removeprefix('postgresql://')}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
