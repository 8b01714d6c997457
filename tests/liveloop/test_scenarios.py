"""Every live-loop scenario end to end: real Prometheus, Alertmanager, gunicorn reactor, exporter, sandbox.

Each test starts a fresh loop in a temporary run directory, plays one scenario and checks, from the parts
themselves: the number of rollbacks, the cluster state in the sandbox, the reactor's audit record, and the
exporter's score after the rollback.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from reactor.liveloop import SCENARIOS, LiveLoop
from reactor.liveloop.loop import CLUSTER
from reactor.liveloop.scenarios import NS
from reactor.settings import HealthSettings
from reactor.store import Store

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


def _audit(run_dir: Path, target: str) -> list[dict]:
    store = Store.connect(f"sqlite:///{run_dir / 'reactor.db'}", upgrade=False)
    try:
        return store.audit_trail(target=f"kubernetes/{CLUSTER}/{NS}/{target}", limit=500)
    finally:
        store.engine.dispose()


@pytest.mark.usefixtures("prometheus_binaries")
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario(name: str, tmp_path: Path) -> None:
    scenario = SCENARIOS[name]
    loop = LiveLoop(tmp_path / "run", echo=lambda _line: None)
    try:
        loop.start()
        out = loop.play(scenario)
        assert loop.sandbox is not None
        ok, state = scenario.check(loop.sandbox.store)
        final = loop.scores()[scenario.target]
        # What a progressive rollback's stable-side check reads: the reactor's own default query, asked of the
        # loop's Prometheus over the scenario (the exporter's baseline score, while the baseline shares traffic).
        query = HealthSettings().query.format(target=scenario.target, namespace=NS, cluster=CLUSTER)
        answer = loop.session.get(
            f"{loop.url('prometheus')}/api/v1/query_range",
            params={"query": query, "start": out.deployed_at - 30, "end": time.time(), "step": 0.5},
            timeout=5,
        ).json()
        stable_scores = [float(v) for series in answer["data"]["result"] for _, v in series["values"]]
    finally:
        loop.stop()

    assert out.rollbacks == scenario.rollbacks, out.problems
    assert ok, state
    assert out.ok, out.problems
    executed = [d for d in out.decisions if d["action"] == "rollback"]
    assert len(executed) == scenario.rollbacks
    assert all(d["strategy"] == scenario.strategy and d["status"] == "succeeded" for d in executed)

    audit = _audit(tmp_path / "run", scenario.target)
    kinds = [row["kind"] for row in audit]
    assert "deployment" in kinds  # the faulty deploy was registered
    if scenario.rollbacks:
        decision = executed[0]["id"]
        trail = [row["kind"] for row in audit if row["decision_id"] == decision]
        for kind in ("decision", "plan", "step", "outcome"):
            assert kind in trail, f"no {kind} entry for decision {decision}: {trail}"
        assert any(r["kind"] == "alert" and r["message"].startswith("firing") for r in audit)
        assert any(r["kind"] == "outcome" and "succeeded" in r["message"] for r in audit)
        # The score recovered after the rollback: the revision serving again scored healthy on sufficient data.
        assert out.recovered and out.recovered_at is not None and out.recovered_at > out.rollback_completed_at
        if not scenario.redeploy:
            # And stayed so: every reading of the restored revision since it recovered, as for a healthy deploy
            # (each reading is a statistical test, so one may read marginal; none may fail).
            after = [(v, ok) for t, rev, v, ok in out.readings if t >= out.recovered_at and rev == final["revision"]]
            assert after and not [v for v, ok in after if ok and v < 50], (out.readings, final)
            assert sorted(v for v, _ in after)[len(after) // 2] >= 75, (out.readings, final)
            # One alert, one decision: a critical failure's health alert is inhibited (alertmanager.example.yml)
            # instead of reaching the reactor as a second decision that the cooldown ignores.
            assert len(out.decisions) == scenario.rollbacks, [d["explanation"] for d in out.decisions]
            # The errors failed on the new revision's first scrape, on event totals of its raw counters: the
            # score fell while the latency (a rate() needing two scrapes, then two points) still lacked data,
            # because no latency verdict could have lifted it back to 50.
            assert out.metrics_at_drop.get("errors") == "high", out.metrics_at_drop
            assert out.metrics_at_drop.get("latency_p90") in ("nodata", "insufficient"), out.metrics_at_drop
        assert out.deployed_at < out.alert_received_at <= out.decision_at <= out.rollback_completed_at
    else:
        assert not any(r["kind"] == "decision" for r in audit), kinds
        # Each reading is a statistical test: a healthy revision may read marginal now and then (the judge's
        # 98 % confidence, kept honest on overlapping rate() windows by its serial-correlation correction), and
        # its rare errors often leave the rate test undecided (insufficient). What must hold: no reading on
        # sufficient data fails (nothing for the rollback rule to fire on), and most read healthy.
        mine = [(score, sufficient) for _, revision, score, sufficient in out.readings if revision == final["revision"]]
        assert len(mine) >= 20 and not [s for s, sufficient in mine if sufficient and s < 50], (out.readings, final)
        scores = sorted(s for s, _ in mine)
        assert scores[len(scores) // 2] >= 75, (out.readings, final)
    if scenario.strategy == "progressive":
        # The stable side served next to the canary, and the exporter scored it against its own previous window:
        # the series a progressive rollback's stable-side check reads, found by the reactor's own default query.
        # (The loop's reactor does not act on it: 8 s windows and a traffic share that halves in a second make
        # the stable side's score too noisy to hold a rollback on; production windows are minutes.)
        assert stable_scores, answer
    if scenario.redeploy:
        # The retried deploy's alert fired again and was held by the cooldown (its score flaps, so the final
        # score may be in either phase); the retried revision stays.
        held = [d for d in out.decisions if d["action"] == "ignore" and "cooldown" in " ".join(d["reasons"])]
        assert held and final["revision"] == "1.6.0", (held, final)
    # Nothing of the loop is left running.
    assert all(child.process.poll() is not None for child in loop.supervisor.children)  # type: ignore[union-attr]
