"""The OpenAPI 3.0 document served at ``/openapi.json``: the stable HTTP interface (ARCHITECTURE §3.2)."""

from __future__ import annotations

from typing import Any

from reactor import __version__

_ERROR = {"$ref": "#/components/schemas/Error"}


def _resp(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    out["content"] = {"application/json": {"schema": schema or _ERROR}}
    return out


_COMMON = {
    "401": _resp("Missing or wrong credentials."),
    "413": _resp("The body is larger than server.max_body_bytes (default 1 MiB)."),
    "415": _resp("The body is not JSON."),
}
_DB_DOWN = {"503": _resp("The store cannot take the write now; nothing was stored. Retry.")}
_ACCEPTED = {"$ref": "#/components/schemas/RollbackAccepted"}
_TEXT = {"schema": {"type": "string"}}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
_DEPLOYMENT = {"$ref": "#/components/schemas/Deployment"}
_IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "description": "Repeating a request with the same key returns the first result (safe retries).",
    "schema": {"type": "string", "minLength": 1, "maxLength": 1024},
}
_STATUSES = ("in_progress", "healthy", "rolled_back", "bad", "insufficient_data", "superseded")

_INTAKE_RESPONSES = {
    "202": _resp("Stored; acted on in the background.", {"$ref": "#/components/schemas/IntakeResult"}),
    "400": _resp("Malformed payload; `field` names the offending field."),
    **_COMMON,
    **_DB_DOWN,
}


