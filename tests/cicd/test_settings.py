"""The deployment settings are validated at start-up, each problem with its path and a hint."""

from __future__ import annotations

import pytest

from reactor.settings import ConfigError, Settings, load_settings


def settings(**overrides: object) -> Settings:
    return load_settings(env={}, overrides={"auth.insecure": True, **overrides})


def test_defaults_and_per_target_soak() -> None:
    s = settings(**{"policies.targets": [{"match": "*/payments/*", "soak_seconds": 3600}]})
    assert s.deployments.soak_seconds == 600 and s.deployments.require_health_data is False
    assert s.soak_for("kubernetes/prod/payments/ledger") == 3600
    assert s.soak_for("kubernetes/prod/shop/checkout") == 600
    env = load_settings(env={"SMART_ROLLBACK_INSECURE": "true", "SMART_ROLLBACK_DEPLOYMENTS__SOAK_SECONDS": "900"})
    assert env.deployments.soak_seconds == 900


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"deployments.soak_seconds": 0}, "deployments.soak_seconds: Input should be greater than 0"),
        ({"deployments.soak_seconds": 8 * 86400}, "deployments.soak_seconds: Input should be less than or equal"),
        ({"policies.targets": [{"match": "*", "soak_seconds": -1}]}, "policies.targets.0.soak_seconds"),
        ({"deployments.require_health_data": True}, "set health.prometheus_url"),
        ({"deployments.sufficiency_query": 'up{{job="{job}"}}'}, "'job' is not a known placeholder"),
        ({"deployments.max_wait_seconds": 600}, "deployments.max_wait_seconds"),
        ({"deployments.soak": 60}, "deployments.soak: unknown setting"),
    ],
)
def test_invalid_settings_say_what_to_fix(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings(**overrides)
    assert message in str(caught.value)
