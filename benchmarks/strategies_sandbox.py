"""Each rollback strategy on the sandbox: API requests and wall time from ``execute()`` to the final state.

    python -m benchmarks.strategies_sandbox [--repeat N] [--in-process]

The sandbox runs as ``smart-rollback sandbox`` in its own process (``--in-process``: a thread of this one)
and is reset to the demo seed before every repetition; one platform (one connection pool, as in a running
reactor) talks to it through the official client over HTTP. Timed: ``execute()`` plus ``verify()`` (the
final state confirmed); not timed: planning and the seed reset. Configured waits are excluded:
``step_interval`` sleeps are a no-op and ``wait_timeout`` is 0 (the sandbox's pods are ready at once).
For scale, ``kubectl rollout undo`` of the same Deployment is timed on the same sandbox in the same run
(it includes kubectl's process start; our undo also restores a ConfigMap). Rewrites only its own section
of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform as host
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SECTION = "strategies_sandbox"


@dataclass(frozen=True)
class Case:
    strategy: str
    target: str
    shape: str
    request: dict[str, Any] = field(default_factory=dict)
    #: Before planning: put the canary at 100 % so progressive takes every step (50, 20, 0).
    promote: bool = False


CASES = (
    Case("undo", "payments", "Deployment, ConfigMap restored"),
    Case("undo", "search", "Argo Rollout: abort + undo"),
    Case("blue_green", "cart", "Service selector between two Deployments"),
    Case("blue_green", "recommendations", "Argo blue-green: switch + undo"),
    Case("progressive", "frontend", "Istio VirtualService, 100->50->20->0", promote=True),
    Case("progressive", "catalog", "NGINX canary Ingress, 100->50->20->0", promote=True),
    Case("progressive", "reviews", "Gateway API HTTPRoute, 100->50->20->0", promote=True),
    Case("progressive", "inventory", "replica ratio (4 pods), 100->50->20->0", promote=True),
    Case("progressive", "search", "Argo canary (one step: abort) + undo"),
    Case("partial", "payments", "3 components, dependents first, + check", {"components": ("payments",)}),
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def sandbox(in_process: bool, workdir: Path) -> Iterator[tuple[str, Path]]:
    """(URL, kubeconfig) of a demo sandbox, in a subprocess unless ``in_process``."""
    port = free_port()
    kubeconfig = workdir / "kubeconfig"
    if in_process:
        from sandbox.server import SandboxServer

        with SandboxServer(f"127.0.0.1:{port}", seed="demo") as server:
            server.record_requests = False
            server.write_kubeconfig(kubeconfig)
            yield server.url, kubeconfig
        return
    command = [sys.executable, "-m", "reactor", "sandbox", "--bind", f"127.0.0.1:{port}"]
    command += ["--kubeconfig-out", str(kubeconfig), "--seed", "demo"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not kubeconfig.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the sandbox did not start: {process.stderr.read() if process.stderr else ''}")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}", kubeconfig
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def reset(url: str) -> None:
    request = urllib.request.Request(f"{url}/sandbox/v1/reset?seed=demo", method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


@dataclass
class Sample:
    seconds: float
    requests: int
    writes: int
    steps: int


def run_case(case: Case, platform: Any, url: str, repeat: int, progress: Callable[[str], None]) -> list[Sample]:
    from strategies import STRATEGIES, OutcomeStatus, RollbackRequest, TargetRef
    from strategies.context import MemoryContext

    target = TargetRef("kubernetes", "bench", "shop", case.target)
    kube = platform.client("bench")
    samples = []
    for number in range(repeat):
        reset(url)
        if case.promote:
            platform.set_weights(target, {"stable": 0, "canary": 100})
        strategy = STRATEGIES[case.strategy]()
        plan = strategy.plan(platform, RollbackRequest(target, **case.request))
        ctx = MemoryContext(sleep=lambda _seconds: None)
        before, before_writes = kube.request_count, kube.write_count
        start = time.perf_counter()
        outcome = strategy.execute(platform, plan, ctx)
        verified = strategy.verify(platform, plan)
        elapsed = time.perf_counter() - start
        if outcome.status is not OutcomeStatus.SUCCEEDED or not verified:
            raise SystemExit(f"{case.strategy} on {case.target} did not succeed: {outcome}")
        made, written = kube.request_count - before, kube.write_count - before_writes
        samples.append(Sample(elapsed, made, written, len(plan.steps)))
        if (number + 1) % max(1, repeat // 4) == 0 or number + 1 == repeat:
            progress(f"  {case.strategy:<12} {case.target:<16} {number + 1}/{repeat}")
    return samples


def time_kubectl_undo(kubeconfig: Path, url: str, repeat: int, workdir: Path) -> list[float] | None:
    finder = ROOT / "scripts" / "kubectl.sh"
    found = subprocess.run(["bash", str(finder)], capture_output=True, text=True, check=False, timeout=600)
    kubectl = found.stdout.strip()
    if found.returncode != 0 or not kubectl:
        return None
    cache = workdir / "kubectl-cache"
    command = [kubectl, "--kubeconfig", str(kubeconfig), "--cache-dir", str(cache), "-n", "shop"]
    subprocess.run([*command, "get", "deployments"], capture_output=True, check=True, timeout=60)  # warm discovery
    times = []
    for _ in range(repeat):
        reset(url)
        start = time.perf_counter()
        subprocess.run(
            [*command, "rollout", "undo", "deployment/payments"], capture_output=True, check=True, timeout=60
        )
        times.append(time.perf_counter() - start)
    return times


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def machine_notes(load_before: tuple[float, ...]) -> str:
    load_after = os.getloadavg()
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    fmt = ", ".join
    return (
        f"Machine: {os.cpu_count()} CPUs, load average {fmt(f'{x:.2f}' for x in load_before)} before / "
        f"{fmt(f'{x:.2f}' for x in load_after)} after, Python {host.python_version()}, {now}."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15, help="repetitions per strategy (default 15)")
    parser.add_argument("--in-process", action="store_true", help="run the sandbox in this process")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from strategies.kubernetes.platform import KubernetesPlatform

    load_before = os.getloadavg()
    workdir = Path(tempfile.mkdtemp(prefix="bench-strategies-"))
    rows = []
    try:
        with sandbox(args.in_process, workdir) as (url, kubeconfig):
            mode = "thread of the benchmark process" if args.in_process else "separate process"
            print(f"sandbox at {url} ({mode}); {args.repeat} repetitions per strategy", flush=True)
            with KubernetesPlatform(clusters={"bench": {"kubeconfig": str(kubeconfig)}}) as platform:
                for index, case in enumerate(CASES, 1):
                    print(f"[{index}/{len(CASES)}] {case.strategy} on {case.target} ({case.shape})", flush=True)
                    samples = run_case(case, platform, url, args.repeat, lambda line: print(line, flush=True))
                    rows.append((case, samples))
            print("kubectl rollout undo deployment/payments, for scale", flush=True)
            kubectl_times = time_kubectl_undo(kubeconfig, url, args.repeat, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    undo_median = statistics.median(s.seconds for s in rows[0][1])
    lines = [
        f"## Rollback strategies on the sandbox (`python -m benchmarks.strategies_sandbox --repeat {args.repeat}`)",
        "",
        machine_notes(load_before),
        f"Sandbox: `smart-rollback sandbox` in a {mode}, reset to the demo seed before each repetition; one "
        "KubernetesPlatform (official client, one connection pool) over HTTP on loopback. Timed: `execute()` "
        "+ "
        "`verify()`; waits excluded (`step_interval` sleeps no-op, `wait_timeout` 0). Requests = every HTTP "
        "request of execute+verify (reads included); writes = POST/PUT/PATCH among them.",
        "",
        "| strategy | target | what happens | plan steps | requests | writes | median ms | p95 ms | vs undo |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for case, samples in rows:
        seconds = [s.seconds for s in samples]
        median = statistics.median(seconds)
        lines.append(
            f"| {case.strategy} | {case.target} | {case.shape} | {samples[0].steps} | "
            f"{statistics.median(s.requests for s in samples):.0f} | "
            f"{statistics.median(s.writes for s in samples):.0f} | "
            f"{median * 1000:.1f} | {percentile(seconds, 0.95) * 1000:.1f} | {median / undo_median:.2f}x |"
        )
    if kubectl_times:
        kubectl_median = statistics.median(kubectl_times)
        lines += [
            "",
            "`kubectl rollout undo deployment/payments` on the same sandbox: median "
            f"{kubectl_median * 1000:.1f} ms, "
            f"p95 {percentile(kubectl_times, 0.95) * 1000:.1f} ms (kubectl process start included); "
            "our undo "
            f"of the same Deployment (with its ConfigMap restore) took {undo_median / kubectl_median:.2f}x "
            "that.",
        ]
    total = sum(statistics.median(s.requests for s in samples) for _case, samples in rows)
    writes = sum(statistics.median(s.writes for s in samples) for _case, samples in rows)
    slowest = max(rows, key=lambda row: statistics.median(s.seconds for s in row[1]))[0]
    lines += [
        "",
        f"Reading: {total - writes:.0f} of the {total:.0f} requests above are reads (each step re-reads what "
        "it "
        "changes, so a resumed run never repeats or reverses a step, and `describe` lists history, snapshots "
        f"and release components); the slowest case is {slowest.strategy} on {slowest.target}. On a real "
        "cluster, readiness waits and `step_interval` (both excluded here) dominate.",
    ]
    body = "\n".join(lines)
    print()
    print(body)
    if not args.no_write:
        from benchmarks._results import write_section

        write_section(SECTION, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
