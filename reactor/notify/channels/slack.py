"""Slack: an incoming webhook with Block Kit, or a bot token posting with ``chat.postMessage``.

With a bot token every decision gets one thread: its first message is the parent, later events are
replies (failures and approval requests are also broadcast to the channel). Incoming webhooks cannot
thread (they return no ``ts``), so each event is its own message there.

Error semantics (CONTRACTS.md section 7.1): an incoming webhook answers ``ok`` or a plain-text error code
such as ``invalid_token`` or ``channel_not_found``: those are permanent. ``chat.postMessage`` answers HTTP
200 with ``{"ok": false, "error": ...}``; only ``ratelimited`` and Slack's own outages are worth a retry.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, model_validator

from reactor.notify import http
from reactor.notify.channels.base import ApprovalLinks, ChannelBase, SendContext, Sent, register
from reactor.notify.errors import PermanentDeliveryError, TemporaryDeliveryError
from reactor.notify.events import Event, EventKind
from reactor.notify.options import ChannelOptions, RateLimit, SecretRef
from reactor.notify.render import EMOJI, compose, mrkdwn_escape, truncate
from reactor.notify.signing import SLACK_APPROVE_ACTION, SLACK_REJECT_ACTION

#: chat.postMessage errors that are Slack's trouble, not ours.
_TEMPORARY_API_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
_HEADER_LIMIT = 150
_FIELD_LIMIT = 2000
_SECTION_LIMIT = 3000


class SlackOptions(ChannelOptions):
    #: Incoming webhook URL (a credential: prefer ``webhook_url_env`` or ``webhook_url_file``).
    webhook_url: SecretRef | None = None
    #: Bot token (``xoxb-...``) with the ``chat:write`` scope; enables one thread per decision.
    bot_token: SecretRef | None = None
    #: Channel ID (``C0123456789``) for the bot token.
    channel: str | None = None
    #: Web API base URL; change it only for a proxy or a test server.
    api_url: str = "https://slack.com/api"
    #: Thread replies of these kinds are also shown in the channel (``reply_broadcast``).
    broadcast: tuple[EventKind, ...] = (EventKind.ROLLBACK_FAILED, EventKind.HELD_FOR_APPROVAL)
    #: Prepended to failures and approval requests, e.g. ``<!here>`` or ``<!subteam^S0123>``.
    mention: str | None = None
    #: Approve/Reject as interactive buttons (needs ``chatops.slack_signing_secret``); otherwise signed links.
    interactive: bool = True
    reasons: int = Field(default=3, ge=0, le=10)

    @model_validator(mode="after")
    def _one_mode(self) -> SlackOptions:
        if (self.webhook_url is None) == (self.bot_token is None):
            raise ValueError("set either webhook_url (incoming webhook) or bot_token with channel, not both")
        if self.bot_token is not None and not self.channel:
            raise ValueError("bot_token needs channel: the channel ID, e.g. C0123456789")
        return self


@register
class SlackChannel(ChannelBase):
    type: ClassVar[str] = "slack"
    Options = SlackOptions
    #: Slack allows about one message per second per webhook or channel.
    default_rate_limit = RateLimit(per_minute=60, burst=5)

    def send(self, event: Event, ctx: SendContext) -> Sent:
        options = self.options
        assert isinstance(options, SlackOptions)
        payload = self.payload(event, ctx)
        if options.bot_token is not None:
            return self._post_message(event, payload, ctx)
        return self._post_webhook(payload)

    # -- content -----------------------------------------------------------------------------------

    def payload(self, event: Event, ctx: SendContext) -> dict[str, Any]:
        """The Block Kit message (the shape captured in fixtures/slack-incoming-webhook.json)."""
        options = self.options
        assert isinstance(options, SlackOptions)
        message = compose(event, max_reasons=options.reasons)
        blocks: list[dict[str, Any]] = [
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "text": truncate(f"{EMOJI[event.kind]} {message.headline}", _HEADER_LIMIT),
                },
            },
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": truncate(f"*{label}:*\n{mrkdwn_escape(value)}", _FIELD_LIMIT)}
                    for label, value in message.facts[:10]
                ],
            },
        ]
        if message.summary:
            blocks.append(_section(mrkdwn_escape(message.summary)))
        if message.reasons:
            blocks.append(_section("*Why*\n" + "\n".join(f"\u2022 {mrkdwn_escape(r)}" for r in message.reasons)))
        if message.steps:
            blocks.append(
                _section("*What was done*\n" + "\n".join(f"\u2022 {mrkdwn_escape(s)}" for s in message.steps))
            )
        if event.kind is EventKind.HELD_FOR_APPROVAL:
            actions = self._approval_buttons(event, ctx)
            if actions:
                blocks.append(
                    {
                        "type": "actions",
                        "block_id": f"smart_rollback:{event.decision_id}",
                        "elements": actions,
                    }
                )
        context = [f"decision `{mrkdwn_escape(event.decision_id)}`"]
        context += [f"<{url}|{label}>" for label, url in message.links]
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " \u00b7 ".join(context)}]})
        text = message.headline
        if options.mention and event.kind in (EventKind.ROLLBACK_FAILED, EventKind.HELD_FOR_APPROVAL):
            text = f"{options.mention} {text}"
            blocks.insert(1, _section(options.mention))
        return {"text": text, "blocks": blocks}

    def _approval_buttons(self, event: Event, ctx: SendContext) -> list[dict[str, Any]]:
        options = self.options
        assert isinstance(options, SlackOptions)
        if options.interactive and ctx.slack_interactive:
            target = str(event.target)
            return [
                {
                    "type": "button",
                    "action_id": SLACK_APPROVE_ACTION,
                    "text": {"type": "plain_text", "text": "Approve rollback"},
                    "style": "primary",
                    "value": event.decision_id,
                    "confirm": {
                        "title": {"type": "plain_text", "text": "Roll back now?"},
                        "text": {"type": "mrkdwn", "text": truncate(f"Roll back *{target}* now?", 300)},
                        "confirm": {"type": "plain_text", "text": "Roll back"},
                        "deny": {"type": "plain_text", "text": "Cancel"},
                    },
                },
                {
                    "type": "button",
                    "action_id": SLACK_REJECT_ACTION,
                    "text": {"type": "plain_text", "text": "Reject"},
                    "value": event.decision_id,
                },
            ]
        links = ctx.approval_links("slack")
        return _link_buttons(links) if links else []

    # -- transport ---------------------------------------------------------------------------------

    def _post_webhook(self, payload: dict[str, Any]) -> Sent:
        url = self.secrets["webhook_url"]
        service = "Slack incoming webhook"
        response = http.send(
            self.deps.http,
            "POST",
            url,
            service=service,
            timeout=self.deps.timeout,
            json=payload,
            headers={"Content-Type": "application/json;charset=utf-8"},
        )
        http.check(response, service=service)
        return Sent(detail="posted")

    def _post_message(self, event: Event, payload: dict[str, Any], ctx: SendContext) -> Sent:
        options = self.options
        assert isinstance(options, SlackOptions)
        body: dict[str, Any] = {"channel": options.channel, **payload, "unfurl_links": False}
        parent = ctx.state.get("ts")
        if parent:
            body["thread_ts"] = parent
            if event.kind in options.broadcast:
                body["reply_broadcast"] = True
        service = "Slack chat.postMessage"
        response = http.send(
            self.deps.http,
            "POST",
            options.api_url.rstrip("/") + "/chat.postMessage",
            service=service,
            timeout=self.deps.timeout,
            json=body,
            headers={
                "Authorization": f"Bearer {self.secrets['bot_token']}",
                "Content-Type": "application/json;charset=utf-8",
            },
        )
        http.check(response, service=service)
        try:
            answer = response.json()
        except ValueError:
            raise TemporaryDeliveryError(f"{service}: answer is not JSON ({http.excerpt(response.text)})") from None
        if not answer.get("ok"):
            error = str(answer.get("error") or "unknown_error")
            if error in _TEMPORARY_API_ERRORS:
                raise TemporaryDeliveryError(f"{service}: {error}", status=response.status_code)
            raise PermanentDeliveryError(f"{service}: {error}{_hint(error)}", status=response.status_code)
        ts = str(answer.get("ts") or "")
        if not parent and ts:
            ctx.state.set("ts", ts)
        return Sent(remote_id=ts or None, detail="thread reply" if parent else "thread started")


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, _SECTION_LIMIT)}}


def _link_buttons(links: ApprovalLinks) -> list[dict[str, Any]]:
    return [
        {
            "type": "button",
            "action_id": "smart_rollback_approve_link",
            "text": {"type": "plain_text", "text": "Approve rollback"},
            "url": links.approve,
            "style": "primary",
        },
        {
            "type": "button",
            "action_id": "smart_rollback_reject_link",
            "text": {"type": "plain_text", "text": "Reject"},
            "url": links.reject,
        },
    ]


def _hint(error: str) -> str:
    hints = {
        "not_in_channel": " (invite the app to the channel: /invite @your-app)",
        "channel_not_found": " (use the channel ID, e.g. C0123456789, and invite the app)",
        "invalid_auth": " (check the bot token)",
        "missing_scope": " (the bot token needs the chat:write scope)",
    }
    return hints.get(error, "")
