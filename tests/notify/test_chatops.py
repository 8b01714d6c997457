"""ChatOps approval: Slack request signatures (known-good and tampered), the interactivity endpoint,
and signed, expiring links whose GET only asks for confirmation."""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import pytest
from flask import Flask

from reactor.notify.chatops import ChatOpsResult, create_blueprint
from reactor.notify.config import parse_notification_settings
from reactor.notify.signing import (
    SLACK_APPROVE_ACTION,
    SLACK_REJECT_ACTION,
    ActionSigner,
    ExpiredActionToken,
    InvalidActionToken,
    SlackSignatureError,
    sign_action,
    slack_signature,
    verify_action,
    verify_slack_request,
)

#: The worked example of Slack's "Verifying requests from Slack" guide.
SLACK_DOC_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_DOC_TIMESTAMP = "1531420618"
SLACK_DOC_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
    b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
    b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
SLACK_DOC_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
LINK_SECRET = "link-secret-0123456789"


# -- signatures ------------------------------------------------------------------------------------------


def test_slack_documented_request_verifies():
    assert slack_signature(SLACK_DOC_SECRET, SLACK_DOC_TIMESTAMP, SLACK_DOC_BODY) == SLACK_DOC_SIGNATURE
    verify_slack_request(
        SLACK_DOC_SECRET,
        timestamp=SLACK_DOC_TIMESTAMP,
        signature=SLACK_DOC_SIGNATURE,
        body=SLACK_DOC_BODY,
        now=float(SLACK_DOC_TIMESTAMP) + 30,
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"body": SLACK_DOC_BODY.replace(b"roadrunner", b"coyote")}, "signature mismatch"),
        ({"signature": SLACK_DOC_SIGNATURE[:-1] + "4"}, "signature mismatch"),
        ({"secret": "another-secret"}, "signature mismatch"),
        ({"now": float(SLACK_DOC_TIMESTAMP) + 301}, "away from our clock"),
        ({"now": float(SLACK_DOC_TIMESTAMP) - 301}, "away from our clock"),
        ({"timestamp": None}, "missing"),
        ({"signature": None}, "missing"),
        ({"timestamp": "yesterday"}, "not a number"),
    ],
)
def test_slack_tampered_or_stale_requests_are_refused(change, message):
    args = {
        "secret": SLACK_DOC_SECRET,
        "timestamp": SLACK_DOC_TIMESTAMP,
        "signature": SLACK_DOC_SIGNATURE,
        "body": SLACK_DOC_BODY,
        "now": float(SLACK_DOC_TIMESTAMP) + 30,
        **change,
    }
    with pytest.raises(SlackSignatureError, match=message):
        verify_slack_request(
            args["secret"],
            timestamp=args["timestamp"],
            signature=args["signature"],
            body=args["body"],
            now=args["now"],
        )


def test_signed_links_round_trip_expire_and_reject_tampering():
    now = 1_800_000_000.0
    token = sign_action("dec-1", "approve", now + 60, secret=LINK_SECRET, source="email")
    signed = verify_action(token, secret=LINK_SECRET, now=now)
    assert (signed.decision_id, signed.action, signed.expires_at, signed.source) == (
        "dec-1",
        "approve",
        now + 60,
        "email",
    )

    with pytest.raises(ExpiredActionToken, match="expired"):
        verify_action(token, secret=LINK_SECRET, now=now + 60)
    with pytest.raises(InvalidActionToken, match="signature is not valid"):
        verify_action(token, secret="other-secret", now=now)
    version, payload, mac = token.split(".")
    forged = sign_action("dec-1", "reject", now + 60, secret="attacker", source="email").split(".")[1]
    with pytest.raises(InvalidActionToken, match="signature is not valid"):
        verify_action(f"{version}.{forged}.{mac}", secret=LINK_SECRET, now=now)  # action swapped
    with pytest.raises(InvalidActionToken, match="malformed"):
        verify_action(f"{version}.{payload}", secret=LINK_SECRET, now=now)
    with pytest.raises(InvalidActionToken, match="malformed"):
        verify_action("v1.%%%.***", secret=LINK_SECRET, now=now)
    with pytest.raises(ValueError, match="approve, reject"):
        sign_action("dec-1", "delete", now + 60, secret=LINK_SECRET)


