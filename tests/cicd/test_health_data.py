"""`deployments.require_health_data`: at the end of the soak the reactor asks a real Prometheus whether the
exporter had sufficient data during the soak (`smart_rollback_data_sufficient`, as the exporter exports it)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.cicd.conftest import Clock, build, register, rt, seeded_cluster, view
from tests.conftest import free_port
from tests.exporters.conftest import Recorded, Recorder, recorder, start_prometheus

__all__ = ["recorder", "start_prometheus"]

SOAK = 5
IDENTITY = 'platform="kubernetes",cluster="prod",namespace="shop",component="",revision="v2"'
EXPOSITION = f"""# HELP smart_rollback_data_sufficient 1 when the judgement had enough data, else 0.
# TYPE smart_rollback_data_sufficient gauge
smart_rollback_data_sufficient{{{IDENTITY},target="starved"}} 0
smart_rollback_data_sufficient{{{IDENTITY},target="fed"}} 1
""".encode()


def exposition(_request: Recorded) -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": "text/plain; version=0.0.4"}, EXPOSITION


@pytest.mark.e2e
def test_the_soak_asks_prometheus_whether_the_data_was_sufficient(
    app_factory: Any, sqlite_url: str, recorder: Recorder, start_prometheus: Any
) -> None:
    recorder.respond = exposition
    prometheus = start_prometheus({"exporter": [recorder.url.removeprefix("http://")]})
    prometheus.wait_for("count(smart_rollback_data_sufficient)", lambda r: bool(r) and r[0]["value"][1] == "2")
    time.sleep(SOAK + 1)  # let the soak window below be covered by scrapes
    clock = Clock(time.time() - SOAK - 0.5)
    app = build(app_factory, sqlite_url, seeded_cluster(), clock, **{
        "deployments.soak_seconds": SOAK,
        "deployments.require_health_data": True,
        "health.prometheus_url": prometheus.url,
    })  # fmt: skip
    starved = register(app, "v2", target="kubernetes/prod/shop/starved")
    fed = register(app, "v2", target="kubernetes/prod/shop/fed")
    unknown = register(app, "v2", target="kubernetes/prod/shop/unexported")
    clock.now = time.time()
    rt(app).worker.drain()

    assert view(app, fed["id"])["status"] == "healthy"
    done = view(app, starved["id"])
    assert done["status"] == "insufficient_data"
    assert done["verdict_reason"].startswith("the exporter never had sufficient data during the 5s soak:")
    assert done["verdict_reason"].endswith(" is 0")
    missing = view(app, unknown["id"])
    assert missing["status"] == "insufficient_data" and "no series answers" in missing["verdict_reason"]


@pytest.mark.e2e
def test_an_unreachable_prometheus_is_retried_then_insufficient(app_factory: Any, sqlite_url: str) -> None:
    clock = Clock()
    app = build(app_factory, sqlite_url, seeded_cluster(), clock, **{
        "deployments.soak_seconds": SOAK,
        "deployments.require_health_data": True,
        "health.prometheus_url": f"http://127.0.0.1:{free_port()}",
        "health.timeout_seconds": 0.5,
        "worker.backoff_max_seconds": 10,
        "worker.max_attempts": 3,
    })  # fmt: skip
    deployed = register(app, "v2")
    clock.now += SOAK
    rt(app).worker.drain()
    assert view(app, deployed["id"])["status"] == "in_progress", "retried: never healthy on data nobody saw"
    retry = [j for j in rt(app).store.audit_trail() if j["kind"] == "retry"]
    assert retry == [], "not a failure: the soak job reschedules itself"
    clock.now += 31  # past backoff_max_seconds x max_attempts after the soak
    rt(app).worker.drain()
    done = view(app, deployed["id"])
    assert done["status"] == "insufficient_data"
    expected = "the exporter never had sufficient data during the 5s soak: Prometheus did not answer for 31s after "
    assert done["verdict_reason"].startswith(expected + "the soak: cannot query Prometheus")
