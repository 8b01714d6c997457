"""The live loop: sandbox + simulator + exporter + Prometheus + Alertmanager + reactor, on this machine.

:class:`LiveLoop` writes every configuration into the run directory, starts the parts (sandbox and
simulator as threads, the rest as supervised processes), waits for each to be ready, then
:meth:`LiveLoop.play` deploys a scenario's revision and follows what happens through the parts' own
interfaces: the exporter's ``/metrics`` for the score, the reactor's API for the alert, the decision and
its steps, the sandbox for the cluster state. Nothing is driven by hand after the deploy.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from reactor.liveloop.processes import StartError, Supervisor, free_port
from reactor.liveloop.scenarios import NS, Deploy, Scenario, redeploy
from sandbox.server import SandboxServer
from sandbox.simulator import Simulator, demo_entries

#: Scrape and rule evaluation interval of the loop's Prometheus, seconds.
SCRAPE = 1.0
EVALUATION = 1.0
#: Alertmanager's group_wait for the reactor route, seconds.
GROUP_WAIT = 1.0
#: The loop's ``for:`` of each rollback rule (the shipped file's values are for production).
RULE_FOR = {"SmartRollbackHealthLow": 1.0, "SmartRollbackCriticalMetricFailed": 0.0}
#: The exporter's cycle, the judge's window and its per-side sample minimum (errors fail before it: a count's
#: rate test decides on event totals), and the latency's ``rate()`` range.
EXPORTER_INTERVAL = 0.5
WINDOW = 8.0
MIN_SAMPLES = 2
#: Seconds between progressive steps (50 % -> 20 % -> 0 %). Half a scrape: the steps still show in the
#: per-revision counters (the simulator counts each request under the split it was served with), and the
#: deliberate waits stay inside the issue's floor + 2 s. Production waits 30-60 s (docs/live-loop.md).
PROGRESSIVE_STEP_INTERVAL = 0.5
RATE = "3s"
#: Rollback cooldown per target: long enough that a flapping metric cannot roll back twice in a run.
COOLDOWN = 300.0
CLUSTER = "sandbox"
REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "alert_rules" / "smart-rollback.rules.yml"
ALERTMANAGER_EXAMPLE = REPO / "alert_rules" / "alertmanager.example.yml"
#: Targets the exporter scores: (name, release label, critical error ratio).
WATCHED = (("payments", None, False), ("checkout", "shop", False), ("frontend", None, False), ("cart", None, True))


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def floor_seconds(alert: str | None) -> float:
    """Scrape + evaluation + the alert's ``for`` + group_wait: the least any loop like this one can take."""
    return SCRAPE + EVALUATION + RULE_FOR.get(alert or "", max(RULE_FOR.values())) + GROUP_WAIT


@dataclass
class Event:
    at: float
    what: str


@dataclass
class Outcome:
    """What a scenario did, as the loop observed it."""

    scenario: str
    strategy: str | None
    deployed_at: float
    score_dropped_at: float | None = None
    #: Each metric's classification when the score first fell below 50 on sufficient data.
    metrics_at_drop: dict[str, str] = field(default_factory=dict)
    alert_received_at: float | None = None
    decision_at: float | None = None
    rollback_completed_at: float | None = None
    rollbacks: int = 0
    floor: float = 0.0
    events: list[Event] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    state_ok: bool = False
    state: str = ""
    recovered: bool = False
    recovered_at: float | None = None
    #: Every score read for the target: ``(time, revision, score, on sufficient data)``.
    readings: list[tuple[float, str, float, bool]] = field(default_factory=list)
    ok: bool = False
    problems: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "strategy": self.strategy,
            "deployed_at": self.deployed_at,
            "alert_received_at": self.alert_received_at,
            "decision_at": self.decision_at,
            "rollback_completed_at": self.rollback_completed_at,
            "rollbacks": self.rollbacks,
            "floor_seconds": self.floor,
            "seconds_to_rollback": (
                round(self.rollback_completed_at - self.deployed_at, 3) if self.rollback_completed_at else None
            ),
            "state": self.state,
            "recovered": self.recovered,
            "ok": self.ok,
            "problems": self.problems,
        }