def test_rotated_link_secrets_keep_old_links_working():
    old = ActionSigner("old-secret", clock=lambda: 0.0).sign_action("dec-9", "reject", 100.0)
    current = ActionSigner("new-secret", previous_secrets=["old-secret"], clock=lambda: 0.0)
    assert current.verify_action(old).action == "reject"
    with pytest.raises(InvalidActionToken):
        ActionSigner("new-secret", clock=lambda: 0.0).verify_action(old)


# -- the blueprint -----------------------------------------------------------------------------------------


class Calls:
    def __init__(self, result=None):
        self.calls: list[tuple[str, str, str, str]] = []
        self.result = result

    def approve(self, decision_id, actor, source):
        self.calls.append(("approve", decision_id, actor, source))
        return self.result if self.result is not None else ChatOpsResult(True, "rollback queued as job 17")

    def reject(self, decision_id, actor, source):
        self.calls.append(("reject", decision_id, actor, source))
        return self.result if self.result is not None else ChatOpsResult(True, "rejection recorded")


def make_app(calls, *, clock=time.time, **chatops):
    settings = parse_notification_settings(
        {
            "chatops": {
                "public_url": "https://rollback.example.com",
                "slack_signing_secret_env": "SLACK_SIGNING_SECRET",
                "link_secret_env": "LINK_SECRET",
                **chatops,
            }
        }
    )
    app = Flask("test")
    app.register_blueprint(
        create_blueprint(
            settings,
            calls.approve,
            calls.reject,
            environ={"SLACK_SIGNING_SECRET": SLACK_DOC_SECRET, "LINK_SECRET": LINK_SECRET},
            clock=clock,
        )
    )
    return app.test_client()


def interaction(response_url, action_id=SLACK_APPROVE_ACTION, value="dec-1"):
    payload = {
        "type": "block_actions",
        "user": {"id": "U024BE7LH", "username": "alice", "name": "alice", "team_id": "T1"},
        "api_app_id": "A1",
        "container": {"type": "message", "message_ts": "1700000000.000100", "channel_id": "C1"},
        "channel": {"id": "C1", "name": "sre"},
        "message": {
            "text": "Approval needed: roll back?: checkout (prod-eu/shop)",
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": "Approval needed"}},
                {"type": "actions", "elements": [{"type": "button", "action_id": SLACK_APPROVE_ACTION}]},
            ],
        },
        "response_url": response_url,
        "actions": [{"type": "button", "action_id": action_id, "block_id": "b", "value": value, "action_ts": "1"}],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def slack_post(client, body, *, timestamp=None, secret=SLACK_DOC_SECRET):
    stamp = timestamp or str(int(time.time()))
    return client.post(
        "/chatops/slack/interactions",
        data=body,
        content_type="application/x-www-form-urlencoded",
        headers={
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": slack_signature(secret, stamp, body),
        },
    )


def test_slack_approve_button_runs_the_callback_and_updates_the_message(server):
    calls = Calls()
    client = make_app(calls)
    response = slack_post(client, interaction(server.url("/actions/T1/123/abc")))
    assert response.status_code == 200 and response.data == b""
    assert calls.calls == [("approve", "dec-1", "alice (U024BE7LH)", "slack")]

    (update,) = server.wait_for(1)
    body = update.json()
    assert body["replace_original"] is True
    assert [b["type"] for b in body["blocks"]] == ["header", "context"]  # the buttons are gone
    verdict = body["blocks"][-1]["elements"][0]["text"]
    assert "Approved by <@U024BE7LH>" in verdict and "rollback queued as job 17" in verdict


def test_slack_reject_button(server):
    calls = Calls()
    client = make_app(calls)
    assert slack_post(client, interaction(server.url("/r"), SLACK_REJECT_ACTION)).status_code == 200
    assert calls.calls == [("reject", "dec-1", "alice (U024BE7LH)", "slack")]
    assert "Rejected by <@U024BE7LH>" in server.wait_for(1)[0].json()["blocks"][-1]["elements"][0]["text"]


