"""ChatOps approval for ``recommend`` mode: Slack buttons and signed links call back into the reactor.

Mount the blueprint in the app factory::

    app.register_blueprint(create_blueprint(settings.notifications, on_approve=..., on_reject=...))

The callbacks are the reactor's: ``(decision_id, actor, source) -> ChatOpsResult`` where ``actor`` says
who (``alice (U024BE7LH)`` from Slack, the name typed on the confirmation page for links) and
``source`` how (``slack``, ``email``, ``teams``...). They must be quick (queue the rollback, record the
rejection) and idempotent: a second click, or a second person, must get "already decided" back.

Endpoints (under ``chatops.url_prefix``, default ``/chatops``):

``POST /slack/interactions``
    Slack's interactivity Request URL. Verifies the signing secret (v0 HMAC-SHA256 over
    ``v0:<timestamp>:<raw body>``, timestamp within 5 minutes, constant-time compare), answers 200 at
    once, and replaces the original message with who decided and the outcome (via ``response_url``).
``GET /action/<token>``
    A signed link from e-mail or Teams: shows a confirmation page and does **nothing** else, so mail
    scanners and link previews that fetch URLs cannot approve a rollback.
``POST /action/<token>``
    The confirmation form: verifies the token again (signature, expiry) and calls the callback.
"""

from __future__ import annotations

import html
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests
from flask import Blueprint, Response, request

from reactor.notify.config import NotificationSettings
from reactor.notify.signing import (
    SLACK_APPROVE_ACTION,
    SLACK_REJECT_ACTION,
    ActionSigner,
    ActionTokenError,
    ExpiredActionToken,
    SlackSignatureError,
    verify_slack_request,
)

LOG = logging.getLogger("reactor.notify")
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    # The token is in the URL: do not hand it to other sites through Referer.
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    "X-Frame-Options": "DENY",
}
_MAX_ACTOR = 200


@dataclass(frozen=True)
class ChatOpsResult:
    """What the reactor says back: shown in Slack and on the confirmation page."""

    ok: bool
    message: str


Callback = Callable[[str, str, str], ChatOpsResult | str | bool | None]


def _normalise(result: ChatOpsResult | str | bool | None, action: str) -> ChatOpsResult:
    if isinstance(result, ChatOpsResult):
        return result
    if isinstance(result, str):
        return ChatOpsResult(True, result)
    if result is False:
        return ChatOpsResult(False, f"the reactor refused to {action} this decision")
    return ChatOpsResult(True, "rollback approved" if action == "approve" else "rollback rejected")


