"""Wall time of each rollback strategy on each platform's test engine, for the parity table in docs/platforms.md.

    python -m benchmarks.platform_parity [--repeat N] [--no-write]

All four platforms in one run: the record-only dry-run platform (the zero-cost baseline), Kubernetes on the
sandbox API server (in this process, over HTTP on loopback), ECS on moto's threaded server (boto3 over HTTP)
and Swarm on a real dockerd in swarm mode (sandbox/swarm_engine.py). Each cell builds a fresh scenario with
the same builders as the contract tests (tests/platforms/cases.py; not timed), plans (not timed), then times
the real strategy's ``execute()`` until the target is in its final state: every step's write and its
``wait_ready`` are included, the configured waits between progressive steps (``step_interval``) are not
(the context's sleep returns at once). After each run the engine is read directly to confirm the rollback
happened, and ``verify()`` must agree.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks._common import free_port, log, machine_notes, write_section
from strategies import STRATEGIES
from strategies.context import MemoryContext
from tests.platforms import swarm_helpers as swh
from tests.platforms.aws_helpers import REGION
from tests.platforms.cases import SCENARIOS, STRATEGY_NAMES, DryRunCase, EcsCase, KubernetesCase, Recorder, SwarmCase

PLATFORMS = ("dry-run", "kubernetes", "ecs", "swarm")
WAIT = 120.0


@dataclass
class Cell:
    platform: str
    strategy: str
    seconds: list[float] = field(default_factory=list)
    writes: int = 0
    steps: int = 0
    error: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.seconds) if self.seconds else float("nan")


def run_once(case: Any, strategy: str) -> tuple[float, int, int]:
    """(seconds of execute(), API writes made, plan steps) of one rollback on a fresh scenario."""
    scenario = SCENARIOS[strategy](case, WAIT)
    implementation = STRATEGIES[strategy]()
    platform = Recorder(scenario.platform)
    plan = implementation.plan(platform, scenario.request)
    ctx = MemoryContext(sleep=lambda _s: None)
    started = time.perf_counter()
    outcome = implementation.execute(platform, plan, ctx)
    elapsed = time.perf_counter() - started
    if outcome.status != "succeeded":
        raise RuntimeError(f"{strategy} ended {outcome.status}: {outcome.message}")
    scenario.check()
    if implementation.verify(platform, plan) is not True:
        raise RuntimeError(f"{strategy}: verify() does not see the planned state")
    return elapsed, platform.made(), len(plan.steps)


def measure(name: str, case_factory: Callable[[], Any], repeat: int) -> list[Cell]:
    cells = []
    for strategy in STRATEGY_NAMES:
        cell = Cell(name, strategy)
        for i in range(repeat):
            case = case_factory()
            try:
                seconds, writes, steps = run_once(case, strategy)
            except Exception as exc:
                cell.error = f"{type(exc).__name__}: {exc}"[:160]
                log(f"{name:10} {strategy:12} run {i + 1}: FAILED {cell.error}")
                break
            finally:
                case.close()
            cell.seconds.append(seconds)
            cell.writes, cell.steps = writes, steps
            log(f"{name:10} {strategy:12} run {i + 1}/{repeat}: {seconds * 1000:8.1f} ms, {writes} writes")
        cells.append(cell)
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    notes = machine_notes()
    logging.getLogger("werkzeug").setLevel(logging.CRITICAL)

    import boto3
    import requests
    from moto.server import ThreadedMotoServer

    from sandbox.server import SandboxServer
    from sandbox.swarm_engine import LocalSwarm

    log("starting the sandbox API server, moto's server and a local swarm engine")
    sandbox = SandboxServer(f"127.0.0.1:{free_port()}", seed="empty", record_requests=True).start()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    moto_url = f"http://{host}:{port}"
    session = boto3.Session(aws_access_key_id="bench", aws_secret_access_key="bench", region_name=REGION)
    engine = LocalSwarm()
    engine.up()
    log(f"swarm engine up in {engine.timings['up']:.2f} s ({engine.timings})")
    api = engine.api()
    tmp = tempfile.TemporaryDirectory(prefix="platform-parity-")
    workdir = Path(tmp.name)
    counter = iter(range(1_000_000))

    def kubernetes_case() -> KubernetesCase:
        sandbox.reset("empty")
        sandbox.clear_requests()
        return KubernetesCase(sandbox, workdir, namespace=f"bench{next(counter)}")

    def ecs_case() -> EcsCase:
        requests.post(f"{moto_url}/moto-api/reset", timeout=10).raise_for_status()
        return EcsCase(session, moto_url)

    def swarm_case() -> SwarmCase:
        swh.remove_test_objects(api)
        return SwarmCase(api, engine.base_url)

    factories: dict[str, Callable[[], Any]] = {
        "dry-run": DryRunCase,
        "kubernetes": kubernetes_case,
        "ecs": ecs_case,
        "swarm": swarm_case,
    }
    cells: list[Cell] = []
    try:
        for name in PLATFORMS:
            cells += measure(name, factories[name], args.repeat)
    finally:
        swh.remove_test_objects(api)
        api.close()
        engine.down()
        moto.stop()
        sandbox.stop()
        tmp.cleanup()
        log(f"swarm engine down in {engine.timings['down']:.2f} s")

    body = report(cells, notes, engine.timings, args.repeat)
    print(body)
    if not args.no_write:
        write_section("platform_parity", body)


def report(cells: list[Cell], notes: str, engine: dict[str, float], repeat: int) -> str:
    by = {(c.platform, c.strategy): c for c in cells}

    def fmt(cell: Cell | None) -> str:
        if cell is None:
            return "-"
        if cell.error:
            return f"failed: {cell.error}"
        return f"{cell.median * 1000:.1f} ms"

    def ratio(a: Cell | None, b: Cell | None) -> str:
        if not (a and b and a.seconds and b.seconds and b.median > 0):
            return "-"
        return f"{a.median / b.median:.1f}x"

    lines = [
        "## Platform parity: wall time per strategy and platform",
        "",
        f"{notes}",
        "",
        f"`python -m benchmarks.platform_parity --repeat {repeat}`. The real strategies "
        "(`strategies.STRATEGIES`), all four platforms in this one run. Median of "
        f"{repeat} runs of `execute()` until the target is in its final state (every write and its "
        "`wait_ready` included; the configured waits between progressive steps excluded); scenario set-up "
        "and `plan()` excluded; after each run the engine is read directly and `verify()` must agree. "
        "Scenarios (tests/platforms/cases.py): undo = a workload deployed three times back to the second; "
        "blue_green = blue active, green idle (at 0 replicas on Kubernetes and Swarm) takes over; progressive = "
        "a 50/50 split stepped 50 -> 20 -> 0 (the 50 step is found done); partial = payments fails, checkout "
        "depends on it, both revert, dependents first, then the consistency check.",
        "",
        "Engines: Kubernetes = the sandbox API server in this process (Istio VirtualService for weights, a "
        "Service selector over two Deployments for colours; its pods are ready as soon as they exist); "
        "ECS = moto's threaded server in this process (it applies writes at once: real ECS adds task "
        "start-up, health checks and the ALB deregistration delay, minutes rather than milliseconds); Swarm "
        "= a real dockerd 20.10 in swarm mode with busybox tasks, `Monitor` 0.2 s, start-first updates.",
        "",
        "| strategy | dry-run | kubernetes (sandbox) | ecs (moto) | swarm (dockerd) | ecs / k8s | swarm / k8s "
        "| writes made (k8s / ecs / swarm) |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for strategy in STRATEGY_NAMES:
        dry, kube, ecs, swarm = (by.get((p, strategy)) for p in PLATFORMS)
        writes = " / ".join(str(c.writes) if c and not c.error else "-" for c in (kube, ecs, swarm))
        lines.append(
            f"| {strategy} | {fmt(dry)} | {fmt(kube)} | {fmt(ecs)} | {fmt(swarm)} | {ratio(ecs, kube)} | "
            f"{ratio(swarm, kube)} | {writes} |"
        )
    lines += [
        "",
        "Writes made: the API calls the platform reports having made during `execute()` (Kubernetes: one "
        "PATCH per Deployment undo, VirtualService step or Service switch, plus the scale-up of an idle "
        "colour; ECS: UpdateService / ModifyListener; Swarm: service updates plus the revision records it "
        "keeps as Docker configs).",
        "",
        f"Swarm engine for the run: up {engine.get('up', 0):.2f} s (fetch {engine.get('fetch', 0):.2f} s, "
        f"dockerd {engine.get('start', 0):.2f} s, swarm init {engine.get('swarm_init', 0):.2f} s, images "
        f"{engine.get('images', 0):.2f} s), down {engine.get('down', 0):.2f} s.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