class LiveLoop:
    """Everything on loopback, everything under ``run_dir``; :meth:`stop` (or Ctrl-C) ends all of it."""

    def __init__(self, run_dir: Path, *, echo: Callable[[str], None] = print) -> None:
        self.run_dir = run_dir.resolve()
        self.echo = echo
        self.supervisor: Supervisor | None = None
        self.sandbox: SandboxServer | None = None
        self.simulator: Simulator | None = None
        self.ports: dict[str, int] = {}
        self.token = ""
        self.session = requests.Session()

    # ---- start ------------------------------------------------------------------------------------
    def start(self) -> None:
        for stale in ("prometheus", "alertmanager", "metrics", "reactor.db", "reactor.db-wal", "reactor.db-shm"):
            path = self.run_dir / stale
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "metrics").mkdir()
        token_file = self.run_dir / "token"
        if not token_file.exists():
            token_file.write_text(secrets.token_urlsafe(18))
            token_file.chmod(0o600)
        self.token = token_file.read_text().strip()
        self.session.headers["Authorization"] = f"Bearer {self.token}"
        self.supervisor = Supervisor(self.run_dir)
        self.ports = {name: free_port() for name in ("prometheus", "alertmanager", "reactor", "exporter")}

        self.sandbox = SandboxServer("127.0.0.1:0", seed="demo", record_requests=False).start()
        self.simulator = Simulator(self.sandbox.store, NS, demo_entries()).start("127.0.0.1:0")
        self._write_configs()
        sup = self.supervisor
        py = [sys.executable, "-m", "reactor"]
        prom = sup.start(
            "prometheus",
            [
                "prometheus",
                f"--config.file={self.run_dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.run_dir / 'prometheus'}",
                f"--web.listen-address=127.0.0.1:{self.ports['prometheus']}",
                "--storage.tsdb.retention.time=1h",
            ],
        )
        am = sup.start(
            "alertmanager",
            [
                "prometheus-alertmanager",
                f"--config.file={self.run_dir / 'alertmanager.yml'}",
                f"--storage.path={self.run_dir / 'alertmanager'}",
                f"--web.listen-address=127.0.0.1:{self.ports['alertmanager']}",
                "--cluster.listen-address=",
            ],
        )
        reactor = sup.start(
            "reactor",
            [*py, "serve", "--config", str(self.run_dir / "reactor.yml")],
            env={"PROMETHEUS_MULTIPROC_DIR": str(self.run_dir / "metrics")},
        )
        exporter = sup.start("exporter", [*py, "exporter", "--config", str(self.run_dir / "exporter.yml")])
        sup.wait_ready(prom, f"{self.url('prometheus')}/-/ready")
        sup.wait_ready(am, f"{self.url('alertmanager')}/-/ready")
        sup.wait_ready(reactor, f"{self.url('reactor')}/readyz", timeout=60)
        sup.wait_ready(exporter, f"{self.url('exporter')}/metrics", timeout=60)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def _write_configs(self) -> None:
        assert self.sandbox is not None and self.simulator is not None
        d = self.run_dir
        rules = yaml.safe_load(RULES.read_text())
        for group in rules["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") in RULE_FOR:
                    rule["for"] = f"{RULE_FOR[rule['alert']]:g}s"
        (d / "rules.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
        prometheus = {
            "global": {"scrape_interval": f"{SCRAPE:g}s", "evaluation_interval": f"{EVALUATION:g}s"},
            "rule_files": [str(d / "rules.yml")],
            "alerting": {
                "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{self.ports['alertmanager']}"]}]}]
            },
            "scrape_configs": [
                {"job_name": "shop", "static_configs": [{"targets": [self.simulator.url.removeprefix("http://")]}]},
                {
                    "job_name": "smart-rollback-exporter",
                    "static_configs": [{"targets": [f"127.0.0.1:{self.ports['exporter']}"]}],
                },
            ],
        }
        (d / "prometheus.yml").write_text(yaml.safe_dump(prometheus, sort_keys=False))
        alertmanager = {
            "route": {
                "receiver": "people",
                "group_by": ["alertname", "namespace", "target"],
                "group_wait": f"{GROUP_WAIT:g}s",
                "group_interval": "1s",
                "repeat_interval": "1h",
                "routes": [{"receiver": "reactor", "matchers": ['smart_rollback="rollback"']}],
            },
            "receivers": [
                {"name": "people"},
                {
                    "name": "reactor",
                    "webhook_configs": [
                        {
                            "url": f"{self.url('reactor')}/webhooks/alertmanager",
                            "send_resolved": True,
                            "http_config": {"authorization": {"type": "Bearer", "credentials_file": str(d / "token")}},
                        }
                    ],
                },
            ],
        }
        # The shipped example's inhibitions: a failed critical metric silences the same target's health alert,
        # so a crash is one decision, not a rollback plus a second alert the cooldown has to ignore.
        alertmanager["inhibit_rules"] = yaml.safe_load(ALERTMANAGER_EXAMPLE.read_text())["inhibit_rules"]
        (d / "alertmanager.yml").write_text(yaml.safe_dump(alertmanager, sort_keys=False))
        reactor = {
            "server": {"bind": f"127.0.0.1:{self.ports['reactor']}", "workers": 1},
            "auth": {"tokens": [self.token]},
            "database": {"url": f"sqlite:///{d / 'reactor.db'}"},
            "worker": {"poll_interval_seconds": 0.1},
            "identity": {"default_platform": "kubernetes", "default_cluster": CLUSTER, "default_namespace": NS},
            "policies": {
                "defaults": {
                    "mode": "auto",
                    "cooldown_seconds": COOLDOWN,
                    "wait_timeout_seconds": 30,
                    "progressive": {"steps": [50, 20, 0], "step_interval_seconds": PROGRESSIVE_STEP_INTERVAL},
                }
            },
            "releases": {"shop": {"components": {"payments": {}, "checkout": {"depends_on": ["payments"]}}}},
            "platforms": {
                "kubernetes": {
                    "type": "kubernetes",
                    "clusters": {CLUSTER: {"server": self.sandbox.url}},
                    "poll_interval": 0.1,
                }
            },
        }
        (d / "reactor.yml").write_text(yaml.safe_dump(reactor, sort_keys=False))
        exporter = {
            "interval": EXPORTER_INTERVAL,
            "listen": f"127.0.0.1:{self.ports['exporter']}",
            "stale_after": 30,
            "sources": {"prom": {"type": "prometheus", "url": self.url("prometheus"), "timeout": 2}},
            "judge": {"min_samples": MIN_SAMPLES, "groups": {"errors": 60, "latency": 40}},
            "targets": [_exporter_target(name, release, critical) for name, release, critical in WATCHED],
        }
        (d / "exporter.yml").write_text(yaml.safe_dump(exporter, sort_keys=False))

    # ---- observe ----------------------------------------------------------------------------------
    def scores(self) -> dict[str, dict[str, Any]]:
        """The exporter's latest score, sufficiency, revision and per-metric classifications (``metrics``) per
        target, from its ``/metrics``."""
        text = self.session.get(f"{self.url('exporter')}/metrics", timeout=2).text
        out: dict[str, dict[str, Any]] = {}
        for family in text_string_to_metric_families(text):
            if family.name == "smart_rollback_metric_verdict":
                for sample in family.samples:
                    if sample.value == 1.0:
                        entry = out.setdefault(sample.labels.get("target", ""), {})
                        entry.setdefault("metrics", {})[sample.labels["metric"]] = sample.labels["classification"]
                continue
            if family.name == "smart_rollback_baseline_health_score":
                for sample in family.samples:
                    out.setdefault(sample.labels.get("target", ""), {})["stable_score"] = sample.value
                continue
            if family.name not in ("smart_rollback_health_score", "smart_rollback_data_sufficient"):
                continue
            for sample in family.samples:
                entry = out.setdefault(sample.labels.get("target", ""), {})
                entry["revision"] = sample.labels.get("revision", "")
                key = "score" if family.name == "smart_rollback_health_score" else "sufficient"
                entry[key] = sample.value
        return out

    def decisions(self, target: str) -> list[dict[str, Any]]:
        key = f"kubernetes/{CLUSTER}/{NS}/{target}"
        rows = self.session.get(f"{self.url('reactor')}/api/v1/decisions", timeout=5).json()
        rows = rows.get("decisions", rows) if isinstance(rows, dict) else rows
        out = []
        for row in rows:
            if row.get("target") == key:
                out.append(self.session.get(f"{self.url('reactor')}/api/v1/decisions/{row['id']}", timeout=5).json())
        return sorted(out, key=lambda r: _epoch(r["created_at"]) or 0.0)

    def wait_sufficient(self, target: str, timeout: float = 60.0, *, stable_side: bool = False) -> dict[str, Any]:
        """Until the exporter scores ``target`` healthy on sufficient data; with ``stable_side``, also until its
        baseline has a score against its own past (two windows of history), as a long-serving one has."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.supervisor is not None
            self.supervisor.check()
            with contextlib.suppress(requests.RequestException):
                entry = self.scores().get(target, {})
                healthy = entry.get("sufficient") == 1.0 and entry.get("score", 0) >= 75
                if healthy and (not stable_side or "stable_score" in entry):
                    return entry
            time.sleep(0.5)
        what = "sufficient healthy score" + (" and baseline score" if stable_side else "")
        raise StartError(f"the exporter had no {what} for {target} after {timeout:.0f}s")

    def register(self, scenario: Scenario, revision: str, previous: str) -> None:
        body = {
            "target": f"kubernetes/{CLUSTER}/{NS}/{scenario.target}",
            "revision": revision,
            "previous_revision": previous,
            "actor": "smart-rollback run",
            "source": "cli",
        }
        response = self.session.post(f"{self.url('reactor')}/api/v1/deployments", json=body, timeout=5)
        response.raise_for_status()

    # ---- play -------------------------------------------------------------------------------------
    def play(self, scenario: Scenario, *, timeout: float = 40.0) -> Outcome:
        """Deploy the scenario's revision and follow the loop until it settles; the outcome says if it behaved."""
        assert self.sandbox is not None and self.simulator is not None and self.supervisor is not None
        before = self.wait_sufficient(scenario.target, stable_side=scenario.strategy == "progressive")
        self.echo(f"  {scenario.target} healthy: score {before['score']:.0f} at revision {before['revision']}")
        for tag, behaviour in scenario.faults.items():
            self.simulator.set_fault(tag, behaviour)
        deployed_at = time.time()
        deploy = scenario.deploy(self.sandbox.store)
        self.register(scenario, deploy.revision, deploy.previous)
        out = Outcome(scenario.name, scenario.strategy, deployed_at, floor=floor_seconds(scenario.alert))
        out.events.append(Event(deployed_at, f"deploy {deploy.workload} {deploy.previous} -> {deploy.revision}"))
        self._follow(scenario, out, timeout, deploy)
        self._judge(scenario, out)
        return out

    def _follow(self, scenario: Scenario, out: Outcome, timeout: float, deploy: Deploy) -> None:
        assert self.supervisor is not None and self.sandbox is not None
        redeployed = not scenario.redeploy
        deadline = out.deployed_at + timeout
        dropped = False
        settle_until: float | None = None
        seen_steps: set[tuple[str, str]] = set()
        seen_decisions: set[str] = set()
        if scenario.strategy is None:
            settle_until = out.deployed_at + scenario.settle + 8.0
        while time.time() < deadline:
            self.supervisor.check()
            now = time.time()
            try:
                entry = self.scores().get(scenario.target, {})
                decisions = self.decisions(scenario.target)
            except requests.RequestException:
                time.sleep(0.2)
                continue
            score = entry.get("score")
            if score is not None:
                out.readings.append((now, str(entry.get("revision", "")), float(score), entry.get("sufficient") == 1.0))
            if not dropped and score is not None and score < 50 and entry.get("sufficient") == 1.0:
                dropped = True
                out.score_dropped_at = now
                out.metrics_at_drop = dict(entry.get("metrics") or {})
                verdicts = ", ".join(f"{m} {c}" for m, c in sorted(out.metrics_at_drop.items()))
                what = f"score {score:.0f} for {scenario.target} {entry.get('revision')}"
                out.events.append(Event(now, f"{what} ({verdicts})" if verdicts else what))
            for d in decisions:
                self._note(d, out, seen_steps, seen_decisions)
            healthy = score is not None and score >= 75 and entry.get("sufficient") == 1.0
            if out.rollback_completed_at and not out.recovered and healthy:
                out.recovered, out.recovered_at = True, now
                out.events.append(Event(now, f"recovered: score {score:.0f} at revision {entry.get('revision')}"))
            if out.recovered and not redeployed:
                redeployed = True
                again = redeploy(self.sandbox.store, deploy)
                self.register(scenario, again.revision, again.previous)
                out.events.append(Event(time.time(), f"redeploy {again.workload} {again.previous} -> {again.revision}"))
                settle_until = time.time() + scenario.settle
                deadline = max(deadline, settle_until + 1.0)
            if out.rollback_completed_at and settle_until is None:
                settle_until = max(now, out.rollback_completed_at) + scenario.settle
            held = any("cooldown" in " ".join(d.get("reasons") or []) for d in decisions)
            if scenario.redeploy and redeployed and held and out.recovered:
                break
            if settle_until is not None and now >= settle_until and (out.recovered or scenario.strategy is None):
                break
            time.sleep(0.2)
        out.decisions = self.decisions(scenario.target)
        for d in out.decisions:
            self._note(d, out, seen_steps, seen_decisions)
        self._alert_times(scenario, out)

    def _alert_times(self, scenario: Scenario, out: Outcome) -> None:
        """When the reactor received each firing alert for the target: its audit trail, read from its database."""
        from reactor.store import Store

        store = Store.connect(f"sqlite:///{self.run_dir / 'reactor.db'}", upgrade=False)
        try:
            rows = store.audit_trail(target=f"kubernetes/{CLUSTER}/{NS}/{scenario.target}", since=out.deployed_at)
        finally:
            store.engine.dispose()
        firing = [r for r in rows if r["kind"] == "alert" and str(r["message"]).startswith("firing")]
        for row in firing:
            out.events.append(Event(float(row["at"]), str(row["message"])))
        if firing and out.decision_at is not None:
            before = [float(r["at"]) for r in firing if float(r["at"]) <= out.decision_at + 0.001]
            out.alert_received_at = max(before) if before else out.alert_received_at

    def _note(self, d: dict[str, Any], out: Outcome, seen_steps: set[tuple[str, str]], seen: set[str]) -> None:
        created = _epoch(d.get("created_at")) or 0.0
        if d["id"] not in seen:
            seen.add(d["id"])
            out.events.append(Event(created, f"decision: {d.get('explanation', '')[:160]}"))
            if d.get("action") == "rollback" and out.decision_at is None:
                out.alert_received_at = out.decision_at = created
        for step in d.get("steps") or []:
            if step.get("finished_at") and (d["id"], step["step_id"]) not in seen_steps:
                seen_steps.add((d["id"], step["step_id"]))
                out.events.append(
                    Event(_epoch(step["finished_at"]) or 0.0, f"step {step['step_id']}: {step['status']}")
                )
        if d.get("action") == "rollback" and d.get("status") == "succeeded" and out.rollback_completed_at is None:
            steps = [_epoch(s.get("finished_at")) for s in d.get("steps") or []]
            done = max([s for s in steps if s] or [_epoch(d.get("finished_at")) or time.time()])
            out.rollback_completed_at = done
            out.events.append(Event(done, f"rollback complete ({d.get('strategy')})"))

    def _judge(self, scenario: Scenario, out: Outcome) -> None:
        assert self.sandbox is not None
        executed = [d for d in out.decisions if d.get("action") == "rollback" and d.get("status") == "succeeded"]
        out.rollbacks = len(executed)
        out.state_ok, out.state = scenario.check(self.sandbox.store)
        if out.rollbacks != scenario.rollbacks:
            out.problems.append(f"{out.rollbacks} rollbacks, expected {scenario.rollbacks}")
        strategies = {d.get("strategy") for d in executed}
        if scenario.strategy and strategies != {scenario.strategy}:
            out.problems.append(f"strategy {sorted(map(str, strategies))}, expected {scenario.strategy}")
        if not out.state_ok:
            out.problems.append(f"cluster state: {out.state}")
        failing = [score for _, _, score, sufficient in out.readings if sufficient and score < 50]
        if scenario.strategy is None and failing:
            out.problems.append(f"{len(failing)} failing scores (lowest {min(failing):.0f}) for a healthy deploy")
        if scenario.strategy and not out.recovered:
            out.problems.append("the score did not recover after the rollback")
        if scenario.redeploy and not any("cooldown" in " ".join(d.get("reasons") or []) for d in out.decisions):
            out.problems.append("the redeployed revision's alert was not held by the cooldown")
        out.events.sort(key=lambda e: e.at)
        out.ok = not out.problems

    # ---- stop -------------------------------------------------------------------------------------
    def stop(self) -> None:
        if self.supervisor is not None:
            self.supervisor.stop_all()
        if self.simulator is not None:
            self.simulator.stop()
        if self.sandbox is not None:
            self.sandbox.stop()
        self.session.close()


