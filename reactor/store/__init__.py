"""Durable state of the reactor (SQLAlchemy Core; SQLite by default, PostgreSQL by URL)."""

from reactor.store.db import StoreUnavailable, current_revision, head_revision, make_engine, migrate
from reactor.store.store import History, IntakeCounts, Job, Store, new_id

__all__ = [
    "History",
    "IntakeCounts",
    "Job",
    "Store",
    "StoreUnavailable",
    "current_revision",
    "head_revision",
    "make_engine",
    "migrate",
    "new_id",
]
