"""E-mail through a real SMTP server (aiosmtpd) that requires STARTTLS and AUTH."""

from __future__ import annotations

import email
from email import policy

from reactor.notify.dispatcher import DeliveryStatus
from reactor.notify.events import EventKind
from tests.conftest import free_port
from tests.notify.conftest import make_event


def channel(smtp, pki, **options):
    return {
        "mail": {
            "type": "email",
            "host": smtp.host,
            "port": smtp.port,
            "security": "starttls",
            "username": smtp.username,
            "password_env": "SMTP_PASSWORD",
            "from": "Smart Rollback <rollback@example.com>",
            "to": ["sre@example.com", "oncall@example.com"],
            "ca_file": str(pki.ca_file),
            **options,
        }
    }


def test_mail_goes_over_starttls_with_auth_as_html_and_text_threaded_by_decision(smtp_server, pki, make_hub, records):
    hub = make_hub(channel(smtp_server, pki), environ={"SMTP_PASSWORD": smtp_server.password})
    hub.publish(make_event(EventKind.ROLLBACK_STARTED))
    hub.publish(make_event(EventKind.ROLLBACK_FAILED, summary="stable side unhealthy too"))
    envelopes = smtp_server.wait_for(2)
    records.wait_final(2)

    assert smtp_server.auth_attempts == ["rollback", "rollback"]
    assert envelopes[0].rcpt_tos == ["sre@example.com", "oncall@example.com"]
    first, second = (email.message_from_bytes(e.original_content, policy=policy.default) for e in envelopes)
    assert second["Subject"] == "[Smart Rollback] Rollback FAILED: checkout (prod-eu/shop)"
    assert second["From"] == "Smart Rollback <rollback@example.com>"
    assert first["References"] == second["References"] == "<decision-dec-1@example.com>"
    assert second["In-Reply-To"] == "<decision-dec-1@example.com>"
    assert first["Message-ID"] != second["Message-ID"]
    assert second["X-Smart-Rollback-Decision"] == "dec-1"
    assert second.get_content_type() == "multipart/alternative"
    text = second.get_body(preferencelist=("plain",)).get_content()
    html = second.get_body(preferencelist=("html",)).get_content()
    for part in (text, html):
        assert "Rollback FAILED: checkout (prod-eu/shop)" in part
        assert "error ratio 12.4% vs baseline 0.8% (score 18)" in part
        assert "set_weights: done" in part
        assert "stable side unhealthy too" in part
        assert "https://rollback.example.com/ui/decisions/dec-1" in part
    assert '<a href="https://grafana.example.com/d/abc">Grafana</a>' in html
    assert [r.status for r in records.final()] == [DeliveryStatus.DELIVERED] * 2
    assert records.final()[0].detail == "sent to 2 recipient(s)"


def test_held_decision_mail_carries_signed_links(smtp_server, pki, make_hub):
    hub = make_hub(
        channel(smtp_server, pki),
        environ={"SMTP_PASSWORD": smtp_server.password},
        chatops={"public_url": "https://rollback.example.com", "link_secret": "link-secret-0123456789"},
    )
    hub.publish(make_event(EventKind.HELD_FOR_APPROVAL, mode="recommend"))
    (envelope,) = smtp_server.wait_for(1)
    mail = email.message_from_bytes(envelope.original_content, policy=policy.default)
    html = mail.get_body(preferencelist=("html",)).get_content()
    text = mail.get_body(preferencelist=("plain",)).get_content()
    assert "https://rollback.example.com/chatops/action/v1." in html
    assert "Approve rollback: https://rollback.example.com/chatops/action/v1." in text


def test_wrong_password_is_permanent(smtp_server, pki, make_hub, records):
    hub = make_hub(channel(smtp_server, pki), environ={"SMTP_PASSWORD": "not-the-password"})
    hub.publish(make_event())
    (record,) = records.wait_final(1)
    assert record.status is DeliveryStatus.FAILED and record.attempts == 1
    assert "authentication failed for rollback (535)" in record.error
    assert "not-the-password" not in str(record.as_dict())


def test_untrusted_certificate_is_permanent(smtp_server, pki, make_hub, records):
    options = channel(smtp_server, pki)
    del options["mail"]["ca_file"]
    hub = make_hub(options, environ={"SMTP_PASSWORD": smtp_server.password})
    hub.publish(make_event())
    (record,) = records.wait_final(1)
    assert record.status is DeliveryStatus.FAILED
    assert "certificate not trusted" in record.error and "ca_file" in record.error


def test_server_that_is_down_is_retried(pki, make_hub, records):
    hub = make_hub(
        {
            "mail": {
                "type": "email",
                "host": "127.0.0.1",
                "port": free_port(),
                "from": "rollback@example.com",
                "to": ["sre@example.com"],
                "security": "none",
            }
        },
        delivery={"max_attempts": 2},
    )
    hub.publish(make_event())
    (record,) = records.wait_final(1)
    assert [r.status for r in records.items] == [DeliveryStatus.RETRYING, DeliveryStatus.FAILED]
    assert "ConnectionRefusedError" in record.error
