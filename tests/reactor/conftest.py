"""Reactor fixtures: apps on SQLite and on the machine's real PostgreSQL, driven synchronously; the headless
browser (:mod:`tests.browser`) for the dashboard."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from reactor.app import Runtime, create_app
from reactor.settings import Settings, load_settings
from tests.browser import browser

__all__ = ["browser"]

TOKEN = "t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every store test runs on both databases."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'reactor.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'reactor.db'}"


def make_settings(db_url: str, **overrides: Any) -> Settings:
    base = {"database.url": db_url, "auth.tokens": [TOKEN], "worker.lease_seconds": 5}
    return load_settings(env={}, overrides={**base, **overrides})


@pytest.fixture
def app_factory() -> Iterator[Callable[..., Flask]]:
    """Build apps whose job worker does not run on its own: tests call ``runtime.worker.drain()``."""
    made: list[Flask] = []

    def build(settings: Settings, **kwargs: Any) -> Flask:
        kwargs.setdefault("start_worker", False)
        app = create_app(settings, **kwargs)
        made.append(app)
        return app

    yield build
    for app in made:
        rt(app).close()


def rt(app: Flask) -> Runtime:
    runtime: Runtime = app.extensions["smart_rollback"]
    return runtime
