"""ECS and Swarm options in the reactor's configuration file: validated at start-up, with messages that say
where the problem is. Runs the CLI as a user does (a subprocess); building a platform connects to nothing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from strategies import PLATFORMS, load_platform
from strategies.ecs import EcsPlatform
from strategies.swarm import SwarmPlatform
from tests.conftest import ROOT

GOOD = """
auth: {tokens: [s3cret]}
platforms:
  ecs:
    type: ecs
    region: eu-west-1
    clusters: {prod-eu: {}, prod-us: {region: us-east-1}}
    targets:
      prod-eu/shop-prod/checkout:
        listener_arn: arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/shop/1/2
        weights: {stable: arn:aws:tg/stable, canary: arn:aws:tg/canary}
  swarm:
    type: swarm
    clusters: {edge: {base_url: "unix:///var/run/docker.sock"}}
    targets:
      edge/shop/web: {colors: {blue: shop_web-blue, green: shop_web-green}, active_label: traefik.enable}
"""

BAD = """
auth: {tokens: [s3cret]}
platforms:
  ecs:
    type: ecs
    targets: {prod-eu/shop-prod/checkout: {weights: {stable: a, canary: b}}}
  swarm:
    type: swarm
    clusters: {edge: {base_url: "unix:///var/run/docker.sock"}}
    targets: {edge/shop/web: {canary: {stable: a, preview: b}}}
"""


def check_config(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reactor", "check-config", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_registry_names_the_extras() -> None:
    assert PLATFORMS["ecs"] == ("strategies.ecs:EcsPlatform", "ecs")
    assert PLATFORMS["swarm"] == ("strategies.swarm:SwarmPlatform", "swarm")
    assert load_platform("ecs") is EcsPlatform and load_platform("swarm") is SwarmPlatform


def test_valid_options_pass_check_config(tmp_path: Path) -> None:
    path = tmp_path / "good.yml"
    path.write_text(GOOD)
    result = check_config(path)
    assert result.returncode == 0, result.stderr
    assert "ecs (ecs)" in result.stdout and "swarm (swarm)" in result.stdout


def test_invalid_options_are_reported_per_platform(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(BAD)
    result = check_config(path)
    assert result.returncode == 1
    assert "platforms.ecs (ecs)" in result.stderr
    assert "weights and colors need listener_arn" in result.stderr
    assert "platforms.swarm (swarm)" in result.stderr
    assert "canary needs exactly the keys stable and canary" in result.stderr


def test_options_schema_is_exposed_for_documentation() -> None:
    for cls in (EcsPlatform, SwarmPlatform):
        schema = cls.Options.model_json_schema()
        assert "targets" in schema["properties"] and "clusters" in schema["properties"]
