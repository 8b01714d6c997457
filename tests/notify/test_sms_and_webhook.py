"""Twilio, the generic SMS webhook and the generic JSON webhook against a loopback server."""

from __future__ import annotations

import base64
import time
from urllib.parse import parse_qs

from reactor.notify.dispatcher import DeliveryStatus
from reactor.notify.events import Event, EventKind
from reactor.notify.signing import verify_webhook_signature, webhook_signature
from tests.notify.conftest import Reply, load_fixture, make_event

SID = "AC00000000000000000000000000000000"
MESSAGES = f"/2010-04-01/Accounts/{SID}/Messages.json"


def twilio(server, **options):
    return {
        "sms": {
            "type": "twilio",
            "account_sid": SID,
            "auth_token_env": "TWILIO_TOKEN",
            "from": "+15005550001",
            "to": ["+15005550006"],
            "base_url": server.url(),
            **options,
        }
    }


def test_twilio_request_matches_the_captured_form(server, make_hub, records):
    server.default(MESSAGES, Reply(201, {"sid": "SM0123", "status": "queued"}))
    hub = make_hub(twilio(server), environ={"TWILIO_TOKEN": "authtoken"})
    hub.publish(make_event(EventKind.ROLLBACK_FAILED))
    (request,) = server.wait_for(1)
    (record,) = records.wait_final(1)

    captured = load_fixture("twilio-create-message.json")
    assert request.path == captured["path"]
    assert request.headers["Content-Type"] == captured["headers"]["Content-Type"]
    assert request.headers["Authorization"] == captured["headers"]["Authorization"]
    form = request.form()
    assert set(form) == set(parse_qs(captured["body_form_urlencoded"]))
    assert form["To"] == ["+15005550006"] and form["From"] == ["+15005550001"]
    body = form["Body"][0]
    assert body.startswith("[Smart Rollback] Rollback FAILED: checkout (prod-eu/shop)")
    assert "error ratio 12.4%" in body and body.endswith("https://rollback.example.com/ui/decisions/dec-1")
    assert len(body) <= 320
    assert record.status is DeliveryStatus.DELIVERED and record.remote_id == "SM0123"


def test_sms_goes_out_only_for_failures_and_approvals_by_default(server, make_hub):
    server.default(MESSAGES, Reply(201, {"sid": "SM1", "status": "queued"}))
    hub = make_hub(twilio(server), environ={"TWILIO_TOKEN": "authtoken"})
    for kind in EventKind:
        hub.publish(make_event(kind))
    assert hub.flush(30)
    assert len(server.requests) == 2


def test_a_retry_does_not_text_the_same_person_twice(server, make_hub, records):
    server.script(
        MESSAGES,
        Reply(201, {"sid": "SM-A", "status": "queued"}),
        Reply(503, {"code": 20500, "message": "Internal Server Error"}),
        Reply(201, {"sid": "SM-B", "status": "queued"}),
    )
    hub = make_hub(twilio(server, to=["+15005550006", "+15005550007"]), environ={"TWILIO_TOKEN": "authtoken"})
    hub.publish(make_event())
    (record,) = records.wait_final(1)
    assert [r.form()["To"][0] for r in server.requests] == ["+15005550006", "+15005550007", "+15005550007"]
    assert record.status is DeliveryStatus.DELIVERED and record.remote_id == "SM-A,SM-B"
    assert "...007" in records.items[0].error and "+15005550007" not in records.items[0].error


def test_twilio_error_codes_are_permanent(server, make_hub, records):
    server.script(MESSAGES, Reply(400, {"code": 21211, "message": "The 'To' number is not valid.", "status": 400}))
    hub = make_hub(twilio(server), environ={"TWILIO_TOKEN": "authtoken"})
    hub.publish(make_event())
    (record,) = records.wait_final(1)
    assert record.status is DeliveryStatus.FAILED and record.attempts == 1
    assert "Twilio error 21211" in record.error


def test_sms_webhook_posts_json_per_recipient_signed(server, make_hub, records):
    hub = make_hub(
        {
            "gw": {
                "type": "sms_webhook",
                "url_env": "GW_URL",
                "to": ["+4915112345678"],
                "authorization_env": "GW_AUTH",
                "signing_secret": "gw-signing-secret",
                "to_field": "recipient",
                "text_field": "message",
                "extra": {"sender": "ROLLBACK"},
            }
        },
        environ={"GW_URL": server.url("/sms/send?token=abcdefgh12345678"), "GW_AUTH": "Bearer gw-token-123"},
    )
    hub.publish(make_event(EventKind.HELD_FOR_APPROVAL))
    (request,) = server.wait_for(1)
    records.wait_final(1)
    body = request.json()
    assert body["recipient"] == "+4915112345678" and body["sender"] == "ROLLBACK"
    assert body["message"].startswith("[Smart Rollback] Approval needed")
    assert request.headers["Authorization"] == "Bearer gw-token-123"
    assert verify_webhook_signature(
        "gw-signing-secret",
        timestamp=request.headers["X-Smart-Rollback-Timestamp"],
        body=request.body,
        signature=request.headers["X-Smart-Rollback-Signature"],
    )


def test_generic_webhook_is_hmac_signed_and_carries_the_whole_event(server, make_hub, records):
    hub = make_hub(
        {
            "hook": {
                "type": "webhook",
                "url": server.url("/in"),
                "secret_env": "HOOK_SECRET",
                "headers": {"X-Team": "sre"},
            }
        },
        environ={"HOOK_SECRET": "whsec-0123456789"},
    )
    event = make_event(EventKind.ROLLBACK_SUCCEEDED)
    hub.publish(event)
    (request,) = server.wait_for(1)
    (record,) = records.wait_final(1)

    headers = request.headers
    assert headers["X-Smart-Rollback-Event"] == "rollback_succeeded"
    assert headers["X-Smart-Rollback-Delivery"] == record.id
    assert headers["X-Team"] == "sre"
    stamp = headers["X-Smart-Rollback-Timestamp"]
    assert headers["X-Smart-Rollback-Signature"] == webhook_signature("whsec-0123456789", stamp, request.body)
    assert verify_webhook_signature(
        "whsec-0123456789",
        timestamp=stamp,
        body=request.body,
        signature=headers["X-Smart-Rollback-Signature"],
    )
    tampered = request.body.replace(b"rollback_succeeded", b"rollback_failed")
    assert not verify_webhook_signature(
        "whsec-0123456789", timestamp=stamp, body=tampered, signature=headers["X-Smart-Rollback-Signature"]
    )
    assert not verify_webhook_signature(
        "whsec-0123456789",
        timestamp=stamp,
        body=request.body,
        signature=headers["X-Smart-Rollback-Signature"],
        now=time.time() + 3600,
    )
    payload = request.json()
    assert payload["version"] == 1
    assert Event.from_dict(payload["event"]) == event
    assert "Rollback succeeded: checkout (prod-eu/shop)" in payload["text"]


def test_twilio_api_key_credentials(server, make_hub):
    server.default(MESSAGES, Reply(201, {"sid": "SM1"}))
    key_sid = "SK" + "1" * 32
    hub = make_hub(
        twilio(server, auth_token_env=None, api_key_sid=key_sid, api_key_secret="api-secret-xyz"),
        environ={},
    )
    hub.publish(make_event())
    (request,) = server.wait_for(1)
    expected = base64.b64encode(f"{key_sid}:api-secret-xyz".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {expected}"
