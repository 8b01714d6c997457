"""The traffic simulator follows the sandbox's live split, per revision, and a rollback moves its metrics."""

from __future__ import annotations

import requests
from prometheus_client.parser import text_string_to_metric_families

from sandbox.resources import BY_KIND
from sandbox.seed import REGISTRY, roll
from sandbox.server import SandboxServer
from sandbox.simulator import Behaviour, Simulator, demo_entries


def _requests(sim: Simulator) -> dict[tuple[str, str, str], float]:
    out = {}
    for family in text_string_to_metric_families(sim.exposition().decode()):
        if family.name == "http_requests":
            for s in family.samples:
                if s.name == "http_requests_total":
                    out[(s.labels["target"], s.labels["revision"], s.labels["code"])] = s.value
    return out


def test_counts_follow_the_split_and_faults() -> None:
    server = SandboxServer(seed="demo")
    sim = Simulator(server.store, "shop", demo_entries(), faults={"1.6.0": Behaviour(error_ratio=0.5)})
    sim.step(10.0)
    counts = _requests(sim)
    # frontend: the Istio VirtualService sends 60 % to the canary (2.2.0), 40 % to stable (2.1.0).
    assert counts[("frontend", "2.2.0", "200")] + counts[("frontend", "2.2.0", "500")] == 360
    assert counts[("frontend", "2.1.0", "200")] + counts[("frontend", "2.1.0", "500")] == 240
    # A series exists for 5xx even without errors, so a ratio has its zero.
    assert ("cart", "2.4.0", "500") in counts
    roll(server.store, "shop", "payments", f"{REGISTRY}/payments:1.6.0", change_cause="bad")
    sim.step(10.0)
    counts = _requests(sim)
    assert ("payments", "1.5.0", "200") not in counts, "a revision that stopped serving loses its series"
    assert 120 <= counts[("payments", "1.6.0", "500")] <= 280
    assert sim.split["payments"] == [("1.6.0", 100.0)]


def test_a_colour_switch_moves_the_traffic_and_serves_metrics() -> None:
    server = SandboxServer(seed="demo")
    sim = Simulator(server.store, "shop", demo_entries(), tick=0.05).start("127.0.0.1:0")
    try:
        service = server.store.get(BY_KIND["Service"], "shop", "cart")
        service["spec"]["selector"]["color"] = "blue"
        server.store.replace(BY_KIND["Service"], "shop", "cart", service)
        sim.step(1.0)
        assert sim.split["cart"] == [("2.3.0", 100.0)]
        body = requests.get(f"{sim.url}/metrics", timeout=5).text
        assert 'revision="2.3.0",target="cart"' in body and 'revision="2.4.0",target="cart"' not in body
    finally:
        sim.stop()
