"""Commands that run or inspect the reactor: serve, run, check-config, db, history, explain, rollback."""

from __future__ import annotations

from reactor.cli import main  # noqa: F401
