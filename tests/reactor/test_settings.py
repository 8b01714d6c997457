"""Settings: start with no file, refine by YAML and SMART_ROLLBACK_* variables, fail early with clear messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from reactor.settings import ConfigError, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "smart-rollback.yml"
    path.write_text(text)
    return path


def test_no_file_with_flags(tmp_path: Path) -> None:
    settings = load_settings(env={}, overrides={"server.bind": "127.0.0.1:9000", "auth.tokens": ["t"]})
    assert settings.server.bind == "127.0.0.1:9000"
    assert settings.database.url == "sqlite:///smart-rollback.db"
    assert settings.policies.defaults.mode == "observe", "a new install only records until told otherwise"
    assert settings.platforms["kubernetes"].type == "dry-run", "nothing real changes without configuration"


def test_refuses_to_start_without_credentials() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env={})
    message = str(info.value)
    assert "--token" in message and "--insecure" in message


def test_environment_variables() -> None:
    env = {
        "SMART_ROLLBACK_BIND": "0.0.0.0:8443",
        "SMART_ROLLBACK_DB": "postgres://sr@db/rollback",
        "SMART_ROLLBACK_TOKEN": "a, b",
        "SMART_ROLLBACK_MODE": "auto",
        "SMART_ROLLBACK_KILL_SWITCH": "true",
        "SMART_ROLLBACK_POLICIES__DEFAULTS__COOLDOWN_SECONDS": "30",
        "SMART_ROLLBACK_WORKER__POLL_INTERVAL_SECONDS": "0.1",
        "UNRELATED": "x",
    }
    settings = load_settings(env=env)
    assert settings.server.bind == "0.0.0.0:8443"
    assert settings.database.url == "postgresql://sr@db/rollback"
    assert [t.get_secret_value() for t in settings.auth.tokens] == ["a", "b"]
    assert settings.policies.defaults.mode == "auto"
    assert settings.kill_switch is True
    assert settings.policies.defaults.cooldown_seconds == 30
    assert settings.worker.poll_interval_seconds == 0.1


def test_precedence_file_env_flags(tmp_path: Path) -> None:
    path = write(tmp_path, "server: {bind: '127.0.0.1:1000'}\nauth: {tokens: [f]}\n")
    assert load_settings(path, env={}).server.bind == "127.0.0.1:1000"
    env = {"SMART_ROLLBACK_BIND": "127.0.0.1:2000"}
    assert load_settings(path, env=env).server.bind == "127.0.0.1:2000"
    assert load_settings(path, env=env, overrides={"server.bind": "127.0.0.1:3000"}).server.bind == "127.0.0.1:3000"
    assert load_settings(env={"SMART_ROLLBACK_CONFIG": str(path)}).server.bind == "127.0.0.1:1000"


def test_every_problem_is_listed_with_its_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
auth: {insecure: true}
server: {bind: 'localhost', workers: 0}
policies:
  defaults: {mode: yolo}
  targets:
    - {match: 'kubernetes/*/shop/*', cooldown: 5}
database: {url: 'mysql://x'}
""",
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    message = str(info.value)
    assert str(path) in message
    for expected in (
        "server.bind: bind must be HOST:PORT",
        "server.workers",
        "policies.defaults.mode",
        "policies.targets.0.cooldown: unknown setting",
        "database.url: database url must start with sqlite:/// or postgresql://",
    ):
        assert expected in message, message


def test_cross_checks_use_the_registries(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
auth: {insecure: true}
policies:
  defaults: {default_strategy: yolo, platform: mars}
platforms:
  k8s: {type: nomad}
""",
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    message = str(info.value)
    assert "unknown platform type 'nomad'; registered: dry-run" in message


def test_unknown_strategy_and_platform_instance(tmp_path: Path) -> None:
    path = write(tmp_path, "auth: {insecure: true}\npolicies: {defaults: {default_strategy: yolo, platform: mars}}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    message = str(info.value)
    assert "unknown strategy 'yolo'; registered: " in message and "undo" in message
    assert "'mars' is not configured under platforms:" in message


def test_release_graph_must_be_acyclic(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
auth: {insecure: true}
releases:
  shop:
    components:
      checkout: {depends_on: [payments]}
      payments: {depends_on: [checkout]}
      frontend: {depends_on: [cart]}
""",
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert "unknown components ['cart']" in str(info.value)


def test_cycle_is_reported(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "auth: {insecure: true}\nreleases: {shop: {components: {a: {depends_on: [b]}, b: {depends_on: [a]}}}}\n",
    )
    with pytest.raises(ConfigError, match="dependency cycle: a -> b -> a"):
        load_settings(path, env={})


def test_policies_merge_by_glob_in_file_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
auth: {insecure: true}
policies:
  defaults: {mode: observe, cooldown_seconds: 600}
  targets:
    - {match: 'kubernetes/prod-*/*/*', mode: recommend}
    - {match: 'kubernetes/prod-eu/shop/checkout', mode: auto, rollback_safe: false}
""",
    )
    settings = load_settings(path, env={})
    assert settings.policy_for("kubernetes/dev/shop/checkout").mode == "observe"
    assert settings.policy_for("kubernetes/prod-us/shop/checkout").mode == "recommend"
    checkout = settings.policy_for("kubernetes/prod-eu/shop/checkout")
    assert (checkout.mode, checkout.rollback_safe, checkout.cooldown_seconds) == ("auto", False, 600)


@pytest.mark.parametrize(("steps", "message"), [("[50, 20]", "ending with 0"), ("[20, 50, 0]", "must decrease")])
def test_progressive_steps(tmp_path: Path, steps: str, message: str) -> None:
    path = write(tmp_path, f"auth: {{insecure: true}}\npolicies: {{defaults: {{progressive: {{steps: {steps}}}}}}}\n")
    with pytest.raises(ConfigError, match=message):
        load_settings(path, env={})


def test_yaml_errors_are_readable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(write(tmp_path, "server: [unclosed"), env={})
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_settings(write(tmp_path, "- a\n- b\n"), env={})
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "missing.yml", env={})