def create_blueprint(
    settings: NotificationSettings,
    on_approve: Callback,
    on_reject: Callback,
    *,
    environ: Mapping[str, str] | None = None,
    http: requests.Session | None = None,
    clock: Callable[[], float] = time.time,
    name: str = "chatops",
) -> Blueprint:
    """The ChatOps endpoints; secrets are read now (start-up), so a missing one fails here."""
    chatops = settings.chatops
    signing_secret = chatops.slack_signing_secret.resolve(environ) if chatops.slack_signing_secret else None
    signer = (
        ActionSigner(
            chatops.link_secret.resolve(environ),
            previous_secrets=chatops.resolve_previous(environ),
            clock=clock,
        )
        if chatops.link_secret
        else None
    )
    session = http or requests.Session()
    callbacks = {"approve": on_approve, "reject": on_reject}
    bp = Blueprint(name, __name__, url_prefix=chatops.url_prefix.rstrip("/") or None)

    def decide(action: str, decision_id: str, actor: str, source: str) -> ChatOpsResult:
        try:
            result = _normalise(callbacks[action](decision_id, actor, source), action)
        except Exception:
            LOG.exception("ChatOps %s of decision %s by %s failed", action, decision_id, actor)
            return ChatOpsResult(False, "the reactor could not record this; try again or use the API")
        LOG.info("ChatOps: %s of decision %s by %s via %s: %s", action, decision_id, actor, source, result.message)
        return result

    @bp.post("/slack/interactions")
    def slack_interactions() -> Any:
        if signing_secret is None:
            return {
                "error": "Slack interactivity is not configured: set notifications.chatops.slack_signing_secret"
            }, 404
        body = request.get_data(cache=True)
        try:
            verify_slack_request(
                signing_secret,
                timestamp=request.headers.get("X-Slack-Request-Timestamp"),
                signature=request.headers.get("X-Slack-Signature"),
                body=body,
                now=clock(),
            )
        except SlackSignatureError as exc:
            LOG.warning("rejected a Slack interaction from %s: %s", request.remote_addr, exc)
            return {"error": str(exc)}, 401
        try:
            payload = json.loads(request.form["payload"])
        except (KeyError, ValueError):
            return {"error": "expected a form field 'payload' holding JSON (Slack's interactivity format)"}, 400
        if not isinstance(payload, dict) or payload.get("type") != "block_actions":
            return "", 200
        chosen = next(
            (
                a
                for a in payload.get("actions") or ()
                if isinstance(a, dict) and a.get("action_id") in (SLACK_APPROVE_ACTION, SLACK_REJECT_ACTION)
            ),
            None,
        )
        if chosen is None or not chosen.get("value"):
            return "", 200  # link buttons and anything else of the app: nothing to do here
        action = "approve" if chosen["action_id"] == SLACK_APPROVE_ACTION else "reject"
        user = payload.get("user") or {}
        user_id = str(user.get("id") or "?")
        actor = f"{user.get('username') or user.get('name') or user_id} ({user_id})"
        result = decide(action, str(chosen["value"]), actor, "slack")
        response_url = payload.get("response_url")
        if isinstance(response_url, str) and response_url.startswith(("https://", "http://")):
            update = _slack_update(payload.get("message") or {}, action, user_id, result, clock())
            threading.Thread(
                target=_post_quietly,
                args=(session, response_url, update),
                name="chatops-slack-update",
                daemon=True,
            ).start()
        return "", 200

    @bp.get("/action/<token>")
    def action_page(token: str) -> Response:
        if signer is None:
            return _page(404, "Links are not enabled", "Set notifications.chatops.link_secret on the reactor.")
        try:
            signed = signer.verify_action(token)
        except ExpiredActionToken as exc:
            return _page(410, "This link has expired", str(exc))
        except ActionTokenError as exc:
            return _page(403, "This link is not valid", str(exc))
        verb = "Approve the rollback" if signed.action == "approve" else "Reject the rollback"
        expires = datetime.fromtimestamp(signed.expires_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
        form = (
            f"<p>Decision <code>{html.escape(signed.decision_id)}</code>. "
            f"This link works until {expires}.</p>"
            '<form method="post">'
            "<p><label>Your name or e-mail (kept in the audit trail)<br>"
            f'<input name="actor" required maxlength="{_MAX_ACTOR}" autocomplete="email" style="width:20em">'
            "</label></p>"
            f'<p><button type="submit" style="padding:8px 16px">{html.escape(verb)}</button></p>'
            "</form>"
        )
        return _page(200, f"{verb}?", form, raw=True)

    @bp.post("/action/<token>")
    def action_submit(token: str) -> Response:
        if signer is None:
            return _page(404, "Links are not enabled", "Set notifications.chatops.link_secret on the reactor.")
        try:
            signed = signer.verify_action(token)
        except ExpiredActionToken as exc:
            return _page(410, "This link has expired", str(exc))
        except ActionTokenError as exc:
            return _page(403, "This link is not valid", str(exc))
        actor = " ".join((request.form.get("actor") or "").split())[:_MAX_ACTOR]
        if not actor:
            return _page(400, "Who are you?", "Go back and enter your name or e-mail: it goes into the audit trail.")
        result = decide(signed.action, signed.decision_id, f"{actor} (via {signed.source} link)", signed.source)
        title = ("Approved" if signed.action == "approve" else "Rejected") if result.ok else "Not done"
        return _page(200 if result.ok else 409, title, result.message)

    return bp


def _slack_update(
    message: Mapping[str, Any], action: str, user_id: str, result: ChatOpsResult, now: float
) -> dict[str, Any]:
    """The original message without its buttons, plus a line saying who decided what, and when."""
    blocks = [b for b in message.get("blocks") or () if isinstance(b, dict) and b.get("type") != "actions"]
    when = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    if result.ok:
        icon = ":white_check_mark:" if action == "approve" else ":no_entry_sign:"
        done = "Approved" if action == "approve" else "Rejected"
        verdict = f"{icon} {done} by <@{user_id}> at {when}: {result.message}"
    else:
        verdict = f":warning: <@{user_id}> tried to {action} at {when}: {result.message}"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": verdict[:3000]}]})
    return {"replace_original": True, "text": str(message.get("text") or verdict), "blocks": blocks}


def _post_quietly(session: requests.Session, url: str, body: dict[str, Any]) -> None:
    try:
        response = session.post(url, json=body, timeout=(3.05, 10))
        if response.status_code >= 300:
            LOG.warning("updating the Slack message failed: HTTP %s %s", response.status_code, response.text[:200])
    except requests.RequestException as exc:
        LOG.warning("updating the Slack message failed: %s", type(exc).__name__)


def _page(status: int, title: str, body: str, *, raw: bool = False) -> Response:
    content = body if raw else f"<p>{html.escape(body)}</p>"
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)} - Smart Rollback</title></head>"
        '<body style="font-family:Arial,Helvetica,sans-serif;max-width:40em;margin:3em auto;color:#1f2328">'
        f'<h1 style="font-size:22px">{html.escape(title)}</h1>{content}</body></html>'
    )
    return Response(document, status=status, mimetype="text/html", headers=_PAGE_HEADERS)
