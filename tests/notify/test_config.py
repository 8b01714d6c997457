"""Settings: validated shapes with clear messages; secrets read at hub start-up, from env or files."""

from __future__ import annotations

import ast

import pytest

from reactor.notify.channels import CHANNELS
from reactor.notify.config import load_notification_settings, parse_notification_settings
from reactor.notify.errors import NotificationConfigError, SecretError
from reactor.notify.hub import NotificationHub
from tests.conftest import ROOT


def problems(data) -> str:
    with pytest.raises(NotificationConfigError) as info:
        parse_notification_settings(data)
    return str(info.value)


def test_channel_types_come_from_the_registry():
    message = problems({"channels": {"x": {"type": "carrier-pigeon"}}})
    assert "notifications.channels.x" in message
    for name in CHANNELS:
        assert f"'{name}'" in message
    assert {"slack", "teams", "pagerduty", "opsgenie", "email", "twilio", "sms_webhook", "webhook"} <= set(CHANNELS)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"channels": {"pd": {"type": "pagerduty"}}},
            "notifications.channels.pd: routing_key is required: set routing_key_env",
        ),
        (
            {"channels": {"s": {"type": "slack", "webhook_url": "https://x", "webhook_url_env": "X"}}},
            "set only one of webhook_url, webhook_url_env",
        ),
        ({"channels": {"s": {"type": "slack", "bot_token_env": "T"}}}, "bot_token needs channel"),
        (
            {"channels": {"s": {"type": "slack", "webhook_url": "https://x", "bot_token": "b", "channel": "C1"}}},
            "set either webhook_url",
        ),
        (
            {"channels": {"s": {"type": "slack", "webhook_url": "https://x", "colour": "red"}}},
            "channels.s.colour",
        ),
        (
            {"channels": {"m": {"type": "email", "host": "h", "from": "a@b.c", "to": ["x@y.z"], "password_env": "P"}}},
            "username and password go together",
        ),
        (
            {
                "channels": {
                    "m": {
                        "type": "email",
                        "host": "h",
                        "from": "a@b.c",
                        "to": ["x@y.z"],
                        "security": "none",
                        "username": "u",
                        "password_env": "P",
                    }
                }
            },
            "refusing to send the SMTP password unencrypted",
        ),
        (
            {"channels": {"t": {"type": "twilio", "account_sid": "AC1", "to": ["+1"]}}},
            "channels.t.account_sid",
        ),
        ({"routes": [{"channels": ["nope"]}]}, "routes[0] names channel 'nope', which is not defined"),
        ({"channels": {"bad name!": {"type": "webhook", "url": "https://x"}}}, "channel name 'bad name!'"),
        ({"chatops": {"link_secret_env": "L"}}, "link_secret needs public_url"),
        ({"delivery": {"workers": 0}}, "notifications.delivery.workers"),
        ({"routes": [{"match": {"events": ["exploded"]}, "channels": []}]}, "routes.0.match.events.0"),
    ],
)
def test_invalid_settings_say_where_and_what(data, expected):
    assert expected in problems(data)


def test_secret_spellings_and_resolution_at_start_up(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("xoxb-from-file\n")
    settings = parse_notification_settings(
        {
            "channels": {
                "a": {"type": "slack", "bot_token_file": str(token_file), "channel": "C1"},
                "b": {"type": "slack", "bot_token_env": "SLACK_B", "channel": "C2"},
                "c": {"type": "slack", "bot_token": "xoxb-inline", "channel": "C3"},
            }
        }
    )
    assert "xoxb" not in repr(settings) and "xoxb" not in settings.model_dump_json()
    hub = NotificationHub(settings, environ={"SLACK_B": "xoxb-from-env"})
    try:
        secrets = {name: channel.secrets["bot_token"] for name, channel in hub.channels.items()}
        assert secrets == {"a": "xoxb-from-file", "b": "xoxb-from-env", "c": "xoxb-inline"}
    finally:
        hub.close()


def test_missing_secrets_are_all_listed_when_the_hub_starts(tmp_path):
    settings = parse_notification_settings(
        {
            "channels": {
                "pd": {"type": "pagerduty", "routing_key_env": "PD_KEY"},
                "s": {"type": "slack", "webhook_url_file": str(tmp_path / "missing")},
            },
            "grafana": {"url": "https://grafana.example.com", "token_env": "GRAFANA_TOKEN"},
        }
    )
    with pytest.raises(SecretError) as info:
        NotificationHub(settings, environ={})
    message = str(info.value)
    assert "notifications.channels.pd.routing_key: environment variable PD_KEY is not set" in message
    assert "notifications.channels.s.webhook_url: cannot read secret file" in message
    assert "notifications.grafana.token: environment variable GRAFANA_TOKEN" in message


def test_load_reads_the_notifications_section(tmp_path):
    path = tmp_path / "reactor.yaml"
    path.write_text(
        "server: {bind: '127.0.0.1:8080'}\n"
        "notifications:\n"
        "  channels:\n"
        "    hook: {type: webhook, url: 'https://example.com/in', rate_limit: false}\n"
    )
    settings = load_notification_settings(path)
    assert list(settings.channels) == ["hook"]
    (tmp_path / "empty.yaml").write_text("server: {}\n")
    with pytest.raises(NotificationConfigError, match="has no notifications: section"):
        load_notification_settings(tmp_path / "empty.yaml")
    (tmp_path / "broken.yaml").write_text("notifications: [\n")
    with pytest.raises(NotificationConfigError, match="not valid YAML"):
        load_notification_settings(tmp_path / "broken.yaml")


def test_no_environment_is_read_at_import_time():
    """Module and class bodies of reactor/notify never touch os.environ / os.getenv (functions may)."""
    offenders = []
    for path in sorted((ROOT / "reactor" / "notify").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in _module_level_nodes(tree):
            text = ast.unparse(node)
            if "os.environ" in text or "getenv" in text:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {text[:80]}")
    assert offenders == []


def _module_level_nodes(tree: ast.Module):
    """Statements that run at import: module and class bodies, not function bodies."""
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for default in [*node.args.defaults, *node.args.kw_defaults]:
                if default is not None:
                    yield default
            continue
        if isinstance(node, ast.ClassDef):
            pending.extend(node.body)
            continue
        yield node


def test_every_yaml_example_in_the_docs_is_valid():
    import re

    import yaml

    text = (ROOT / "docs" / "notifications.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    assert len(blocks) >= 8
    for block in blocks:
        data = yaml.safe_load(block)
        if "notifications" in data:
            parse_notification_settings(data["notifications"])
        elif "grafana" in data:
            parse_notification_settings(data)
        else:  # a map of channels
            parse_notification_settings({"channels": data})


def test_the_receiver_snippet_in_the_docs_verifies_our_signature():
    import re
    import time

    from reactor.notify.signing import webhook_signature

    text = (ROOT / "docs" / "notifications.md").read_text()
    (snippet,) = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "def verify" in b]
    namespace: dict = {}
    exec(compile(snippet, "docs/notifications.md", "exec"), namespace)
    body, stamp = b'{"version":1}', str(int(time.time()))
    headers = {
        "X-Smart-Rollback-Timestamp": stamp,
        "X-Smart-Rollback-Signature": webhook_signature("k", stamp, body),
    }
    assert namespace["verify"](b"k", headers, body)
    assert not namespace["verify"](b"other", headers, body)
