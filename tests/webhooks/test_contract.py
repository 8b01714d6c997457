"""Contract tests: every captured or documented payload parses into the alerts it describes."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest

from tests.conftest import FIXTURES, load_fixture
from webhooks import IdentityRules, PayloadError, parse, parse_alertmanager, parse_datadog, parse_grafana

AM_FIXTURES = sorted(p.name for p in FIXTURES.glob("alertmanager-0.25-webhook-*.json") if "headers" not in p.name)


@pytest.mark.parametrize("name", AM_FIXTURES)
def test_every_captured_alertmanager_payload_parses(name: str) -> None:
    body = load_fixture(name)
    note = parse_alertmanager(body)
    assert note.source == "alertmanager"
    assert len(note.alerts) == len(body["alerts"])
    for alert, raw in zip(note.alerts, body["alerts"], strict=True):
        assert alert.fingerprint == raw["fingerprint"]
        assert alert.status == raw["status"]
        assert alert.labels == raw["labels"]
        assert alert.raw == raw


def test_firing_payload_fields() -> None:
    note = parse_alertmanager(load_fixture("alertmanager-0.25-webhook-firing.json"))
    assert note.status == "firing"
    assert note.group_key == '{}:{alertname="DeploymentHealthLow", deployment="checkout"}'
    assert note.external_url == "http://127.0.0.1:19093"
    [alert] = note.alerts
    assert alert.name == "DeploymentHealthLow"
    assert alert.starts_at == datetime(2026, 11, 26, 14, 15, 58, 348000, tzinfo=UTC)
    assert alert.ends_at is None, "Go's zero endsAt means still firing"
    assert alert.severity == "critical"
    assert alert.target.key == "kubernetes/e2e/prod/checkout"
    assert alert.generator_url.startswith("http://127.0.0.1:19090/graph")


def test_resolved_keeps_fingerprint_and_start() -> None:
    firing = parse_alertmanager(load_fixture("alertmanager-0.25-webhook-firing.json")).alerts[0]
    resolved = parse_alertmanager(load_fixture("alertmanager-0.25-webhook-resolved.json")).alerts[0]
    assert resolved.status == "resolved"
    assert (resolved.fingerprint, resolved.starts_at) == (firing.fingerprint, firing.starts_at)
    assert resolved.ends_at == datetime(2026, 11, 26, 14, 16, 7, 348000, tzinfo=UTC)


def test_truncated_child_route_receiver_is_unescaped() -> None:
    note = parse_alertmanager(load_fixture("alertmanager-0.25-webhook-truncated-childroute.json"))
    assert note.receiver == "rollback.reactor"
    assert note.truncated_alerts == 1
    assert [a.target.name for a in note.alerts] == ["cart", "checkout"]
    assert note.alerts[0].generator_url == ""


def test_unknown_keys_are_ignored() -> None:
    body = load_fixture("alertmanager-0.25-webhook-firing.json")
    body["notification_reason"] = "first notification"  # Alertmanager >= 0.32
    body["routeLabels"] = {"rollback": "true"}  # Alertmanager 0.34
    body["alerts"][0]["somethingNew"] = {"nested": [1, 2]}
    assert parse_alertmanager(body).alerts[0].fingerprint == "221e4dcea68d407f"


def test_nanosecond_timestamps_and_offsets() -> None:
    body = load_fixture("alertmanager-0.25-webhook-firing.json")
    body["alerts"][0]["startsAt"] = "2026-11-26T16:15:58.348123456+02:00"
    assert parse_alertmanager(body).alerts[0].starts_at == datetime(2026, 11, 26, 14, 15, 58, 348123, tzinfo=UTC)


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda b: b.update(version="3"), "version"),
        (lambda b: b.pop("version"), "version"),
        (lambda b: b.update(status="pending"), "status"),
        (lambda b: b.update(alerts={}), "alerts"),
        (lambda b: b["alerts"][0].pop("startsAt"), "alerts[0].startsAt"),
        (lambda b: b["alerts"][0].update(startsAt="yesterday"), "alerts[0].startsAt"),
        (lambda b: b["alerts"][0]["labels"].update(severity=3), "alerts[0].labels.severity"),
        (lambda b: b["alerts"][0].update(status=None), "alerts[0].status"),
        (lambda b: b.update(truncatedAlerts=-1), "truncatedAlerts"),
    ],
)
def test_malformed_payloads_name_the_field(mutate, path: str) -> None:
    body = copy.deepcopy(load_fixture("alertmanager-0.25-webhook-firing.json"))
    mutate(body)
    with pytest.raises(PayloadError) as info:
        parse_alertmanager(body)
    assert info.value.path == path
    assert path in str(info.value)


def test_identity_rules_prefer_exporter_labels_and_apply_defaults() -> None:
    rules = IdentityRules(default_platform="ecs", default_cluster="prod")
    body = load_fixture("alertmanager-0.25-webhook-truncated-childroute.json")
    alert = parse_alertmanager(body, rules=rules).alerts[0]
    assert alert.target.key == "ecs/prod/default/cart"
    body["alerts"][0]["labels"].update(target="cart-api", component="api", revision="7", platform="kubernetes")
    alert = parse_alertmanager(body, rules=rules).alerts[0]
    assert alert.target.key == "kubernetes/prod/default/cart-api"
    assert (alert.target.component, alert.target.revision) == ("api", "7")


def test_grafana_webhook() -> None:
    note = parse_grafana(load_fixture("grafana-alerting-webhook.json"))
    [alert] = note.alerts
    assert note.source == "grafana"
    assert alert.target.key == "kubernetes/prod-eu/shop/checkout"
    assert alert.failure_kind == "errors"
    assert alert.value == 0.07
    assert alert.fingerprint == "57c6d9296de2ad39"


def test_datadog_recommended_template() -> None:
    note = parse_datadog(load_fixture("datadog-webhook-template-triggered.json"))
    [alert] = note.alerts
    assert (alert.status, alert.repeat) == ("firing", False)
    assert alert.fingerprint == "7043823645278491232", "the alert cycle key links trigger and recovery"
    assert alert.target.key == "kubernetes/prod-eu/shop/checkout"
    assert alert.failure_kind == "canary"
    assert alert.severity == "critical"
    assert alert.name == "checkout health score low"
    assert alert.starts_at == datetime.fromtimestamp(1795702641, UTC)


def test_datadog_transitions() -> None:
    body = load_fixture("datadog-webhook-template-triggered.json")
    for transition, status, repeat in [
        ("Recovered", "resolved", False),
        ("Re-Triggered", "firing", True),
        ("Renotify", "firing", True),
        ("No Data", "firing", False),
    ]:
        alert = parse_datadog({**body, "alert_transition": transition}).alerts[0]
        assert (alert.status, alert.repeat) == (status, repeat), transition
    assert parse_datadog({**body, "alert_transition": "No Data"}).alerts[0].failure_kind == "no_data"


def test_datadog_default_payload_degrades_gracefully() -> None:
    alert = parse_datadog(load_fixture("datadog-webhook-default-payload.json")).alerts[0]
    assert alert.status == "firing"
    assert alert.target.key == "kubernetes/default/default/checkout"
    assert len(alert.fingerprint) == 16


def test_datadog_unsubstituted_variables_count_as_absent() -> None:
    template = load_fixture("datadog-webhook-payload-template.json")
    with pytest.raises(PayloadError) as info:
        parse_datadog(template)
    assert info.value.path == "alert_transition"
    alert = parse_datadog({**template, "alert_transition": "Triggered", "alert_id": "42"}).alerts[0]
    assert alert.target.name is None, "no deployment tag: the engine must ignore it, not guess"


def test_datadog_iso_dates_and_form_values() -> None:
    body = {
        "alert_transition": "Triggered",
        "alert_id": "7",
        "date": "2026-11-26T14:00:00Z",
        "tags": "service:api",
    }
    alert = parse_datadog(body).alerts[0]
    assert alert.starts_at == datetime(2026, 11, 26, 14, tzinfo=UTC)
    assert alert.target.name == "api"


def test_registry_rejects_unknown_source() -> None:
    with pytest.raises(ValueError, match="known: alertmanager, datadog, grafana"):
        parse("pagerduty", {})
