"""Wall time of each rollback strategy on each platform's test engine, for the parity table in docs/platforms.md.

    python -m benchmarks.platform_parity [--repeat N] [--no-write]

Engines: moto's threaded server for ECS (boto3 over HTTP) and a real dockerd in swarm mode (sandbox/
swarm_engine.py) for Swarm; the record-only dry-run platform as the zero-cost baseline. Each cell builds a
fresh scenario (not timed), then times ``execute()`` of the strategy from its start until the target is
ready again (each step's ``wait_ready`` included), ``repeat`` times; the table shows the median and the
API writes the plan lists.

A strategy not in ``strategies.STRATEGIES`` yet (``blue_green``, ``progressive`` and ``partial`` arrive with
the strategies branch) is measured as the primitive calls it is built on (switch; set_weights 50/20/0;
revert of each component), each followed by ``wait_ready``, and the row says so. Kubernetes runs on the
sandbox API server of that branch and is not measured here.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmarks._common import free_port, log, machine_notes, write_section
from strategies import STRATEGIES
from strategies.base import Platform, RollbackRequest, TargetRef
from strategies.context import MemoryContext
from tests.platforms import aws_helpers as awsh
from tests.platforms import swarm_helpers as swh
from tests.platforms.cases import DryRunCase, EcsCase, SwarmCase

STRATEGY_NAMES = ("undo", "blue_green", "progressive", "partial")
WAIT = 120.0


@dataclass
class Cell:
    platform: str
    strategy: str
    mode: str
    seconds: list[float]
    writes: int
    error: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.seconds) if self.seconds else float("nan")


Scenario = tuple[Platform, TargetRef, RollbackRequest]


# -- scenarios: one builder per (platform, strategy) -------------------------------------------------------
def partial_scenario(case: Any) -> Scenario:
    """Two components of one release, each deployed three times (checkout depends on payments)."""
    if isinstance(case, DryRunCase):
        platform, target = case.revertible()
    elif isinstance(case, EcsCase):
        case.counter += 1
        cluster = f"rel{case.counter}"
        for service in ("checkout", "payments"):
            awsh.ecs_world(case.session, case.endpoint, cluster=cluster, service=service, siblings=())
        world = awsh.EcsWorld(case.endpoint, cluster, "checkout", "checkout")
        from strategies.ecs import EcsPlatform

        platform = EcsPlatform(session=case.session, **world.options())
        target = TargetRef("ecs", "moto", cluster, "checkout")
    else:
        platform = None
        for service in ("checkout", "payments"):
            name = f"{case.stack}_{service}"
            swh.create_service(case.api, name, "app:v1", stack=case.stack)
            platform = case._platform()
            platform.record(case._ref(service))
            swh.deploy(case.api, name, "app:v2")
            platform.record(case._ref(service))
            swh.deploy(case.api, name, "app:v3")
        target = case._ref("checkout")
    request = RollbackRequest(
        target, components=("checkout", "payments"), dependencies={"checkout": ("payments",)}, wait_timeout=WAIT
    )
    return platform, target, request


def scenario(case: Any, strategy: str) -> Scenario:
    if strategy == "undo":
        platform, target = case.revertible()
        return platform, target, RollbackRequest(target, wait_timeout=WAIT)
    if strategy == "blue_green":
        platform, target = case.colored()
        return platform, target, RollbackRequest(target, wait_timeout=WAIT)
    if strategy == "progressive":
        platform, target = case.weighted()
        return platform, target, RollbackRequest(target, steps=(50, 20, 0), wait_timeout=WAIT, step_interval=0.0)
    return partial_scenario(case)


# -- running -----------------------------------------------------------------------------------------------
def run_strategy(name: str, platform: Platform, request: RollbackRequest) -> tuple[float, int]:
    strategy = STRATEGIES[name]()
    plan = strategy.plan(platform, request)
    writes = sum(len(step.calls) for step in plan.steps)
    ctx = MemoryContext(sleep=lambda _s: None)
    started = time.perf_counter()
    outcome = strategy.execute(platform, plan, ctx)
    elapsed = time.perf_counter() - started
    if outcome.status != "succeeded":
        raise RuntimeError(f"{name} ended {outcome.status}: {outcome.message}")
    return elapsed, writes


def run_primitives(name: str, platform: Platform, request: RollbackRequest) -> tuple[float, int]:
    """What the strategy will do, as the platform calls it is built on (each followed by wait_ready)."""
    target = request.target
    steps: list[Callable[[], list[Any]]] = []
    if name == "blue_green":
        state = platform.describe(target)
        other = next(c for c in state.colors if c != state.active_color)
        steps.append(lambda: platform.switch(target, other))
    elif name == "progressive":
        for canary in request.steps:
            steps.append(lambda c=canary: platform.set_weights(target, {"stable": 100 - c, "canary": c}))  # type: ignore[misc]
    elif name == "partial":
        for component in ("payments", "checkout"):  # dependencies first
            steps.append(lambda c=component: platform.revert(target.sibling(c)))  # type: ignore[misc]
    writes = 0
    started = time.perf_counter()
    for index, step in enumerate(steps):
        writes += len(step())
        waited = target.sibling(("payments", "checkout")[index]) if name == "partial" else target
        platform.wait_ready(waited, WAIT)
    return time.perf_counter() - started, writes


def measure(case_name: str, case_factory: Callable[[], Any], repeat: int) -> list[Cell]:
    cells = []
    for strategy in STRATEGY_NAMES:
        mode = "strategy" if strategy in STRATEGIES else "primitives"
        cell = Cell(case_name, strategy, mode, [], 0)
        for i in range(repeat):
            case = case_factory()
            try:
                platform, _target, request = scenario(case, strategy)
                runner = run_strategy if mode == "strategy" else run_primitives
                seconds, writes = runner(strategy, platform, request)
            except Exception as exc:
                cell.error = f"{type(exc).__name__}: {exc}"[:160]
                log(f"{case_name:8} {strategy:12} run {i + 1}: FAILED {cell.error}")
                break
            cell.seconds.append(seconds)
            cell.writes = writes
            log(f"{case_name:8} {strategy:12} run {i + 1}/{repeat}: {seconds * 1000:8.1f} ms, {writes} writes")
        cells.append(cell)
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    notes = machine_notes()
    logging.getLogger("werkzeug").setLevel(logging.CRITICAL)

    import boto3
    import requests
    from moto.server import ThreadedMotoServer

    from sandbox.swarm_engine import LocalSwarm

    log("starting moto's server and a local swarm engine")
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    moto_url = f"http://{host}:{port}"
    session = boto3.Session(aws_access_key_id="bench", aws_secret_access_key="bench", region_name=awsh.REGION)
    engine = LocalSwarm()
    engine.up()
    log(f"swarm engine up in {engine.timings['up']:.2f} s ({engine.timings})")
    api = engine.api()

    def ecs_case() -> EcsCase:
        requests.post(f"{moto_url}/moto-api/reset", timeout=10).raise_for_status()
        return EcsCase(session, moto_url)

    def swarm_case() -> SwarmCase:
        swh.remove_test_objects(api)
        return SwarmCase(api, engine.base_url)

    try:
        cells = measure("dry-run", DryRunCase, args.repeat)
        cells += measure("ecs", ecs_case, args.repeat)
        cells += measure("swarm", swarm_case, args.repeat)
    finally:
        swh.remove_test_objects(api)
        api.close()
        engine.down()
        moto.stop()
        log(f"swarm engine down in {engine.timings['down']:.2f} s")

    body = report(cells, notes, engine.timings, args.repeat)
    print(body)
    if not args.no_write:
        write_section("platform_parity", body)


def report(cells: list[Cell], notes: str, engine: dict[str, float], repeat: int) -> str:
    by = {(c.platform, c.strategy): c for c in cells}
    lines = [
        "## Platform parity: wall time per strategy and platform",
        "",
        f"Machine: {notes}.",
        "",
        f"`python -m benchmarks.platform_parity --repeat {repeat}`. Median of {repeat} runs, from `execute()` "
        "(or the first primitive call) until the target is ready again, every `wait_ready` included; scenario "
        "set-up excluded. ECS runs on moto's server (it applies writes at once: real ECS adds task start-up, "
        "health checks and the ALB deregistration delay, minutes rather than milliseconds); Swarm on a real "
        "dockerd 20.10 in swarm mode with busybox tasks, `Monitor` 0.2 s, start-first updates.",
        "",
        "| strategy | mode | dry-run | ecs (moto) | swarm (dockerd) | swarm / ecs | writes (dry-run / ecs / swarm) |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for strategy in STRATEGY_NAMES:
        row = [by.get((p, strategy)) for p in ("dry-run", "ecs", "swarm")]
        mode = next((c.mode for c in row if c), "")

        def fmt(cell: Cell | None) -> str:
            if cell is None:
                return "-"
            if cell.error:
                return f"failed: {cell.error}"
            return f"{cell.median * 1000:.1f} ms"

        ecs, swarm = row[1], row[2]
        ratio = (
            f"{swarm.median / ecs.median:.0f}x"
            if ecs and swarm and ecs.seconds and swarm.seconds and ecs.median > 0
            else "-"
        )
        writes = " / ".join(str(c.writes) if c and not c.error else "-" for c in row)
        lines.append(f"| {strategy} | {mode} | {fmt(row[0])} | {fmt(ecs)} | {fmt(swarm)} | {ratio} | {writes} |")
    lines += [
        "",
        "Mode `primitives`: the strategy is not merged yet, so the row times the platform calls it is built on "
        "(blue_green: one `switch`; progressive: `set_weights` 50, 20, 0; partial: `revert` of two components "
        "in dependency order), each followed by `wait_ready`. Writes count the API writes listed (Swarm's "
        "include the revision records it keeps as Docker configs).",
        "",
        f"Swarm engine for the run: up {engine.get('up', 0):.2f} s (fetch {engine.get('fetch', 0):.2f} s, "
        f"dockerd {engine.get('start', 0):.2f} s, swarm init {engine.get('swarm_init', 0):.2f} s, images "
        f"{engine.get('images', 0):.2f} s), down {engine.get('down', 0):.2f} s.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
