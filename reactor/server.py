"""Running the app under gunicorn (``smart-rollback serve``).

gunicorn is configured in code from :class:`~reactor.settings.Settings`: ``gthread`` workers (request
threads share one group-commit writer per process), no preloading (each worker builds its own app, store
connections and job-worker thread after the fork), and the prometheus_client multiprocess hooks.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication

from reactor.settings import Settings

log = logging.getLogger(__name__)


def prepare_multiprocess_dir(path: str) -> None:
    """prometheus_client's multiprocess files must be wiped between runs (stale pids would linger)."""
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()


def _child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def _worker_exit(server: Any, worker: Any) -> None:
    app = getattr(worker, "wsgi", None)
    runtime = getattr(app, "extensions", {}).get("smart_rollback") if app is not None else None
    if runtime is not None:
        runtime.close()


def gunicorn_options(settings: Settings, *, access_log: bool = False) -> dict[str, Any]:
    """The gunicorn settings the reactor runs with (benchmarks run their baseline app with the same)."""
    server = settings.server
    options: dict[str, Any] = {
        "bind": [server.bind],
        "workers": server.workers,
        "worker_class": "gthread",
        "threads": server.threads,
        "timeout": server.timeout,
        "graceful_timeout": 20,
        "keepalive": 5,
        "preload_app": False,
        "child_exit": _child_exit,
        "worker_exit": _worker_exit,
        "proc_name": "smart-rollback",
        # gunicorn >= 27 opens a control socket under ~/.gunicorn; we need none and leave no files behind.
        "control_socket_disable": True,
        "loglevel": "info",
    }
    if access_log:
        options["accesslog"] = "-"
    return options


class ReactorServer(BaseApplication):
    def __init__(self, settings: Settings, *, access_log: bool = False) -> None:
        self.settings = settings
        self.access_log = access_log
        super().__init__()

    def load_config(self) -> None:
        for key, value in gunicorn_options(self.settings, access_log=self.access_log).items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from reactor.app import create_app

        return create_app(self.settings, migrate_schema=False)


def serve(settings: Settings, *, access_log: bool = False) -> None:
    """Run gunicorn in the foreground until SIGTERM/SIGINT."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        raise RuntimeError("PROMETHEUS_MULTIPROC_DIR must be set before serve() (smart-rollback serve does it)")
    ReactorServer(settings, access_log=access_log).run()
