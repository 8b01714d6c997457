"""The shipped rules, their promtool unit tests, the Alertmanager example and the Datadog monitors.

promtool and amtool are real (Debian's ``prometheus`` and ``prometheus-alertmanager``); a missing binary is a
failure with the command that installs it, never a skip, because CI runs ``bash scripts/system-deps.sh``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

RULES_DIR = ROOT / "alert_rules"
RULE_FILE = RULES_DIR / "smart-rollback.rules.yml"
UNIT_TESTS = sorted((RULES_DIR / "tests").glob("*.test.yml"))
AM_EXAMPLE = RULES_DIR / "alertmanager.example.yml"
MONITORS = sorted((RULES_DIR / "datadog").glob("*.json"))
IDENTITY = ("platform", "cluster", "namespace", "target", "component", "revision")


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed: run `bash scripts/system-deps.sh` (Debian prometheus, prometheus-alertmanager)"
        )
    return path


def run(*cmd: str) -> str:
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULE_FILE.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


# -------------------------------------------------------------------------------------- Prometheus rules


def test_promtool_checks_the_rule_file() -> None:
    out = run(tool("promtool"), "check", "rules", str(RULE_FILE))
    assert f"SUCCESS: {len(alerts())} rules found" in out


def test_promtool_unit_tests_pass() -> None:
    assert UNIT_TESTS, "no alert_rules/tests/*.test.yml"
    out = run(tool("promtool"), "test", "rules", *map(str, UNIT_TESTS))
    assert out.count("SUCCESS") == len(UNIT_TESTS), out


def test_every_rule_is_unit_tested_firing_not_firing_and_recovering() -> None:
    """Each alert has an evaluation that fires, one before its ``for:`` has elapsed, and one after recovery."""
    cases: dict[str, list[tuple[int, bool]]] = {}
    for path in UNIT_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                cases.setdefault(case["alertname"], []).append((_seconds(case["eval_time"]), bool(case["exp_alerts"])))
    for rule in alerts():
        name = rule["alert"]
        seen = cases.get(name, [])
        fired = [t for t, firing in seen if firing]
        assert fired, f"{name}: no firing case"
        first = min(fired)
        assert any(not firing and t < first for t, firing in seen), f"{name}: no 'not yet / not firing' case"
        assert any(not firing and t > first for t, firing in seen), f"{name}: no recovery case"
        if _seconds(rule.get("for", "0s")) > 0:
            # The not-firing case just before the first firing one shows the for: holding it back.
            assert any(not firing and 0 < t < first for t, firing in seen), f"{name}: for: not exercised"


def _seconds(text: str) -> int:
    total = 0
    for value, unit in re.findall(r"(\d+)(ms|s|m|h)", str(text)):
        total += int(value) * {"ms": 0, "s": 1, "m": 60, "h": 3600}[unit]
    return total


def test_rollback_alerts_keep_the_identity_and_the_reactor_labels() -> None:
    rollback = [a for a in alerts() if a.get("labels", {}).get("smart_rollback") == "rollback"]
    assert {a["alert"] for a in rollback} == {
        "SmartRollbackHealthLow",
        "SmartRollbackCriticalMetricFailed",
        "SmartRollbackPredictedBreach",
    }
    for rule in rollback:
        labels = rule["labels"]
        assert labels["severity"] in ("critical", "major") and labels["failure_kind"], rule["alert"]
        # No aggregation may drop the target identity the reactor reads (webhooks/model.py IdentityRules).
        assert not re.search(r"\b(sum|avg|max|min|count)\b\s*(by|without|\()", rule["expr"]), rule["alert"]
        assert "smart_rollback_data_sufficient == 1" in rule["expr"], f"{rule['alert']} must gate on sufficient data"
        joined = re.search(r"on \(([^)]*)\)", rule["expr"])
        assert joined and set(IDENTITY) <= {x.strip() for x in joined.group(1).split(",")}, rule["alert"]
    warnings = [a for a in alerts() if a not in rollback]
    assert all(a["labels"]["severity"] == "warning" for a in warnings)
    insufficient = next(a for a in warnings if a["alert"] == "SmartRollbackInsufficientData")
    assert insufficient["labels"]["failure_kind"] == "no_data", "the reactor never rolls back on no_data"


# ------------------------------------------------------------------------------------------- Alertmanager


def test_amtool_checks_the_alertmanager_example() -> None:
    out = run(tool("amtool"), "check-config", str(AM_EXAMPLE))
    assert "SUCCESS" in out and "2 receivers" in out


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (["alertname=SmartRollbackHealthLow", "smart_rollback=rollback", "target=checkout"], "smart-rollback,people"),
        (["alertname=SmartRollbackInsufficientData", "severity=warning", "target=checkout"], "people"),
        (["alertname=SmartRollbackExporterDown", "severity=warning"], "people"),
    ],
)
def test_rollback_alerts_route_to_the_reactor_and_the_rest_to_people(labels: list[str], receivers: str) -> None:
    out = subprocess.run(
        [tool("amtool"), "config", "routes", "test", f"--config.file={AM_EXAMPLE}", *labels],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert out.stdout.strip() == receivers


def test_the_reactor_receiver_follows_the_contract() -> None:
    """CONTRACTS §1: exact webhook path, send_resolved, bearer from a file, one group per target, fast."""
    config = yaml.safe_load(AM_EXAMPLE.read_text())
    route = next(r for r in config["route"]["routes"] if r["receiver"] == "smart-rollback")
    assert route["matchers"] == ['smart_rollback="rollback"']
    assert set(IDENTITY) <= set(route["group_by"])
    assert _seconds(route["group_wait"]) <= 1
    receiver = next(r for r in config["receivers"] if r["name"] == "smart-rollback")
    (hook,) = receiver["webhook_configs"]
    assert hook["url"].endswith("/webhooks/alertmanager") and hook["send_resolved"] is True
    auth = hook["http_config"]["authorization"]
    assert auth["type"] == "Bearer" and auth["credentials_file"] and "credentials" not in auth


# ------------------------------------------------------------------------------------------------ Datadog


def _strict(model: Any, data: Any, path: str) -> None:
    """The client accepts unknown keys and enum values silently (``_unparsed``): refuse both."""
    from datadog_api_client.model_utils import ModelNormal

    if isinstance(model, ModelNormal):
        assert not getattr(model, "_unparsed", False), f"{path}: the client could not parse it"
        for key, value in data.items():
            assert key in model.attribute_map, f"{path}.{key}: not a field of {type(model).__name__}"
            _strict(getattr(model, key), value, f"{path}.{key}")
    else:
        assert not getattr(model, "_unparsed", False), f"{path}: unknown value {data!r}"


@pytest.mark.parametrize("path", MONITORS, ids=lambda p: p.stem)
def test_datadog_monitor_loads_into_the_client_model(path: Path) -> None:
    from datadog_api_client import Configuration
    from datadog_api_client.model_utils import validate_and_convert_types
    from datadog_api_client.v1.model.monitor import Monitor

    data = json.loads(path.read_text())
    monitor = validate_and_convert_types(data, (Monitor,), ["monitor"], True, True, Configuration())
    assert isinstance(monitor, Monitor)
    _strict(monitor, data, path.stem)
    assert str(monitor.type) == "query alert"
    assert "smart_rollback." in monitor.query
    # The comparison in the query and the critical threshold must agree, or Datadog refuses the monitor.
    threshold = float(re.findall(r"[<>]=?\s*(-?[\d.]+)\s*$", monitor.query)[0])
    assert monitor.options.thresholds.critical == threshold
    tags = dict(t.split(":", 1) for t in monitor.tags)
    if tags.get("smart_rollback") == "rollback":
        # The reactor hears the trigger and the recovery, with the identity in $TAGS (include_tags).
        alert_part = re.search(r"\{\{#is_alert\}\}(.*?)\{\{/is_alert\}\}", monitor.message, re.S)
        recovery_part = re.search(r"\{\{#is_recovery\}\}(.*?)\{\{/is_recovery\}\}", monitor.message, re.S)
        assert alert_part and "@webhook-smart-rollback" in alert_part.group(1)
        assert recovery_part and "@webhook-smart-rollback" in recovery_part.group(1)
        assert monitor.options.include_tags is True
        assert all(k in monitor.query for k in IDENTITY)
        assert tags["severity"] and tags["failure_kind"]
    else:
        assert "@webhook-smart-rollback" not in monitor.message, "warnings are for people"


def test_datadog_monitors_mirror_the_rules() -> None:
    names = {p.stem for p in MONITORS}
    assert names == {"health-low", "critical-metric-failed", "predicted-breach", "insufficient-data", "exporter-stale"}
    for stem in ("health-low", "critical-metric-failed"):
        query = json.loads((RULES_DIR / "datadog" / f"{stem}.json").read_text())["query"]
        assert "smart_rollback.data_sufficient" in query, f"{stem} must gate on sufficient data"


def _render_datadog_template(values: dict[str, str]) -> dict[str, Any]:
    """What Datadog sends: every ``$VARIABLE`` (and ``$TAGS[key]``) of the template replaced by its value."""
    text = (ROOT / "webhooks" / "templates" / "datadog-payload.json").read_text()
    rendered = re.sub(r"\$[A-Z_]+(\[[a-z_]+\])?", lambda m: json.dumps(values.get(m.group(0), ""))[1:-1], text)
    body: dict[str, Any] = json.loads(rendered)
    return body


@pytest.mark.parametrize(("transition", "status"), [("Triggered", "firing"), ("Recovered", "resolved")])
def test_the_reactor_parses_the_webhook_template_as_the_health_low_monitor_sends_it(
    transition: str, status: str
) -> None:
    from webhooks.datadog import parse_datadog

    monitor = json.loads((RULES_DIR / "datadog" / "health-low.json").read_text())
    group = "platform:kubernetes,cluster:prod-eu,namespace:shop,target:checkout,component:checkout,revision:v42"
    tags = ",".join([*monitor["tags"], *group.split(",")])
    body = _render_datadog_template(
        {
            "$ID": "7331",
            "$ALERT_ID": "123456",
            "$ALERT_CYCLE_KEY": "8833221100",
            "$AGGREG_KEY": "abc",
            "$ALERT_TRANSITION": transition,
            "$ALERT_TYPE": "error" if status == "firing" else "success",
            "$ALERT_STATUS": 'min:smart_rollback.health_score{...} < 50 "quoted"',
            "$ALERT_TITLE": f"[{transition} on {{{group}}}] [Smart Rollback] Health low on checkout (v42)",
            "$ALERT_QUERY": monitor["query"],
            "$ALERT_METRIC": "smart_rollback.health_score",
            "$ALERT_SCOPE": group,
            "$ALERT_PRIORITY": "P2",
            "$EVENT_TYPE": "query_alert_monitor",
            "$EVENT_TITLE": f"[{transition}] [Smart Rollback] Health low",
            "$TEXT_ONLY_MSG": "Health of shop/checkout (v42) is 31/100 with sufficient data.",
            "$TAGS": tags,
            "$DATE": "1795000000000",
            "$LAST_UPDATED": "1795000000000",
            "$LINK": "https://app.datadoghq.eu/monitors/123456",
            "$ORG_ID": "1",
            "$ORG_NAME": "Shop",
        }
    )
    note = parse_datadog(body)
    (alert,) = note.alerts
    assert alert.status == status
    assert alert.target.key == "kubernetes/prod-eu/shop/checkout"
    assert (alert.target.component, alert.target.revision) == ("checkout", "v42")
    assert (alert.severity, alert.failure_kind) == ("major", "degradation")
    assert alert.labels["smart_rollback"] == "rollback"
