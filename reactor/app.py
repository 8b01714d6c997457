"""The Flask application factory. gunicorn calls :func:`create_app` once per worker process.

One :class:`Runtime` per app holds what requests share: settings, the store, the group-commit writer and
the job worker thread. Nothing lives at module level, so tests build as many apps as they like.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, jsonify
from werkzeug.exceptions import HTTPException

from reactor.auth import Authenticator
from reactor.intake import IntakeWriter
from reactor.notifications import Notifier
from reactor.settings import Settings, load_settings
from reactor.store import Store, StoreUnavailable, current_revision, head_revision, make_engine, migrate
from reactor.worker import EventFn, Platforms, Worker

log = logging.getLogger(__name__)


class SchemaOutdated(RuntimeError):
    """The database schema is older than this release expects."""


@dataclass
class Runtime:
    settings: Settings
    store: Store
    writer: IntakeWriter
    worker: Worker
    auth: Authenticator
    notifier: Notifier | None = None

    def close(self) -> None:
        self.worker.stop()
        self.writer.stop()
        if self.notifier is not None:
            self.notifier.close()
        self.store.close()


def runtime() -> Runtime:
    """The :class:`Runtime` of the app handling the current request."""
    rt: Runtime = current_app.extensions["smart_rollback"]
    return rt


def create_app(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    platforms: Platforms | None = None,
    on_event: EventFn | None = None,
    migrate_schema: bool = True,
    start_worker: bool | None = None,
) -> Flask:
    """Build the reactor app.

    ``migrate_schema``: upgrade the database first (``serve`` migrates once in the master and passes
    False to its workers, which then refuse to start on an outdated schema). ``start_worker``: run the
    job worker thread (default: ``settings.worker.enabled``).
    """
    settings = settings or load_settings()
    if store is None:
        engine = make_engine(settings.database.url, sqlite_synchronous=settings.database.sqlite_synchronous)
        if migrate_schema:
            migrate(engine)
        else:
            have, want = current_revision(engine), head_revision()
            if have != want:
                raise SchemaOutdated(
                    f"the database schema is at {have or 'nothing'}, this release needs {want}: "
                    "run `smart-rollback db upgrade`"
                )
        store = Store(engine)
    notifier = Notifier(settings, store) if on_event is None else None
    worker = Worker(store, settings, platforms=platforms, on_event=on_event or notifier)
    writer = IntakeWriter(
        store,
        batch_max=settings.intake.batch_max,
        queue_max=settings.intake.queue_max,
        commit_timeout=settings.intake.commit_timeout_seconds,
        on_commit=worker.wake,
    )
    app = Flask("reactor")
    app.config["MAX_CONTENT_LENGTH"] = settings.server.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    runtime = Runtime(settings, store, writer, worker, Authenticator(settings.auth), notifier)
    app.extensions["smart_rollback"] = runtime

    from reactor.api.deployments import bp as deployments_bp
    from reactor.api.ops import bp as ops_bp
    from reactor.api.v1 import bp as v1_bp
    from reactor.api.webhooks import bp as webhooks_bp
    from reactor.ui import bp as ui_bp

    app.register_blueprint(webhooks_bp)
    app.register_blueprint(v1_bp)
    app.register_blueprint(deployments_bp)
    app.register_blueprint(ops_bp)
    app.register_blueprint(ui_bp)
    chatops = settings.notifications.chatops
    if chatops.slack_signing_secret is not None or chatops.link_secret is not None:
        from reactor.notify.chatops import create_blueprint

        app.register_blueprint(create_blueprint(settings.notifications, *_approval_callbacks(runtime)))
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(StoreUnavailable, _store_unavailable)
    app.register_error_handler(Exception, _unexpected)

    writer.start()
    if settings.worker.enabled if start_worker is None else start_worker:
        worker.start()
    return app


def _approval_callbacks(runtime: Runtime) -> tuple[Any, Any]:
    """Approve/reject from Slack buttons and signed links, through the same store calls as the API."""
    from reactor.notify.chatops import ChatOpsResult

    def verdict(verb: str) -> Any:
        def callback(decision_id: str, actor: str, source: str) -> ChatOpsResult:
            method = runtime.store.approve_decision if verb == "approve" else runtime.store.reject_decision
            result = method(decision_id, actor=actor, reason=f"via {source}")
            if result is None:
                return ChatOpsResult(False, f"no decision {decision_id}")
            changed, status = result
            if not changed:
                return ChatOpsResult(False, f"decision {decision_id} is already {status}")
            if verb == "approve":
                runtime.worker.wake()
                return ChatOpsResult(True, f"approved by {actor}: rolling back")
            return ChatOpsResult(True, f"rejected by {actor}: nothing will be rolled back")

        return callback

    return verdict("approve"), verdict("reject")


def _http_error(exc: HTTPException) -> Any:
    response = jsonify(error=exc.description, status=exc.code)
    response.status_code = exc.code or 500
    for key, value in exc.get_headers():
        if key.lower() not in ("content-type", "content-length"):
            response.headers[key] = value
    return response


def _store_unavailable(exc: StoreUnavailable) -> Any:
    response = jsonify(error=f"{exc}; nothing was stored, retry", status=503)
    response.status_code = 503
    response.headers["Retry-After"] = "1"
    return response


def _unexpected(exc: Exception) -> Any:
    if isinstance(exc, HTTPException):
        return _http_error(exc)
    log.exception("unhandled error")
    response = jsonify(error="internal error; see the reactor's log", status=500)
    response.status_code = 500
    return response
