"""``smart-rollback deploy``, run as pipelines run it (a subprocess) against a live reactor on real time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import click
import pytest
import requests
from werkzeug.serving import make_server

from reactor.cli.deploy import actor_from_env, parse_duration, pipeline_url_from_env
from reactor.worker import Platforms
from strategies import TargetRef
from tests.cicd.conftest import AUTH, TOKEN, alert_payload, make_settings, seeded_cluster
from tests.conftest import ROOT, free_port

#: Short enough for tests, long enough that an alert sent right after registering lands inside it.
SOAK = 2.0
#: Targets that get an alert after registering soak longer (``alerted``): the alert must land inside the soak
#: even on a loaded machine; gates with a verdict from a decision return at once anyway.
POLICIES = [
    {"match": "*/observe/*", "mode": "observe", "soak_seconds": 6},
    {"match": "*/alerted/*", "soak_seconds": 6},
    {"match": "*/slow/*", "soak_seconds": 3600},
]


def reactor_settings(db: str) -> dict[str, Any]:
    return {
        "policies.defaults.mode": "auto",
        "policies.defaults.wait_timeout_seconds": 0,
        "policies.targets": POLICIES,
        "deployments.soak_seconds": SOAK,
        "worker.poll_interval_seconds": 0.2,
    }


@pytest.fixture
def live(app_factory: Any, sqlite_url: str) -> Iterator[str]:
    """The reactor app behind a real threaded HTTP server, its job worker running."""
    app = app_factory(make_settings(sqlite_url, **reactor_settings(sqlite_url)), start_worker=True)
    url, stop = serve(app)
    yield url
    stop()


def serve(app: Any) -> tuple[str, Callable[[], None]]:
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        thread.join(5)

    return f"http://127.0.0.1:{port}", stop


def cli(url: str, *args: str, env: dict[str, str] | None = None, token: str = TOKEN) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("SMART_ROLLBACK_", "GITHUB_", "CI_"))}
    environment.update({"SMART_ROLLBACK_URL": url, "SMART_ROLLBACK_TOKEN": token, **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "reactor", "deploy", *args], cwd=ROOT, env=environment, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


def registered(url: str, target: str, revision: str = "v2") -> str:
    result = cli(url, "register", "--target", target, "--revision", revision)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def fire(url: str, target: str, **labels: str) -> None:
    body = alert_payload(time.time(), target=target, **labels)
    response = requests.post(f"{url}/webhooks/alertmanager", json=body, headers=AUTH, timeout=10)
    assert response.status_code == 202, response.text


def test_register_prints_the_id_and_records_the_pipeline(live: str) -> None:
    env = {"GITHUB_SERVER_URL": "https://github.example", "GITHUB_REPOSITORY": "shop/checkout",
           "GITHUB_RUN_ID": "42", "GITHUB_ACTOR": "alice"}  # fmt: skip
    result = cli(live, "register", "--target", "kubernetes/prod/shop/checkout", "--revision", "v7", "--previous", "v6",
                 env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    deployment_id = result.stdout.strip()
    assert len(deployment_id) == 16 and "\n" not in deployment_id
    assert f"registered deployment {deployment_id}: revision v7 of kubernetes/prod/shop/checkout" in result.stderr
    view = requests.get(f"{live}/api/v1/deployments/{deployment_id}", headers=AUTH, timeout=10).json()
    assert view["pipeline_url"] == "https://github.example/shop/checkout/actions/runs/42"
    assert (view["actor"], view["previous_revision"]) == ("alice", "v6")

    again = cli(live, "register", "--target", "kubernetes/prod/shop/checkout", "--revision", "v7", "--json",
                "--idempotency-key", "run-42")  # fmt: skip
    first = json.loads(again.stdout)
    repeat = cli(live, "register", "--target", "kubernetes/prod/shop/checkout", "--revision", "v7",
                 "--idempotency-key", "run-42")  # fmt: skip
    assert repeat.stdout.strip() == first["id"]
    assert "already registered with this idempotency key" in repeat.stderr


def test_gate_healthy(live: str) -> None:
    deployment_id = registered(live, "kubernetes/prod/shop/cart")
    result = cli(live, "gate", "--deployment", deployment_id, "--timeout", "60s")
    assert (result.returncode, result.stdout.strip()) == (0, "healthy"), result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"gate: deployment {deployment_id}, revision v2 of kubernetes/prod/shop/cart")
    assert "] in_progress: soaking:" in lines[1]
    assert "] verdict: healthy (exit 0): no rollback and no rollback-worthy alert during the" in lines[-1]


def test_gate_rolled_back(live: str) -> None:
    target = "kubernetes/prod/alerted/payments"
    deployment_id = registered(live, target)
    fire(live, target)
    result = cli(live, "gate", "--deployment", deployment_id, "--timeout", "60")
    assert (result.returncode, result.stdout.strip()) == (10, "rolled_back"), result.stderr
    assert "] verdict: rolled_back (exit 10): rolled back to revision 1 by decision" in result.stderr


def test_gate_bad_in_observe_mode(live: str) -> None:
    target = "kubernetes/prod/observe/search"
    deployment_id = registered(live, target)
    fire(live, target)
    result = cli(live, "gate", "--deployment", deployment_id, "--timeout", "60", "--json")
    assert result.returncode == 11, result.stderr
    view = json.loads(result.stdout)
    assert view["status"] == "bad" and "mode observe, not executed" in view["verdict_reason"]


def test_gate_insufficient_data(live: str) -> None:
    target = "kubernetes/prod/alerted/quiet"
    deployment_id = registered(live, target)
    fire(live, target, alertname="HealthDataMissing", failure_kind="insufficient_data")
    result = cli(live, "gate", "--deployment", deployment_id, "--timeout", "60")
    assert (result.returncode, result.stdout.strip()) == (12, "insufficient_data"), result.stderr


def test_gate_timeout_with_periodic_progress(live: str) -> None:
    deployment_id = registered(live, "kubernetes/prod/slow/ledger")
    result = cli(live, "gate", "--deployment", deployment_id, "--timeout", "3s", "--progress-every", "1s")
    assert (result.returncode, result.stdout.strip()) == (13, "timeout"), result.stderr
    assert "warning: the soak ends after --timeout (60m > 3s)" in result.stderr
    assert "] still soaking: soaking: 60m left" in result.stderr, "a line at least every --progress-every"
    assert f"timeout: no verdict after 3s (exit 13); deployment {deployment_id} is still soaking" in result.stderr


def test_gate_superseded(live: str) -> None:
    first = registered(live, "kubernetes/prod/shop/auth", "v1")
    registered(live, "kubernetes/prod/shop/auth", "v2")
    result = cli(live, "gate", "--deployment", first, "--timeout", "10")
    assert (result.returncode, result.stdout.strip()) == (14, "superseded"), result.stderr


def test_errors_exit_2_and_say_what_to_do(live: str) -> None:
    wrong = cli(live, "gate", "--deployment", "x", "--timeout", "5", token="wrong")
    assert wrong.returncode == 2 and "refused the credentials (401): set SMART_ROLLBACK_TOKEN" in wrong.stderr
    missing = cli(live, "gate", "--deployment", "nope", "--timeout", "5")
    assert missing.returncode == 2 and "refused (404): no deployment 'nope'" in missing.stderr
    down = f"http://127.0.0.1:{free_port()}"
    gone = cli(down, "gate", "--deployment", "x", "--timeout", "1")
    assert gone.returncode == 2 and "cannot reach the reactor" in gone.stderr
    unregistered = cli(down, "register", "--target", "k/c/n/x", "--revision", "1", "--retry-for", "1")
    assert unregistered.returncode == 2 and "retrying in" in unregistered.stderr
    leaky = cli("https://me:s3cret@rollback.example", "gate", "--deployment", "x")
    assert leaky.returncode == 2 and "Pass the token in SMART_ROLLBACK_TOKEN" in leaky.stderr
    duration = cli(live, "gate", "--deployment", "x", "--timeout", "soon")
    assert duration.returncode == 2 and "'soon' is not a duration" in duration.stderr
    bad_target = cli(live, "register", "--target", "checkout", "--revision", "1")
    assert bad_target.returncode == 2 and "platform/cluster/namespace/name" in bad_target.stderr


def test_mark_good_bad_and_list(live: str) -> None:
    target = "kubernetes/prod/slow/ledger2"
    deployment_id = registered(live, target, "v5")
    good = cli(live, "mark-good", "--deployment", deployment_id, "--reason", "smoke tests passed", "--actor", "qa")
    assert good.returncode == 0, good.stderr
    assert f"deployment {deployment_id} (revision v5 of {target}) is healthy" in good.stderr
    gate = cli(live, "gate", "--deployment", deployment_id, "--timeout", "5")
    assert gate.returncode == 0, "a person's verdict ends the wait at once"

    bad = cli(live, "mark-bad", "--target", target, "--revision", "v4", "--reason", "INC-9", "--actor", "bob")
    assert bad.returncode == 0, bad.stderr
    assert f"revision v4 of {target} marked bad; last known good: v5" in bad.stderr
    usage = cli(live, "mark-bad", "--target", target, "--reason", "x")
    assert usage.returncode == 2 and "give either --deployment ID, or --target T and --revision R" in usage.stderr
    no_reason = cli(live, "mark-good", "--deployment", deployment_id)
    assert no_reason.returncode == 2 and "Missing option '--reason'" in no_reason.stderr

    listed = cli(live, "list", "--target", target)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0].startswith(f"last known good revision of {target}: v5 (marked by qa")
    assert f"{deployment_id}  v5" in listed.stdout and "healthy" in listed.stdout


def test_durations_and_ci_environments() -> None:
    assert [parse_duration(t) for t in ("600", "90s", "15m", "1h30m", "1.5h", " 2M ")] == [
        600,
        90,
        900,
        5400,
        5400,
        120,
    ]
    for text in ("", "soon", "1h30", "-5", "5d"):
        with pytest.raises(click.BadParameter):
            parse_duration(text)
    assert pipeline_url_from_env({"CI_PIPELINE_URL": "https://gitlab/p/1"}) == "https://gitlab/p/1"
    assert pipeline_url_from_env({"BUILD_URL": "https://jenkins/job/1/"}) == "https://jenkins/job/1/"
    assert pipeline_url_from_env({"CIRCLE_BUILD_URL": "https://circleci/1"}) == "https://circleci/1"
    assert pipeline_url_from_env({}) is None
    assert actor_from_env({"GITLAB_USER_LOGIN": "carol", "USER": "root"}) == "carol"


def test_a_revision_marked_bad_is_never_rolled_onto(app_factory: Any, sqlite_url: str) -> None:
    """End to end: a person marks the platform's stable revision bad with the CLI; the next bad deploy is
    rolled back past it, and the gate says so."""
    ref = TargetRef.parse("kubernetes/prod/alerted/checkout")
    target = str(ref)
    cluster = seeded_cluster(ref)  # revisions 1..3 (images shop:1..3), 3 running, 2 the platform's stable one
    settings = make_settings(sqlite_url, **reactor_settings(sqlite_url))
    platforms = Platforms(settings, instances={"kubernetes": cluster})
    app = app_factory(settings, platforms=platforms, start_worker=True)
    url, stop = serve(app)
    try:
        marked = cli(url, "mark-bad", "--target", target, "--revision", "shop:2", "--reason", "INC-12: loses orders",
                     "--actor", "alice")  # fmt: skip
        assert marked.returncode == 0, marked.stderr
        deployment_id = registered(url, target, "shop:3")
        fire(url, target)
        gate = cli(url, "gate", "--deployment", deployment_id, "--timeout", "60", "--json")
        assert gate.returncode == 10, gate.stderr
        verdict = json.loads(gate.stdout)
        decision = requests.get(f"{url}/api/v1/decisions/{verdict['progress']['decision_id']}", headers=AUTH,
                                timeout=10).json()  # fmt: skip
        assert decision["to_revision"] == 1, decision["reasons"]
        assert "revision 2 is marked bad: skipped" in decision["reasons"]
        assert [c.body for c in cluster.calls] == [{"revision": 1}]
        assert cluster.describe(ref).current_revision == 1
        listed = cli(url, "list", "--target", target)
        assert f"last known good revision of {target}: none yet" in listed.stdout
    finally:
        stop()
