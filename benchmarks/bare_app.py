"""The baseline for intake benchmarks: a bare Flask endpoint answering 202, under the reactor's exact gunicorn
settings (``reactor.server.gunicorn_options``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from reactor.server import gunicorn_options
from reactor.settings import load_settings


def create_bare_app() -> Flask:
    app = Flask("bare")

    @app.post("/webhooks/alertmanager")
    def accept() -> Any:
        return {"status": "accepted"}, 202

    @app.get("/healthz")
    def healthz() -> Any:
        return {"status": "ok"}

    return app


class BareServer(BaseApplication):
    """``app()`` (the bare app unless told) under the reactor's gunicorn settings."""

    def __init__(self, bind: str, workers: int, *, app: Callable[[], Flask] = create_bare_app) -> None:
        self.bind, self.workers, self.app = bind, workers, app
        super().__init__()

    def load_config(self) -> None:
        settings = load_settings(env={}, overrides={"server.bind": self.bind, "server.workers": self.workers,
                                                    "auth.insecure": True})  # fmt: skip
        options = gunicorn_options(settings)
        for hook in ("child_exit", "worker_exit"):
            options.pop(hook)
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self.app()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--bind", required=True)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    BareServer(args.bind, args.workers).run()
