"""``GET /ui``: the live dashboard, a static page whose JavaScript reads the JSON API with the user's credentials.

The shell holds no data and needs no credentials, so it can be served without auth; every number on it comes
from the authenticated ``/api/v1`` endpoints, called with ``Authorization: Bearer`` (a token) or ``Basic`` (a
user). The files are package
data (no build step, nothing fetched from a CDN), and the headers forbid inline script and style, framing and
referrers: alerts carry labels anybody can set, and the page renders them as text only.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from flask import Blueprint, Response, abort, redirect, url_for

bp = Blueprint("ui", __name__)

#: The only files served, by URL name: a fixed table rather than a static folder, so nothing else of the
#: package (its Python source included) is reachable.
ASSETS = {
    "ui.js": "text/javascript; charset=utf-8",
    "ui.css": "text/css; charset=utf-8",
}

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)


def _file(name: str) -> bytes:
    return resources.files(__name__).joinpath(name).read_bytes()


@bp.get("/ui")
def index() -> Any:
    return Response(_file("index.html"), content_type="text/html; charset=utf-8")


@bp.get("/ui/")
def index_slash() -> Any:
    # The page's relative URLs (ui/ui.js, api/v1/...) resolve from /ui, not from /ui/.
    return redirect(url_for("ui.index"))


@bp.get("/ui/<name>")
def asset(name: str) -> Any:
    if name not in ASSETS:
        abort(404, f"no UI file {name!r}")
    return Response(_file(name), content_type=ASSETS[name])


@bp.after_request
def _security_headers(response: Response) -> Response:
    # The shell is tiny and changes with each release: always revalidate rather than run a stale script.
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    return response
