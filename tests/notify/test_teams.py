"""Teams Workflows webhook against a loopback server: Adaptive Card envelope, not the legacy MessageCard."""

from __future__ import annotations

from reactor.notify.dispatcher import DeliveryStatus
from reactor.notify.events import EventKind
from reactor.notify.signing import verify_action
from tests.notify.conftest import Reply, assert_shape_covers, load_fixture, make_event

PATH = "/workflows/abc/triggers/manual/paths/invoke"
URL_QUERY = "?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=SiGnAtUrE0123456789abcdef"

#: The Workflows envelope from CONTRACTS.md section 7.2 ([SOURCE]: Microsoft docs).
ADAPTIVE_ENVELOPE = {
    "type": "message",
    "attachments": [
        {
            "contentType": "application/vnd.microsoft.card.adaptive",
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": [
                    {"type": "TextBlock", "text": "Rollback executed: checkout (prod)"},
                    {"type": "FactSet", "facts": [{"title": "Revision", "value": "7 -> 6"}]},
                ],
                "actions": [{"type": "Action.OpenUrl", "title": "Alertmanager", "url": "http://am/#/alerts"}],
            },
        }
    ],
}


def test_card_is_an_adaptive_card_in_the_workflows_envelope(server, make_hub, records):
    server.default(PATH, Reply(202, b""))
    hub = make_hub(
        {"teams": {"type": "teams", "webhook_url_env": "TEAMS_URL"}},
        environ={"TEAMS_URL": server.url(PATH) + URL_QUERY},
    )
    hub.publish(make_event(EventKind.ROLLBACK_FAILED))
    (request,) = server.wait_for(1)
    (record,) = records.wait_final(1)

    body = request.json()
    assert_shape_covers(ADAPTIVE_ENVELOPE, body)
    attachment = body["attachments"][0]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert "contentUrl" in attachment and attachment["contentUrl"] is None
    card = attachment["content"]
    assert card["version"] == "1.4"
    legacy = load_fixture("teams-pymsteams-messagecard.json")["body"]
    assert not set(legacy) & set(body), "the MessageCard fields (title, themeColor...) are not for Workflows"
    text = str(card)
    assert "Rollback FAILED: checkout (prod-eu/shop)" in text
    assert "error ratio 12.4% vs baseline 0.8% (score 18)" in text
    assert {"type": "Action.OpenUrl", "title": "Grafana", "url": "https://grafana.example.com/d/abc"} in card["actions"]
    assert record.status is DeliveryStatus.DELIVERED and record.detail == "HTTP 202"
    assert request.query["sig"] == ["SiGnAtUrE0123456789abcdef"]


def test_held_decision_carries_signed_approve_and_reject_links(server, make_hub):
    server.default(PATH, Reply(202, b""))
    hub = make_hub(
        {"teams": {"type": "teams", "webhook_url": server.url(PATH)}},
        chatops={"public_url": "https://rollback.example.com/", "link_secret": "link-secret-0123456789"},
    )
    hub.publish(make_event(EventKind.HELD_FOR_APPROVAL, mode="recommend"))
    (request,) = server.wait_for(1)
    actions = request.json()["attachments"][0]["content"]["actions"]
    links = {a["title"]: a["url"] for a in actions}
    approve = verify_action(links["Approve rollback"].rsplit("/", 1)[1], secret="link-secret-0123456789")
    reject = verify_action(links["Reject"].rsplit("/", 1)[1], secret="link-secret-0123456789")
    assert (approve.action, approve.decision_id, approve.source) == ("approve", "dec-1", "teams")
    assert (reject.action, reject.decision_id) == ("reject", "dec-1")
    assert links["Approve rollback"].startswith("https://rollback.example.com/chatops/action/v1.")


def test_workflow_errors(server, make_hub, records):
    server.script(PATH, Reply(400, {"error": {"code": "InvalidRequestContent"}}))
    hub = make_hub({"teams": {"type": "teams", "webhook_url": server.url(PATH) + URL_QUERY}})
    hub.publish(make_event())
    (record,) = records.wait_final(1)
    assert record.status is DeliveryStatus.FAILED and "HTTP 400" in record.error
    assert "SiGnAtUrE" not in str(record.as_dict())