def test_slack_tampered_and_stale_requests_get_401_and_do_nothing(server):
    calls = Calls()
    client = make_app(calls)
    body = interaction(server.url("/r"))
    assert slack_post(client, body, secret="wrong-secret").status_code == 401
    stale = str(int(time.time()) - 600)
    response = slack_post(client, body, timestamp=stale)
    assert response.status_code == 401 and "away from our clock" in response.get_json()["error"]
    stamp = str(int(time.time()))
    signed_other = client.post(
        "/chatops/slack/interactions",
        data=body.replace(b"dec-1", b"dec-2"),
        content_type="application/x-www-form-urlencoded",
        headers={
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": slack_signature(SLACK_DOC_SECRET, stamp, body),
        },
    )
    assert signed_other.status_code == 401
    assert calls.calls == []


def test_slack_other_interactions_are_acknowledged_and_ignored(server):
    calls = Calls()
    client = make_app(calls)
    response = slack_post(client, interaction(server.url("/r"), action_id="smart_rollback_approve_link"))
    assert response.status_code == 200 and calls.calls == []


def test_slack_endpoint_without_signing_secret_is_not_served():
    calls = Calls()
    settings = parse_notification_settings({})
    app = Flask("t")
    app.register_blueprint(create_blueprint(settings, calls.approve, calls.reject))
    response = app.test_client().post("/chatops/slack/interactions", data=b"payload=%7B%7D")
    assert response.status_code == 404 and "slack_signing_secret" in response.get_json()["error"]


def test_link_get_only_shows_a_confirmation_page():
    calls = Calls()
    client = make_app(calls)
    token = sign_action("dec-1", "approve", time.time() + 600, secret=LINK_SECRET, source="email")
    page = client.get(f"/chatops/action/{token}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Approve the rollback?" in text and '<form method="post">' in text and "dec-1" in text
    assert page.headers["Referrer-Policy"] == "no-referrer" and page.headers["Cache-Control"] == "no-store"
    assert calls.calls == []  # a link scanner fetching the URL approves nothing


def test_link_post_acts_with_who_and_how():
    calls = Calls()
    client = make_app(calls)
    token = sign_action("dec-1", "reject", time.time() + 600, secret=LINK_SECRET, source="teams")
    assert client.post(f"/chatops/action/{token}", data={"actor": "  "}).status_code == 400
    response = client.post(f"/chatops/action/{token}", data={"actor": "Bob Smith <bob@example.com>"})
    assert response.status_code == 200 and "rejection recorded" in response.get_data(as_text=True)
    assert calls.calls == [("reject", "dec-1", "Bob Smith <bob@example.com> (via teams link)", "teams")]


def test_link_expired_or_tampered_is_refused():
    calls = Calls()
    now = [1_800_000_000.0]
    client = make_app(calls, clock=lambda: now[0])
    token = sign_action("dec-1", "approve", now[0] + 60, secret=LINK_SECRET, source="email")
    assert client.get(f"/chatops/action/{token}").status_code == 200
    now[0] += 61
    expired = client.post(f"/chatops/action/{token}", data={"actor": "bob"})
    assert expired.status_code == 410 and "expired" in expired.get_data(as_text=True)
    now[0] -= 61
    version, payload, mac = token.split(".")
    tampered = f"{version}.{payload[:-2]}{'AA' if payload[-2:] != 'AA' else 'BB'}.{mac}"
    assert client.post(f"/chatops/action/{tampered}", data={"actor": "bob"}).status_code == 403
    assert client.get(f"/chatops/action/{tampered}").status_code == 403
    assert calls.calls == []


def test_link_refused_by_the_reactor_says_why():
    calls = Calls(result=ChatOpsResult(False, "already rejected by carol at 12:01"))
    client = make_app(calls)
    token = sign_action("dec-1", "approve", time.time() + 600, secret=LINK_SECRET, source="email")
    response = client.post(f"/chatops/action/{token}", data={"actor": "bob"})
    assert response.status_code == 409 and "already rejected by carol" in response.get_data(as_text=True)


def test_a_failing_callback_still_answers():
    class Broken(Calls):
        def approve(self, decision_id, actor, source):
            raise RuntimeError("database locked")

    client = make_app(Broken())
    token = sign_action("dec-1", "approve", time.time() + 600, secret=LINK_SECRET, source="email")
    response = client.post(f"/chatops/action/{token}", data={"actor": "bob"})
    assert response.status_code == 409 and "could not record this" in response.get_data(as_text=True)
