"""Secrets never reach the logs or the recorded deliveries, even when libraries print URLs."""

from __future__ import annotations

import logging
from typing import ClassVar

from reactor.notify.channels import ChannelBase, SendContext, Sent
from reactor.notify.channels.webhook import WebhookOptions
from reactor.notify.config import parse_notification_settings
from reactor.notify.events import Event, EventKind
from reactor.notify.hub import NotificationHub
from reactor.notify.redact import Redactor, display_url
from tests.conftest import free_port
from tests.notify.conftest import FAST_DELIVERY, Records, Reply, make_event

SLACK_PATH = "/services/T0SECRET/B0SECRET/SeCrEtToKeN0123456789abcd"
BOT_TOKEN = "xoxb-1234-5678-SeCrEtBoT"
PD_KEY = "PDKEY0123456789SECRET0123456789X"


def test_redactor_masks_urls_their_parts_and_plain_secrets():
    redact = Redactor(
        [
            "https://hooks.slack.com/services/T0SECRET/B0SECRET/SeCrEtToKeN0123456789abcd",
            "https://prod-01.westus.logic.azure.com/workflows/wf123456789/triggers/manual/paths/invoke"
            "?api-version=2016-06-01&sig=TeamsSignature0123456789",
            "hunter22",
            "ab",  # too short to mask safely: ignored
        ]
    )
    text = (
        "POST https://hooks.slack.com/services/T0SECRET/B0SECRET/SeCrEtToKeN0123456789abcd failed; "
        "urllib3: Max retries exceeded with url: /services/T0SECRET/B0SECRET/SeCrEtToKeN0123456789abcd; "
        "teams sig=TeamsSignature0123456789; password hunter22; about"
    )
    masked = redact(text)
    for secret in ("SeCrEtToKeN0123456789abcd", "TeamsSignature0123456789", "hunter22", "T0SECRET"):
        assert secret not in masked
    assert masked.endswith("about")
    assert display_url("https://hooks.slack.com/services/T/B/X") == "https://hooks.slack.com/..."


def test_failed_deliveries_leave_no_secret_in_logs_or_records(server, make_hub, records, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="urllib3")
    server.default(SLACK_PATH, Reply(404, "no_service"))
    server.default("/api/chat.postMessage", Reply(200, {"ok": False, "error": "invalid_auth"}))
    server.default("/pd", Reply(400, {"status": "invalid event", "message": "Event object is invalid"}))
    dead = f"http://127.0.0.1:{free_port()}/hooks/{'x' * 8}DeadSecretPath"
    hub = make_hub(
        {
            "hook": {"type": "slack", "webhook_url_env": "SLACK_URL"},
            "bot": {
                "type": "slack",
                "bot_token_env": "SLACK_BOT",
                "channel": "C1",
                "api_url": server.url("/api"),
            },
            "pd": {"type": "pagerduty", "routing_key_env": "PD", "url": server.url("/pd")},
            "dead": {"type": "webhook", "url_env": "DEAD_URL"},
        },
        environ={"SLACK_URL": server.url(SLACK_PATH), "SLACK_BOT": BOT_TOKEN, "PD": PD_KEY, "DEAD_URL": dead},
        delivery={"max_attempts": 2},
    )
    hub.publish(make_event(EventKind.ROLLBACK_FAILED))
    assert hub.flush(30)

    assert len(records.final()) == 4
    recorded = str([r.as_dict() for r in records.items])
    logged = caplog.text
    assert "POST" in logged  # urllib3's debug lines were captured, so the check below means something
    for secret in ("SeCrEtToKeN0123456789abcd", BOT_TOKEN, PD_KEY, "DeadSecretPath", "T0SECRET"):
        assert secret not in recorded, secret
        assert secret not in logged, secret


class LeakyChannel(ChannelBase):
    type: ClassVar[str] = "webhook"
    Options = WebhookOptions

    def send(self, event: Event, ctx: SendContext) -> Sent:
        raise RuntimeError(f"could not reach {self.secrets['url']}")


def test_unexpected_errors_are_redacted_in_record_and_traceback(caplog):
    caplog.set_level(logging.DEBUG)
    records = Records()
    secret_url = "https://example.com/hooks/VeryS3cretPathToken"
    settings = parse_notification_settings(
        {"channels": {"leaky": {"type": "webhook", "url": secret_url}}, "delivery": FAST_DELIVERY}
    )
    hub = NotificationHub(settings, record=records, registry={"webhook": LeakyChannel})
    try:
        hub.publish(make_event())
        (record,) = records.wait_final(1)
    finally:
        hub.close()
    assert record.error == "unexpected RuntimeError: could not reach ***"
    assert "RuntimeError" in caplog.text and "VeryS3cretPathToken" not in caplog.text