def _exporter_target(name: str, release: str | None, critical: bool) -> dict[str, Any]:
    """One scored target. Errors are judged as counts per request (the rate test), not as a ratio per sample:
    a healthy 0.2 % error rate makes most samples' ratio 0 and a single error look like an infinite increase.
    Both are raw counters (``counter: true``): the exporter takes their increases itself, so a new revision's
    first scrape already holds its events since its pods started, and a fault with enough events to be
    significant fails at that first scrape instead of waiting for ``rate()``'s second one."""
    sel = f'namespace="{NS}", target="{name}"'
    latency = (
        f"histogram_quantile(0.9, sum by (le, revision) (rate(http_request_duration_seconds_bucket{{{sel}}}[{RATE}])))"
    )
    target: dict[str, Any] = {
        "platform": "kubernetes",
        "cluster": CLUSTER,
        "namespace": NS,
        "name": name,
        "source": "prom",
        "window": WINDOW,
        "lookback": 40,
        "step": 1,
        "detectors": [],
        "metrics": [
            {
                "name": "errors",
                "query": f'http_requests_total{{{sel}, code=~"5.."}}',
                "counter": True,
                "judge": {"group": "errors", "kind": "count", "denominator": "requests", "critical": critical},
            },
            {
                "name": "requests",
                "query": f"http_requests_total{{{sel}}}",
                "counter": True,
                "judge": {"group": "traffic", "kind": "count", "muted": True},
            },
            {"name": "latency_p90", "query": latency, "judge": {"group": "latency", "kind": "continuous"}},
        ],
    }
    if release:
        target["release"] = release
    return target


def timeline(out: Outcome) -> str:
    """The events relative to the deploy, one per line."""
    lines = []
    for event in out.events:
        lines.append(f"  +{event.at - out.deployed_at:6.2f}s  {event.what}")
    return "\n".join(lines)


def result_line(out: Outcome) -> str:
    return json.dumps(out.as_json())
