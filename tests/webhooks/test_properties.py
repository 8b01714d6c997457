"""Property tests: whatever JSON arrives, parsers return alerts or raise PayloadError, nothing else."""

from __future__ import annotations

import contextlib
import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import load_fixture
from webhooks import PARSERS, PayloadError

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=25,
)

KEYS = [
    "version", "status", "alerts", "receiver", "groupKey", "truncatedAlerts", "labels", "annotations",
    "startsAt", "endsAt", "fingerprint", "alert_transition", "alert_type", "date", "tags", "alert_cycle_key",
    "alert_id", "title", "values", "commonLabels",
]  # fmt: skip


def _only_payload_errors(source: str, body: Any) -> None:
    with contextlib.suppress(PayloadError):
        PARSERS[source](body)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(source=st.sampled_from(sorted(PARSERS)), body=json_values)
def test_arbitrary_json_raises_only_payload_error(source: str, body: Any) -> None:
    _only_payload_errors(source, body)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    source=st.sampled_from(sorted(PARSERS)),
    fixture=st.sampled_from(
        [
            "alertmanager-0.25-webhook-firing.json",
            "datadog-webhook-template-triggered.json",
            "grafana-alerting-webhook.json",
        ]
    ),
    key=st.sampled_from(KEYS),
    value=json_values,
    in_alert=st.booleans(),
)
def test_mutated_real_payloads_raise_only_payload_error(
    source: str, fixture: str, key: str, value: Any, in_alert: bool
) -> None:
    body = copy.deepcopy(load_fixture(fixture))
    if in_alert and isinstance(body.get("alerts"), list) and body["alerts"]:
        body["alerts"][0][key] = value
    else:
        body[key] = value
    _only_payload_errors(source, body)
