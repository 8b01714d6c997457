"""HTTP API of the reactor: webhooks, the v1 REST API and operational endpoints.

Shared request handling lives here: authentication and strict JSON bodies with the status codes
Alertmanager and Datadog expect (400 malformed, 401, 413, 415; never 4xx for a transient failure).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from flask import abort, g, jsonify, request

F = TypeVar("F", bound=Callable[..., Any])

JSON_TYPES = ("application/json",)


def authenticated(view: F) -> F:
    """Require a valid bearer token or basic-auth user; the actor goes to ``g.actor``."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from reactor.app import runtime

        auth = runtime().auth
        actor = auth.identify(request.headers.get("Authorization"))
        if actor is None:
            response = jsonify(
                error="missing or wrong credentials: send Authorization: Bearer <token> or basic auth", status=401
            )
            response.status_code = 401
            for scheme in auth.schemes:
                response.headers.add("WWW-Authenticate", scheme)
            return response
        g.actor = actor
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def is_json(mimetype: str) -> bool:
    return mimetype in JSON_TYPES or mimetype.endswith("+json")


def json_body(*, allow_form: bool = False, required: bool = True) -> Any:
    """The request body as JSON (or form fields when ``allow_form``), aborting with 413/415/400."""
    mimetype = request.mimetype or ""
    if allow_form and mimetype == "application/x-www-form-urlencoded":
        return request.form.to_dict()
    if not is_json(mimetype):
        if not required and not request.content_length and not mimetype:
            return {}
        accepted = "application/json" + (" or application/x-www-form-urlencoded" if allow_form else "")
        abort(415, f"Content-Type must be {accepted}, got {mimetype or 'none'}")
    raw = request.get_data(cache=False)  # raises 413 past MAX_CONTENT_LENGTH
    if not raw.strip():
        if required:
            abort(400, "the body is empty; a JSON document is required")
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        abort(400, f"the body is not valid JSON: {exc}")
