"""``POST /webhooks/{alertmanager,datadog,grafana}``: parse, persist, acknowledge; act in the background.

Answer 202 only after the alerts are committed (Alertmanager drops a notification on any 4xx and retries
only 5xx and timeouts; CONTRACTS §1.3). A parse error is 400 (retrying cannot help); a database that
cannot take the write is 503 (retrying will).
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from flask import Blueprint, Response, jsonify

from reactor import metrics
from reactor.api import authenticated, json_body
from reactor.app import runtime
from webhooks import PARSERS, PayloadError

bp = Blueprint("webhooks", __name__)


@bp.post("/webhooks/<source>")
@authenticated
def receive(source: str) -> Any:
    started = time.perf_counter()
    code = 500
    try:
        response, code = _receive(source)
        return response, code
    finally:
        if source in PARSERS:
            metrics.INTAKE_REQUESTS.labels(source, str(code)).inc()
            if code == 202:
                metrics.INTAKE_LATENCY.labels(source).observe(time.perf_counter() - started)


def _receive(source: str) -> tuple[Any, int]:
    from flask import abort

    if source not in PARSERS:
        abort(404, f"no webhook for {source!r}; use one of: {', '.join('/webhooks/' + s for s in sorted(PARSERS))}")
    rt = runtime()
    body = json_body(allow_form=source == "datadog")
    try:
        note = PARSERS[source](body, rules=rt.settings.identity.rules())
    except PayloadError as exc:
        return jsonify(error=str(exc), field=exc.path, status=400), 400
    counts = rt.writer.submit(note)
    for result, count in counts.as_dict().items():
        if count:
            metrics.INTAKE_ALERTS.labels(source, result).inc(count)
    body = orjson.dumps({"status": "accepted", "alerts": len(note.alerts), **counts.as_dict()})
    return Response(body, status=202, mimetype="application/json"), 202
