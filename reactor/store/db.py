"""Engine creation and schema migration for SQLite (the default) and PostgreSQL.

SQLite runs in WAL mode. Write transactions start with ``BEGIN IMMEDIATE``: they take the database's single
write lock up front, so read-then-write sequences (dedup, job claims, target locks) are serialized across
threads and gunicorn processes without deadlock-prone lock upgrades. Reads keep a deferred ``BEGIN`` and
never wait for a writer. PostgreSQL uses row locks (``FOR UPDATE SKIP LOCKED``) and unique constraints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Connection, Engine, Select, create_engine, event, inspect
from sqlalchemy.engine import make_url

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class StoreUnavailable(RuntimeError):
    """The database cannot take writes right now (down, locked too long, disk full): answer 503."""


def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def _dumps(value: Any) -> str:
    # orjson: the intake hot path serializes a few documents per alert; the stdlib is ~15x slower.
    return orjson.dumps(value, default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()


def newest_first_page(conn: Connection, query: Select[Any], at: ColumnElement[Any], limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` rows of ``query`` (ordered by ``at`` descending), plus the rest of the last row's ``at``.

    The API's cursor is that last ``at`` (clients ask for ``before`` it), so rows sharing it that did not fit
    would never be listed. A page therefore ends with its whole last instant, a few rows over ``limit`` when
    several rows share one timestamp.
    """
    rows = [dict(r) for r in conn.execute(query.limit(limit + 1)).mappings()]
    if len(rows) <= limit:
        return rows
    beyond = rows.pop()  # one row past the page: only when it shares the last instant is more needed
    last = rows[-1][at.key]
    if beyond[at.key] == last:
        seen = {r["id"] for r in rows}
        rows += [dict(r) for r in conn.execute(query.where(at == last)).mappings() if r["id"] not in seen]
    return rows


def make_engine(url: str, *, sqlite_synchronous: str = "FULL", pool_size: int = 10) -> Engine:
    """An engine for ``url``; ``postgresql://`` URLs use psycopg 3."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        if database and database != ":memory:":
            _enable_wal(database)
        engine = create_engine(
            parsed,
            json_serializer=_dumps,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=pool_size,
            max_overflow=pool_size,
        )
        _sqlite_pragmas(engine, sqlite_synchronous)
        return engine
    return create_engine(
        parsed,
        json_serializer=_dumps,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args={"connect_timeout": 5},
    )


def _enable_wal(path: str) -> None:
    """WAL is a property of the database file: set it once, not on every connection (where it would wait
    for locks held by writers)."""
    import sqlite3

    conn = sqlite3.connect(path, timeout=30)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()


def _sqlite_pragmas(engine: Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves (pysqlite's implicit BEGIN is DEFERRED).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers (Store._tx) ask for IMMEDIATE; readers keep a deferred BEGIN and never wait for writers.
        immediate = conn.get_execution_options().get("sqlite_immediate")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def migrate(engine: Engine, revision: str = "head") -> str:
    """Upgrade the schema to ``revision``; returns the revision now current."""
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision() or ""


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head() or ""


def has_schema(engine: Engine) -> bool:
    return inspect(engine).has_table("alerts")