def spec(server_url: str = "") -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Smart Rollback reactor",
            "version": __version__,
            "description": "Receives Alertmanager, Grafana and Datadog alerts and rolls bad deployments back.",
        },
        "servers": [{"url": server_url}] if server_url else [],
        "security": [{"bearer": []}, {"basic": []}],
        "paths": {
            "/webhooks/alertmanager": {
                "post": {
                    "summary": "Alertmanager webhook (format v4)",
                    "operationId": "alertmanagerWebhook",
                    "requestBody": _body("AlertmanagerPayload"),
                    "responses": _INTAKE_RESPONSES,
                }
            },
            "/webhooks/grafana": {
                "post": {
                    "summary": "Grafana alerting webhook contact point",
                    "operationId": "grafanaWebhook",
                    "requestBody": _body("AlertmanagerPayload"),
                    "responses": _INTAKE_RESPONSES,
                }
            },
            "/webhooks/datadog": {
                "post": {
                    "summary": "Datadog webhook (use the payload template in docs/datadog.md)",
                    "operationId": "datadogWebhook",
                    "requestBody": _body("DatadogPayload"),
                    "responses": _INTAKE_RESPONSES,
                }
            },
            "/api/v1/deployments": {
                "post": {
                    "summary": "Register a deployment (CI/CD); its verdict follows after the soak",
                    "operationId": "registerDeployment",
                    "parameters": [_IDEMPOTENCY],
                    "requestBody": _body("DeploymentRequest"),
                    "responses": {
                        "201": _resp("Registered.", _DEPLOYMENT),
                        "200": _resp("Repeated request (same idempotency key): the first deployment.", _DEPLOYMENT),
                        "400": _resp("Invalid request."),
                        **_COMMON,
                        **_DB_DOWN,
                    },
                },
                "get": {
                    "summary": "Deployments, newest first",
                    "operationId": "listDeployments",
                    "parameters": [
                        {"name": "target", "in": "query", "schema": {"type": "string"}},
                        {"name": "status", "in": "query", "schema": {"type": "string", "enum": list(_STATUSES)}},
                        {"name": "revision", "in": "query", "schema": {"type": "string"}},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                        {"name": "before", "in": "query", "schema": {"type": "number"}},
                    ],
                    "responses": {
                        "200": _resp("Deployments.", {"$ref": "#/components/schemas/DeploymentList"}),
                        "400": _resp("Invalid query."),
                        "401": _COMMON["401"],
                    },
                },
            },
            "/api/v1/deployments/{id}": {
                "get": {
                    "summary": "A deployment and its verdict (for pipeline gates); long-polls with ?wait=",
                    "operationId": "getDeployment",
                    "parameters": [
                        _ID,
                        {
                            "name": "wait",
                            "in": "query",
                            "description": "Seconds to wait for `state` to change (bounded by "
                            "deployments.max_wait_seconds, default 25); 0 answers at once.",
                            "schema": {"type": "number", "minimum": 0, "maximum": 120},
                        },
                        {
                            "name": "since",
                            "in": "query",
                            "description": "The `state` the client saw last; the wait ends as soon as it differs.",
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {
                        "200": _resp("The deployment.", _DEPLOYMENT),
                        "400": _resp("Invalid query."),
                        "401": _COMMON["401"],
                        "404": _resp("No such deployment."),
                    },
                }
            },
            "/api/v1/deployments/{id}/mark": {
                "post": {
                    "summary": "A person's verdict on a deployment: good (healthy, last known good) or bad",
                    "operationId": "markDeployment",
                    "parameters": [_ID],
                    "requestBody": _body("MarkRequest"),
                    "responses": {
                        "200": _resp("Marked.", _DEPLOYMENT),
                        "400": _resp("Invalid request."),
                        "404": _resp("No such deployment."),
                        **_COMMON,
                        **_DB_DOWN,
                    },
                }
            },
            "/api/v1/marks": {
                "post": {
                    "summary": "Mark a revision of a target good or bad (the engine never rolls onto a bad one)",
                    "operationId": "markRevision",
                    "requestBody": _body("RevisionMarkRequest"),
                    "responses": {
                        "201": _resp("Marked.", {"$ref": "#/components/schemas/MarkResult"}),
                        "400": _resp("Invalid request."),
                        **_COMMON,
                        **_DB_DOWN,
                    },
                },
                "get": {
                    "summary": "A target's revision marks, newest first, and its last known good revision",
                    "operationId": "listMarks",
                    "parameters": [
                        {"name": "target", "in": "query", "required": True, "schema": {"type": "string"}},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                    ],
                    "responses": {
                        "200": _resp("Marks.", {"$ref": "#/components/schemas/MarkList"}),
                        "400": _resp("Invalid query."),
                        "401": _COMMON["401"],
                    },
                },
            },
            "/api/v1/decisions": {
                "get": {
                    "summary": "Recent decisions, newest first",
                    "operationId": "listDecisions",
                    "parameters": [
                        {"name": "target", "in": "query", "schema": {"type": "string"}},
                        {"name": "status", "in": "query", "schema": {"type": "string"}},
                        {"name": "action", "in": "query", "schema": {"type": "string"}},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                        {"name": "before", "in": "query", "schema": {"type": "number"}},
                    ],
                    "responses": {
                        "200": _resp("Decisions.", {"$ref": "#/components/schemas/DecisionList"}),
                        "400": _resp("Invalid query."),
                        "401": _COMMON["401"],
                    },
                }
            },
            "/api/v1/decisions/{id}": {
                "get": {
                    "summary": "A decision with its full explanation: inputs, reasons, plan, steps, audit trail",
                    "operationId": "getDecision",
                    "parameters": [_ID],
                    "responses": {
                        "200": _resp("The decision.", {"$ref": "#/components/schemas/Decision"}),
                        "401": _COMMON["401"],
                        "404": _resp("No such decision."),
                    },
                }
            },
            "/api/v1/decisions/{id}/approve": _verdict_op("approve", "202"),
            "/api/v1/decisions/{id}/reject": _verdict_op("reject", "200"),
            "/api/v1/kill-switch": {
                "get": {
                    "summary": "Whether automatic rollbacks are stopped, by the setting or by the store's flag",
                    "operationId": "getKillSwitch",
                    "responses": {
                        "200": _resp("The kill switch.", {"$ref": "#/components/schemas/KillSwitch"}),
                        "401": _COMMON["401"],
                    },
                }
            },
            "/api/v1/rollbacks": {
                "post": {
                    "summary": "Manual (emergency) rollback through the same engine and audit trail",
                    "operationId": "manualRollback",
                    "parameters": [
                        {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string", "maxLength": 128}}
                    ],
                    "requestBody": _body("RollbackRequest"),
                    "responses": {
                        "202": _resp("Queued.", _ACCEPTED),
                        "200": _resp(
                            "Repeated request (same Idempotency-Key).",
                            {"$ref": "#/components/schemas/RollbackAccepted"},
                        ),
                        "400": _resp("Invalid request."),
                        **_COMMON,
                        **_DB_DOWN,
                    },
                }
            },
            "/ui": {
                "get": {
                    "summary": "The live dashboard: a static page whose script reads this API with a bearer token",
                    "operationId": "dashboard",
                    "security": [],
                    "responses": {
                        "200": {"description": "The page (no data).", "content": {"text/html": _TEXT}},
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness",
                    "operationId": "healthz",
                    "security": [],
                    "responses": {"200": _resp("Alive.", {"type": "object"})},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Readiness: the store answers",
                    "operationId": "readyz",
                    "security": [],
                    "responses": {
                        "200": _resp("Ready.", {"type": "object"}),
                        "503": _resp("The store does not answer.", {"type": "object"}),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics of the reactor",
                    "operationId": "metrics",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "Text exposition format.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        "401": _COMMON["401"],
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic"},
            },
            "schemas": _SCHEMAS,
        },
    }


def _body(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def _verdict_op(verb: str, ok: str) -> dict[str, Any]:
    return {
        "post": {
            "summary": f"{verb.capitalize()} a decision waiting for approval (recommend mode)",
            "operationId": f"{verb}Decision",
            "parameters": [_ID],
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/VerdictRequest"}}},
            },
            "responses": {
                ok: _resp("Done.", {"type": "object"}),
                "400": _resp("Invalid request."),
                "404": _resp("No such decision."),
                "409": _resp("The decision is not waiting for approval."),
                **_COMMON,
                **_DB_DOWN,
            },
        }
    }


_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_TIME = {"type": "string", "nullable": True, "description": "RFC 3339 UTC"}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "status"],
        "properties": {"error": {"type": "string"}, "status": {"type": "integer"}, "field": {"type": "string"}},
    },
    "AlertmanagerPayload": {
        "type": "object",
        "required": ["version", "status", "alerts"],
        "properties": {
            "version": {"type": "string", "enum": ["4", "1"]},
            "status": {"type": "string", "enum": ["firing", "resolved"]},
            "receiver": {"type": "string"},
            "groupKey": {"type": "string"},
            "truncatedAlerts": {"type": "integer", "minimum": 0},
            "groupLabels": _STR_MAP,
            "commonLabels": _STR_MAP,
            "commonAnnotations": _STR_MAP,
            "externalURL": {"type": "string"},
            "alerts": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["status", "labels", "startsAt", "fingerprint"],
                    "properties": {
                        "status": {"type": "string", "enum": ["firing", "resolved"]},
                        "labels": _STR_MAP,
                        "annotations": _STR_MAP,
                        "startsAt": {"type": "string", "format": "date-time"},
                        "endsAt": {"type": "string", "format": "date-time"},
                        "generatorURL": {"type": "string"},
                        "fingerprint": {"type": "string"},
                    },
                },
            },
        },
    },
    "DatadogPayload": {
        "type": "object",
        "description": "Whatever the webhook's payload template renders; see webhooks/templates/datadog-payload.json.",
        "properties": {
            "alert_transition": {"type": "string"},
            "alert_cycle_key": {"type": "string"},
            "alert_id": {"type": "string"},
            "alert_scope": {"type": "string"},
            "tags": {"type": "string"},
            "date": {"type": "string"},
        },
    },
    "IntakeResult": {
        "type": "object",
        "required": ["status", "alerts", "accepted", "duplicate", "ignored", "truncated"],
        "properties": {
            "status": {"type": "string"},
            "alerts": {"type": "integer"},
            "accepted": {"type": "integer"},
            "duplicate": {"type": "integer"},
            "ignored": {"type": "integer"},
            "truncated": {"type": "integer"},
        },
    },
    "DeploymentRequest": {
        "type": "object",
        "required": ["target", "revision"],
        "properties": {
            "target": {"type": "string", "example": "kubernetes/prod/shop/checkout"},
            "revision": {"type": "string", "description": "what is deployed: a revision number, image tag, commit"},
            "previous_revision": {"type": "string"},
            "pipeline_url": {"type": "string"},
            "actor": {"type": "string", "description": "who deployed (default: the authenticated identity)"},
            "idempotency_key": {
                "type": "string",
                "description": "like the Idempotency-Key header, for senders that cannot set one (Argo CD)",
            },
            "source": {"type": "string", "maxLength": 32, "example": "argocd"},
            "context": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "up to 32 strings kept with the deployment (repository, commit, application...)",
            },
        },
    },
    "Deployment": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "target": {"type": "string"},
            "revision": {"type": "string"},
            "previous_revision": {"type": "string", "nullable": True},
            "pipeline_url": {"type": "string", "nullable": True},
            "actor": {"type": "string", "nullable": True},
            "status": {"type": "string", "enum": list(_STATUSES)},
            "started_at": _TIME,
            "soak_until": _TIME,
            "verdict_at": _TIME,
            "verdict_reason": {"type": "string", "nullable": True},
            "verdict_by": {"type": "string", "nullable": True},
            "platform_revision": {
                "type": "integer",
                "nullable": True,
                "description": "the platform's revision running at registration (usually the one the deploy replaces)",
            },
            "progress": {
                "type": "object",
                "properties": {
                    "phase": {
                        "type": "string",
                        "description": "soaking, deciding, awaiting_approval, rolling_back, settling, or the status",
                    },
                    "message": {"type": "string"},
                    "decision_id": {"type": "string", "nullable": True},
                    "soak_seconds_left": {"type": "number", "nullable": True},
                },
            },
            "state": {"type": "string", "description": "changes whenever status, phase or decision change"},
            "duplicate": {"type": "boolean"},
        },
    },
    "DeploymentList": {
        "type": "object",
        "properties": {
            "deployments": {"type": "array", "items": _DEPLOYMENT},
            "next_before": {"type": "number", "nullable": True},
        },
    },
    "MarkRequest": {
        "type": "object",
        "required": ["verdict", "reason"],
        "properties": {
            "verdict": {"type": "string", "enum": ["good", "bad"]},
            "reason": {"type": "string", "minLength": 1},
            "actor": {"type": "string", "description": "who (default: the authenticated identity)"},
        },
    },
    "RevisionMarkRequest": {
        "type": "object",
        "required": ["target", "revision", "verdict", "reason"],
        "properties": {
            "target": {"type": "string"},
            "revision": {"type": "string"},
            "verdict": {"type": "string", "enum": ["good", "bad"]},
            "reason": {"type": "string", "minLength": 1},
            "actor": {"type": "string"},
        },
    },
    "Mark": {
        "type": "object",
        "properties": {
            "revision": {"type": "string"},
            "verdict": {"type": "string", "enum": ["good", "bad"]},
            "actor": {"type": "string", "nullable": True},
            "reason": {"type": "string", "nullable": True},
            "at": _TIME,
        },
    },
    "MarkResult": {
        "type": "object",
        "properties": {
            "target": {"type": "string"},
            "revision": {"type": "string"},
            "verdict": {"type": "string"},
            "actor": {"type": "string"},
            "deployments": {"type": "array", "items": {"type": "string"}},
            "last_good": {"allOf": [{"$ref": "#/components/schemas/Mark"}], "nullable": True},
        },
    },
    "MarkList": {
        "type": "object",
        "properties": {
            "target": {"type": "string"},
            "last_good": {"allOf": [{"$ref": "#/components/schemas/Mark"}], "nullable": True},
            "marks": {"type": "array", "items": {"$ref": "#/components/schemas/Mark"}},
        },
    },
    "Decision": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "target": {"type": "string", "nullable": True},
            "action": {"type": "string", "enum": ["rollback", "hold", "ignore"]},
            "strategy": {"type": "string", "nullable": True},
            "mode": {"type": "string"},
            "status": {"type": "string"},
            "reasons": {"type": "array", "items": {"type": "string"}},
            "explanation": {"type": "string"},
            "created_at": _TIME,
        },
    },
    "DecisionList": {
        "type": "object",
        "properties": {
            "decisions": {"type": "array", "items": {"$ref": "#/components/schemas/Decision"}},
            "next_before": {"type": "number", "nullable": True},
        },
    },
    "KillSwitch": {
        "type": "object",
        "required": ["enabled", "setting", "flag", "flag_actor", "flag_updated_at"],
        "properties": {
            "enabled": {"type": "boolean", "description": "Nothing is rolled back automatically."},
            "setting": {"type": "boolean", "description": "The kill_switch setting of this process is on."},
            "flag": {"type": "boolean", "description": "The flag in the store (every replica) is on."},
            "flag_actor": {"type": "string", "nullable": True},
            "flag_updated_at": {"type": "string", "format": "date-time", "nullable": True},
        },
    },
    "VerdictRequest": {
        "type": "object",
        "properties": {"actor": {"type": "string"}, "reason": {"type": "string"}},
    },
    "RollbackRequest": {
        "type": "object",
        "required": ["target"],
        "properties": {
            "target": {"type": "string"},
            "to_revision": {
                "oneOf": [{"type": "integer"}, {"type": "string", "minLength": 1, "maxLength": 255}],
                "description": "A revision number, or a revision's name or image tag (the newest revision with it).",
            },
            "strategy": {"type": "string"},
            "reason": {"type": "string"},
            "actor": {"type": "string"},
        },
    },
    "RollbackAccepted": {
        "type": "object",
        "properties": {"decision_id": {"type": "string"}, "status": {"type": "string"}, "url": {"type": "string"}},
    },
}
